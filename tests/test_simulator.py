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
    """Flux in a large aperture agrees with the catalogue magnitude within its error, once the
    light of the PSF's wings beyond the aperture is accounted for."""
    stamps = simulate(SimulationConfig(survey="sdss", kind="pointsources", seed=4), 800, tmp_path / "p.h5")
    table = stamps.table
    r = stamps.meta.bands.index("r")
    images = stamps.images()[:, r]
    yy, xx = np.mgrid[:64, :64] - 32
    radius_px = 15
    aperture = np.hypot(xx, yy) <= radius_px
    flux = images[:, aperture].sum(axis=1)
    # Each object's own sky noise (the preset varies it); field stars would add their light.
    sky = np.asarray(table["sky_sigma_r"], float)
    flux_err = sky * np.sqrt(aperture.sum())
    alone = np.asarray(table["n_neighbours"]) == 0
    # Moffat enclosed flux, 1 - (1 + (R / alpha)^2)^(1 - beta), with FWHM = 2 alpha sqrt(2^(1/beta) - 1):
    # the broadest wings of this set's PSFs put about 2% of the light beyond 6".
    beta = np.asarray(table["psf_beta"], float)
    alpha = np.asarray(table["psf_fwhm_arcsec"], float) / stamps.meta.pixel_scale / (2 * np.sqrt(2 ** (1 / beta) - 1))
    enclosed = 1 - (1 + (radius_px / alpha) ** 2) ** (1 - beta)
    assert enclosed.min() < 0.985  # the wings matter here
    true_flux = np.asarray(table["flux_r"]) * enclosed
    bright = (true_flux > 20 * flux_err) & alone
    assert bright.sum() > 30
    pulls = (flux - true_flux)[bright] / flux_err[bright]
    assert abs(np.median(pulls)) < 0.5 and np.percentile(np.abs(pulls), 95) < 3
    mag_ap = stamps.meta.zero_points["r"] - 2.5 * np.log10(flux[bright] / enclosed[bright])
    mag_cat = np.ma.filled(table["mag_r"], np.nan)[bright]
    err = np.hypot(np.ma.filled(table["magerr_r"], np.nan)[bright], 1.0857 * flux_err[bright] / flux[bright])
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


def test_near_fraction_puts_companions_within_ten_pixels_and_changes_nothing_else(tmp_path):
    """--near-fraction trains on more near blends; at 0 (the default) a set is what it was."""
    from skysort.simulate.blends import make_blend_stamps

    images, truth = make_blend_stamps(400, seed=5, noise_sigma=5.0)
    again, same = make_blend_stamps(400, seed=5, noise_sigma=5.0, near_fraction=0.0)
    assert np.array_equal(images, again) and np.array_equal(np.asarray(truth["blended"]), np.asarray(same["blended"]))
    _, near = make_blend_stamps(400, seed=5, noise_sigma=5.0, near_fraction=0.8)
    blended = np.asarray(near["blended"]).astype(bool)
    assert np.array_equal(blended, np.asarray(truth["blended"]).astype(bool))  # which stamps are blends is unchanged
    share = np.mean(np.asarray(near["separation_px"])[blended] < 10)
    assert 0.75 < share < 0.9 and np.mean(np.asarray(truth["separation_px"])[blended] < 10) < 0.25
    assert near.meta["near_fraction"] == 0.8
    stamps = simulate(SimulationConfig(survey="cfis", kind="blends", seed=3, near_fraction=0.5), 8, tmp_path / "b.h5")
    assert stamps.meta.extra["simulation"]["near_fraction"] == 0.5
    for config, fragment in ((dict(kind="sources", near_fraction=0.5), "for --kind blends"),
                             (dict(survey="cfis", kind="blends", near_fraction=1.5), "within 0 to 1")):
        with pytest.raises(InputError, match=fragment):
            SimulationConfig(**config)


def test_real_shear_is_recorded_and_refused_outside_realistic_blends(tmp_path, capsys):
    stamps = simulate(SimulationConfig(survey="cfis", kind="blends", mode="realistic", seed=3, real_shear=0.3), 4,
                      tmp_path / "b.h5")
    assert stamps.meta.extra["simulation"]["real_shear"] == 0.3
    for config, fragment in ((dict(survey="cfis", kind="blends", real_shear=0.3), "for --kind blends --mode realistic"),
                             (dict(survey="cfis", kind="blends", mode="realistic", real_shear=0.7), "within 0 to 0.5")):
        with pytest.raises(InputError, match=fragment):
            SimulationConfig(**config)
    code = main(["simulate", "--survey", "kids", "--n", "4", "--real-shear", "0.2", "--out", str(tmp_path / "s.h5"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--real-shear: shears real COSMOS galaxies" in err and not (tmp_path / "s.h5").exists()


def test_cli_simulate_with_plots(tmp_path, capsys):
    out = tmp_path / "s.h5"
    code = main(["simulate", "--survey", "sdss", "--n", "120", "--seed", "9", "--out", str(out), "--plots", str(tmp_path / "plots"), "--quiet"])
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert "colour_colour.png" in written and "magnitudes.png" in written and any(p.startswith("mosaic_") for p in written)
    code = main(["simulate", "--survey", "nowhere", "--n", "5", "--out", str(tmp_path / "x.h5"), "--quiet"])
    assert code == 2 and "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def _second_moment(images):
    """Flux-weighted <r^2> about the stamp centre, pixels^2, per stamp."""
    h, w = images.shape[-2:]
    yy, xx = np.mgrid[:h, :w]
    r2 = (xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2
    return (images * r2).sum(axis=(-2, -1)) / images.sum(axis=(-2, -1))


def test_quasar_hosts_in_stamps():
    """A host quasar's stamp holds flux_<b> and is more extended than a bare one's."""
    from skysort.simulate.population import draw_population
    from skysort.simulate.presets import load_survey
    from skysort.simulate.simulator import _render_sources

    preset = load_survey("kids")
    config = SimulationConfig(survey="kids", kind="sources", seed=5, noise_sigma=0.0)
    pop = draw_population(preset, 400, 5, class_fractions={"qso": 1}, mag_range=(19.0, 20.0))
    low = np.asarray(pop["redshift"]) < 0.7
    assert low.sum() >= 5
    images, truth = _render_sources(preset, pop, config)
    assert np.all(truth["morphology"][low] == "point+host") and np.all(truth["morphology"][~low] == "point")
    assert np.all(truth["host_hlr_arcsec"][low] > 0) and np.all(truth["host_hlr_arcsec"][~low] == 0)
    assert np.all(truth["host_cosmos_row"][~low] == -1) and np.all(truth["host_cosmos_row"][low] >= 0)
    r = preset.band_names.index("r")
    flux = np.asarray(pop["flux_r"])
    # Noiseless stamps: AGN + host add up to the catalogue flux; only the far wings of the
    # host (Sersic tails up to n = 6) may fall beyond the 64-pixel stamp.
    missing = flux - images[:, r].sum(axis=(1, 2))
    host = np.asarray(pop["host_flux_r"])
    assert np.all(missing > -1e-4 * flux) and np.all(missing <= 0.2 * host + 1e-4 * flux)
    assert np.median(missing[low] / host[low]) < 0.02
    np.testing.assert_allclose(images[~low, r].sum(axis=(1, 2)), flux[~low], rtol=1e-4)
    # The same objects without hosts: the AGN gets all the flux and the stamp is a PSF.
    bare = pop.copy()
    for b in preset.band_names:
        bare[f"host_flux_{b}"] = 0.0
    bare_images, bare_truth = _render_sources(preset, bare, config)
    assert np.all(bare_truth["morphology"] == "point")
    np.testing.assert_array_equal(bare_images[~low], images[~low])
    extended = _second_moment(images[low, r]) > 1.05 * _second_moment(bare_images[low, r])
    assert extended.mean() > 0.8


def test_host_quasars_reproducible_whatever_the_blocks(tmp_path):
    config = SimulationConfig(survey="sdss", kind="pointsources", seed=3, balanced=True)
    one = simulate(config, 64, tmp_path / "one.h5", workers=1, block=64)
    assert np.any(np.asarray(one.table["morphology"]) == "point+host")
    part = simulate(config, 64, tmp_path / "part.h5", workers=2, block=9)
    assert same_stampsets(one, part)


def test_real_galaxy_splits_are_disjoint_halves_and_respected():
    from skysort.simulate.blends import make_blend_stamps
    from skysort.simulate.galaxies import real_galaxy_rows

    train, test = real_galaxy_rows(100, "train"), real_galaxy_rows(100, "test")
    assert len(train) == len(test) == 50 and not set(train) & set(test)
    assert sorted(set(train) | set(test)) == list(range(100))
    # The training rows halved, for choices made on galaxies unseen in fitting.
    fit, check = real_galaxy_rows(100, "train-fit"), real_galaxy_rows(100, "train-check")
    assert len(fit) == len(check) == 25 and sorted(set(fit) | set(check)) == list(train)
    _, truth = make_blend_stamps(30, seed=3, mode="realistic", real_galaxies="train-check")
    assert np.all(np.concatenate([truth["source_central"], truth["source_companion"][truth["source_companion"] >= 0]]) % 4 == 2)
    _, truth = make_blend_stamps(30, seed=3, mode="realistic", real_galaxies="test")
    rows = np.concatenate([truth["source_central"], truth["source_companion"][truth["source_companion"] >= 0]])
    assert np.all(rows % 2 == 1)
    with pytest.raises(Exception):
        SimulationConfig(survey="cfis", kind="blends", real_galaxies="half")
    # Options that would be ignored are refused: a split without real galaxies, a mode without galaxies.
    for mode in ("parametric", "clumpy"):
        with pytest.raises(InputError, match="needs --mode realistic"):
            SimulationConfig(survey="cfis", kind="blends", mode=mode, real_galaxies="test")
    with pytest.raises(InputError, match="--mode is for sources and blends"):
        SimulationConfig(survey="sdss", kind="pointsources", mode="realistic")
    SimulationConfig(survey="cfis", kind="blends", mode="realistic", real_galaxies="test")


def test_clumpy_sources_are_parametric_galaxies_with_knots(tmp_path):
    config = dict(survey="kids", kind="sources", seed=4, image_bands=("r",), stamp_size=24)
    stamps = simulate(SimulationConfig(mode="clumpy", **config), 60, tmp_path / "clumpy.h5")
    table = stamps.table
    morph = np.asarray(table["morphology"]).astype(str)
    galaxy = np.asarray(table["label"]).astype(str) == "galaxy"
    assert set(morph[galaxy]) == {"clumpy"} and np.all(np.isfinite(table["sersic_n"][galaxy]))
    smooth = simulate(SimulationConfig(mode="parametric", **config), 60, tmp_path / "smooth.h5")
    # Same objects and fluxes, different light distribution in the galaxies' discs.
    images, smooth_images = stamps.read_images(), smooth.read_images()
    assert not np.allclose(images[galaxy], smooth_images[galaxy])
    np.testing.assert_array_equal(images[~galaxy], smooth_images[~galaxy])


def test_seeing_levels_come_from_the_preset():
    from skysort.simulate.presets import load_survey
    from skysort.simulate.simulator import _blend_psf, psf_variants

    preset = load_survey("kids")  # the default five levels, one Moffat index
    default = psf_variants(preset, seed=5)
    assert [round(v["fwhm"]["r"], 4) for v in default] == [round(0.7 + k * 0.1, 4) for k in (-1.5, -0.75, 0.0, 0.75, 1.5)]
    assert all("beta" not in v for v in default)
    assert _blend_psf(preset, seed=5) == default[2]
    sdss = load_survey("sdss")  # the whole SDSS seeing range, with the wings of real frames
    variants = psf_variants(sdss, seed=5)
    # Two PSFs per seeing level, with their own wings and shear.
    assert [v["fwhm"]["r"] for v in variants] == pytest.approx(np.repeat(np.linspace(0.8, 2.0, 17), 2))
    betas = [v["beta"] for v in variants]
    assert all(2.2 <= b <= 5.0 for b in betas) and len(set(betas)) == 34
    assert len({(v["g1"], v["g2"]) for v in variants}) == 34
    assert variants == psf_variants(sdss, seed=5) and variants != psf_variants(sdss, seed=6)
    # One PSF per level draws the same sequence: the first PSF of level k is what a list
    # naming every level twice gives at 2k.
    twice = sdss.model_copy(update={"psf": sdss.psf.model_copy(update={
        "fwhm_levels": list(np.repeat(sdss.psf.fwhm_levels, 2)), "psfs_per_level": 1})})
    assert psf_variants(twice, seed=5) == variants
    assert _blend_psf(sdss, seed=5) == variants[16]
    odd = sdss.model_copy(update={"psf": sdss.psf.model_copy(update={"fwhm_levels": [1.0, -2.0, 2.0]})})
    # A blend set's single PSF is the level nearest the nominal FWHM.
    assert _blend_psf(odd, seed=5)["fwhm"]["r"] == pytest.approx(1.7)
