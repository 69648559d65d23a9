"""The survey simulator end to end: stamp sets with truth, reproducibility, flux consistency."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from skysort.cli import main
from skysort.data.stampset import StampSet
from skysort.errors import InputError
from skysort.simulate.simulator import SimulationConfig, simulate

SHARED_DATA = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="skysort reference data (../shared/data) not available")


def same_stampsets(a: StampSet, b: StampSet) -> bool:
    if not np.array_equal(a.images(), b.images()) or a.columns != b.columns:
        return False
    for name in a.columns:
        x, y = a.column(name), b.column(name)
        if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            return False
    return all(np.array_equal(a.array(k), b.array(k), equal_nan=True) for k in a.array_names)


@pytest.mark.parametrize("survey,kind", [("kids", "sources"), ("sdss", "pointsources"), ("cfis", "blends")])
def test_output_is_the_same_whatever_the_workers(tmp_path, survey, kind):
    config = SimulationConfig(survey=survey, kind=kind, seed=11)
    one = simulate(config, 48, tmp_path / "one.h5", workers=1, block=48)
    two = simulate(config, 48, tmp_path / "two.h5", workers=2, block=10)
    assert same_stampsets(one, two)
    part = simulate(config, 48, tmp_path / "part.h5", workers=1, block=7)
    assert same_stampsets(one, part)


def test_sources_carry_truth_and_metadata(tmp_path):
    stamps = simulate(SimulationConfig(survey="kids", kind="sources", seed=1, balanced=True), 90, tmp_path / "k.h5")
    assert stamps.shape == (90, 9, 64, 64)
    meta = stamps.meta
    assert meta.bands == ("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks") and meta.pixel_scale == 0.2
    assert meta.seed == 1 and meta.survey == "kids" and meta.zero_points["r"] == 30.0 and meta.psf_fwhm["r"] == 0.7
    assert meta.extra["simulation"]["kind"] == "sources"
    counts = stamps.summary()["classes"]
    assert set(counts) == {"star", "galaxy", "qso"} and max(counts.values()) - min(counts.values()) <= 0.5 * max(counts.values())
    table = stamps.table
    for name in ("redshift", "mag_true_r", "flux_r", "hlr_arcsec", "offset_x", "morphology"):
        assert name in table.colnames
    labels = np.asarray(table["label"])
    assert set(np.asarray(table["morphology"])[labels == "galaxy"]) == {"parametric"}
    assert np.all(np.asarray(table["hlr_arcsec"])[labels != "galaxy"] == 0)
    assert np.all(np.abs(table["offset_x"]) <= 0.5)


def test_image_flux_matches_catalogue_magnitude(tmp_path):
    """Flux in a large aperture agrees with the catalogue magnitude within its error."""
    stamps = simulate(SimulationConfig(survey="sdss", kind="pointsources", seed=4), 300, tmp_path / "p.h5")
    table = stamps.table
    r = stamps.meta.bands.index("r")
    images = stamps.images()[:, r]
    yy, xx = np.mgrid[:64, :64] - 32
    aperture = np.hypot(xx, yy) <= 15
    flux = images[:, aperture].sum(axis=1)
    sky = stamps.meta.extra["sky_sigma"]["r"]
    flux_err = sky * np.sqrt(aperture.sum())
    true_flux = np.asarray(table["flux_r"])
    bright = true_flux > 20 * flux_err
    assert bright.sum() > 30
    pulls = (flux - true_flux)[bright] / flux_err
    assert abs(np.median(pulls)) < 0.5 and np.percentile(np.abs(pulls), 95) < 3
    mag_ap = stamps.meta.zero_points["r"] - 2.5 * np.log10(flux[bright])
    mag_cat = np.ma.filled(table["mag_r"], np.nan)[bright]
    err = np.hypot(np.ma.filled(table["magerr_r"], np.nan)[bright], 1.0857 * flux_err / flux[bright])
    assert np.mean(np.abs(mag_ap - mag_cat) < 3 * err) > 0.95


def test_point_sources_have_spectra(tmp_path):
    stamps = simulate(SimulationConfig(survey="sdss", kind="pointsources", seed=2, spectra_snr=20), 30, tmp_path / "p.h5")
    assert set(stamps.labels()) <= {"star", "qso"}
    spectra = stamps.array("spectrum")
    attrs = stamps.array_attrs("spectrum")
    assert spectra.shape == (30, attrs["n_pixels"]) and 3600 < attrs["n_pixels"] < 4000
    assert attrs["loglam_step"] == 1e-4 and 10 ** attrs["loglam_start"] == pytest.approx(3800, abs=1)
    assert np.all(np.isfinite(spectra))


def test_blends_follow_the_blendhunter_geometry(tmp_path):
    stamps = simulate(SimulationConfig(survey="cfis", kind="blends", seed=3, noise_sigma=10), 40, tmp_path / "b.h5")
    images = stamps.images()
    assert images.shape == (40, 1, 65, 65)
    assert np.all(images[:, :, :7] == 0) and np.all(images[:, :, :, -7:] == 0)  # zero padding
    table = stamps.table
    blended = np.asarray(table["blended"]).astype(bool)
    assert list(np.asarray(table["label"])) == ["blended" if b else "isolated" for b in blended]
    assert np.all(np.asarray(table["n_sources"]) == np.where(blended, 2, 1))
    near = np.asarray(table["near"]).astype(bool)
    separation = np.ma.filled(table["separation_px"], np.nan)
    assert np.array_equal(near[blended], separation[blended] < 10)
    assert stamps.meta.extra["sky_sigma"] == {"r": 10.0}
    with pytest.raises(InputError, match="cfis"):
        simulate(SimulationConfig(survey="kids", kind="blends"), 4, tmp_path / "x.h5")


def test_cli_simulate_with_plots(tmp_path, capsys):
    out = tmp_path / "s.h5"
    code = main(["simulate", "--survey", "sdss", "--n", "120", "--seed", "9", "--out", str(out), "--plots", str(tmp_path / "plots"), "--quiet"])
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert "colour_colour.png" in written and "magnitudes.png" in written and any(p.startswith("mosaic_") for p in written)
    code = main(["simulate", "--survey", "nowhere", "--n", "5", "--out", str(tmp_path / "x.h5"), "--quiet"])
    assert code == 2 and "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
