"""Cutouts of the real SDSS field 003918-3-0213 (5 bands, 271 stars and 372 galaxies)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skysort.data.cutout import cut_integer, cut_stamps, sky_to_pixel
from skysort.data.flags import Flags

SIZE = 64


@pytest.fixture(scope="module")
def objects(sdss_field):
    return pd.read_csv(sdss_field / "objects.csv")


def windowed_centroid(image: np.ndarray, sigma: float = 2.0, iterations: int = 10) -> tuple[float, float]:
    """Gaussian-weighted first moment (x, y) around the stamp centre, background removed."""
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    border = np.concatenate([image[:6].ravel(), image[-6:].ravel()])
    image = image - np.nanmedian(border)
    cx = cy = image.shape[0] // 2
    for _ in range(iterations):
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)) * image
        cx, cy = (weight * xx).sum() / weight.sum(), (weight * yy).sum() / weight.sum()
    return cx, cy


def test_every_labelled_object_appears_exactly_once(sdss_stamps, objects):
    assert len(sdss_stamps) == len(objects) == 643
    table = sdss_stamps.table
    np.testing.assert_allclose(table["ra"], objects["ra"], atol=1e-9)
    np.testing.assert_allclose(table["dec"], objects["dec"], atol=1e-9)
    assert list(table["label"]) == list(objects["label"])
    assert sdss_stamps.summary()["classes"] == {"galaxy": 372, "star": 271}
    # Positions through the r-frame WCS agree with the catalogue's own pixel positions.
    np.testing.assert_allclose(table["x"], objects["x_r"], atol=0.01)
    np.testing.assert_allclose(table["y"], objects["y_r"], atol=0.01)
    assert len(set(zip(np.round(table["ra"], 7), np.round(table["dec"], 7)))) == 643


def test_metadata_comes_from_the_headers(sdss_stamps):
    meta = sdss_stamps.meta
    assert meta.bands == ("u", "g", "r", "i", "z")
    assert meta.flux_unit == "nanomaggy"
    assert meta.zero_points == {b: 22.5 for b in "ugriz"}
    assert meta.pixel_scale == pytest.approx(0.396, abs=0.001)
    assert meta.survey == "SDSS"
    assert meta.extra["reference_band"] == "r"
    assert sdss_stamps.shape[1:] == (5, SIZE, SIZE)


def test_bands_are_aligned_to_a_tenth_of_a_pixel(sdss_stamps):
    """Bright, unsaturated, isolated stars have the same centroid in every band."""
    table = sdss_stamps.table
    stars = np.flatnonzero((np.asarray(table["label"]) == "star") & (np.asarray(table["flags"]) == 0))
    images = sdss_stamps.read_images(stars)
    core_flux = np.nansum(images[:, 2, 28:37, 28:37], axis=(1, 2))
    # Skip the very brightest (saturated, bleed trails) and keep the next 30.
    bright = np.argsort(-core_flux)[5:35]
    centroids = np.array([[windowed_centroid(images[k, b]) for b in range(5)] for k in bright])
    offsets = centroids - centroids[:, 2:3, :]
    median_offsets = np.median(offsets, axis=0)
    assert np.all(np.abs(median_offsets) < 0.1), median_offsets
    # The r band is not resampled: its centroids sit at the catalogue position in the stamp.
    expected = SIZE // 2 + np.stack([table["offset_x"][stars[bright]], table["offset_y"][stars[bright]]], axis=1)
    assert np.median(np.abs(centroids[:, 2] - expected)) < 0.1


def test_stars_are_more_concentrated_than_galaxies(sdss_stamps):
    images = sdss_stamps.images()[:, 2]
    flags = sdss_stamps.column("flags")
    labels = sdss_stamps.labels()
    yy, xx = np.mgrid[:SIZE, :SIZE] - SIZE // 2
    radius = np.hypot(xx, yy)
    background = np.nanmedian(images[:, radius > 28], axis=1)[:, None, None]
    clean = np.nan_to_num(images - background)
    inner = clean[:, radius <= 2].sum(axis=1)
    outer = clean[:, radius <= 6].sum(axis=1)
    concentration = inner / np.where(outer > 0, outer, np.nan)
    ok = (flags == 0) & np.isfinite(concentration)
    star_c = np.nanmedian(concentration[ok & (labels == "star")])
    galaxy_c = np.nanmedian(concentration[ok & (labels == "galaxy")])
    assert star_c > galaxy_c + 0.1, (star_c, galaxy_c)


def test_edge_objects_are_flagged_padded_and_not_shifted(sdss_stamps, sdss_images, objects):
    flags = sdss_stamps.column("flags")
    edge = (flags & Flags.EDGE) != 0
    ny, nx = sdss_images[2].shape
    x0 = np.rint(objects["x_r"].to_numpy()) - SIZE // 2
    y0 = np.rint(objects["y_r"].to_numpy()) - SIZE // 2
    beyond_r = (x0 < 0) | (y0 < 0) | (x0 + SIZE > nx) | (y0 + SIZE > ny)
    assert beyond_r.sum() > 0
    assert np.all(edge[beyond_r])  # every stamp crossing the r frame's edge is flagged
    images = sdss_stamps.images()
    has_nan = np.isnan(images).any(axis=(1, 2, 3))
    np.testing.assert_array_equal(has_nan, edge)  # NaN padding exactly where flagged
    assert np.all((flags[has_nan] & Flags.NAN_PIXELS) != 0)
    # The padding is where the frame ends: for an object near the bottom edge, the first rows.
    k = int(np.flatnonzero(beyond_r & (y0 < 0))[0])
    rows_missing = int(-y0[k])
    r_stamp = images[k, 2]
    assert np.isnan(r_stamp[:rows_missing]).all() and np.isfinite(r_stamp[rows_missing:]).all()


def test_cut_integer_matches_slicing_and_pads_with_nan():
    data = np.arange(100 * 120, dtype=np.float32).reshape(100, 120)
    stamps, edge = cut_integer(data, np.array([50.4, 2.0, 118.6]), np.array([40.0, 50.0, 99.0]), 10)
    np.testing.assert_array_equal(stamps[0], data[35:45, 45:55])
    assert list(edge) == [False, True, True]
    assert np.isnan(stamps[1][:, :3]).all() and np.array_equal(stamps[1][:, 3:], data[45:55, 0:7])
    assert np.isnan(stamps[2][6:]).all() and np.isnan(stamps[2][:, 6:]).all()
    np.testing.assert_array_equal(stamps[2][:6, :6], data[94:100, 114:120])


def test_objects_off_the_images_are_kept_flagged_and_all_nan(sdss_images, objects, tmp_path):
    """Objects beyond the tile (one on the far side of the sky, where the TAN projection has no
    pixel position) keep their row, with all-NaN stamps flagged EDGE; a catalogue with no object
    on the tile is refused and nothing is written."""
    from astropy.table import Table

    from skysort.data.ingest import cutout_to_stampset
    from skysort.errors import InputError

    inside = objects["x_r"].between(50, 1900) & objects["y_r"].between(50, 1400)
    near = objects[inside].iloc[:3]
    table = Table({"ra": np.r_[near["ra"], 49.0, 229.0], "dec": np.r_[near["dec"], -42.0, 42.0]})
    told = []
    stamps = cutout_to_stampset(sdss_images, table, tmp_path / "mixed.h5", size=16, catalog_path="mixed.csv",
                                warn=lambda path, message: told.append((str(path), message)))
    images, flags = stamps.images(), stamps.column("flags")
    assert len(stamps) == 5
    assert np.isfinite(images[:3]).all() and np.isnan(images[3:]).all()
    assert np.all(flags[3:] & Flags.EDGE) and np.all(flags[3:] & Flags.MISSING_BAND)
    assert told == [("mixed.csv", "2 of its 5 objects lie wholly off the images; their stamps are all NaN and flagged EDGE")]
    with pytest.raises(InputError, match="none of its 2 objects lies on the images"):
        cutout_to_stampset(sdss_images, table[3:], tmp_path / "off.h5", size=16, catalog_path="off.csv")
    assert not (tmp_path / "off.h5").exists()


def test_cut_integer_keeps_non_finite_and_distant_positions_off_the_image():
    data = np.ones((50, 60), dtype=np.float32)
    stamps, edge = cut_integer(data, np.array([np.nan, 1e30, -1e30, 30.0]), np.array([10.0, 10.0, 10.0, np.inf]), 8)
    assert edge.all() and np.isnan(stamps).all()


def test_resampled_bands_conserve_flux_and_propagate_nan(sdss_images):
    """A synthetic point source put in every band at the same sky position comes out centred."""
    from dataclasses import replace

    ra, dec = 229.55, 42.77
    tiles = []
    for image in sdss_images:
        x, y = sky_to_pixel(image, np.array([ra]), np.array([dec]))
        yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
        blob = np.exp(-((xx - x[0]) ** 2 + (yy - y[0]) ** 2) / (2 * 1.5**2)).astype(np.float32)
        data = 100 * blob / blob.sum()
        data[int(y[0]) + 20, int(x[0]) + 5] = np.nan
        tiles.append(replace(image, data=data))
    x_ref, y_ref = sky_to_pixel(tiles[2], np.array([ra]), np.array([dec]))
    stamps, flags = cut_stamps(tiles, x_ref, y_ref, size=SIZE, reference=2)
    centre = SIZE // 2 + np.array([x_ref[0] - np.rint(x_ref[0]), y_ref[0] - np.rint(y_ref[0])])
    for b in range(5):
        stamp = stamps[0, b]
        assert np.nansum(stamp[:40]) == pytest.approx(100, rel=2e-3)
        assert np.allclose(windowed_centroid(np.nan_to_num(stamp)), centre, atol=0.02)
        nan_pixels = np.argwhere(np.isnan(stamp))
        assert 1 <= len(nan_pixels) <= 16  # the bad pixel, plus at most its spline footprint
    assert flags[0] == Flags.NAN_PIXELS


def test_cutout_translates_a_table_with_the_mapping_given(sdss_field, objects, tmp_path):
    """A table read elsewhere, with its own column names, is cut with the mapping given; a bad
    size or NaN policy is refused before any frame is read."""
    from astropy.table import Table

    from skysort.data.ingest import cutout
    from skysort.errors import InputError

    inside = objects["x_r"].between(50, 1900) & objects["y_r"].between(50, 1400)
    near = objects[inside].iloc[:3]
    table = Table({"RA": np.asarray(near["ra"]), "DEC": np.asarray(near["dec"]), "flags": [-1, 0, 3]})
    r_frame = sorted(sdss_field.glob("frame-r-*.fits.bz2"))
    stamps = cutout(r_frame, table, tmp_path / "r.h5", size=16, mapping="ra=RA,dec=DEC", background="none")
    assert len(stamps) == 3 and np.isfinite(stamps.images()).all()
    np.testing.assert_allclose(stamps.column("ra"), near["ra"])
    # The survey's own flags are kept beside skysort's, not mixed into them.
    assert list(stamps.column("catalog_flags")) == [-1, 0, 3] and not stamps.column("flags").any()
    for options, problem in ((dict(size=16.0), "--size"), (dict(size=16, nan_policy="ignore"), "--nan")):
        with pytest.raises(InputError, match=problem):
            cutout(r_frame, table, tmp_path / "bad.h5", mapping="ra=RA,dec=DEC", **options)
    assert not (tmp_path / "bad.h5").exists()


def test_predict_streamed_from_the_real_frames_equals_cutout_then_predict(sdss_stamps, sdss_field, objects, tmp_path):
    """sgq-sdss on the real field streamed from its bz2 frames (``predict --tiles``: frame
    reading, background, four bands resampled, seeing measured per tile) gives what it gives on
    the stamps cutout cuts, object by object."""
    from skysort.cli import main
    from skysort.inference.predictor import load_predictor, predict_stampset
    from skysort.models.registry import shipped_model_names

    if "sgq-sdss" not in shipped_model_names():
        pytest.skip("sgq-sdss is not shipped in this checkout")
    out = tmp_path / "streamed.parquet"
    assert main(["predict", "--model", "sgq-sdss", "--catalog", str(sdss_field / "objects.csv"), "--tiles",
                 str(sdss_field / "frame-*-*.fits.bz2"), "--out", str(out), "--quiet"]) == 0
    streamed = pd.read_parquet(out)
    reference = predict_stampset(load_predictor("sgq-sdss"), sdss_stamps).to_pandas()
    assert len(streamed) == len(reference) == len(objects)
    np.testing.assert_allclose(streamed["ra"], reference["ra"], rtol=0, atol=1e-9)
    interior = (reference["flags"].to_numpy() & int(Flags.EDGE)) == 0
    assert interior.sum() > 600
    for name in ("p_star", "p_galaxy", "p_qso"):
        np.testing.assert_allclose(streamed[name].to_numpy()[interior], reference[name].to_numpy()[interior], atol=1e-4)
    assert (streamed["class"].to_numpy()[interior] == reference["class"].to_numpy()[interior]).all()
    np.testing.assert_allclose(streamed["psf_fwhm"].to_numpy()[interior], reference["psf_fwhm"].to_numpy()[interior])
