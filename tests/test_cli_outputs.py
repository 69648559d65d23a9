"""Outputs that cannot be written, interrupted runs and inputs that hold nothing usable: one
error line, exit status 2 (143 when terminated), and nothing half written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from skysort._io import AtomicFile, check_output_path
from skysort._progress import progress_bar
from skysort.data.stampset import StampSet, write_stampset
from skysort.errors import InputError

from test_cli import assert_one_line_error, cutout_args, make_catalog, run, tile_dir  # noqa: F401 (fixture)


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files and folders left in ``folder`` (recursively)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def test_check_output_path(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert check_output_path(tmp_path / "new" / "deeper" / "out.h5") == tmp_path / "new" / "deeper" / "out.h5"
    check_output_path(tmp_path / "folder", folder=True)
    with pytest.raises(InputError, match="must be a file name, and this is a folder"):
        check_output_path(tmp_path / "folder")
    with pytest.raises(InputError, match="must be a folder, and this is a file"):
        check_output_path(tmp_path / "file.txt", folder=True)
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_path(tmp_path / "file.txt" / "out.h5")
    if Path("/sys").is_dir():  # Linux: no file can be created there, whatever the permission bits say to root
        with pytest.raises(InputError, match="cannot be written"):
            check_output_path("/sys/out.h5")


def test_failed_commit_leaves_no_temporary_file(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "inside").write_text("x")  # a non-empty folder cannot be replaced by a file
    target = AtomicFile(tmp_path / "taken")
    target.tmp.write_text("data")
    with pytest.raises(OSError):
        target.commit()
    assert leftovers(tmp_path) == []


def test_progress_bar_waits_for_its_refresh_thread():
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError):
        with progress_bar(10, "failing") as advance:
            advance(1)
            raise RuntimeError("early failure")
    assert set(threading.enumerate()) <= before


@pytest.mark.parametrize("kind", ["folder", "under-a-file"])
def test_unwritable_outputs_are_refused_before_any_work(tmp_path, capsys, kind):
    (tmp_path / "taken.h5").mkdir()
    (tmp_path / "plain").write_text("x")
    out = tmp_path / "taken.h5" if kind == "folder" else tmp_path / "plain" / "s.h5"
    code, _, err = run(["simulate", "--n", 5, "--out", out, "--quiet"], capsys)
    assert_one_line_error(code, err, str(out))
    code, _, err = run(["simulate", "--n", 5, "--out", tmp_path / "ok.h5", "--plots", tmp_path / "plain", "--quiet"], capsys)
    assert_one_line_error(code, err, "--plots must be a folder")
    assert not (tmp_path / "ok.h5").exists()
    assert leftovers(tmp_path) == []


def test_training_options_are_checked_before_training(tmp_path, capsys):
    data = tmp_path / "small.h5"
    code, _, err = run(["simulate", "--survey", "sdss", "--n", 30, "--seed", 6, "--stamp-size", 16, "--balanced",
                        "--out", data, "--quiet"], capsys)
    assert code == 0, err
    base = ["train", "--task", "sgq", "--data", data, "--branches", "photometry", "--out", tmp_path / "m.pt", "--quiet"]
    for extra, fragment in ((["--epochs", 0], "--epochs"), (["--batch-size", 0], "--batch-size"), (["--lr", -1], "--lr")):
        code, _, err = run(base + extra, capsys)
        assert_one_line_error(code, err, fragment)
    paper = ["train", "--task", "blend", "--architecture", "paper", "--data", data, "--out", tmp_path / "p.pt", "--quiet"]
    code, _, err = run(paper + ["--backbone", "vgg16"], capsys)
    assert_one_line_error(code, err, "--backbone-weights", "ImageNet")
    code, _, err = run(paper + ["--backbone", "vgg16", "--backbone-weights", tmp_path / "missing.pth"], capsys)
    assert_one_line_error(code, err, "missing.pth", "no such file")
    code, _, err = run(paper + ["--init", "blend-cfis"], capsys)
    assert_one_line_error(code, err, "--init")
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "p.pt").exists()


def test_training_on_nan_stamps_or_empty_photometry_is_refused(tmp_path):
    from skysort.tasks.sgq import train_sgq_model

    from skysort.cli import main

    data = tmp_path / "small.h5"
    assert main(["simulate", "--survey", "sdss", "--n", "30", "--seed", "6", "--stamp-size", "16", "--balanced",
                 "--out", str(data), "--quiet"]) == 0
    stamps = StampSet.open(data)
    images = stamps.read_images(np.arange(len(stamps)))
    images[3] = np.nan  # one stamp without any finite pixel
    images[4, 2, 8, 8] = np.nan  # a masked pixel is allowed
    table = stamps.table
    for band in "ugriz":
        table[f"mag_{band}"] = np.nan
    broken = tmp_path / "broken.h5"
    write_stampset(broken, images, table, stamps.meta)
    with pytest.raises(InputError, match="1 of .* training stamps have no finite pixel"):
        train_sgq_model(broken, tmp_path / "m.pt", branches="image", image_bands=["r"], epochs=1, progress=False)
    with pytest.raises(InputError, match="no finite magnitude in any photometric band"):
        train_sgq_model(broken, tmp_path / "m.pt", branches="photometry", epochs=1, progress=False)
    assert not (tmp_path / "m.pt").exists()
    images[3] = stamps.read_images([3])[0]  # only the masked pixel left: trains
    write_stampset(broken, images, table, stamps.meta)
    train_sgq_model(broken, tmp_path / "m.pt", branches="image", image_bands=["r"], epochs=1, progress=False)
    assert (tmp_path / "m.pt").exists()


def test_predict_catalogue_problems(tile_dir, capsys):  # noqa: F811 (fixture)
    tiles = str(tile_dir / "tile-*.fits")
    # Non-numeric magnitudes: the error line, every time, and no hidden work folder left.
    bad = tile_dir / "bad.csv"
    bad.write_text("ra,dec,mag_u,mag_g,mag_r,mag_i,mag_z\n10.0,1.0,21,20,abc,19,19\n10.1,1.1,21,20,20,19,19\n")
    for _ in range(3):
        code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", bad, "--out", tile_dir / "p.parquet", "--quiet"], capsys)
        assert_one_line_error(code, err, "bad.csv", "mag_r", "not numeric")
    assert leftovers(tile_dir) == [] and not (tile_dir / "p.parquet").exists()
    # A catalogue of another sky than the tiles.
    off = tile_dir / "off.csv"
    off.write_text("ra,dec,mag_r\n200.0,-30.0,20\n200.1,-30.1,21\n")
    for out in (tile_dir / "off.parquet", tile_dir / "offdir"):
        code, _, err = run(["predict", "--model", "blend-cfis", "--catalog", off, "--tiles", tiles, "--out", f"{out}{'/' if out.suffix == '' else ''}",
                            "--quiet"], capsys)
        lines = [line for line in err.splitlines() if line.startswith("skysort: error:")]
        assert code == 2 and len(lines) == 1 and "none of its 2 sources lies on a tile" in lines[0], err
        assert not out.exists()
    assert leftovers(tile_dir) == []
    # A threshold is for two-class models.
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", bad, "--threshold", 0.7, "--out", tile_dir / "t.parquet",
                        "--quiet"], capsys)
    assert_one_line_error(code, err, "--threshold", "two-class")


def test_objects_without_any_input_get_no_class(tmp_path, capsys):
    from astropy.table import Table

    catalog = tmp_path / "cat.csv"
    catalog.write_text("obj_ID,alpha,delta,u,g,r,i,z,class\n1,10.0,1.0,,,,,,STAR\n"
                       "2,10.1,1.1,-9999,-9999,-9999,-9999,-9999,STAR\n3,10.2,1.2,20,19,18.5,18.3,18.2,STAR\n")
    out = tmp_path / "p.fits"
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", catalog, "--mapping", "sdss-specphot", "--out", out,
                        "--quiet"], capsys)
    assert code == 0, err
    assert "2 of 3 objects had no usable input" in err
    table = Table.read(out)
    classes = [str(c).strip() for c in np.ma.filled(table["class"], "")]
    assert classes[:2] == ["", ""]
    assert str(table["class"][2]).strip() in ("star", "galaxy", "qso")
    assert list(table["inputs_used"][:2]) == ["none", "none"]
    np.testing.assert_allclose(np.asarray(table["p_star"][:2]), 1 / 3, rtol=1e-5)


def test_sigterm_removes_the_temporary_output(tmp_path):
    """A batch system's time limit (SIGTERM) ends the command with status 143 and no temporary file."""
    out = tmp_path / "big.h5"
    process = subprocess.Popen([sys.executable, "-m", "skysort.cli", "simulate", "--n", "20000", "--workers", "2",
                                "--out", str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not leftovers(tmp_path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(tmp_path), "the temporary output never appeared"
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "skysort: terminated" in stderr
    assert leftovers(tmp_path) == [] and not out.exists()
    children = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert [pid for pid in children if int(pid) != os.getpid()] == []


def test_options_that_do_not_apply_and_empty_or_ambiguous_inputs(tmp_path, capsys):
    data = tmp_path / "small.h5"
    assert run(["simulate", "--survey", "sdss", "--n", 20, "--seed", 6, "--stamp-size", 16, "--balanced",
                "--out", data, "--quiet"], capsys)[0] == 0
    empty = write_stampset(tmp_path / "empty.h5", np.zeros((0, 5, 16, 16), np.float32),
                           StampSet.open(data).table[:0], StampSet.open(data).meta).path
    code, _, err = run(["evaluate", "--model", "sgq-sdss", "--data", empty, "--out", tmp_path / "e", "--quiet"], capsys)
    assert_one_line_error(code, err, "empty.h5", "no objects")
    code, _, err = run(["train", "--task", "sgq", "--data", empty, "--out", tmp_path / "m.pt", "--quiet"], capsys)
    assert_one_line_error(code, err, "empty.h5", "no objects")
    from skysort.tasks.blend import train_blend_model
    from skysort.tasks.pointsource import train_pointsource_model
    from skysort.tasks.sgq import train_sgq_model

    for train_model in (train_sgq_model, train_blend_model, train_pointsource_model):  # the Python API says the same
        with pytest.raises(InputError, match="empty.h5: the stamp set holds no objects"):
            train_model(empty, tmp_path / "m.pt", epochs=1, progress=False)
    with pytest.raises(InputError, match="empty.h5: the stamp set holds no objects"):
        train_sgq_model(data, tmp_path / "m.pt", val_data=empty, epochs=1, progress=False)
    for option, value in (("--expect", "star"), ("--threshold", "0.7"), ("--baseline-model", "pointsource-sdss")):
        code, _, err = run(["evaluate", "--model", "sgq-sdss", "--data", data, "--out", tmp_path / "e", option, value, "--quiet"]
                           if option != "--expect" else
                           ["evaluate", "--model", "blend-cfis", "--data", data, "--out", tmp_path / "e", option, value, "--quiet"],
                           capsys)
        assert_one_line_error(code, err, option, "applies to")
    code, _, err = run(["predict", "--model", "sgq-sdss", "--data", data, "--out", tmp_path / "p.parquet", "--dask", "local:2",
                        "--quiet"], capsys)
    assert_one_line_error(code, err, "--dask")
    duplicated = tmp_path / "dup.csv"
    duplicated.write_text("ra,dec,mag_u,mag_g,mag_r,mag_i,mag_z,mag_r\n10.0,1.0,21,20,20,19,19,20\n")
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", duplicated, "--out", tmp_path / "d.parquet", "--quiet"],
                       capsys)
    assert_one_line_error(code, err, "dup.csv", "mag_r", "more than once")
    assert not (tmp_path / "e").exists() and not (tmp_path / "m.pt").exists() and leftovers(tmp_path) == []


def test_an_error_after_a_progress_bar_is_the_only_output(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("ra,dec,mag_u,mag_g,mag_r,mag_i,mag_z\n10.0,1.0,21,20,abc,19,19\n")
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", bad, "--out", tmp_path / "p.parquet"], capsys)
    assert code == 2 and err.splitlines() == [err.strip()] and err.startswith("skysort: error: "), repr(err)


def test_an_output_that_names_an_input_is_refused(tile_dir, capsys):  # noqa: F811 (fixture)
    catalog = tile_dir / "objects.csv"
    before = catalog.read_bytes()
    code, _, err = run(["cutout", "--images", tile_dir / "tile-*.fits", "--catalog", catalog, "--out", catalog, "--quiet"], capsys)
    assert_one_line_error(code, err, "objects.csv", "names an input")
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", catalog, "--out", catalog, "--quiet"], capsys)
    assert_one_line_error(code, err, "objects.csv", "names an input")
    assert catalog.read_bytes() == before
    stamps = tile_dir / "s.h5"
    assert run(["cutout", "--images", tile_dir / "tile-*.fits", "--catalog", catalog, "--out", stamps, "--size", 16, "--quiet"],
               capsys)[0] == 0
    before = stamps.read_bytes()
    code, _, err = run(["train", "--task", "sgq", "--data", stamps, "--out", stamps, "--quiet"], capsys)
    assert_one_line_error(code, err, "s.h5", "names an input")
    code, _, err = run(["info", stamps, "--mosaic", stamps], capsys)
    assert_one_line_error(code, err, "s.h5", "names an input")
    code, _, err = run(["cutout", "--images", tile_dir / "tile-*.fits", "--catalog", catalog, "--out", tile_dir / "t.h5",
                        "--mosaic", tile_dir / "t.h5", "--quiet"], capsys)
    assert_one_line_error(code, err, "--mosaic", "same file as --out")
    assert stamps.read_bytes() == before and not (tile_dir / "t.h5").exists()


def test_out_of_range_and_non_finite_options_are_refused(tile_dir, capsys):  # noqa: F811 (fixture)
    out = tile_dir / "o.h5"
    for argv, fragment in (
            (["simulate", "--survey", "sdss", "--n", 5, "--seed", -1, "--out", out], "--seed"),
            (["simulate", "--survey", "sdss", "--n", 5, "--seed", 2 ** 32, "--out", out], "--seed"),
            (["simulate", "--survey", "sdss", "--n", 5, "--noise-sigma", "nan", "--out", out], "--noise-sigma"),
            (["train", "--task", "blend", "--data", tile_dir / "none.h5", "--noise-max", "nan", "--out", tile_dir / "m.pt"], "--noise-max"),
            (["train", "--task", "sgq", "--data", tile_dir / "none.h5", "--lr", "nan", "--out", tile_dir / "m.pt"], "--lr"),
            (["predict", "--model", "sgq-sdss", "--catalog", tile_dir / "objects.csv", "--memory-gb", 0, "--out", tile_dir / "p.parquet"],
             "--memory-gb"),
            (cutout_args(tile_dir, out, "tile-*.fits", "objects.csv", "--bands", "r,r"), "may appear once"),
            (cutout_args(tile_dir, out)[:-3] + ["--size", 100000], "more than twice the side of the images")):
        code, _, err = run(argv, capsys)
        assert_one_line_error(code, err, fragment)
    np.save(tile_dir / "st.npy", np.zeros((3, 8, 8), np.float32))
    for extra, fragment in ((["--pixel-scale", "nan"], "finite"), (["--psf-fwhm", "-1"], "positive"),
                            (["--zero-points", "r=nan"], "finite")):
        options = {"--pixel-scale": "0.2", **dict([extra])}
        argv = ["import", "--images", tile_dir / "st.npy", "--bands", "r", "--out", out, "--quiet"]
        code, _, err = run(argv + [item for pair in options.items() for item in pair], capsys)
        assert_one_line_error(code, err, extra[0], fragment)
    assert not out.exists() and leftovers(tile_dir) == []


def test_a_truncated_fits_cube_is_one_error_line(tmp_path, capsys):
    import warnings

    from astropy.io import fits
    from astropy.utils.exceptions import AstropyWarning

    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((50, 16, 16), np.float32)).writeto(cube)
    cube.write_bytes(cube.read_bytes()[:20000])
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyWarning)  # astropy's truncation warning would be a second line
        code, _, err = run(["import", "--images", cube, "--bands", "r", "--pixel-scale", "0.4", "--out", tmp_path / "c.h5"], capsys)
    assert_one_line_error(code, err, "cube.fits", "truncated or corrupt")
    assert not (tmp_path / "c.h5").exists()


def test_stamps_a_model_cannot_read_are_refused_before_any_warning(tmp_path, capsys):
    blends = tmp_path / "b.h5"
    assert run(["simulate", "--survey", "cfis", "--kind", "blends", "--n", 6, "--out", blends, "--quiet"], capsys)[0] == 0
    for command in ("predict", "evaluate"):
        # sgq-sdss reads ugriz at 0.396"/px: the pixel-scale and seeing warnings would come first otherwise.
        out = tmp_path / ("p.parquet" if command == "predict" else "e")
        code, _, err = run([command, "--model", "sgq-sdss", "--data", blends, "--out", out, "--quiet"], capsys)
        assert_one_line_error(code, err, "b.h5", "no image band(s)")
        assert not out.exists()


def test_options_a_run_would_ignore_are_refused(tmp_path, capsys):
    # Refused before any input is read: the files need not exist.
    data, model = tmp_path / "none.h5", tmp_path / "m.pt"
    train = ["train", "--data", data, "--out", model, "--quiet", "--task"]
    for argv, option, scope in (
            (train + ["blend", "--branches", "image"], "--branches", "--task sgq"),
            (train + ["blend", "--magnitude-balance"], "--magnitude-balance", "--task sgq"),
            (train + ["blend", "--backbone", "vgg16"], "--backbone", "--architecture paper"),
            (train + ["blend", "--architecture", "paper", "--val", data], "--val", "--task sgq"),
            (train + ["blend", "--architecture", "paper", "--noise-max", 20], "--noise-max", "--task blend"),
            (train + ["pointsource", "--init", "sgq-sdss"], "--init", "--task sgq"),
            (train + ["pointsource", "--freeze", "image"], "--freeze", "--task sgq"),
            (train + ["sgq", "--architecture", "paper"], "--architecture", "--task blend"),
            (train + ["sgq", "--noise-min", 2], "--noise-min", "--task blend"),
            (train + ["sgq", "--baseline", "image-only"], "--baseline", "--task pointsource"),
            (["simulate", "--kind", "sources", "--spectra-snr", 5, "--n", 3, "--out", tmp_path / "s.h5"], "--spectra-snr",
             "--kind pointsources"),
            (["simulate", "--kind", "blends", "--survey", "cfis", "--balanced", "--n", 3, "--out", tmp_path / "s.h5"],
             "--balanced", "--kind sources"),
            (["predict", "--model", "sgq-sdss", "--data", data, "--mapping", "sdss", "--out", tmp_path / "p.parquet"], "--mapping",
             "--catalog"),
            (["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "c.csv", "--background", "none",
              "--out", tmp_path / "p.parquet"], "--background", "--tiles")):
        code, _, err = run(argv, capsys)
        assert_one_line_error(code, err, option, "applies to", scope)
    # An option given at its default value is still an option the run would ignore.
    code, _, err = run(train + ["sgq", "--noise-max", 36], capsys)
    assert_one_line_error(code, err, "--noise-max", "applies to")
    assert leftovers(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_the_paper_model_trains_with_the_published_protocol_by_default(tmp_path, capsys, monkeypatch):
    import skysort.tasks.blend_paper as blend_paper

    calls = []
    monkeypatch.setattr(blend_paper, "train_paper_model", lambda *args, **kwargs: calls.append(kwargs) or {})
    data = tmp_path / "b.h5"
    assert run(["simulate", "--survey", "cfis", "--kind", "blends", "--n", 4, "--out", data, "--quiet"], capsys)[0] == 0
    for extra, expected in (([], dict(max_epochs=500, patience=10, batch_size=250, lr=1e-3)),
                            (["--epochs", 3, "--patience", 2, "--batch-size", 64, "--lr", 0.01],
                             dict(max_epochs=3, patience=2, batch_size=64, lr=0.01))):
        code, _, err = run(["train", "--task", "blend", "--architecture", "paper", "--data", data, "--out", tmp_path / "m.pt",
                            "--quiet", *extra], capsys)
        assert code == 0, err
        assert {k: calls[-1][k] for k in expected} == expected


def test_output_names_the_readers_would_not_recognise_are_refused(tmp_path, capsys):
    np.save(tmp_path / "st.npy", np.zeros((3, 8, 8), np.float32))
    for argv, fragment in (
            (["import", "--images", tmp_path / "st.npy", "--bands", "r", "--pixel-scale", 0.2, "--out", tmp_path / "s.txt"],
             "must end in .h5 or .hdf5"),
            (["simulate", "--n", 3, "--out", tmp_path / "s.fits"], "must end in .h5 or .hdf5"),
            (["train", "--task", "sgq", "--data", tmp_path / "none.h5", "--out", tmp_path / "m.h5"], "must end in .pt or .pth"),
            (["import", "--images", tmp_path / "st.npy", "--bands", "r,", "--pixel-scale", 0.2, "--out", tmp_path / "s.h5"],
             "empty name"),
            (["predict", "--model", "sgq-sdss", "--data", tmp_path / "none.h5", "--out", tmp_path / "pred"],
             "neither a table")):
        code, _, err = run(argv, capsys)
        assert_one_line_error(code, err, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["st.npy"]
    # A name with a table suffix is one table; one ending in / is a folder of parts.
    assert run(["simulate", "--survey", "sdss", "--n", 4, "--stamp-size", 16, "--out", tmp_path / "s.h5", "--quiet"], capsys)[0] == 0
    code, _, err = run(["info", tmp_path / "s.h5", "--mosaic", tmp_path / "m.jpg"], capsys)
    assert_one_line_error(code, err, "--mosaic", "must end in .png")
    assert run(["predict", "--model", "sgq-sdss", "--data", tmp_path / "s.h5", "--out", f"{tmp_path / 'parts'}/", "--quiet"],
               capsys)[0] == 0
    assert (tmp_path / "parts" / "manifest.json").is_file()


def test_an_unlabelled_set_is_refused_before_any_warning(tmp_path, capsys):
    np.save(tmp_path / "st.npy", np.random.default_rng(0).normal(0, 1, (6, 5, 32, 32)).astype(np.float32))
    data = tmp_path / "u.h5"
    assert run(["import", "--images", tmp_path / "st.npy", "--bands", "u,g,r,i,z", "--pixel-scale", 0.396, "--out", data,
                "--quiet"], capsys)[0] == 0
    # Without the check first, the unknown seeing of these stamps would be warned about before the error.
    code, _, err = run(["evaluate", "--model", "sgq-sdss", "--data", data, "--out", tmp_path / "e", "--quiet"], capsys)
    assert_one_line_error(code, err, "u.h5", "no object has a star / galaxy / qso label")
    assert not (tmp_path / "e").exists()
    # A pure sample needs no labels: only the fraction given the expected class is scored.
    code, _, err = run(["evaluate", "--model", "sgq-sdss", "--data", data, "--out", tmp_path / "e", "--expect", "star",
                        "--quiet"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["n_expected_class_sample"] == 6 and 0 <= metrics["expected_class_fraction"] <= 1


def test_decision_options_are_refused_before_any_warning(tmp_path, capsys):
    data = tmp_path / "s.h5"
    assert run(["simulate", "--survey", "sdss", "--n", 6, "--stamp-size", 20, "--out", data, "--quiet"], capsys)[0] == 0
    # sgq-kids reads r at 0.2"/px: these SDSS stamps would draw a pixel-scale warning first.
    for argv, option in (
            (["predict", "--threshold", 0.5, "--out", tmp_path / "p.csv"], "--threshold"),
            (["predict", "--prior", "star=0.1,galaxy=0.8,qso=0.1,foo=0.1", "--out", tmp_path / "p.csv"], "--prior"),
            (["evaluate", "--prior", "star=0.1,galaxy=x", "--out", tmp_path / "e"], "--prior"),
            (["evaluate", "--prior", "star=0.1,galaxy=0.8,qso=0.1,foo=0.1", "--out", tmp_path / "e"], "--prior"),
            (["evaluate", "--expect", "quasar", "--out", tmp_path / "e"], "--expect")):
        code, _, err = run([argv[0], "--model", "sgq-kids", "--data", data, *argv[1:], "--quiet"], capsys)
        assert_one_line_error(code, err, option)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_train_refuses_band_options_it_would_drop(tmp_path, capsys):
    data = tmp_path / "s.h5"
    assert run(["simulate", "--survey", "sdss", "--n", 6, "--stamp-size", 16, "--out", data, "--quiet"], capsys)[0] == 0
    for extra, option, fragment in (
            (["--task", "sgq", "--branches", "photometry", "--image-bands", "r"], "--image-bands", "no"),
            (["--task", "sgq", "--branches", "image", "--photometry-bands", "u,g"], "--photometry-bands", "no"),
            (["--task", "sgq", "--image-bands", "g,g"], "--image-bands", "once"),
            (["--task", "pointsource", "--image-bands", ""], "--image-bands", "empty value"),
            (["--task", "blend", "--noise-max", 0, "--noise-min", 5], "--noise-min", "does nothing")):
        code, _, err = run(["train", "--data", data, "--out", tmp_path / "m.pt", "--quiet", *extra], capsys)
        assert_one_line_error(code, err, option, fragment)
    assert not (tmp_path / "m.pt").exists()


def test_info_refuses_mosaic_options_before_printing(tmp_path, capsys):
    data = tmp_path / "s.h5"
    assert run(["simulate", "--survey", "sdss", "--n", 4, "--stamp-size", 16, "--out", data, "--quiet"], capsys)[0] == 0
    code, out, err = run(["info", data, "--n", 5], capsys)
    assert_one_line_error(code, err, "--n", "applies to --mosaic")
    assert out == ""
    code, out, err = run(["info", "sgq-sdss", "--mosaic", tmp_path / "m.png"], capsys)
    assert_one_line_error(code, err, "sgq-sdss", "needs a stamp set")
    assert out == "" and not (tmp_path / "m.png").exists()
