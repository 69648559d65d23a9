"""Seeing: measured on images, recorded in stamp sets and models, checked at prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skysort.data.seeing import (half_sample_mode, images_seeing, measure_seeing, measure_stamp_seeing,
                                 merge_seeing_ranges, seeing_mismatch, stamp_seeing_range, stampset_seeing)
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


def synthetic_stamps(fwhm: float, *, beta: float = 3.0, n: int = 240, size: int = 24, seed: int = 0) -> np.ndarray:
    """Stamps centred (within half a pixel) on Moffat stars and on larger exponential
    galaxies seen through the same PSF, one in three a star, with unit Gaussian noise on a sky
    level, and a neighbour near the centre in one stamp of ten."""
    import galsim

    rng = np.random.default_rng(seed)
    psf = galsim.Moffat(beta=beta, fwhm=fwhm)
    stamps = np.empty((n, size, size), np.float32)
    for k in range(n):
        flux = 10 ** rng.uniform(3.0, 4.0)
        profile = psf.withFlux(flux) if k % 3 == 0 else galsim.Convolve(
            galsim.Exponential(half_light_radius=rng.uniform(0.5, 1.5), flux=flux), psf)
        image = profile.drawImage(nx=size, ny=size, scale=PIXEL_SCALE, offset=tuple(rng.uniform(-0.5, 0.5, 2))).array
        if k % 10 == 5:
            image = image + psf.withFlux(flux).drawImage(nx=size, ny=size, scale=PIXEL_SCALE, offset=(2.5, 1.0)).array
        stamps[k] = image + rng.normal(0.0, 1.0, (size, size)) + 3.0
    return stamps


def test_predict_warns_about_stamps_at_another_pixel_scale(tmp_path, capsys):
    from astropy.table import Table

    from skysort.cli import main
    from skysort.data.ingest import import_to_stampset
    from skysort.models.registry import shipped_model_names

    if "sgq-sdss" not in shipped_model_names():
        pytest.skip("sgq-sdss is not shipped")
    import_to_stampset(None, Table({"id": np.arange(4)}), tmp_path / "s.h5", bands=list("ugriz"), pixel_scale=0.262,
                       flux_unit="nanomaggy", zero_points={b: 22.5 for b in "ugriz"}, psf_fwhm={b: 1.2 for b in "ugriz"},
                       array=np.random.default_rng(0).normal(0, 0.05, (4, 5, 24, 24)).astype(np.float32))
    assert main(["predict", "--model", "sgq-sdss", "--data", str(tmp_path / "s.h5"), "--out", str(tmp_path / "p.parquet"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "pixel scale 0.262\"/px differs from the model's 0.396\"/px" in err and err.count("\n") == 1


@pytest.mark.parametrize("fwhm,beta", [(0.9, 4.765), (1.6, 3.0), (2.0, 2.5)])
def test_the_seeing_of_stamps_is_recovered_from_their_point_sources(fwhm, beta):
    estimate = measure_stamp_seeing(synthetic_stamps(fwhm, beta=beta, seed=int(fwhm * 10)), PIXEL_SCALE)
    assert estimate.fwhm == pytest.approx(fwhm, rel=0.05)
    assert estimate.n_stars >= 40  # of the 80 stars: the stars with a close neighbour are left out
    # Stamps of galaxies and noise alone: no stellar locus, so the seeing stays unknown.
    rng = np.random.default_rng(2)
    assert np.isnan(measure_stamp_seeing(rng.normal(0, 1, (50, 24, 24)), PIXEL_SCALE).fwhm)
    unknown = images_seeing(rng.normal(0, 1, (50, 24, 24)), PIXEL_SCALE, "r")
    assert unknown.source == "unknown" and np.isnan(unknown.values).all() and "is unknown" in unknown.describe()


def test_the_seeing_measured_on_real_stamps_agrees_with_the_frames(sdss_stamps):
    """The stamps alone give the seeing measured on the whole frames at cutout (0.97" in r)."""
    images = sdss_stamps.read_images()
    for band in "gri":
        estimate = measure_stamp_seeing(images[:, "ugriz".index(band)], sdss_stamps.meta.pixel_scale)
        assert estimate.fwhm == pytest.approx(sdss_stamps.meta.psf_fwhm[band], rel=0.06), band
        assert estimate.n_stars >= 30


def test_a_stamp_set_without_recorded_seeing_has_it_measured(tmp_path, monkeypatch):
    from astropy.table import Table

    from skysort.data.ingest import import_to_stampset

    stamps = synthetic_stamps(1.5, seed=3)[:, None]
    common = dict(bands=["r"], pixel_scale=PIXEL_SCALE, flux_unit="count", zero_points={"r": 30.0})
    unrecorded = import_to_stampset(None, Table({"id": np.arange(len(stamps))}), tmp_path / "a.h5", array=stamps, **common)
    seeing = stampset_seeing(unrecorded, "r")
    assert seeing.source == "measured" and seeing.values.shape == (len(stamps),)
    assert np.unique(seeing.values).size == 1 and seeing.values[0] == pytest.approx(1.5, rel=0.05)
    assert seeing.record()["n_stars"] == seeing.estimate.n_stars
    # Measured once per set: a second call (predict after the CLI's check) reads no stamps.
    calls = []
    monkeypatch.setattr(unrecorded, "read_images", lambda *a, **k: calls.append(1))
    assert stampset_seeing(unrecorded, "r").values[0] == seeing.values[0] and not calls
    recorded = import_to_stampset(None, Table({"id": np.arange(len(stamps))}), tmp_path / "b.h5", array=stamps,
                                  psf_fwhm={"r": 1.2}, **common)
    seeing = stampset_seeing(recorded, "r")
    assert seeing.source == "recorded" and np.allclose(seeing.values, 1.2)


def test_predict_measures_the_seeing_a_stamp_set_does_not_record(sdss_stamps, tmp_path, capsys):
    """The real field imported without its seeing: the model gets the seeing measured from the
    stamps (one value), says so, and classifies as it does with the seeing measured on the frames."""
    from astropy.table import Table

    from skysort.cli import main
    from skysort.data.ingest import import_to_stampset
    from skysort.errors import InputError
    from skysort.inference.manifest import read_parts
    from skysort.models.registry import shipped_model_names
    from skysort.tasks.sgq import predict_sgq

    if "sgq-sdss" not in shipped_model_names():
        pytest.skip("sgq-sdss is not shipped")
    meta = sdss_stamps.meta
    images = sdss_stamps.read_images()
    unrecorded = import_to_stampset(None, Table({"id": np.asarray(sdss_stamps.column("id"))}), tmp_path / "s.h5",
                                    bands=list(meta.bands), pixel_scale=meta.pixel_scale, flux_unit=meta.flux_unit,
                                    zero_points=dict(meta.zero_points), array=images)
    measured = predict_sgq("sgq-sdss", unrecorded)
    seeing = measured.meta["seeing"]
    assert seeing["source"] == "measured" and seeing["band"] == "r" and seeing["n_stars"] >= 30
    assert seeing["fwhm_median_arcsec"] == pytest.approx(meta.psf_fwhm["r"], rel=0.06)
    given = predict_sgq("sgq-sdss", unrecorded, psf_fwhm=seeing["fwhm_median_arcsec"])
    assert given.meta["seeing"]["source"] == "given"
    np.testing.assert_allclose(np.asarray(measured["p_star"]), np.asarray(given["p_star"]), atol=2e-3)  # the record is rounded
    recorded = predict_sgq("sgq-sdss", sdss_stamps)
    assert recorded.meta["seeing"]["source"] == "recorded"
    assert np.mean(np.asarray(measured["class"]) == np.asarray(recorded["class"])) > 0.97
    with pytest.raises(InputError, match="one value or one per stamp"):
        predict_sgq("sgq-sdss", unrecorded, psf_fwhm=[1.0, 1.2])
    hidden = predict_sgq("sgq-sdss", unrecorded, psf_fwhm=np.nan)
    assert hidden.meta["seeing"]["source"] == "unknown" and np.isnan(np.asarray(hidden["psf_fwhm"])).all()
    # The array form measures the seeing the same way, at the model's pixel scale.
    arrays = predict_sgq("sgq-sdss", images=images)
    assert arrays.meta["seeing"]["source"] == "measured" and arrays.meta["seeing"]["n_stars"] == seeing["n_stars"]
    assert arrays.meta["seeing"]["fwhm_median_arcsec"] == pytest.approx(seeing["fwhm_median_arcsec"], rel=0.02)  # 0.396" model grid

    assert main(["predict", "--model", "sgq-sdss", "--data", str(tmp_path / "s.h5"), "--out", str(tmp_path / "p.parquet"),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert "seeing in r not recorded: measured from the stamps' point sources" in captured.out
    # A run into parts measures once for the whole set and records it in the manifest.
    assert main(["predict", "--model", "sgq-sdss", "--data", str(tmp_path / "s.h5"), "--out", str(tmp_path / "parts") + "/",
                 "--memory-gb", "0.05", "--quiet"]) == 0
    manifest = json.loads((tmp_path / "parts" / "manifest.json").read_text())
    assert manifest["options"]["seeing"]["source"] == "measured"
    parts = read_parts(sorted((tmp_path / "parts").glob("*.parquet")))
    assert np.allclose(np.asarray(parts["psf_fwhm"]), float(np.asarray(measured["psf_fwhm"])[0]))


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


def test_a_large_image_is_measured_on_windows_spread_over_it():
    from skysort.data.seeing import measurement_windows

    assert measurement_windows((700, 700), max_pixels=700 * 700) == [(slice(0, 700), slice(0, 700))]
    windows = measurement_windows((18000, 18000))  # a KiDS coadd tile at 0.2"/px
    assert len(windows) == 4 and sum((r.stop - r.start) * (c.stop - c.start) for r, c in windows) <= 2048 * 2048
    assert {r.start for r, _ in windows} == {0, 18000 - 1024} and {c.stop for _, c in windows} == {1024, 18000}
    strip = measurement_windows((800, 40000), max_pixels=4 * 800 * 800, window=800)
    assert len(strip) == 4 and all(r == slice(0, 800) for r, _ in strip)
    assert [c.start for _, c in strip] == [0, 13067, 26133, 39200]


def test_windows_find_the_seeing_of_the_whole_image():
    """The stars of four 300-px windows of a 700-px field give its seeing as the whole field
    does (and the windowed measurement reads less than half its pixels)."""
    field = synthetic_field(1.4, n_stars=160, n_galaxies=60, seed=5)
    whole = measure_seeing(field, PIXEL_SCALE)
    windowed = measure_seeing(field, PIXEL_SCALE, max_pixels=4 * 300 * 300, window=300)
    assert whole.fwhm == pytest.approx(1.4, rel=0.05) and windowed.fwhm == pytest.approx(1.4, rel=0.05)
    assert 10 <= windowed.n_sources < whole.n_sources


@pytest.mark.parametrize("beta,fwhm_px,offset", [(2.5, 3.5, (0.0, 0.0)), (1.6, 2.5, (0.5, 0.25)), (4.8, 0.8, (0.25, 0.5))])
def test_the_pixel_integrated_moffat_is_galsims(beta, fwhm_px, offset):
    """The hand-written pixel integral equals GalSim's pixel-convolved Moffat drawn at tight
    accuracy settings (both normalised on the same grid, which misses the same far wings)."""
    import galsim

    from skysort.data.seeing import pixel_integrated_moffat

    tight = galsim.GSParams(folding_threshold=2e-4, maxk_threshold=1e-5, kvalue_accuracy=1e-7, xvalue_accuracy=1e-7,
                            maximum_fft_size=16384)
    reference = galsim.Moffat(beta=beta, fwhm=fwhm_px, gsparams=tight).drawImage(nx=31, ny=31, scale=1.0, offset=offset).array
    ours = pixel_integrated_moffat(beta, fwhm_px, 31, offset)
    reference, ours = reference / reference.sum(), ours / ours.sum()
    assert np.unravel_index(np.argmax(ours), ours.shape) == (15, 15)
    np.testing.assert_allclose(ours, reference, atol=2e-5 * reference.max())


@pytest.mark.parametrize("beta,fwhm_px", [(2.4, 2.5), (3.7, 4.1), (8.0, 1.3)])
def test_the_moffat_fit_inverts_the_radii_it_reads(beta, fwhm_px):
    """The fit returns the (FWHM, beta) whose radii it is given, with no grid of allowed values
    between (an earlier fit rounded both to steps of 0.02)."""
    from skysort.data.seeing import _moffat_from_radii, _moffat_radii

    aperture = 3.0 * fwhm_px
    r50, r90 = _moffat_radii(beta, fwhm_px, aperture)
    fitted_fwhm, fitted_beta = _moffat_from_radii(r50, r90 / r50, aperture)
    assert fitted_fwhm == pytest.approx(fwhm_px, rel=1e-4)
    assert fitted_beta == pytest.approx(beta, rel=1e-3)


def test_the_fitted_fwhm_follows_the_half_light_radius_smoothly():
    """Each 0.1% step in the stellar locus's radius moves the FWHM by the same small amount
    (a little more than 0.1%: pixels blur a smaller profile more), with no steps from values
    rounded to a grid."""
    from skysort.data.seeing import _moffat_from_radii

    radii = 1.5 * (1.0 + 0.001 * np.arange(6))
    fwhms = np.array([_moffat_from_radii(radius, 2.3, 7.5)[0] for radius in radii])
    ratios = fwhms[1:] / fwhms[:-1]
    assert np.all((ratios > 1.0005) & (ratios < 1.002)) and np.ptp(ratios) < 1e-4


def test_a_stellar_locus_smaller_than_a_pixel_gives_the_floor_of_the_fit():
    """Radii a Moffat profile cannot have (a locus of cosmic rays or hot pixels) end at the
    smallest FWHM the fit returns instead of ever smaller profiles and finer pixel integrals."""
    from skysort.data.seeing import MIN_FIT_FWHM_PX, _moffat_from_radii

    for radius in (0.45, 0.3, 0.05):
        fwhm, beta = _moffat_from_radii(radius, 2.0, 3.0)
        assert fwhm == MIN_FIT_FWHM_PX and 1.5 <= beta <= 50.0


def test_info_gives_the_seeing_an_image_will_be_cut_with(tmp_path, capsys):
    """``skysort info`` on an image: the seeing cutout records for it, measured on its stars
    when the header gives none, and the header's when it does, with where it came from."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from skysort.cli import main

    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.crval, wcs.wcs.crpix = ["RA---TAN", "DEC--TAN"], [150.0, 2.0], [350.0, 350.0]
    wcs.wcs.cdelt = [-PIXEL_SCALE / 3600, PIXEL_SCALE / 3600]
    header = wcs.to_header()
    header["FILTER"] = "r"
    fits.PrimaryHDU(synthetic_field(1.4, seed=14), header=header).writeto(tmp_path / "tile.fits")
    header["SEEING"] = (1.1, "[arcsec] PSF FWHM")
    fits.PrimaryHDU(synthetic_field(1.4, seed=14), header=header).writeto(tmp_path / "tile_seeing.fits")
    summaries = []
    for name in ("tile.fits", "tile_seeing.fits"):
        assert main(["info", str(tmp_path / name), "--json"]) == 0
        summaries.append(json.loads(capsys.readouterr().out))
    assert summaries[0]["psf_fwhm_source"] == "measured" and summaries[0]["psf_fwhm_arcsec"] == pytest.approx(1.4, rel=0.05)
    assert summaries[1]["psf_fwhm_source"] == "header" and summaries[1]["psf_fwhm_arcsec"] == pytest.approx(1.1)
