"""The command line: happy paths, and one clear error line (exit 2, nothing written) for bad input."""

from __future__ import annotations

import bz2
import json
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from skysort.cli import main
from skysort.data.stampset import SCHEMA_VERSION, StampSet
from skysort.errors import InputError
from skysort.models.checkpoint import load_model_file, save_model_file


def make_tile(folder: Path, band: str, shape=(120, 150), shift=(0.0, 0.0), nan_pixels=0, wcs=True, suffix=".fits") -> Path:
    """A small band image with a TAN WCS (0.4"/px) and a few Gaussian sources."""
    rng = np.random.default_rng(ord(band))
    data = rng.normal(0, 1, shape).astype(np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for x, y in ((40, 50), (100, 60), (3, 3)):
        data += 80 * np.exp(-((xx - x - shift[0]) ** 2 + (yy - y - shift[1]) ** 2) / 4.5)
    if nan_pixels:
        data.ravel()[:nan_pixels] = np.nan
    header = fits.Header()
    if wcs:
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [150.0, 2.0]
        w.wcs.crpix = [75 + shift[0], 60 + shift[1]]
        w.wcs.cd = [[-0.4 / 3600, 0], [0, 0.4 / 3600]]
        header.update(w.to_header())
    header["FILTER"] = band
    header["BUNIT"] = "nanomaggy"
    path = folder / f"tile-{band}{suffix}"
    hdu = fits.PrimaryHDU(data, header)
    if suffix.endswith(".fz"):
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)]).writeto(path)
    elif suffix.endswith(".bz2"):
        raw = folder / f"tile-{band}.fits"
        hdu.writeto(raw)
        path.write_bytes(bz2.compress(raw.read_bytes()))
        raw.unlink()
    else:
        hdu.writeto(path)
    return path


def make_catalog(folder: Path, rows=None, name="objects.csv") -> Path:
    pixel_world = WCS(fits.getheader(folder / "tile-r.fits")) if (folder / "tile-r.fits").exists() else None
    rows = rows if rows is not None else [(40, 50, "star"), (100, 60, "galaxy"), (3, 3, "star")]
    lines = ["ra,dec,label,mag_r"]
    for x, y, label in rows:
        ra, dec = pixel_world.all_pix2world(x, y, 0)
        lines.append(f"{ra:.8f},{dec:.8f},{label},{20 + x / 100:.3f}")
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tile_dir(tmp_path):
    make_tile(tmp_path, "r")
    make_tile(tmp_path, "g", shift=(1.3, -0.6))
    make_catalog(tmp_path)
    return tmp_path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("skysort: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def cutout_args(folder: Path, out: Path, pattern="tile-*.fits", catalog="objects.csv", *extra):
    return ["cutout", "--images", str(folder / pattern), "--catalog", folder / catalog, "--out", out, "--size", 16, "--quiet", *extra]


def test_cutout_happy_path(tile_dir, capsys):
    out = tile_dir / "out" / "stamps.h5"
    code, stdout, _ = run(cutout_args(tile_dir, out) + ["--mosaic", tile_dir / "out" / "m.png"], capsys)
    assert code == 0
    stamps = StampSet.open(out)
    assert len(stamps) == 3 and stamps.meta.bands == ("g", "r")
    assert "objects" in stdout and (tile_dir / "out" / "m.png").stat().st_size > 1000
    flags = stamps.column("flags")
    assert flags[2] & 1 and not flags[0]  # the object at (3, 3) touches the edge
    # The g band is shifted by (1.3, -0.6) px and its WCS says so: the source stays centred.
    image = stamps.read_images([0])[0]
    assert np.unravel_index(np.argmax(image[0]), image[0].shape) == (8, 8)


def test_cutout_reads_bz2_and_band_order(tmp_path, capsys):
    for band in "gri":
        make_tile(tmp_path, band, suffix=".fits.bz2")
    make_tile(tmp_path, "r")  # plain copy for the catalogue's WCS only
    catalog = make_catalog(tmp_path)
    (tmp_path / "tile-r.fits").unlink()
    out = tmp_path / "s.h5"
    code, _, err = run(["cutout", "--images", tmp_path / "tile-*.fits.bz2", "--catalog", catalog, "--out", out, "--size", 16, "--quiet", "--bands", "i,r,g"], capsys)
    assert code == 0, err
    assert StampSet.open(out).meta.bands == ("i", "r", "g")


@pytest.mark.parametrize("suffix", [".fits.gz", ".fits.fz"])
def test_cutout_reads_gzip_and_tile_compressed(tmp_path, capsys, suffix):
    make_tile(tmp_path, "r")
    catalog = make_catalog(tmp_path)
    (tmp_path / "tile-r.fits").unlink()
    for band in "gr":
        make_tile(tmp_path, band, suffix=suffix)
    out = tmp_path / "s.h5"
    code, _, err = run(["cutout", "--images", tmp_path / f"tile-*{suffix}", "--catalog", catalog, "--out", out, "--size", 16, "--quiet"], capsys)
    assert code == 0, err
    stamps = StampSet.open(out)
    assert stamps.meta.bands == ("g", "r") and np.isfinite(stamps.read_images([0])).all()


def test_cutout_from_pixel_positions_of_a_reference_band(tile_dir, capsys):
    (tile_dir / "pixels.csv").write_text("xr,yr,label\n40,50,star\n100,60,galaxy\n")
    out = tile_dir / "s.h5"
    code, _, err = run(cutout_args(tile_dir, out, "tile-*.fits", "pixels.csv", "--mapping", "x=xr,y=yr,label=label,reference_band=r"), capsys)
    assert code == 0, err
    assert run(cutout_args(tile_dir, tile_dir / "t.h5"), capsys)[0] == 0
    stamps, by_sky = StampSet.open(out), StampSet.open(tile_dir / "t.h5")
    np.testing.assert_allclose(stamps.column("ra"), by_sky.column("ra")[:2], atol=1e-9)
    np.testing.assert_allclose(stamps.images(), by_sky.images()[:2], rtol=1e-5, atol=1e-5)


def test_missing_band_file(tile_dir, capsys):
    out = tile_dir / "s.h5"
    code, _, err = run(cutout_args(tile_dir, out, "tile-*.fits", "objects.csv", "--bands", "g,r,i"), capsys)
    assert_one_line_error(code, err, str(tile_dir), "'i'")
    assert not out.exists()


def test_image_pattern_matching_nothing(tile_dir, capsys):
    code, _, err = run(cutout_args(tile_dir, tile_dir / "s.h5", "nothing-*.fits"), capsys)
    assert_one_line_error(code, err, "nothing-*.fits", "no image file matches")



def test_image_patterns_repeated_or_separated_by_commas(tile_dir, capsys):
    g, r = tile_dir / "tile-g.fits", tile_dir / "tile-r.fits"
    for name, images in (("repeated", ["--images", g, "--images", r]), ("commas", ["--images", f"{g},{r}"])):
        out = tile_dir / f"{name}.h5"
        code, _, err = run(["cutout", *images, "--catalog", tile_dir / "objects.csv", "--out", out, "--size", 16, "--quiet"], capsys)
        assert code == 0, err
        assert StampSet.open(out).meta.bands == ("g", "r"), name



def test_a_file_name_with_a_comma_is_one_pattern(tile_dir, capsys):
    """Patterns are split at commas, except a text that names files as it stands."""
    (tile_dir / "tile-g.fits").rename(tile_dir / "tile,g.fits")
    out = tile_dir / "s.h5"
    code, _, err = run(["cutout", "--images", f"{tile_dir / 'tile,g.fits'},{tile_dir / 'tile-r.fits'}", "--images",
                        tile_dir / "tile,g.fits", "--catalog", tile_dir / "objects.csv", "--out", out, "--size", 16, "--quiet"],
                       capsys)
    assert_one_line_error(code, err, "no image file matches")  # split, so 'TILE_DIR/tile' matches nothing
    code, _, err = run(["cutout", "--images", tile_dir / "tile,g.fits", "--images", tile_dir / "tile-r.fits", "--catalog",
                        tile_dir / "objects.csv", "--out", out, "--size", 16, "--quiet"], capsys)
    assert code == 0, err
    assert StampSet.open(out).meta.bands == ("g", "r")

@pytest.mark.parametrize("option", ["--images", "--weights", "--tiles", "--tile-weights", "--spectra"])
def test_a_blank_pattern_is_refused_in_one_line(tile_dir, capsys, option):
    """A comma-only pattern names no file: refused, not run without its inputs."""
    catalog, out = tile_dir / "objects.csv", tile_dir / "out.parquet"
    argv = {"--images": ["cutout", "--images", " , ", "--catalog", catalog, "--out", tile_dir / "s.h5"],
            "--weights": [*cutout_args(tile_dir, tile_dir / "s.h5"), "--weights", ","],
            "--tiles": ["predict", "--model", "blend-cfis", "--catalog", catalog, "--tiles", ",", "--out", out],
            "--tile-weights": ["predict", "--model", "blend-cfis", "--catalog", catalog, "--tiles", tile_dir / "tile-*.fits",
                               "--weights", ",,", "--out", out],
            "--spectra": ["predict", "--model", "pointsource-sdss", "--spectra", ",", "--out", out]}[option]
    code, _, err = run([*argv, "--quiet"] if option != "--weights" else argv, capsys)
    assert_one_line_error(code, err, f"{option.replace('tile-', '')}: no pattern given")
    assert not out.exists() and not (tile_dir / "s.h5").exists()


@pytest.mark.parametrize("blank", [["--prior", ""], ["--keep="], ["--threshold", " "], ["--tiles", ""], [""]])
def test_a_blank_option_value_is_refused_in_one_line(tile_dir, capsys, blank):
    """No option gives a blank value a meaning: some read it as the option not given, silently."""
    out = tile_dir / "out.parquet"
    code, _, err = run(["predict", "--model", "blend-cfis", "--catalog", tile_dir / "objects.csv", *blank, "--out", out,
                        "--quiet"], capsys)
    where = blank[0].rstrip("=") if blank[0] else "argument"
    assert_one_line_error(code, err, f"{where}: empty value")
    assert not out.exists()

def test_catalogue_off_the_tile_is_refused(tile_dir, capsys):
    far = tile_dir / "far.csv"
    far.write_text("ra,dec,label\n10.0,-40.0,star\n")
    out = tile_dir / "s.h5"
    code, _, err = run(cutout_args(tile_dir, out, "tile-*.fits", "far.csv"), capsys)
    assert_one_line_error(code, err, "far.csv", "none of its 1 objects lies on the images")
    assert not out.exists()


def test_predict_output_of_unknown_format_is_refused(tile_dir, capsys):
    stamps = tile_dir / "s.h5"
    assert run(cutout_args(tile_dir, stamps), capsys)[0] == 0
    code, _, err = run(["predict", "--model", "blend-cfis", "--data", stamps, "--out", tile_dir / "p.txt", "--quiet"], capsys)
    assert_one_line_error(code, err, "p.txt", "unknown table format '.txt'")
    assert not (tile_dir / "p.txt").exists()


def test_fits_without_wcs(tmp_path, capsys):
    make_tile(tmp_path, "r")
    catalog = make_catalog(tmp_path)
    make_tile(tmp_path, "g", wcs=False)
    code, _, err = run(cutout_args(tmp_path, tmp_path / "s.h5", catalog=catalog.name), capsys)
    assert_one_line_error(code, err, "tile-g.fits", "no celestial WCS")
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.parametrize("suffix", [".fits", ".fits.bz2"])
def test_truncated_fits(tmp_path, capsys, suffix):
    make_tile(tmp_path, "r")
    catalog = make_catalog(tmp_path)
    broken = make_tile(tmp_path, "g", suffix=suffix)
    broken.write_bytes(broken.read_bytes()[: 4000])
    code, _, err = run(cutout_args(tmp_path, tmp_path / "s.h5", "tile-*" + ("" if suffix == ".fits" else "") + "", catalog.name), capsys)
    assert_one_line_error(code, err, broken.name)
    assert not (tmp_path / "s.h5").exists()
    with warnings.catch_warnings():
        # astropy's truncation warning would print a second line before the error.
        warnings.simplefilter("error", AstropyWarning)
        code, _, err = run(["info", broken], capsys)
    assert_one_line_error(code, err, broken.name, "truncated or corrupt")


def test_empty_catalogue(tile_dir, capsys):
    (tile_dir / "empty.csv").write_text("ra,dec,label\n")
    code, _, err = run(cutout_args(tile_dir, tile_dir / "s.h5", catalog="empty.csv"), capsys)
    assert_one_line_error(code, err, "empty.csv", "no rows")


def test_catalogue_lacking_mapped_columns(tile_dir, capsys):
    code, _, err = run(cutout_args(tile_dir, tile_dir / "s.h5", "tile-*.fits", "objects.csv", "--mapping", "kids"), capsys)
    assert_one_line_error(code, err, "objects.csv", "RAJ2000")
    assert not (tile_dir / "s.h5").exists()


def test_nan_pixels_are_flagged_or_refused(tmp_path, capsys):
    make_tile(tmp_path, "r", nan_pixels=150 * 10)  # the ten bottom rows
    catalog = make_catalog(tmp_path)
    out = tmp_path / "s.h5"
    code, _, err = run(cutout_args(tmp_path, out, "tile-*.fits", catalog.name, "--nan", "error"), capsys)
    assert_one_line_error(code, err, "tile-r.fits", "NaN pixels")
    assert not out.exists()
    code, _, err = run(cutout_args(tmp_path, out, "tile-*.fits", catalog.name), capsys)
    assert code == 0 and "warning" in err and "tile-r.fits" in err
    flags = StampSet.open(out).column("flags")
    assert flags[2] & 2 and not flags[1] & 2  # near the NaN rows / far from them


def test_stampset_of_wrong_schema_version(tmp_path, capsys):
    images = tmp_path / "x.npy"
    np.save(images, np.zeros((3, 8, 8), np.float32))
    out = tmp_path / "s.h5"
    assert run(["import", "--images", images, "--bands", "r", "--pixel-scale", 0.2, "--out", out, "--quiet"], capsys)[0] == 0
    with h5py.File(out, "a") as handle:
        handle.attrs["schema_version"] = SCHEMA_VERSION + 5
    code, _, err = run(["info", out], capsys)
    assert_one_line_error(code, err, "s.h5", "schema version")


def test_import_array_and_table(tmp_path, capsys):
    stamps = np.random.default_rng(0).normal(size=(5, 2, 12, 12)).astype(np.float32)
    stamps[4, 1] = np.nan
    np.save(tmp_path / "x.npy", stamps)
    (tmp_path / "t.csv").write_text("id,label,mag_g,mag_r,z\n" + "".join(f"{i},{'STAR' if i % 2 else 'galaxy'},{20 + i},{99 if i == 1 else 19},0.{i}\n" for i in range(5)))
    out = tmp_path / "s.h5"
    code, stdout, err = run(["import", "--images", tmp_path / "x.npy", "--table", tmp_path / "t.csv", "--bands", "g,r", "--pixel-scale", 0.187,
                             "--zero-points", "30", "--flux-unit", "count", "--out", out, "--quiet"], capsys)
    assert code == 0, err
    result = StampSet.open(out)
    np.testing.assert_array_equal(result.images(), stamps)
    assert list(result.labels()) == ["galaxy", "star", "galaxy", "star", "galaxy"]
    assert np.isnan(result.column("mag_r")[1])  # the 99 sentinel is a missing value
    flags = result.column("flags")
    assert flags[1] == 8 and flags[4] == 2 | 4  # MISSING_PHOTOMETRY; NAN_PIXELS + MISSING_BAND
    assert result.meta.zero_points == {"g": 30.0, "r": 30.0} and result.meta.pixel_scale == 0.187
    np.testing.assert_allclose(result.column("z"), [0.0, 0.1, 0.2, 0.3, 0.4])
    # A table that does not match the array is refused, naming it.
    (tmp_path / "short.csv").write_text("id\n1\n2\n")
    code, _, err = run(["import", "--images", tmp_path / "x.npy", "--table", tmp_path / "short.csv", "--bands", "g,r", "--pixel-scale", 0.2, "--out", tmp_path / "bad.h5"], capsys)
    assert_one_line_error(code, err, "short.csv", "2 rows")
    assert not (tmp_path / "bad.h5").exists()
    code, _, err = run(["import", "--images", tmp_path / "x.npy", "--bands", "r", "--pixel-scale", 0.2, "--out", tmp_path / "bad.h5"], capsys)
    assert_one_line_error(code, err, "x.npy", "2 band plane")


def test_info_on_every_kind_of_file(tile_dir, capsys):
    out = tile_dir / "s.h5"
    assert run(cutout_args(tile_dir, out), capsys)[0] == 0
    code, stdout, _ = run(["info", out, "--json"], capsys)
    summary = json.loads(stdout)
    assert code == 0 and summary["kind"] == "stampset" and summary["n_objects"] == 3
    code, stdout, _ = run(["info", tile_dir / "tile-g.fits", "--json"], capsys)
    assert json.loads(stdout)["band"] == "g"
    code, stdout, _ = run(["info", tile_dir / "objects.csv", "--json"], capsys)
    assert json.loads(stdout)["classes"] == {"galaxy": 1, "star": 2}
    model = save_model_file(tile_dir / "m.pt", {"w": torch.zeros(3, 2)}, {"task": "sgq", "classes": ["star", "galaxy", "qso"]}, command="test")
    code, stdout, _ = run(["info", model, "--json"], capsys)
    assert json.loads(stdout)["n_parameters"] == 6
    meta, state = load_model_file(model)
    assert meta["task"] == "sgq" and meta["creator"].startswith("skysort")
    code, _, err = run(["info", tile_dir / "missing.h5"], capsys)
    assert_one_line_error(code, err, "missing.h5", "no such file")


@pytest.mark.parametrize("suffix", ["parquet", "fits", "csv", "folder"])
def test_info_on_a_prediction_file_names_its_model_and_predicted_classes(tmp_path, capsys, suffix):
    # Before: shown as a catalogue, its predicted "class" column as "label" (a truth column);
    # a prediction folder (parts + manifest) was no catalogue at all.
    lines = ["id,mag_u,mag_g,mag_r,mag_i,mag_z"] + [f"{k},{19 + k * 0.3},18.5,18.2,18.1,18" for k in range(6)]
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / ("p/" if suffix == "folder" else f"p.{suffix}")
    assert run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "c.csv", "--out", str(out) + ("/" if suffix == "folder" else ""),
                "--quiet"], capsys)[0] == 0
    code, stdout, _ = run(["info", out, "--json"], capsys)
    summary = json.loads(stdout)
    predicted = pd.read_parquet(out / "part-00000.parquet" if suffix == "folder" else out)["class"] \
        if suffix in ("parquet", "folder") else None
    kind = "prediction folder" if suffix == "folder" else "predictions"
    assert code == 0 and summary["kind"] == kind and summary["model"] == "sgq-sdss" and summary["task"] == "sgq"
    if suffix == "folder":
        assert summary["complete"] and summary["units_done"] == "1 of 1" and summary["n_sources_planned"] == 6
    assert "class" in summary["columns"] and "label" not in summary["columns"]
    assert sum(summary["predicted_classes"].values()) == 6 and summary["inputs_used"] == {"photometry": 6}
    if predicted is not None:
        assert summary["predicted_classes"] == {name: int((predicted == name).sum()) for name in ("star", "galaxy", "qso")}
    assert summary["flags"] == {"MISSING_INPUT": 6}  # photometry alone: the model's image input is missing


def test_console_script_exit_code_and_debug(tile_dir):
    """Through a real process: exit status 2, one line; --debug shows the traceback."""
    command = [sys.executable, "-m", "skysort.cli", "info", str(tile_dir / "missing.h5")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    result = subprocess.run(command[:3] + ["--debug"] + command[3:], capture_output=True, text=True)
    assert "Traceback" in result.stderr
    assert subprocess.run([sys.executable, "-m", "skysort.cli", "--help"], capture_output=True).returncode == 0


@pytest.mark.parametrize("argv, fragment", [
    (["predict", "--bogus"], "No such option: --bogus"),
    (["predict", "--model", "m.pt", "--data", "s.h5", "--out", "p.parquet", "--batch-size", "abc"], "'--batch-size'"),
    (["predict", "--data", "s.h5"], "Missing option '--model'"),
    (["predict", "--model", "m.pt", "--data", "s.h5", "--out", "p.parquet", "--threshold", "1.5"], "'--threshold'"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
])
def test_command_line_mistakes_get_one_line_and_status_2(argv, fragment, capsys):
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, fragment, "--help")


def test_simulate_population_override(tmp_path, capsys):
    from skysort.data.stampset import StampSet

    out = tmp_path / "targets.h5"
    code, _, err = run(["simulate", "--survey", "sdss", "--n", 12, "--seed", 5, "--stamp-size", 16,
                        "--population", "galaxy_target_fraction=0.5", "--out", out, "--quiet"], capsys)
    assert code == 0, err
    meta = StampSet.open(out).meta
    assert meta.extra["simulation"]["population"] == [["galaxy_target_fraction", 0.5]]
    assert meta.extra["catalogue_magnitudes"]["system"] == "asinh"
    for bad, fragment in (("no_such_parameter=1", "no_such_parameter"), ("galaxy_target_fraction", "KEY=VALUE")):
        target = tmp_path / "bad.h5"
        code, _, err = run(["simulate", "--survey", "sdss", "--n", 4, "--population", bad, "--out", target, "--quiet"], capsys)
        assert_one_line_error(code, err, fragment)
        assert not target.exists()


def test_train_mag_jitter_option(tmp_path, capsys):
    data = tmp_path / "small.h5"
    code, _, err = run(["simulate", "--survey", "sdss", "--n", 40, "--seed", 6, "--stamp-size", 16, "--balanced",
                        "--out", data, "--quiet"], capsys)
    assert code == 0, err
    model = tmp_path / "m.pt"
    code, _, err = run(["train", "--task", "sgq", "--data", data, "--branches", "photometry", "--epochs", 1,
                        "--mag-jitter", "u=0.3,z=0.1", "--out", model, "--quiet"], capsys)
    assert code == 0, err
    from skysort.models.checkpoint import load_model_file

    assert load_model_file(model)[0]["training"]["mag_jitter"] == {"u": 0.3, "z": 0.1}
    for bad, fragment in (("u=fast", "u: expected a number"), ("u", "KEY=VALUE"), ("w=0.1", "not photometric bands")):
        target = tmp_path / "bad.pt"
        code, _, err = run(["train", "--task", "sgq", "--data", data, "--branches", "photometry", "--epochs", 1,
                            "--mag-jitter", bad, "--out", target, "--quiet"], capsys)
        assert_one_line_error(code, err, fragment)
        assert not target.exists()


def test_tiles_for_a_model_that_reads_no_images_are_refused(tile_dir, capsys):
    data = tile_dir / "small.h5"
    assert run(["simulate", "--survey", "sdss", "--n", 30, "--seed", 6, "--stamp-size", 16, "--balanced", "--out", data,
                "--quiet"], capsys)[0] == 0
    model = tile_dir / "phot.pt"
    code, _, err = run(["train", "--task", "sgq", "--data", data, "--branches", "photometry", "--epochs", 1, "--out", model,
                        "--quiet"], capsys)
    assert code == 0, err
    out = tile_dir / "p.parquet"
    code, _, err = run(["predict", "--model", model, "--catalog", tile_dir / "objects.csv", "--tiles", tile_dir / "tile-*.fits",
                        "--out", out, "--quiet"], capsys)
    assert_one_line_error(code, err, "--tiles", "reads no images")
    assert not out.exists()


def test_recorded_command_names_skysort_however_it_was_started(monkeypatch):
    from skysort.provenance import current_command

    for argv0 in ("/usr/bin/skysort", "/opt/site/skysort/cli.py"):
        monkeypatch.setattr("sys.argv", [argv0, "train", "--data", "a b.h5"])
        assert current_command() == "skysort train --data 'a b.h5'"
    monkeypatch.setattr("sys.argv", ["bench.py", "--n", "5"])
    assert current_command() == "bench.py --n 5"


def test_saturated_objects_are_flagged_in_cutout_and_predict_cutting(tile_dir, capsys):
    # Header SATURATE levels: the r (reference) image saturates at object 0, the g image (resampled
    # onto r's grid) at object 1; object 2 reaches neither level. Before, nothing was flagged.
    from skysort.data.flags import Flags
    from skysort.data.images import read_band_images
    from skysort.data.cutout import cut_stamps

    for band, (x, y) in (("r", (40, 50)), ("g", (100 + 1.3, 60 - 0.6))):
        with fits.open(tile_dir / f"tile-{band}.fits", mode="update") as hdul:
            hdul[0].header["SATURATE"] = 100.0
            hdul[0].data[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2] = 150.0
    out = tile_dir / "s.h5"
    assert run(cutout_args(tile_dir, out), capsys)[0] == 0
    flags = StampSet.open(out).column("flags")
    assert [bool(f & Flags.SATURATED) for f in flags] == [True, True, False]
    assert StampSet.open(out).meta.extra["saturation"] == {"g": 100.0, "r": 100.0}
    images = read_band_images(sorted(tile_dir.glob("tile-*.fits")), background="sep")
    assert images[1].band == "r" and images[1].saturation == 100.0 and len(images[1].saturated_pixels) == 9
    x, y = np.array([40.0, 100.0, 3.0]), np.array([50.0, 60.0, 3.0])
    _, stream_flags = cut_stamps(images, x, y, size=16, reference=1, aligned=[False, True])
    assert [bool(f & Flags.SATURATED) for f in stream_flags] == [True, True, False]
    # No level in the header: nothing is flagged, whatever the pixel values.
    for band in "rg":
        with fits.open(tile_dir / f"tile-{band}.fits", mode="update") as hdul:
            del hdul[0].header["SATURATE"]
    assert run(cutout_args(tile_dir, tile_dir / "none.h5"), capsys)[0] == 0
    assert not any(StampSet.open(tile_dir / "none.h5").column("flags") & Flags.SATURATED)


def test_a_multi_ccd_mosaic_file_is_refused_and_image_plus_variance_is_not(tile_dir, capsys):
    # Before: only the first image extension of a mosaic (DECam, MegaCam exposures) was read, and
    # objects on the other CCDs silently got no stamp.
    from skysort.data.images import first_image_header, read_band_image

    with fits.open(tile_dir / "tile-r.fits") as hdul:
        image, header = hdul[0].data, hdul[0].header
    other_ccd = header.copy()
    other_ccd["CRPIX1"] = header["CRPIX1"] - 2100  # the next CCD along RA
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, header), fits.ImageHDU(image, other_ccd)]).writeto(
        tile_dir / "mosaic-r.fits")
    for reader in (first_image_header, read_band_image):
        with pytest.raises(InputError, match="holds 2 images of different sky areas"):
            reader(tile_dir / "mosaic-r.fits")
    code, _, err = run(["cutout", "--images", tile_dir / "mosaic-r.fits", "--catalog", tile_dir / "objects.csv",
                        "--out", tile_dir / "m.h5", "--size", 16, "--quiet"], capsys)
    assert_one_line_error(code, err, "mosaic-r.fits", "multi-CCD mosaic")
    # Image, variance on the same pixels, and a PSF model without a sky WCS: one sky area.
    psf = fits.ImageHDU(np.ones((25, 25), np.float32))
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(image * 0 + 1, header), psf]).writeto(tile_dir / "calexp-r.fits")
    assert read_band_image(tile_dir / "calexp-r.fits").band == "r"
    assert first_image_header(tile_dir / "calexp-r.fits") is not None
