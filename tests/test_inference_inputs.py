"""What a real survey run meets on the inference path: damaged tiles in cutting processes and
Dask tasks, empty stamp sets, provenance in every output format, device names, and reruns
with other settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from astropy.io import fits

from skysort.data.stampset import StampSet, write_stampset
from skysort.errors import InputError
from skysort.inference.stream import RunOptions, predict_catalog, resolve_device

from test_cli import assert_one_line_error, run
from test_inference_stream import STAMP, make_survey, tiny_blend_model


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs_survey")
    catalog, _ = make_survey(folder, n_tiles=3, per_tile=30, outside=2)
    model = tiny_blend_model(folder / "tiny.pt")
    return {"folder": folder, "catalog": catalog, "model": model, "tiles": str(folder / "t*" / "tile-*.fits")}


@pytest.fixture(scope="module")
def stamps(survey, tmp_path_factory):
    """A stamp set of 16x16 r stamps cut from the survey's first tile (for the tiny blend model)."""
    from skysort.data.catalog import read_catalog
    from skysort.data.ingest import cutout

    folder = tmp_path_factory.mktemp("inputs_stamps")
    table = read_catalog(survey["catalog"])
    with pytest.warns(UserWarning):  # some objects lie off this tile
        cutout(str(survey["folder"] / "t00" / "tile-*.fits"), table.copy()[:25], folder / "s.h5", size=STAMP)
    return folder / "s.h5"


def damaged_survey(survey, folder: Path, damaged=("t01",)) -> str:
    """The survey's tiles copied to ``folder`` with the data of the tiles ``damaged`` cut in
    half (their headers whole, so the run is planned and the damage is met while cutting)."""
    import shutil

    for tile in sorted(p for p in survey["folder"].glob("t*") if p.is_dir()):
        shutil.copytree(tile, folder / tile.name)
    for name in damaged:
        path = folder / name / "tile-r.fits"
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
    return str(folder / "t*" / "tile-*.fits")


def repair(survey, folder: Path, name="t01") -> None:
    """Copy a damaged tile of :func:`damaged_survey` again from the survey."""
    import shutil

    shutil.copyfile(survey["folder"] / name / "tile-r.fits", folder / name / "tile-r.fits")


def predictions_by_id(path: Path) -> dict:
    table = pq.read_table(path).to_pydict() if path.is_file() else pq.read_table(sorted(path.glob("part-*.parquet"))).to_pydict()
    # (NaN for the sources in no tile, which a tile-only model cannot classify.)
    return {i: (round(p, 6) if np.isfinite(p) else None, c) for i, p, c in zip(table["id"], table["p_blended"], table["class"])}


@pytest.fixture(scope="module")
def clean_predictions(survey, tmp_path_factory):
    """The survey's predictions with every tile whole."""
    out = tmp_path_factory.mktemp("clean") / "clean.parquet"
    predict_catalog(survey["model"], survey["catalog"], out.parent / "parts", RunOptions(tiles=survey["tiles"]))
    return predictions_by_id(out.parent / "parts")


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("workers,out_name", [(0, "folder/"), (2, "folder/"), (0, "e.parquet")])
def test_a_damaged_tile_leaves_its_units_for_a_rerun_after_the_others(survey, clean_predictions, tmp_path, capsys, workers,
                                                                      out_name):
    """A tile found damaged while cutting stops its own units only, with the cutting thread or
    processes: the others are written, the run ends with one error line that names the tile
    and says what to do, and the folder (for one table, its hidden work folder) is kept.
    Once the tile is copied again (another size: it was cut short) the same command computes
    only the units left and gives what a run on whole tiles gives."""
    tiles = damaged_survey(survey, tmp_path / "tiles")
    out = tmp_path / out_name
    args = ["predict", "--model", survey["model"], "--catalog", survey["catalog"], "--tiles", tiles,
            "--out", f"{out}/" if out_name.endswith("/") else out, "--workers", workers, "--quiet"]
    code, _, err = run(args, capsys)
    assert_one_line_error(code, err, "tile-r.fits", "truncated or corrupt", "left unfinished", "run the same command again")
    folder = out if out_name.endswith("/") else tmp_path / f".{out.name}.parts"
    manifest = json.loads((folder / "manifest.json").read_text())
    failed = manifest["unreadable"]
    assert failed and all(Path(f["where"]).parts[-2:] == ("t01", "tile-r.fits") for f in failed)
    stopped = {f["unit"] for f in failed}
    written = {u["index"] for u in manifest["units"] if u.get("part")}
    assert written and not written & stopped and written | stopped == {u["index"] for u in manifest["units"]}
    assert not out.is_file()
    code, summary, _ = run(["info", folder, "--json"], capsys)
    assert code == 0 and json.loads(summary)["units_unreadable"].startswith(f"{len(failed)} unit(s) on 1 file(s), e.g. ")

    repair(survey, tmp_path / "tiles")
    code, _, err = run(args, capsys)
    assert code == 0, err
    assert predictions_by_id(out) == clean_predictions
    if out_name.endswith("/"):
        finished = json.loads((folder / "manifest.json").read_text())
        assert finished["complete"] and "unreadable" not in finished
        # The units written before the tile was repaired were not computed again.
        assert {u["index"]: u["sha256"] for u in finished["units"] if u["index"] in written} == \
            {u["index"]: u["sha256"] for u in manifest["units"] if u["index"] in written}
    else:
        assert not folder.exists()


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_damage_on_every_tile_stops_the_run_early_and_leaves_no_folder(survey, tmp_path, capsys):
    """Until one unit is written, three units stopped by bad input end the run (damage shared
    by every tile is more likely an option or a mount than damaged files), with one error line
    and, for a new folder, nothing left behind."""
    tiles = damaged_survey(survey, tmp_path / "tiles", damaged=("t00", "t01", "t02"))
    out = tmp_path / "out"
    code, _, err = run(["predict", "--model", survey["model"], "--catalog", survey["catalog"], "--tiles", tiles,
                        "--out", f"{out}/", "--quiet"], capsys)
    assert_one_line_error(code, err, "tile-r.fits", "truncated or corrupt", "2 other file(s) too")
    assert "left unfinished" not in err
    assert not out.exists()


def test_bad_input_other_than_a_tile_stops_the_run_at_once(tmp_path):
    """Units are set aside only for their own tile files; bad input elsewhere (the run
    folder's shards, say) ends the run as one plain error, even with units already written."""
    from types import SimpleNamespace

    from skysort.errors import UnfinishedRunError
    from skysort.inference.stream import UNIT_INPUT_ERROR, UnreadableUnits

    manifest = SimpleNamespace(units=[{"index": i, "n_sources": 10, "part": None} for i in range(4)], content={},
                               folder=tmp_path, save=lambda: None)
    unreadable = UnreadableUnits(manifest)
    unreadable.written = 1
    assert unreadable.add({UNIT_INPUT_ERROR: (1, "t/tile-r.fits", "truncated", True)}) == 10
    assert not unreadable.give_up()
    unreadable.add({UNIT_INPUT_ERROR: (2, "out/_shards/s0.parquet", "is gone", False)})
    assert unreadable.give_up()
    with pytest.raises(InputError, match="_shards/s0.parquet: is gone") as caught:
        unreadable.raise_if_any()
    assert not isinstance(caught.value, UnfinishedRunError)


def test_the_early_stop_allows_for_units_cut_in_parallel(tmp_path):
    """With nothing written yet, three tile failures stop a run cut one unit at a time; with
    four cutting processes, whose failures come back before their finished units, twelve do."""
    from types import SimpleNamespace

    from skysort.inference.stream import UNIT_INPUT_ERROR, UnreadableUnits

    manifest = SimpleNamespace(units=[{"index": i, "n_sources": 1, "part": None} for i in range(20)], content={},
                               folder=tmp_path, save=lambda: None)
    for parallel, stop in ((1, 3), (4, 12)):
        unreadable = UnreadableUnits(manifest, parallel=parallel)
        for k in range(stop):
            assert not unreadable.give_up()
            unreadable.add({UNIT_INPUT_ERROR: (k, f"t{k}/tile-r.fits", "truncated", True)})
        assert unreadable.give_up()
        unreadable.written = 1  # one unit written: damaged files, not a shared cause
        assert not unreadable.give_up()


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_a_damaged_tile_in_a_dask_task_is_reported_once_and_not_retried(survey, clean_predictions, tmp_path, capfd):
    """Bad input met by a Dask task sets its unit aside as a local run does, without the
    worker logging a failed task (with its traceback) and retrying it; the rerun finishes."""
    from skysort.errors import UnfinishedRunError

    tiles = damaged_survey(survey, tmp_path / "tiles")
    options = RunOptions(tiles=tiles, dask="local:1")
    with pytest.raises(UnfinishedRunError, match="tile-r.fits: not a readable FITS file.*left unfinished"):
        predict_catalog(survey["model"], survey["catalog"], tmp_path / "out", options)
    err = capfd.readouterr().err
    assert "Compute Failed" not in err and "Traceback" not in err, err
    repair(survey, tmp_path / "tiles")
    manifest = predict_catalog(survey["model"], survey["catalog"], tmp_path / "out", options)
    assert manifest.complete and predictions_by_id(tmp_path / "out") == clean_predictions


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_a_damaged_tile_replaced_by_another_tile_is_still_refused(survey, tmp_path, capsys):
    """Only a damaged file's size may change between the runs: a file put in its place with
    another header (another tile) is refused, since the folder's other units were not made
    from it."""
    tiles = damaged_survey(survey, tmp_path / "tiles")
    out = tmp_path / "out"
    args = ["predict", "--model", survey["model"], "--catalog", survey["catalog"], "--tiles", tiles, "--out", f"{out}/", "--quiet"]
    assert run(args, capsys)[0] == 2
    with fits.open(survey["folder"] / "t01" / "tile-r.fits") as hdus:
        hdus[0].header["CRVAL1"] += 1e-4
        hdus.writeto(tmp_path / "tiles" / "t01" / "tile-r.fits", overwrite=True)
    code, _, err = run(args, capsys)
    assert_one_line_error(code, err, "planned on other images", "t01/tile-r.fits")


@pytest.mark.parametrize("out", ["e.parquet", "e.fits", "e.csv", "e.ecsv", "folder/"])
def test_an_empty_stamp_set_is_one_error_line_for_every_output(stamps, survey, tmp_path, capsys, out):
    """An empty stamp set is refused as an empty catalogue is: one line, nothing written."""
    full = StampSet.open(stamps)
    empty = write_stampset(tmp_path / "empty.h5", np.zeros((0, 1, STAMP, STAMP), np.float32), full.table[:0], full.meta).path
    code, _, err = run(["predict", "--model", survey["model"], "--data", empty, "--out", f"{tmp_path / 'result'}/{out}",
                        "--quiet"], capsys)
    assert_one_line_error(code, err, "empty.h5", "holds no objects")
    assert not (tmp_path / "result").exists()


def _table_meta(path: Path) -> dict:
    """The skysort metadata record of one written table, whatever its format."""
    if path.suffix == ".parquet":
        return json.loads(pq.read_schema(path).metadata[b"skysort"])
    if path.suffix == ".fits":
        return json.loads(fits.getheader(path, 1)["SKYSORT"])
    from astropy.table import Table

    return dict(Table.read(path, format="ascii.ecsv").meta)


@pytest.mark.parametrize("suffix", [".parquet", ".fits", ".csv", ".ecsv"])
def test_every_output_format_records_threshold_and_bands(survey, stamps, tmp_path, capsys, suffix):
    """A stamp set and a catalogue classified into one table, and a folder of parts: each
    records the model (with the bands it reads), the threshold and the prior, and the software."""
    written = []
    for source in (["--data", stamps], ["--catalog", survey["catalog"], "--tiles", survey["tiles"]]):
        out = tmp_path / f"{source[0][2:]}{suffix}"
        code, _, err = run(["predict", "--model", survey["model"], *source, "--threshold", 0.7, "--out", out, "--quiet"], capsys)
        assert code == 0, err
        written.append(_table_meta(out))
    for meta in written:
        assert meta["model"]["image_bands"] == ["r"] and meta["model"]["photometry_bands"] == []
        assert meta["model"]["sha256"] and meta["provenance"]["software"]["skysort"]
        threshold = meta.get("threshold", (meta.get("options") or {}).get("threshold"))
        assert threshold == 0.7
        assert "prior" in meta or "prior" in meta["options"]
    if suffix == ".parquet":  # and each part of a folder run
        code, _, err = run(["predict", "--model", survey["model"], "--data", stamps, "--threshold", 0.7,
                            "--out", f"{tmp_path / 'parts'}/", "--quiet"], capsys)
        assert code == 0, err
        for part in (tmp_path / "parts").glob("part-*.parquet"):
            meta = _table_meta(part)
            assert meta["threshold"] == 0.7 and meta["image_bands"] == ["r"] and meta["photometry_bands"] == []


def test_device_names_are_checked_before_any_work(monkeypatch):
    """A GPU number the machine lacks, or a name that is no device, is refused as --device;
    CUDA on a machine without it too."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda") == "cuda" and resolve_device("cuda:0") == "cuda:0" and resolve_device("cpu") == "cpu"
    with pytest.raises(InputError, match="--device: this machine has 1 CUDA device"):
        resolve_device("cuda:1")
    for name in ("cudagpu", "cuda:x", "gpu", "CPU"):
        with pytest.raises(InputError, match="--device: expected cpu, cuda or cuda:N"):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == "cpu"
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_a_rerun_with_another_threshold_says_which_values_differ(survey, tmp_path, capsys):
    """A folder holding a run of other settings is refused with the setting's two values; the
    hidden work folder of a one-table output is named as that output's unfinished run."""
    base = ["predict", "--model", survey["model"], "--catalog", survey["catalog"], "--tiles", survey["tiles"], "--quiet"]
    assert run([*base, "--out", f"{tmp_path / 'run'}/", "--threshold", 0.6], capsys)[0] == 0
    code, _, err = run([*base, "--out", f"{tmp_path / 'run'}/", "--threshold", 0.8], capsys)
    assert_one_line_error(code, err, "different prediction run", "threshold: 0.6 there, 0.8 now")
    # An interrupted one-table run leaves its hidden work folder; a rerun with another threshold:
    work = tmp_path / ".pred.parquet.parts"
    assert run([*base, "--out", f"{work}/", "--threshold", 0.6], capsys)[0] == 0
    code, _, err = run([*base, "--out", tmp_path / "pred.parquet", "--threshold", 0.8], capsys)
    assert_one_line_error(code, err, ".pred.parquet.parts", f"unfinished run of --out {tmp_path / 'pred.parquet'}",
                          "threshold: 0.6 there, 0.8 now")
    assert not (tmp_path / "pred.parquet").exists() and work.is_dir()


def test_hats_result_records_classes_and_bands(survey, tmp_path):
    lsdb = pytest.importorskip("lsdb")
    from skysort.inference.hats import predict_hats

    frame = pq.read_table(survey["catalog"]).to_pandas()
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=8, highest_order=8).write_catalog(
        tmp_path / "cat_hats", catalog_name="cat_hats", progress_bar=False)
    predict_hats(survey["model"], tmp_path / "cat_hats", tmp_path / "result", RunOptions(tiles=survey["tiles"], threshold=0.7))
    properties = dict(line.split("=", 1) for line in (tmp_path / "result" / "hats.properties").read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
    properties = {k.strip(): v.strip() for k, v in properties.items()}
    assert properties["skysort_classes"] == "isolated blended"
    assert properties["skysort_image_bands"] == "r" and properties["skysort_photometry_bands"] == "none"
    assert properties["skysort_threshold"] == "0.7"


@pytest.mark.parametrize("out", ["pred.parquet", "pred.fits", "parts/"])
def test_folder_catalogue_files_with_ids_and_kept_columns_of_other_widths(tmp_path, capsys, out):
    """The files of a folder catalogue hold the ids (and a kept column) at different integer
    widths: every row comes out once, its id and value exact, as one 64-bit type (the first
    part holds only the narrow file's rows, the second rows of both)."""
    import pyarrow as pa

    folder = tmp_path / "objects"
    folder.mkdir()
    widths = [(np.int32, np.int16, 8000, 1), (np.int64, np.int64, 3000, 2**62 + 7)]
    expected_ids, expected_kept = [], []
    for i, (id_type, kept_type, n, first) in enumerate(widths):
        ids = (np.arange(n) + first).astype(id_type)
        kept = (np.arange(n) % 100).astype(kept_type) if kept_type is np.int16 else np.arange(n, dtype=np.int64) + 2**40
        columns = {"objid": ids, "ra": np.full(n, 10.0), "dec": np.full(n, 1.0), "survey_flag": kept}
        for band in "ugriz":
            columns[f"mag_{band}"] = np.full(n, 20.0, np.float32)
        pq.write_table(pa.table(columns), folder / f"part{i}.parquet")
        expected_ids.append(ids.astype(np.int64))
        expected_kept.append(kept.astype(np.int64))
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", folder, "--mapping", "id=objid,mag=mag_{band},bands=u g r i z",
                        "--keep", "survey_flag", "--memory-gb", 0.3, "--out", f"{tmp_path}/{out}", "--quiet"], capsys)
    assert code == 0, err
    if out.endswith("/"):
        manifest = json.loads((tmp_path / out / "manifest.json").read_text())
        assert manifest["n_units"] > 1
        tables = [pq.read_table(tmp_path / out / unit["part"]) for unit in manifest["units"]]
        assert all(t.schema.field("id").type == pa.int64() for t in tables)
        ids = np.concatenate([t.column("id").to_numpy() for t in tables])
        kept = np.concatenate([t.column("survey_flag").to_numpy() for t in tables])
    else:
        from astropy.table import Table

        table = Table.read(tmp_path / out)
        ids, kept = np.asarray(table["id"]), np.asarray(table["survey_flag"])
        assert ids.dtype.kind == "i" and ids.dtype.itemsize == 8
    assert np.array_equal(ids, np.concatenate(expected_ids)) and np.array_equal(kept, np.concatenate(expected_kept))


def test_a_stamp_missing_one_band_is_flagged_on_both_paths(tmp_path):
    """A stamp one of whose model bands holds no finite pixel (a chip gap, a masked region in
    one band) gets MISSING_INPUT_FLAG, from a stamp set as from tiles, not a plain class."""
    from skysort.data.catalog import read_catalog
    from skysort.data.flags import Flags
    from skysort.data.ingest import cutout
    from skysort.inference.predictor import MISSING_INPUT_FLAG, predict_stampset

    from test_inference_stream import TinyPredictor, read_out

    catalog, _ = make_survey(tmp_path, n_tiles=1, per_tile=40, bands=("g", "r"), outside=0)
    # A masked region of the g image: the sources there have a whole g stamp of NaN.
    g_tile = tmp_path / "t00" / "tile-g.fits"
    with fits.open(g_tile, mode="update") as hdul:
        hdul[0].data[:, :50] = np.nan
    (tmp_path / "m.pt").write_bytes(b"tiny")
    predictor = TinyPredictor(tmp_path / "m.pt")
    predict_catalog("tiny", catalog, tmp_path / "out", RunOptions(tiles=str(tmp_path / "t*" / "tile-*.fits"), batch_size=8),
                    predictor=predictor)
    _, streamed = read_out(tmp_path / "out")
    with pytest.warns(UserWarning, match="NaN pixels"):
        stamps = cutout(str(tmp_path / "t00" / "tile-*.fits"), read_catalog(catalog), tmp_path / "s.h5", size=STAMP,
                        bands=["g", "r"])
    images = stamps.read_images()
    g_blank = ~np.isfinite(images[:, 0]).any(axis=(1, 2))
    r_blank = ~np.isfinite(images[:, 1]).any(axis=(1, 2))
    assert g_blank.sum() >= 3 and not (g_blank & r_blank).any()  # one band gone, the other there
    flags = np.asarray(predict_stampset(predictor, stamps, batch_size=7)["flags"])
    assert np.array_equal((flags & MISSING_INPUT_FLAG) != 0, g_blank)
    # The streamed stamps are cut apart from cutout's (a pixel's difference at the mask's border
    # is theirs): MISSING_BAND marks the stamps streaming found without a band.
    flags = streamed["flags"].to_numpy()
    band_gone = (flags & int(Flags.MISSING_BAND)) != 0
    assert band_gone.sum() >= 3 and np.array_equal((flags & MISSING_INPUT_FLAG) != 0, band_gone)


def test_tiles_in_galactic_coordinates_own_the_objects_on_them():
    """A tile whose WCS is Galactic owns the ICRS positions on it (before: the catalogue's ra/dec
    were read as the tile's longitude/latitude, so no object was on it and one elsewhere was)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS

    from skysort.inference.stream import TileIndex, TileInfo

    centre = SkyCoord(l=120.0 * u.deg, b=30.0 * u.deg, frame="galactic")
    wcs = WCS(fits.Header({"CTYPE1": "GLON-TAN", "CTYPE2": "GLAT-TAN", "CRVAL1": 120.0, "CRVAL2": 30.0, "CRPIX1": 50.5,
                           "CRPIX2": 50.5, "CDELT1": -0.2 / 3600, "CDELT2": 0.2 / 3600}))
    tile = TileInfo(key="gal", files={"r": "gal.fits"}, shape=(100, 100), wcs=wcs, pixel_scale=0.2)
    on = centre.icrs
    # The tile centre's Galactic coordinates read as ICRS: a position far from the tile.
    decoy = SkyCoord(ra=120.0 * u.deg, dec=30.0 * u.deg)
    owners = TileIndex([tile]).owners(np.array([on.ra.deg, decoy.ra.deg]), np.array([on.dec.deg, decoy.dec.deg]))
    assert owners.tolist() == [0, -1]


def test_a_catalogue_right_ascension_in_hours_streams_as_hour_angle():
    """The catalogue reader's unit rules hold when predict streams the catalogue: RA in HOURS is
    hour angle (15 deg an hour), and Vega magnitudes need the band's AB offset."""
    from skysort.data.catalog import resolve_mapping
    from skysort.inference.stream import CatalogColumns

    names = ["RA", "DEC", "MAG_r"]
    columns = CatalogColumns(names, "cat.fits", resolve_mapping("ra=RA,dec=DEC,mag=MAG_{band},bands=r"), ("r",),
                             require_sky=True, units={"RA": "HOURS", "DEC": "deg", "MAG_r": "mag"})
    assert columns.degrees_per_unit == {"ra": 15.0, "dec": 1.0}
    with pytest.raises(InputError, match="Vega magnitudes"):
        CatalogColumns(names, "cat.fits", resolve_mapping("ra=RA,dec=DEC,mag=MAG_{band},bands=r"), ("r",),
                       require_sky=True, units={"RA": "deg", "DEC": "deg", "MAG_r": "VEGAMAG"})
    CatalogColumns(names, "cat.fits", resolve_mapping("ra=RA,dec=DEC,mag=MAG_{band},bands=r,ab_offsets=r:0.16"), ("r",),
                   require_sky=True, units={"RA": "deg", "DEC": "deg", "MAG_r": "VEGAMAG"})


def test_folder_catalogue_files_with_ids_as_numbers_in_one_and_text_in_another(tmp_path, capsys):
    """No common type holds both: one error line naming the file and column, not an Arrow
    traceback; the catalogue reader says the same."""
    import pyarrow as pa

    from skysort.data.catalog import read_catalog

    folder = tmp_path / "objects"
    folder.mkdir()
    for i, ids in enumerate([np.arange(5, dtype=np.int64), np.array([f"obj{k}" for k in range(5)])]):
        columns = {"objid": ids, "ra": np.full(5, 10.0), "dec": np.full(5, 1.0)}
        for band in "ugriz":
            columns[f"mag_{band}"] = np.full(5, 20.0, np.float32)
        pq.write_table(pa.table(columns), folder / f"part{i}.parquet")
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", folder, "--mapping", "id=objid,mag=mag_{band},bands=u g r i z",
                        "--out", f"{tmp_path}/pred.parquet", "--quiet"], capsys)
    assert_one_line_error(code, err, "part1.parquet", "objid (string here, int64 there)")
    assert not (tmp_path / "pred.parquet").exists()
    with pytest.raises(InputError, match=r"part1\.parquet: holds column\(s\) objid \(string here, int64 there\)"):
        read_catalog(folder, mapping="id=objid,mag=mag_{band},bands=u g r i z")
