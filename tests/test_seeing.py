"""Seeing: measured on images, recorded in stamp sets and models, checked at prediction."""

from __future__ import annotations

import numpy as np
import pytest

from skysort.data.seeing import (half_sample_mode, measure_seeing, merge_seeing_ranges, seeing_mismatch,
                                 stamp_seeing_range)
from skysort.data.stampset import StampMeta

PIXEL_SCALE = 0.4


def synthetic_field(fwhm: float, *, beta: float = 4.765, n_stars: int = 60, n_galaxies: int = 60, size: int = 700,
                    seed: int = 0) -> np.ndarray:
    """A sky of Moffat stars of the given FWHM [arcsec] and index and larger exponential
    galaxies seen through the same PSF, with Gaussian noise of unit rms."""
    import galsim

    rng = np.random.default_rng(seed)
    image = galsim.ImageF(size, size, scale=PIXEL_SCALE)
    psf = galsim.Moffat(beta=beta, fwhm=fwhm)
    for k in range(n_stars + n_galaxies):
        flux = 10 ** rng.uniform(3.0, 4.0)
        if k < n_stars:
            profile = psf.withFlux(flux)
        else:
            profile = galsim.Convolve(galsim.Exponential(half_light_radius=rng.uniform(0.6, 1.5), flux=flux), psf)
        x, y = rng.uniform(40, size - 40, 2)
        stamp = profile.drawImage(nx=41, ny=41, scale=PIXEL_SCALE, offset=(x % 1 - 0.5, y % 1 - 0.5))
        stamp.setCenter(int(x) + 1, int(y) + 1)
        bounds = stamp.bounds & image.bounds
        image[bounds] += stamp[bounds]
    return image.array + rng.normal(0.0, 1.0, (size, size)).astype(np.float32) + 5.0  # a sky level too


def test_half_sample_mode_finds_the_dense_cluster():
    values = np.concatenate([np.full(20, 2.0) + np.linspace(-0.02, 0.02, 20), np.linspace(3, 9, 15)])
    assert half_sample_mode(values) == pytest.approx(2.0, abs=0.02)
    assert np.isnan(half_sample_mode(np.array([np.nan])))


@pytest.mark.parametrize("fwhm,beta", [(0.9, 4.765), (1.4, 4.765), (2.1, 4.765), (1.2, 2.5)])
def test_the_seeing_of_a_star_field_is_recovered(fwhm, beta):
    estimate = measure_seeing(synthetic_field(fwhm, beta=beta, seed=int(fwhm * 10)), PIXEL_SCALE)
    assert estimate.fwhm == pytest.approx(fwhm, rel=0.05)
    assert estimate.beta == pytest.approx(beta, rel=0.2)  # the wings, from the concentration
    assert estimate.n_stars >= 10


def test_a_field_without_point_sources_has_unknown_seeing():
    rng = np.random.default_rng(1)
    estimate = measure_seeing(rng.normal(0, 1, (300, 300)).astype(np.float32), PIXEL_SCALE)
    assert np.isnan(estimate.fwhm)


def test_seeing_ranges_of_stamp_sets_models_and_the_check():
    simulated = StampMeta(bands=("g", "r"), pixel_scale=0.4, psf_fwhm={"g": 1.45, "r": 1.4},
                          extra={"psf_variants": [{"fwhm": {"g": 1.2, "r": 1.1}}, {"fwhm": {"g": 1.7, "r": 1.6}}]})
    assert stamp_seeing_range(simulated) == {"g": [1.2, 1.7], "r": [1.1, 1.6]}
    measured = StampMeta(bands=("g", "r"), pixel_scale=0.4, psf_fwhm={"g": float("nan"), "r": 2.0})
    assert stamp_seeing_range(measured) == {"r": [2.0, 2.0]}
    merged = merge_seeing_ranges(stamp_seeing_range(simulated), stamp_seeing_range(measured), None)
    assert merged == {"g": [1.2, 1.7], "r": [1.1, 2.0]}

    model_range = stamp_seeing_range(simulated)
    assert seeing_mismatch(model_range, {"g": 1.5, "r": 1.65}, ["g", "r"]) is None  # inside, or within 10%
    message = seeing_mismatch(model_range, {"g": 1.5, "r": 2.0}, ["g", "r"])
    assert message is not None and "r 2.00\"" in message and "1.10-1.60" in message and "g 1.50" not in message
    assert seeing_mismatch(model_range, {"g": float("nan"), "r": 0.5}, ["r"]) is not None
    assert seeing_mismatch(model_range, {"r": float("nan")}, ["r"]) is None  # unknown seeing: nothing to say
    assert seeing_mismatch(None, {"r": 3.0}, ["r"]) is None  # a model that records no range


def test_cutout_records_the_seeing_it_measures(sdss_stamps):
    meta = sdss_stamps.meta
    assert meta.extra["psf_fwhm_source"] == {b: "measured" for b in "ugriz"}
    # Measured 0.98" in r, with wings of a Moffat of beta about 2.5: broader than a Kolmogorov profile's.
    assert 0.85 < meta.psf_fwhm["r"] < 1.15
    assert all(0.75 < meta.psf_fwhm[b] < 1.4 for b in "ugriz")


@pytest.mark.parametrize("psf_fwhm,expected", [("3.0", "seeing outside the model's training range: u 3.00\""),
                                               (None, "the seeing in r is unknown"),
                                               ("1.2", None)])
def test_predict_warns_about_seeing_the_model_was_not_trained_for(tmp_path, capsys, psf_fwhm, expected):
    from astropy.table import Table

    from skysort.cli import main
    from skysort.data.ingest import import_to_stampset
    from skysort.models.registry import shipped_model_names

    if "sgq-sdss" not in shipped_model_names():
        pytest.skip("sgq-sdss is not shipped")
    rng = np.random.default_rng(0)
    values = {b: float(psf_fwhm) for b in "ugriz"} if psf_fwhm else None
    import_to_stampset(None, Table({"id": np.arange(8)}), tmp_path / "s.h5", bands=list("ugriz"), pixel_scale=0.396,
                       flux_unit="nanomaggy", zero_points={b: 22.5 for b in "ugriz"}, psf_fwhm=values,
                       array=rng.normal(0, 0.05, (8, 5, 24, 24)).astype(np.float32))
    assert main(["predict", "--model", "sgq-sdss", "--data", str(tmp_path / "s.h5"), "--out", str(tmp_path / "p.parquet"), "--quiet"]) == 0
    err = capsys.readouterr().err
    if expected is None:
        assert "warning" not in err
    else:
        assert expected in err and err.count("\n") == 1
