"""HATS catalogues in, HATS result catalogues out (optional extra ``lsdb``): the same rows as the
Parquet streaming path, on tiles and from photometry alone, in this process and on Dask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

lsdb = pytest.importorskip("lsdb")

from skysort.cli import main  # noqa: E402
from skysort.inference.hats import is_hats_catalog, predict_hats  # noqa: E402
from skysort.inference.stream import RunOptions, predict_catalog  # noqa: E402

from test_inference_stream import make_survey, read_out, tiny_blend_model  # noqa: E402


@pytest.fixture(scope="module")
def hats_survey(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hats_survey")
    catalog, _ = make_survey(folder)
    frame = pq.read_table(catalog).to_pandas()
    # HEALPix order 10 (3.4' pixels): the tiles' sources fall in one or two partitions that
    # touch several tiles, and the sources outside every tile in a partition of their own.
    hats = lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10)
    hats.write_catalog(folder / "cat_hats", catalog_name="cat_hats", progress_bar=False)
    model = tiny_blend_model(folder / "tiny.pt")
    return {"folder": folder, "catalog": catalog, "hats": folder / "cat_hats", "model": model,
            "tiles": str(folder / "t*" / "tile-*.fits"), "n_partitions": len(hats.get_healpix_pixels())}


def read_hats_result(path: Path):
    return lsdb.read_hats(path).compute().sort_values("id").reset_index(drop=True)


def assert_same_rows(a, b):
    assert len(a) == len(b)
    for column in ("id", "flags", "class", "images_used"):
        assert np.array_equal(a[column].to_numpy(), b[column].to_numpy()), column
    for column in ("p_isolated", "p_blended", "ra", "dec"):
        assert np.allclose(a[column].to_numpy(), b[column].to_numpy(), atol=1e-5, equal_nan=True), column


def test_hats_catalogue_on_tiles_gives_the_parquet_path_rows(hats_survey, tmp_path):
    assert is_hats_catalog(hats_survey["hats"]) and not is_hats_catalog(hats_survey["catalog"])
    assert hats_survey["n_partitions"] > 1
    options = RunOptions(tiles=hats_survey["tiles"], batch_size=32)
    summary = predict_hats(hats_survey["model"], hats_survey["hats"], tmp_path / "result", options)
    predict_catalog(hats_survey["model"], hats_survey["catalog"], tmp_path / "parts", options)
    _, expected = read_out(tmp_path / "parts")
    got = read_hats_result(tmp_path / "result")
    assert summary["n_sources"] == len(expected) == len(got)
    assert_same_rows(got, expected.sort_values("id").reset_index(drop=True))
    # Sources in no tile are kept, flagged, with no probabilities.
    outside = got[~got["images_used"]]
    assert len(outside) == 5 and outside["p_blended"].isna().all()
    properties = (tmp_path / "result" / "hats.properties").read_text()
    assert "skysort_model_sha256" in properties and "skysort_software" in properties
    assert not list(tmp_path.glob(".result.tmp-*"))


def test_hats_on_dask_local_two_workers_equals_one_process(hats_survey, tmp_path):
    pytest.importorskip("distributed")
    options = RunOptions(tiles=hats_survey["tiles"], batch_size=32)
    predict_hats(hats_survey["model"], hats_survey["hats"], tmp_path / "one", options)
    predict_hats(hats_survey["model"], hats_survey["hats"], tmp_path / "dask",
                 RunOptions(tiles=hats_survey["tiles"], batch_size=32, dask="local:2"))
    assert_same_rows(read_hats_result(tmp_path / "dask"), read_hats_result(tmp_path / "one"))


def test_hats_through_the_cli_and_its_errors(hats_survey, tmp_path, capsys):
    out = tmp_path / "cli_result"
    code = main(["predict", "--model", str(hats_survey["model"]), "--catalog", str(hats_survey["hats"]),
                 "--tiles", hats_survey["tiles"], "--out", str(out), "--quiet"])
    assert code == 0 and is_hats_catalog(out)
    # --quiet silences lsdb's own progress lines too, not only skysort's.
    printed = capsys.readouterr()
    assert "Computing Catalog" not in printed.err and "Building task graph" not in printed.err
    # A second run onto the same folder is refused, and the result is left alone.
    before = sorted(p.name for p in out.rglob("*"))
    code = main(["predict", "--model", str(hats_survey["model"]), "--catalog", str(hats_survey["hats"]),
                 "--tiles", hats_survey["tiles"], "--out", str(out), "--quiet"])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before
    # An image model without tiles is refused before anything is written.
    code = main(["predict", "--model", str(hats_survey["model"]), "--catalog", str(hats_survey["hats"]),
                 "--out", str(tmp_path / "no_tiles"), "--quiet"])
    assert code == 2 and "needs image stamps" in capsys.readouterr().err
    assert not (tmp_path / "no_tiles").exists()


def test_hats_photometry_only_with_the_shipped_sgq_model(hats_survey, tmp_path):
    """No tiles: the shipped sgq-kids model classifies from photometry, as on a Parquet catalogue."""
    import pyarrow as pa

    frame = pq.read_table(hats_survey["catalog"]).to_pandas()
    rng = np.random.default_rng(3)
    for k, band in enumerate(("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks")):
        frame[f"mag_{band}"] = (frame["mag_r"] + rng.normal(0.3 * (k - 2), 0.2, len(frame))).astype(np.float32)
        frame[f"magerr_{band}"] = np.float32(0.05)
    frame.loc[frame.index[::7], "mag_u"] = np.nan  # non-detections are masked, as in the Parquet path
    parquet = tmp_path / "nine_bands.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet)
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10).write_catalog(
        tmp_path / "nine_bands_hats", catalog_name="nine_bands_hats", progress_bar=False)
    predict_hats("sgq-kids", tmp_path / "nine_bands_hats", tmp_path / "result", RunOptions())
    predict_catalog("sgq-kids", parquet, tmp_path / "parts", RunOptions())
    _, expected = read_out(tmp_path / "parts")
    got = read_hats_result(tmp_path / "result")
    expected = expected.sort_values("id").reset_index(drop=True)
    assert len(got) == len(expected) == len(frame) and not got["images_used"].any()
    for column in ("id", "flags", "class"):
        assert np.array_equal(got[column].to_numpy(), expected[column].to_numpy()), column
    for column in ("p_star", "p_galaxy", "p_qso"):
        assert np.allclose(got[column].to_numpy(), expected[column].to_numpy(), atol=1e-5), column


def test_hats_without_an_id_column_uses_the_spatial_index(hats_survey, tmp_path):
    frame = pq.read_table(hats_survey["catalog"]).to_pandas().drop(columns=["id"])
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10).write_catalog(
        tmp_path / "no_id", catalog_name="no_id", progress_bar=False)
    predict_hats(hats_survey["model"], tmp_path / "no_id", tmp_path / "result", RunOptions(tiles=hats_survey["tiles"]))
    result = lsdb.read_hats(tmp_path / "result").compute()
    assert len(result) == len(frame)
    assert np.array_equal(result["id"].to_numpy(), result.index.to_numpy())
    assert len(np.unique(result["id"])) == len(frame)


def test_partition_in_slices_equals_partition_whole(hats_survey):
    """A large partition is processed in slices; the rows are those of one pass."""
    from skysort.data.catalog import resolve_mapping
    from skysort.inference.distributed import worker_predictor
    from skysort.inference.hats import predict_partition
    from skysort.inference.stream import CatalogColumns, ReaderConfig, probe_predictor, scan_tiles

    frame = lsdb.read_hats(hats_survey["hats"]).compute()
    predictor = worker_predictor(str(hats_survey["model"]), "cpu")
    tiles = scan_tiles(hats_survey["tiles"], ["r"], "r")
    config = ReaderConfig(folder="unused", tiles=[t.to_json() for t in tiles], image_bands=["r"], photometry_bands=[],
                          stamp_size=16, reference_band="r", batch_size=16, tile_cache_tiles=2, images_available=True,
                          photometry_only_ok=False)
    options = dict(model=str(hats_survey["model"]), device="cpu", threads=None,
                   columns=CatalogColumns(list(frame.columns), "test", resolve_mapping(None), (), require_sky=True),
                   reader_config=config, tiles=tiles, probe=probe_predictor(predictor), decision=None, keep={})
    whole = predict_partition(frame, **options)
    sliced = predict_partition(frame, slice_rows=17, **options)
    assert np.array_equal(whole.index.to_numpy(), frame.index.to_numpy())
    assert np.array_equal(sliced.index.to_numpy(), whole.index.to_numpy())
    for column in ("id", "flags", "class", "images_used"):
        assert np.array_equal(sliced[column].to_numpy(), whole[column].to_numpy()), column
    assert np.allclose(sliced["p_blended"].to_numpy(), whole["p_blended"].to_numpy(), atol=1e-6, equal_nan=True)


def interrupt_on_second_partition(hats_module, calls: list):
    """A stand-in for ``predict_partition`` that counts non-empty partitions in ``calls`` and
    fails on the second, as an interruption would."""
    original = hats_module.predict_partition

    def failing_on_the_second(frame, **kwargs):
        if len(frame):
            calls.append(len(frame))
            if len(calls) == 2:
                raise RuntimeError("interrupted")
        return original(frame, **kwargs)

    return failing_on_the_second


def test_interrupted_hats_run_resumes_without_recomputing_done_partitions(hats_survey, tmp_path, monkeypatch):
    import skysort.inference.hats as hats_module
    from skysort.errors import InputError
    from skysort.inference.hats import unfinished_paths

    options = RunOptions(tiles=hats_survey["tiles"], batch_size=32)
    original = hats_module.predict_partition
    calls = []
    monkeypatch.setattr(hats_module, "predict_partition", interrupt_on_second_partition(hats_module, calls))
    out = tmp_path / "result"
    with pytest.raises(RuntimeError, match="interrupted"):
        predict_hats(hats_survey["model"], hats_survey["hats"], out, options)
    partial, signature = unfinished_paths(out)
    assert not out.exists() and partial.is_dir() and signature.is_file()
    # Another run onto the same unfinished result is refused.
    with pytest.raises(InputError, match="another run"):
        predict_hats(hats_survey["model"], hats_survey["hats"], out, RunOptions(tiles=hats_survey["tiles"], threshold=0.3))
    calls.clear()

    def counting(frame, **kwargs):
        if len(frame):
            calls.append(len(frame))
        return original(frame, **kwargs)

    monkeypatch.setattr(hats_module, "predict_partition", counting)
    predict_hats(hats_survey["model"], hats_survey["hats"], out, options)
    assert len(calls) == hats_survey["n_partitions"] - 1  # the partition done before the failure is kept
    assert not partial.exists() and not signature.exists()
    predict_hats(hats_survey["model"], hats_survey["hats"], tmp_path / "clean", options)
    assert_same_rows(read_hats_result(out), read_hats_result(tmp_path / "clean"))


def test_an_unfinished_hats_result_is_not_resumed_on_a_replaced_tile(hats_survey, tmp_path, monkeypatch):
    """A tile replaced by another of the same size (a re-reduced image) stops the resume, named;
    a signature file without header digests (an older skysort's) resumes and gets them."""
    import json
    import shutil

    import skysort.inference.hats as hats_module
    from skysort.errors import InputError
    from skysort.inference.hats import unfinished_paths

    from test_resume_identity import rewrite_tile

    survey = tmp_path / "survey"
    shutil.copytree(hats_survey["folder"], survey)
    options = RunOptions(tiles=str(survey / "t*" / "tile-*.fits"), batch_size=32)
    out = tmp_path / "result"
    with monkeypatch.context() as patch:
        patch.setattr(hats_module, "predict_partition", interrupt_on_second_partition(hats_module, []))
        with pytest.raises(RuntimeError, match="interrupted"):
            predict_hats(hats_survey["model"], survey / "cat_hats", out, options)
    partial, signature = unfinished_paths(out)
    recorded = json.loads(signature.read_text())["header_sha256"]
    tiles = sorted(survey.glob("t*/tile-*.fits"))
    assert sorted(recorded) == [str(t.resolve()) for t in tiles]
    rewrite_tile(tiles[0], pixels_offset=1.0, cards={"HISTORY": "re-reduced"})
    with pytest.raises(InputError, match=f"planned on other images: tile file {tiles[0].resolve()} was replaced"):
        predict_hats(hats_survey["model"], survey / "cat_hats", out, options)
    assert partial.is_dir()
    # Written by a skysort that recorded no digests: resumed on path and size, as planned then.
    content = json.loads(signature.read_text())
    del content["header_sha256"]
    signature.write_text(json.dumps(content))
    summary = predict_hats(hats_survey["model"], survey / "cat_hats", out, options)
    assert summary["n_sources"] == len(read_hats_result(out)) and not partial.exists() and not signature.exists()


def test_bad_hats_catalogue_gives_its_error_and_leaves_nothing(hats_survey, tmp_path, capsys):
    """A problem a partition finds (here a magnitude that is not a number) is the catalogue's error
    line, not Dask's wrapped traceback, and no unfinished result is left to resume."""
    frame = pq.read_table(hats_survey["catalog"]).to_pandas()
    for band in ("u", "g", "i", "Z", "Y", "J", "H", "Ks"):
        frame[f"mag_{band}"] = frame["mag_r"]
    frame["mag_r"] = frame["mag_r"].astype(str)
    frame.loc[frame.index[3], "mag_r"] = "abc"
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10).write_catalog(
        tmp_path / "bad_hats", catalog_name="bad_hats", progress_bar=False)
    code = main(["predict", "--model", "sgq-kids", "--catalog", str(tmp_path / "bad_hats"), "--out", str(tmp_path / "res"),
                 "--quiet"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("skysort: error: "), err
    assert "not numeric" in lines[0] or "mag_r" in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_hats"]
    code = main(["predict", "--model", "sgq-kids", "--catalog", str(tmp_path / "bad_hats"), "--out", str(tmp_path / "res"),
                 "--dask", "local:0", "--quiet"])
    assert code == 2 and "--dask" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_hats"]


def test_hats_catalogue_off_the_tiles_or_without_inputs(hats_survey, tmp_path, capsys):
    """As for a Parquet catalogue: off every tile is an error; objects without input are reported."""
    frame = pq.read_table(hats_survey["catalog"]).to_pandas()
    frame["ra"] = (frame["ra"] + 90.0) % 360.0
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10).write_catalog(
        tmp_path / "off_hats", catalog_name="off_hats", progress_bar=False)
    code = main(["predict", "--model", str(hats_survey["model"]), "--catalog", str(tmp_path / "off_hats"), "--tiles",
                 hats_survey["tiles"], "--out", str(tmp_path / "res"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "none of its" in err and "lies on a tile" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["off_hats"]
    frame = pq.read_table(hats_survey["catalog"]).to_pandas()
    for band in ("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"):
        frame[f"mag_{band}"] = np.nan
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10).write_catalog(
        tmp_path / "blank_hats", catalog_name="blank_hats", progress_bar=False)
    code = main(["predict", "--model", "sgq-kids", "--catalog", str(tmp_path / "blank_hats"), "--out", str(tmp_path / "res2"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and f"{len(frame):,} of {len(frame):,} objects had no usable input" in err, err


def test_hats_row_without_an_id_is_refused(hats_survey, tmp_path, capsys):
    """As for a Parquet catalogue: an id column with a null would otherwise be read as floats."""
    frame = pq.read_table(hats_survey["catalog"]).to_pandas()
    import pandas as pd

    for band in ("u", "g", "i", "Z", "Y", "J", "H", "Ks"):
        frame[f"mag_{band}"] = frame["mag_r"]
    frame["id"] = pd.array(np.arange(len(frame)) + 1237663204920852481, dtype="Int64")
    frame.loc[frame.index[5], "id"] = pd.NA
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10).write_catalog(
        tmp_path / "null_id", catalog_name="null_id", progress_bar=False)
    code = main(["predict", "--model", "sgq-kids", "--catalog", str(tmp_path / "null_id"), "--out", str(tmp_path / "res"),
                 "--quiet"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "column 'id' has no value in 1 row(s) of a partition" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null_id"]


def test_hats_magnitudes_unlike_the_models_are_warned_about(hats_survey, tmp_path, capsys):
    # As for a Parquet or CSV catalogue: magnitude errors mapped as magnitudes pass every range
    # check one by one; only their median shows it. Before, a HATS catalogue had no such warning.
    frame = pq.read_table(hats_survey["catalog"]).to_pandas()
    rng = np.random.default_rng(4)
    for k, band in enumerate("ugriz"):
        frame[f"mag_{band}"] = frame["mag_r"] + 0.2 * k if band != "r" else frame["mag_r"]
        frame[f"err_{band}"] = rng.uniform(0.01, 0.1, len(frame))
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10).write_catalog(
        tmp_path / "mags", catalog_name="mags", progress_bar=False)
    messages = {}
    for name, mapping in (("right", None), ("errors", "mag=err_{band},bands=u g r i z")):
        code = main(["predict", "--model", "sgq-sdss", "--catalog", str(tmp_path / "mags"), "--out", str(tmp_path / name),
                     "--quiet", *(["--mapping", mapping] if mapping else [])])
        messages[name] = capsys.readouterr().err
        assert code == 0, messages[name]
    assert "magnitudes unlike the model's training magnitudes" in messages["errors"]
    assert "magnitudes unlike" not in messages["right"]


def test_a_hats_catalogue_is_not_read_as_a_folder_of_parquet_files(hats_survey):
    # Its files are not one table (a collection's margin catalogues repeat rows): only predict
    # reads it, through LSDB.
    from skysort.data.catalog import read_catalog
    from skysort.errors import InputError

    with pytest.raises(InputError, match="is a HATS catalogue, which only skysort predict reads"):
        read_catalog(hats_survey["hats"])


def test_hats_result_carries_the_kept_columns_as_the_parquet_path_does(hats_survey, tmp_path):
    """--keep on a HATS catalogue: the columns are in the result, each on its own source's row,
    and a name already taken by the prediction is refused before any partition is read."""
    import pyarrow as pa

    from skysort.errors import InputError

    frame = pq.read_table(hats_survey["catalog"]).to_pandas()
    frame["FLAGS"] = np.arange(len(frame)) % 5
    frame["note"] = [f"n{i}" for i in range(len(frame))]
    parquet = tmp_path / "cat.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet)
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=10, highest_order=10).write_catalog(
        tmp_path / "cat_hats", catalog_name="cat_hats", progress_bar=False)
    options = RunOptions(tiles=hats_survey["tiles"], keep="sex_flags=FLAGS,note")
    predict_hats(hats_survey["model"], tmp_path / "cat_hats", tmp_path / "result", options)
    predict_catalog(hats_survey["model"], parquet, tmp_path / "parts", options)
    got = read_hats_result(tmp_path / "result")
    _, expected = read_out(tmp_path / "parts")
    expected = expected.sort_values("id").reset_index(drop=True)
    assert_same_rows(got, expected)
    by_id = frame.set_index("id")
    for name, source in (("sex_flags", "FLAGS"), ("note", "note")):
        assert np.array_equal(got[name].to_numpy(), by_id.loc[got["id"], source].to_numpy()), name
        assert np.array_equal(got[name].to_numpy(), expected[name].to_numpy()), name
    with pytest.raises(InputError, match="output column 'FLAGS' would repeat the prediction's column 'flags'"):
        predict_hats(hats_survey["model"], tmp_path / "cat_hats", tmp_path / "again",
                     RunOptions(tiles=hats_survey["tiles"], keep="FLAGS"))
    assert not (tmp_path / "again").exists()


@pytest.fixture(scope="module")
def fine_hats(hats_survey, tmp_path_factory):
    """The survey's sources on tiles, on HEALPix order 11 (1.7' pixels): they fall in several
    partitions, so that a damaged tile stops some partitions and not others."""
    folder = tmp_path_factory.mktemp("fine_hats")
    frame = pq.read_table(hats_survey["catalog"]).to_pandas()
    frame = frame[frame["dec"] < 2.9]  # not the sources far from every tile
    hats = lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=11, highest_order=11, margin_threshold=None)
    hats.write_catalog(folder / "cat_hats", catalog_name="cat_hats", progress_bar=False)
    return {"catalog": folder / "cat_hats", "n_partitions": len(hats.get_healpix_pixels())}


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("dask", [None, "local:2"])
def test_a_damaged_tile_leaves_its_partitions_for_a_rerun_after_the_others(hats_survey, fine_hats, tmp_path, capfd,
                                                                            monkeypatch, dask):
    """As on the Parquet path: the partitions whose rows lie on a tile found damaged while
    cutting are left unwritten, the others are written, and the run ends with one error line
    naming the tile and saying what to do. Once the tile is copied again (another size: it was
    cut short) the same command computes only the partitions left and gives what a run on
    whole tiles gives. (Standard error is read at the file descriptor: Dask's workers are
    processes of their own and must not log the failed task beside the error line.)"""
    import json

    import skysort.inference.hats as hats_module
    from skysort.inference.hats import unfinished_paths

    from test_cli import assert_one_line_error, run
    from test_inference_inputs import damaged_survey, repair

    tiles = damaged_survey(hats_survey, tmp_path / "tiles", damaged=("t02",))
    out = tmp_path / "result"
    args = ["predict", "--model", hats_survey["model"], "--catalog", fine_hats["catalog"], "--tiles", tiles, "--out", out,
            "--quiet", *(["--dask", dask] if dask else [])]
    code, _, err = run(args, capfd)
    assert_one_line_error(code, err, "tile-r.fits", "truncated or corrupt", "left unfinished", "run the same command again")
    partial, signature = unfinished_paths(out)
    assert not out.exists() and partial.is_dir()
    unreadable = json.loads(signature.read_text())["unreadable"]
    assert unreadable and all(Path(entry["where"]).parts[-2:] == ("t02", "tile-r.fits") for entry in unreadable)
    assert f"{len(unreadable)} of {fine_hats['n_partitions']} HEALPix partitions" in err
    written = sorted(p.name for p in partial.rglob("Npix=*.parquet"))
    assert written and len(written) + len(unreadable) == fine_hats["n_partitions"]

    repair(hats_survey, tmp_path / "tiles", "t02")
    original = hats_module.predict_partition
    calls = []

    def counting(frame, **kwargs):
        if len(frame):
            calls.append(len(frame))
        return original(frame, **kwargs)

    monkeypatch.setattr(hats_module, "predict_partition", counting)
    code, _, err = run(args[:-2] if dask else args, capfd)
    assert code == 0, err
    assert len(calls) == len(unreadable)  # only the partitions set aside are computed again
    assert not partial.exists() and not signature.exists()
    clean = tmp_path / "clean"
    predict_hats(hats_survey["model"], fine_hats["catalog"], clean, RunOptions(tiles=hats_survey["tiles"]))
    assert_same_rows(read_hats_result(out), read_hats_result(clean))


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_damage_on_every_tile_stops_a_hats_run_early_and_leaves_nothing(hats_survey, fine_hats, tmp_path, capsys):
    """Until one partition is written, three partitions stopped by their tiles end the run with
    one error line, and no unfinished result is left (nothing in it is worth resuming)."""
    from test_cli import assert_one_line_error, run
    from test_inference_inputs import damaged_survey

    tiles = damaged_survey(hats_survey, tmp_path / "tiles", damaged=("t00", "t01", "t02"))
    code, _, err = run(["predict", "--model", hats_survey["model"], "--catalog", fine_hats["catalog"], "--tiles", tiles,
                        "--out", tmp_path / "result", "--quiet"], capsys)
    assert_one_line_error(code, err, "tile-r.fits", "truncated or corrupt")
    assert "left unfinished" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiles"]


def test_input_errors_cross_process_boundaries_whole():
    """An error raised in a Dask worker is pickled to the client: it arrives with its file, its
    problem and a subclass's own fields."""
    import pickle

    from skysort.errors import InputError, UnfinishedRunError
    from skysort.inference.hats import PartitionSetAside

    for error in (InputError("a.fits", "truncated"), UnfinishedRunError("b.fits", "cut short"),
                  PartitionSetAside("c.fits", "corrupt", 12345)):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and (back.where, back.problem, str(back)) == (error.where, error.problem, str(error))
    assert pickle.loads(pickle.dumps(PartitionSetAside("c.fits", "corrupt", 12345))).spatial_index == 12345


def test_without_lsdbs_partition_writer_a_hats_run_writes_as_lsdb_does(hats_survey, tmp_path, monkeypatch):
    """With an LSDB that has no partition writer under the expected names, the run falls back on
    LSDB's own resumable write and gives the same rows."""
    import skysort.inference.hats as hats_module

    assert hats_module._partition_writer() is not None  # this LSDB has it: the other tests use it
    options = RunOptions(tiles=hats_survey["tiles"], batch_size=32)
    predict_hats(hats_survey["model"], hats_survey["hats"], tmp_path / "with", options)
    monkeypatch.setattr(hats_module, "_partition_writer", lambda: None)
    predict_hats(hats_survey["model"], hats_survey["hats"], tmp_path / "without", options)
    assert_same_rows(read_hats_result(tmp_path / "with"), read_hats_result(tmp_path / "without"))
