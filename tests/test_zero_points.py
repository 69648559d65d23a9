"""Zero points the user gives (``--zero-points``) for tiles whose headers give none or give one in
another convention (CASU's per-second ``MAGZPT``), on the cutout, streaming and HATS paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skysort.data.images import header_zero_point, read_band_images, zero_point_note
from skysort.errors import InputError
from skysort.inference.stream import RunOptions, predict_catalog

from test_cli import assert_one_line_error, run
from test_inference_stream import STAMP, TinyPredictor, make_survey, read_out


def casu_header(**extra) -> fits.Header:
    header = fits.Header()
    header.update({"MAGZPT": 23.8, "MAGZRR": 0.01, "EXTINCT": 0.05, "EXPTIME": 400.0, "AIRMASS": 1.2, **extra})
    return header


def test_casu_magzpt_is_read_but_doubted_with_the_zero_point_of_one_pixel_unit():
    """CASU's MAGZPT (one count per second at airmass 1) is still the header's zero point, but
    the note says so and gives MAGZPT + 2.5 log10(EXPTIME) - (AIRMASS - 1) EXTINCT."""
    header = casu_header()
    assert header_zero_point(header) == 23.8
    note = zero_point_note(header)
    expected = 23.8 + 2.5 * np.log10(400.0) - 0.2 * 0.05
    assert "CASU" in note and "--zero-points" in note and f"{expected:.3f}" in note
    # Another keyword first, a unit that fixes the zero point, or MAGZPT alone: no doubt.
    assert zero_point_note(casu_header(MAGZP=30.0)) == ""
    assert zero_point_note(casu_header(BUNIT="nanomaggy")) == ""
    plain = fits.Header({"MAGZPT": 30.0, "EXPTIME": 100.0})
    assert header_zero_point(plain) == 30.0 and zero_point_note(plain) == ""


def write_tile(path: Path, band: str, header: fits.Header, value: float = 1.0) -> Path:
    from test_inference_stream import tile_wcs

    wcs_header = tile_wcs(150.0, 2.0, (60, 60)).to_header()
    wcs_header.update(header)
    wcs_header["FILTER"] = band
    rng = np.random.default_rng(0)
    fits.PrimaryHDU((value + rng.normal(0, 0.1, (60, 60))).astype(np.float32), wcs_header).writeto(path)
    return path


def test_given_zero_points_replace_the_headers_one_value_or_per_band(tmp_path):
    g = write_tile(tmp_path / "t-g.fits", "g", casu_header())
    r = write_tile(tmp_path / "t-r.fits", "r", fits.Header())
    images = read_band_images([g, r], ["g", "r"])
    assert images[0].zero_point == 23.8 and images[0].zero_point_note and np.isnan(images[1].zero_point)
    images = read_band_images([g, r], ["g", "r"], zero_points={"g": 30.5})
    assert images[0].zero_point == 30.5 and images[0].zero_point_note == "" and np.isnan(images[1].zero_point)
    assert [image.zero_point for image in read_band_images([g, r], ["g", "r"], zero_points=27.0)] == [27.0, 27.0]
    with pytest.raises(InputError, match=r"--zero-points: band\(s\) i not among the images' bands \(g, r\)"):
        read_band_images([g, r], ["g", "r"], zero_points={"i": 30.0})
    with pytest.raises(InputError, match="--zero-points: g: expected a finite AB magnitude"):
        read_band_images([g, r], ["g", "r"], zero_points={"g": float("nan")})


def test_cutout_records_the_given_zero_points_and_warns_about_casu_headers(tmp_path, capsys):
    import pandas as pd

    from skysort.data.stampset import StampSet

    write_tile(tmp_path / "t-g.fits", "g", casu_header())
    write_tile(tmp_path / "t-r.fits", "r", fits.Header({"MAGZP": 30.0}))
    pd.DataFrame({"id": [1, 2], "ra": [150.0, 150.001], "dec": [2.0, 2.0]}).to_csv(tmp_path / "cat.csv", index=False)
    base = ["cutout", "--images", str(tmp_path / "t-*.fits"), "--catalog", tmp_path / "cat.csv", "--size", 16, "--quiet",
            "--background", "none"]
    code, _, err = run([*base, "--out", tmp_path / "a.h5"], capsys)
    assert code == 0 and "t-g.fits" in err and "CASU" in err
    assert StampSet.open(tmp_path / "a.h5").meta.zero_points == {"g": 23.8, "r": 30.0}
    code, _, err = run([*base, "--out", tmp_path / "b.h5", "--zero-points", "g=28.2"], capsys)
    assert code == 0 and "CASU" not in err
    assert StampSet.open(tmp_path / "b.h5").meta.zero_points == {"g": 28.2, "r": 30.0}
    code, _, err = run([*base, "--out", tmp_path / "c.h5", "--zero-points", "i=28"], capsys)
    assert_one_line_error(code, err, "--zero-points", "band(s) i not among")
    assert not (tmp_path / "c.h5").exists()
    code, _, err = run([*base, "--out", tmp_path / "c.h5", "--zero-points", "g=abc"], capsys)
    assert_one_line_error(code, err, "--zero-points", "expected a number or band=value pairs")


def test_streamed_prediction_rescales_the_tiles_from_the_given_zero_points(tmp_path):
    """A model trained in counts on 30 gets nanomaggy tiles (22.5 from BUNIT) rescaled; told
    that the tiles are on 30 already (``--zero-points 30``), it gets them as they are: what a
    model without a flux unit gets."""
    catalog, _ = make_survey(tmp_path, n_tiles=1, per_tile=40, bands=("g", "r"), outside=0)
    (tmp_path / "m.pt").write_bytes(b"tiny")
    tiles = str(tmp_path / "t*" / "tile-*.fits")

    def probabilities(predictor, out, **options):
        predict_catalog("tiny", catalog, tmp_path / out, RunOptions(tiles=tiles, **options), predictor=predictor)
        return read_out(tmp_path / out)[1][["p_star", "p_galaxy", "p_qso"]].to_numpy()

    on_30 = TinyPredictor(tmp_path / "m.pt", zero_points={"g": 30.0, "r": 30.0})
    rescaled = probabilities(on_30, "rescaled")
    told = probabilities(on_30, "told", zero_points=30.0)
    as_they_are = probabilities(TinyPredictor(tmp_path / "m.pt"), "plain")
    assert np.allclose(told, as_they_are, atol=1e-6) and not np.allclose(told, rescaled, atol=1e-3)
    assert np.allclose(probabilities(on_30, "header", zero_points={"r": 22.5, "g": 22.5}), rescaled, atol=1e-6)
    with pytest.raises(InputError, match=r"--zero-points: band\(s\) i not among"):
        predict_catalog("tiny", catalog, tmp_path / "bad", RunOptions(tiles=tiles, zero_points={"i": 30.0}), predictor=on_30)
    # The zero points are part of the run: a rerun with others is refused, not mixed in.
    with pytest.raises(InputError, match="zero_points"):
        predict_catalog("tiny", catalog, tmp_path / "told", RunOptions(tiles=tiles, zero_points=29.0), predictor=on_30)


def test_predict_refuses_zero_points_without_tiles(tmp_path, capsys):
    catalog, _ = make_survey(tmp_path, n_tiles=1, per_tile=5, outside=0)
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", catalog, "--out", tmp_path / "p.parquet",
                        "--zero-points", "30", "--quiet"], capsys)
    assert_one_line_error(code, err, "--zero-points")
    assert not (tmp_path / "p.parquet").exists()


def test_hats_prediction_rescales_tiles_as_the_streamed_run_does(tmp_path):
    """The HATS path brings tiles to the model's flux unit too (``sgq-kids``: counts on 30, the
    tiles in nanomaggies), with and without given zero points."""
    lsdb = pytest.importorskip("lsdb")
    import pyarrow.parquet as pq

    catalog, _ = make_survey(tmp_path, n_tiles=1, per_tile=30, outside=0)
    frame = pq.read_table(catalog).to_pandas().drop(columns=["mag_r"])
    pq.write_table(pq.read_table(catalog).drop(["mag_r"]), tmp_path / "positions.parquet")
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10).write_catalog(
        tmp_path / "hats", catalog_name="hats", progress_bar=False)
    from skysort.inference.hats import predict_hats

    tiles = str(tmp_path / "t*" / "tile-*.fits")
    results = {}
    for name, zero_points in (("header", None), ("given", 30.0)):
        options = RunOptions(tiles=tiles, zero_points=zero_points)
        with pytest.warns(UserWarning):  # pixel scale and magnitudes unlike the model's
            predict_hats("sgq-kids", tmp_path / "hats", tmp_path / f"hats_{name}", options)
            predict_catalog("sgq-kids", tmp_path / "positions.parquet", tmp_path / f"parts_{name}", options)
        got = lsdb.read_hats(tmp_path / f"hats_{name}").compute().sort_values("id")
        _, expected = read_out(tmp_path / f"parts_{name}")
        expected = expected.sort_values("id")
        columns = ["p_star", "p_galaxy", "p_qso"]
        assert np.allclose(got[columns].to_numpy(float), expected[columns].to_numpy(float), atol=1e-5)
        results[name] = got[columns].to_numpy(float)
    assert not np.allclose(results["header"], results["given"], atol=1e-3)
