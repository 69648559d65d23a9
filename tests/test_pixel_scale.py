"""Stamps at a pixel scale other than the images' (a model trained at another scale): every band
resampled through its WCS onto a grid centred on each object, flux kept, on the cutout and the
streaming paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from skysort.data.cutout import cut_stamps
from skysort.data.images import BandImage, read_band_image
from skysort.inference.stream import RunOptions, predict_catalog, stamp_pixel_scale

from test_cli import run
from test_inference_stream import TinyPredictor, read_out

SIGMA_ARCSEC = 1.2
FLUX = 1000.0


def sky_wcs(scale: float, shape: tuple[int, int]) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    w.wcs.cd = [[-scale / 3600, 0], [0, scale / 3600]]
    return w


def render(scale: float, extent_arcsec: float, positions: np.ndarray, band="r") -> BandImage:
    """Gaussian sources of total flux ``FLUX`` at sky ``positions`` (ra, dec) on a grid of
    ``scale`` [arcsec/px]: pixel values are the flux falling in each pixel, as a detector
    integrates it."""
    from scipy.special import erf

    n = int(round(extent_arcsec / scale))
    wcs = sky_wcs(scale, (n, n))
    edges = np.arange(n + 1) - 0.5
    data = np.zeros((n, n))
    sigma_px = SIGMA_ARCSEC / scale
    for ra, dec in positions:
        x, y = wcs.all_world2pix(ra, dec, 0)
        fx = np.diff(erf((edges - x) / (np.sqrt(2) * sigma_px))) / 2
        fy = np.diff(erf((edges - y) / (np.sqrt(2) * sigma_px))) / 2
        data += FLUX * np.outer(fy, fx)
    return BandImage(band=band, path=Path(f"{band}.fits"), data=data.astype(np.float32), wcs=wcs)


def test_stamps_resampled_to_a_coarser_scale_match_stamps_cut_at_that_scale():
    """The same sky drawn at 0.2"/px and at 0.4"/px: stamps cut from the fine image at 0.4"/px
    match those cut pixel for pixel from the coarse one, flux per pixel included."""
    coarse_wcs = sky_wcs(0.4, (100, 100))
    # Objects on coarse pixel centres, so that the integer cut is centred on them too.
    px = np.array([[30.0, 40.0], [55.0, 61.0], [70.0, 35.0]])
    positions = np.column_stack(coarse_wcs.all_pix2world(px[:, 0], px[:, 1], 0))
    coarse = render(0.4, 40.0, positions)
    fine = render(0.2, 40.0, positions)
    expected, _ = cut_stamps([coarse], px[:, 0], px[:, 1], size=16)
    fx, fy = fine.wcs.all_world2pix(positions[:, 0], positions[:, 1], 0)
    got, flags = cut_stamps([fine], fx, fy, size=16, pixel_scale=0.4)
    assert not flags.any()
    peak = expected.max()
    assert np.max(np.abs(got - expected)) < 0.01 * peak
    assert np.allclose(got.sum(axis=(2, 3)), expected.sum(axis=(2, 3)), rtol=0.01)
    # The image's own scale given explicitly: the integer cut, unchanged.
    same, _ = cut_stamps([coarse], px[:, 0] + 0.3, px[:, 1], size=16, pixel_scale=coarse.pixel_scale)
    plain, _ = cut_stamps([coarse], px[:, 0] + 0.3, px[:, 1], size=16)
    assert np.array_equal(same, plain, equal_nan=True)


def test_stamps_spanning_far_more_than_the_image_are_refused_naming_it():
    from skysort.errors import InputError

    fine = render(0.2, 20.0, np.array([[150.0, 2.0]]))  # 100 x 100 px
    with pytest.raises(InputError, match=r"r.fits: stamps of 64 px at 1\"/px would span 320 of its pixels"):
        cut_stamps([fine], np.array([50.0]), np.array([50.0]), size=64, pixel_scale=1.0)


def test_a_stamp_reaching_past_the_image_on_the_resampled_grid_is_flagged_edge():
    from skysort.data.flags import Flags

    fine = render(0.2, 20.0, np.array([[150.0, 2.0]]))
    x, y = np.array([5.0, 50.0]), np.array([50.0, 50.0])
    stamps, flags = cut_stamps([fine], x, y, size=16, pixel_scale=0.4)  # 32 fine pixels across
    assert flags[0] & Flags.EDGE and np.isnan(stamps[0]).any()
    assert not flags[1] and np.isfinite(stamps[1]).all()


def write(image: BandImage, path: Path) -> Path:
    header = image.wcs.to_header()
    header["FILTER"] = image.band
    header["BUNIT"] = "nanomaggy"
    fits.PrimaryHDU(image.data, header).writeto(path)
    return path


def test_cutout_at_a_given_pixel_scale_records_it(tmp_path, capsys):
    import pandas as pd

    from skysort.data.stampset import StampSet

    positions = np.array([[150.0, 2.0], [150.002, 2.001]])
    write(render(0.2, 40.0, positions), tmp_path / "t-r.fits")
    pd.DataFrame({"id": [1, 2], "ra": positions[:, 0], "dec": positions[:, 1]}).to_csv(tmp_path / "cat.csv", index=False)
    code, _, err = run(["cutout", "--images", tmp_path / "t-r.fits", "--catalog", tmp_path / "cat.csv", "--size", 16,
                        "--pixel-scale", 0.4, "--background", "none", "--out", tmp_path / "s.h5", "--quiet"], capsys)
    assert code == 0, err
    stamps = StampSet.open(tmp_path / "s.h5")
    assert stamps.meta.pixel_scale == 0.4 and "0.4\"/px centred on each object" in stamps.meta.extra["alignment"]
    images = stamps.images()
    assert images.shape == (2, 1, 16, 16)
    # Centred on each object, with the flux a 6.4" square holds of a Gaussian of sigma 1.2".
    from scipy.special import erf

    assert np.unravel_index(np.argmax(images[0, 0]), (16, 16)) == (8, 8)
    enclosed = erf(3.2 / SIGMA_ARCSEC / np.sqrt(2)) ** 2
    assert np.allclose(images.sum(axis=(1, 2, 3)), FLUX * enclosed, rtol=0.005)
    assert not np.any(stamps.column("offset_x"))
    code, _, err = run(["cutout", "--images", tmp_path / "t-r.fits", "--catalog", tmp_path / "cat.csv", "--pixel-scale", -1,
                        "--out", tmp_path / "bad.h5", "--quiet"], capsys)
    assert code == 2 and "--pixel-scale" in err and not (tmp_path / "bad.h5").exists()
    # Stamps whose footprint on the images is far larger than the images are refused, not cut.
    code, _, err = run(["cutout", "--images", tmp_path / "t-r.fits", "--catalog", tmp_path / "cat.csv", "--pixel-scale", 20,
                        "--size", 64, "--out", tmp_path / "big.h5", "--quiet"], capsys)
    assert code == 2 and "6400 px of the images at 20\"/px" in err and not (tmp_path / "big.h5").exists()


def test_streamed_tiles_at_another_scale_are_resampled_to_the_models(tmp_path):
    """Tiles at half the model's pixel scale give the stamps, hence the predictions, of tiles
    at the model's scale; within 2% of it they are cut as they are."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert stamp_pixel_scale(0.4, 0.405) is None and stamp_pixel_scale(0.4, 0.2) == 0.4 and stamp_pixel_scale(None, 0.2) is None
    coarse_wcs = sky_wcs(0.4, (100, 100))
    rng = np.random.default_rng(3)
    px = rng.integers(20, 80, size=(12, 2)).astype(float)
    positions = np.column_stack(coarse_wcs.all_pix2world(px[:, 0], px[:, 1], 0))
    pq.write_table(pa.table({"id": np.arange(12), "ra": positions[:, 0], "dec": positions[:, 1]}), tmp_path / "cat.parquet")
    (tmp_path / "m.pt").write_bytes(b"tiny")
    results = {}
    for name, scale in (("coarse", 0.4), ("fine", 0.2)):
        (tmp_path / name).mkdir()
        write(render(scale, 40.0, positions, band="g"), tmp_path / name / "t-g.fits")
        write(render(scale, 40.0, positions, band="r"), tmp_path / name / "t-r.fits")
        predictor = TinyPredictor(tmp_path / "m.pt")
        assert predictor.spec.pixel_scale == 0.4
        warnings = []
        predict_catalog("tiny", tmp_path / "cat.parquet", tmp_path / f"out_{name}",
                        RunOptions(tiles=str(tmp_path / name / "t-*.fits"), background="none"), predictor=predictor,
                        warn=lambda where, message: warnings.append(message))
        results[name] = read_out(tmp_path / f"out_{name}")[1]
        assert any("resampled to the model's scale" in w for w in warnings) == (name == "fine")
        # Each part records the scale its stamps were resampled to (None: cut as they are).
        part = next((tmp_path / f"out_{name}").glob("part-*.parquet"))
        meta = json.loads(pq.read_schema(part).metadata[b"skysort"])
        assert meta["stamp_pixel_scale"] == (0.4 if name == "fine" else None)
    columns = ["p_star", "p_galaxy", "p_qso"]
    assert np.allclose(results["fine"][columns].to_numpy(), results["coarse"][columns].to_numpy(), atol=2e-3)


def test_noise_onto_finer_pixels_is_made_up_to_what_such_pixels_would_hold():
    """A sky of white noise (rms 1 per 0.4" pixel) cut at 0.2"/px: interpolation alone leaves
    about a quarter of the rms in each finer pixel; an image taken at 0.2"/px holds half
    (rms scales with the pixel's side), and the stamps do. The added noise depends on the
    object's position only, not on the other objects cut with it."""
    rng = np.random.default_rng(0)
    n = 200
    image = BandImage(band="r", path=Path("r.fits"), data=rng.normal(0, 1, (n, n)).astype(np.float32), wcs=sky_wcs(0.4, (n, n)))
    x = rng.uniform(40, 160, 30)
    y = rng.uniform(40, 160, 30)
    stamps, _ = cut_stamps([image], x, y, size=32, pixel_scale=0.2)
    assert np.std(stamps) == pytest.approx(0.5, rel=0.08)
    alone, _ = cut_stamps([image], x[3:4], y[3:4], size=32, pixel_scale=0.2)
    assert np.array_equal(alone[0], stamps[3])
    # Onto pixels of four times the area a stamp pixel holds the sum of four: rms 2, not the
    # 4 x (spline gain) of a sample of one.
    coarse, _ = cut_stamps([image], x, y, size=8, pixel_scale=0.8)
    assert np.std(coarse) == pytest.approx(2.0, rel=0.12)
    # The added noise follows the object's position: moved by 0.002 px it gets other noise.
    fine_a, _ = cut_stamps([image], x[:1], y[:1], size=16, pixel_scale=0.2)
    fine_b, _ = cut_stamps([image], x[:1] + 0.002, y[:1], size=16, pixel_scale=0.2)
    assert np.max(np.abs(fine_a - fine_b)) > 0.5
    coarse_alone, _ = cut_stamps([image], x[5:6], y[5:6], size=8, pixel_scale=0.8)
    assert np.array_equal(coarse_alone[0], coarse[5])
