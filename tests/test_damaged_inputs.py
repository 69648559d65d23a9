"""Data a survey pipeline really hands over: null cells, FITS byte strings, infinite pixels,
spreadsheet CSVs, damaged stamp sets. Each gives correct results or one error line (status 2)
with nothing left behind."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pandas as pd
import pytest
from astropy.table import MaskedColumn, Table

from skysort.cli import main
from skysort.errors import InputError
from skysort.data.flags import Flags
from skysort.data.stampset import StampMeta, StampSet, write_stampset

N = 12


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(code, err, *fragments):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("skysort: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def predicted(folder, capsys, catalog, *options):
    """``skysort predict --model sgq-sdss`` on ``folder / catalog`` (with ``options``, e.g. a
    mapping); its predictions, which must have been written without an error."""
    out = folder / f"{catalog}.out.parquet"
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", folder / catalog, *options, "--out", out, "--quiet"], capsys)
    assert code == 0, err
    return pd.read_parquet(out)


def import_args(folder, table, out, images="st.npy"):
    return ["import", "--images", folder / images, "--table", folder / table, "--bands", "r", "--pixel-scale", 0.2,
            "--out", folder / out, "--quiet"]


@pytest.fixture()
def stamps_npy(tmp_path):
    np.save(tmp_path / "st.npy", np.random.default_rng(0).normal(0, 1, (N, 8, 8)).astype(np.float32))
    return tmp_path


def base_table():
    rng = np.random.default_rng(1)
    return {"id": np.arange(N), "ra": rng.uniform(0, 1, N), "dec": rng.uniform(0, 1, N), "mag_r": rng.uniform(16, 22, N)}


def test_import_takes_null_cells_byte_strings_and_dates(stamps_npy, capsys):
    folder = stamps_npy
    frame = pd.DataFrame(base_table())
    frame["nobs"] = pd.array(np.arange(N), dtype="Int64")
    frame.loc[3, "nobs"] = pd.NA
    frame["when"] = pd.Timestamp("2020-01-01")
    frame.to_parquet(folder / "t.parquet")
    code, _, err = run(import_args(folder, "t.parquet", "a.h5"), capsys)
    assert code == 0, err
    stamps = StampSet.open(folder / "a.h5")
    nobs = stamps.column("nobs")
    assert np.isnan(nobs[3]) and nobs[4] == 4  # a missing integer is NaN, not a crash
    assert stamps.column("when")[0].startswith("2020-01-01")
    fits_table = Table(base_table())
    fits_table["id"] = [f"KIDS J{i:04d}" for i in range(N)]
    fits_table.write(folder / "t.fits")
    code, _, err = run(import_args(folder, "t.fits", "b.h5"), capsys)
    assert code == 0, err
    assert StampSet.open(folder / "b.h5").column("id")[1] == "KIDS J0001"  # not "b'KIDS J0001'"


@pytest.mark.parametrize("column, values, fragment", [
    ("vec", np.ones((N, 3)), "holds (3,) values per object"),
    ("flags", -np.ones(N, int), "column 'flags'"),
    ("flags", np.full(N, 0.5), "column 'flags'"),
])
def test_import_refuses_columns_a_stamp_set_cannot_hold(stamps_npy, capsys, column, values, fragment):
    table = Table(base_table())
    table[column] = values
    table.write(stamps_npy / "t.fits")
    one_error_line(*run(import_args(stamps_npy, "t.fits", "c.h5"), capsys)[::2], fragment)
    assert not list(stamps_npy.glob("*.h5")) and not list(stamps_npy.glob(".*.tmp"))


def test_import_refuses_a_missing_id_and_a_zero_size_axis(stamps_npy, capsys):
    table = Table(base_table())
    table["id"] = MaskedColumn(table["id"], mask=np.arange(N) == 2)
    table.write(stamps_npy / "t.ecsv")
    one_error_line(*run(import_args(stamps_npy, "t.ecsv", "d.h5"), capsys)[::2], "column 'id' has 1 missing")
    np.save(stamps_npy / "flat.npy", np.zeros((N, 0, 8), np.float32))
    one_error_line(*run(["import", "--images", stamps_npy / "flat.npy", "--bands", "r", "--pixel-scale", 0.2,
                         "--out", stamps_npy / "e.h5", "--quiet"], capsys)[::2], "axis of size 0")
    assert not list(stamps_npy.glob("*.h5")) and not list(stamps_npy.glob(".*.tmp"))


@pytest.mark.parametrize("ids", [[1.0, np.nan, 3.0], ["a", " ", "c"], ["a", None, "c"]])
def test_import_refuses_ids_that_are_not_there_whatever_their_type(stamps_npy, capsys, ids):
    pd.DataFrame({"id": ids, "x": [2.0, 3.0, 4.0], "y": [2.0, 3.0, 4.0]}).to_parquet(stamps_npy / "t.parquet")
    np.save(stamps_npy / "three.npy", np.zeros((3, 8, 8), np.float32))
    one_error_line(*run(import_args(stamps_npy, "t.parquet", "d.h5", "three.npy"), capsys)[::2], "column 'id' has 1 missing")


SDSS_IDS = np.array([1237663204920852481, 1237663204920852482, 1237663204920852483, 1237663204920852484])


def photometry_catalog(ids):
    return {"id": ids, **{f"mag_{b}": np.linspace(18, 21, len(ids)) + k * 0.1 for k, b in enumerate("ugriz")}}


def write_with_missing_id(folder, fmt):
    """A catalogue of 64-bit ids whose second id is empty, as each format stores an empty cell."""
    if fmt in ("fits", "ecsv"):
        table = Table(photometry_catalog(MaskedColumn(SDSS_IDS, mask=[False, True, False, False])))
        table.write(folder / f"cat.{fmt}")  # FITS stores the masked integer as a TNULL value
    elif fmt in ("parquet", "text.parquet"):
        values = pd.array([*SDSS_IDS[:1], None, *SDSS_IDS[2:]], dtype="Int64")
        frame = pd.DataFrame(photometry_catalog(values.astype("string") if fmt == "text.parquet" else values))
        frame.to_parquet(folder / f"cat.{fmt}")
    else:
        lines = ["id," + ",".join(f"mag_{b}" for b in "ugriz")]
        lines += [("" if i == 1 else str(v)) + ",20,19.5,19.2,19.1,19" for i, v in enumerate(SDSS_IDS)]
        (folder / "cat.csv").write_text("\n".join(lines) + "\n")
    return folder / f"cat.{fmt}"


@pytest.mark.parametrize("fmt", ["fits", "ecsv", "parquet", "text.parquet", "csv"])
def test_predict_refuses_a_catalogue_row_without_an_id(tmp_path, capsys, fmt):
    # Before: FITS gave the row id 999999 and ECSV 0, a text column gave 'None', and Parquet and
    # CSV read the column as floats, so all four 64-bit ids became the same number.
    catalog = write_with_missing_id(tmp_path, fmt)
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", catalog, "--out", tmp_path / "p.parquet",
                         "--quiet"], capsys)[::2], catalog.name, "column 'id' has no value in data row 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [catalog.name]


def test_csv_ids_come_back_exactly_as_written(tmp_path, capsys, monkeypatch):
    import skysort.inference.stream as stream

    # Small parser blocks, so that the text ids sit in a later block than the integer ones: the
    # type pyarrow infers from a first block would refuse them.
    monkeypatch.setattr(stream, "CSV_BLOCK_BYTES", 256)
    ids = [str(v) for v in SDSS_IDS] * 5 + ["18446744073709551001", "18446744073709551002", "J0001", "1.2e+18"]
    lines = ["id," + ",".join(f"mag_{b}" for b in "ugriz")] + [f"{v},20,19.5,19.2,19.1,19" for v in ids]
    (tmp_path / "mixed.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "mixed.csv", "--out",
                        tmp_path / "mixed.parquet", "--quiet"], capsys)
    assert code == 0, err
    assert pd.read_parquet(tmp_path / "mixed.parquet")["id"].tolist() == ids
    (tmp_path / "int.csv").write_text("\n".join(lines[:21]) + "\n")
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "int.csv", "--out",
                        tmp_path / "int.parquet", "--quiet"], capsys)
    assert code == 0, err
    result = pd.read_parquet(tmp_path / "int.parquet")["id"]
    assert result.dtype == np.int64 and result.tolist() == list(SDSS_IDS) * 5


def test_infinite_pixels_are_flagged_like_nan_and_never_reach_a_network(tmp_path, capsys):
    images = np.random.default_rng(2).normal(0, 1, (N, 5, 24, 24))
    images[2, 1, 5:7, 5:7] = np.inf
    images[3] = 1e300  # beyond float32: overflows to inf
    np.save(tmp_path / "inf.npy", images)
    code, _, err = run(["import", "--images", tmp_path / "inf.npy", "--bands", "u,g,r,i,z", "--pixel-scale", 0.396,
                        "--out", tmp_path / "inf.h5", "--quiet"], capsys)
    assert code == 0 and "2 stamps have NaN or infinite pixels" in err
    stamps = StampSet.open(tmp_path / "inf.h5")
    flags = stamps.column("flags")
    assert flags[2] & Flags.NAN_PIXELS and flags[3] & Flags.MISSING_BAND and not flags[0] & Flags.NAN_PIXELS
    stored = stamps.read_images([2, 3])
    assert not np.isinf(stored).any() and np.isnan(stored[1]).all()
    code, _, err = run(["predict", "--model", "sgq-sdss", "--data", tmp_path / "inf.h5", "--out", tmp_path / "p.parquet",
                        "--quiet"], capsys)
    assert code == 0, err
    predictions = pd.read_parquet(tmp_path / "p.parquet")
    assert np.isfinite(predictions[["p_star", "p_galaxy", "p_qso"]].to_numpy()).all()


def test_a_class_is_never_given_to_probabilities_that_are_not_numbers():
    from skysort.inference.predictor import class_table, load_predictor

    predictor = load_predictor("sgq-sdss")
    probabilities = np.array([[0.2, 0.7, 0.1], [np.nan, np.nan, np.nan]], np.float32)
    table = class_table(predictor, {"probabilities": probabilities}, np.arange(2))
    assert list(table["class"]) == ["galaxy", ""]


def test_blend_truth_other_than_0_1_is_refused(tmp_path, capsys):
    images = np.zeros((N, 1, 65, 65), np.float32)
    table = {"blended": np.where(np.arange(N) % 2, "yes", "no"), "companion_dx": np.zeros(N), "companion_dy": np.zeros(N)}
    meta = StampMeta(bands=("r",), pixel_scale=0.187, flux_unit="count")
    write_stampset(tmp_path / "yes.h5", images, table, meta)
    table["blended"] = np.where(np.arange(N) % 2, 2.0, 0.0)
    write_stampset(tmp_path / "two.h5", images, table, meta)
    for name, fragment in (("yes", "not <U3 values"), ("two", "found 2.0")):
        one_error_line(*run(["evaluate", "--model", "blend-cfis", "--data", tmp_path / f"{name}.h5", "--out",
                             tmp_path / f"ev_{name}", "--quiet"], capsys)[::2], "column 'blended' must hold 0/1", fragment)
        one_error_line(*run(["baseline", "sep", "--data", tmp_path / f"{name}.h5", "--out", tmp_path / f"sep_{name}",
                             "--quiet"], capsys)[::2], "column 'blended'")


def test_spreadsheet_csv_keeps_its_ids_and_an_unwritable_fits_leaves_no_work_folder(tmp_path, capsys):
    frame = pd.DataFrame({"id": [17, 23], "ra": [150.0, 150.1], "dec": [2.0, 2.1],
                          **{f"mag_{b}": [20.0, 21.0] for b in "ugriz"}})
    (tmp_path / "bom.csv").write_text(frame.to_csv(index=False), encoding="utf-8-sig")
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "bom.csv", "--out",
                        tmp_path / "bom.parquet", "--quiet"], capsys)
    assert code == 0, err
    assert pd.read_parquet(tmp_path / "bom.parquet")["id"].tolist() == [17, 23]
    frame["id"] = ["Ωmega-1", "Ωmega-2"]
    frame.to_csv(tmp_path / "uni.csv", index=False)
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "uni.csv", "--out",
                         tmp_path / "uni.fits", "--quiet"], capsys)[::2], "uni.fits", "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bom.csv", "bom.parquet", "uni.csv"]


def damage(path, how):
    with h5py.File(path, "a") as handle:
        if how == "meta":
            handle.attrs["meta"] = "{not json"
        elif how == "length":
            handle.attrs["length"] = 10**6
        elif how == "label":
            columns = json.loads(handle["table"].attrs["columns"])
            del handle["table/label"]
            handle["table"].attrs["columns"] = json.dumps([c for c in columns if c != "label"])
        elif how == "short":
            data = handle["table/mag_r"][:3]
            del handle["table/mag_r"]
            handle["table"].create_dataset("mag_r", data=data, maxshape=(None,))


@pytest.mark.parametrize("how, fragment", [("meta", "metadata cannot be read"), ("length", "objects recorded"),
                                           ("label", "lacks core columns"), ("short", "shorter than")])
def test_damaged_stamp_sets_are_one_error_line(tmp_path, capsys, how, fragment):
    meta = StampMeta(bands=("u", "g", "r", "i", "z"), pixel_scale=0.396, flux_unit="nanomaggy")
    path = tmp_path / "s.h5"
    write_stampset(path, np.zeros((N, 5, 24, 24), np.float32), {"mag_r": np.full(N, 20.0)}, meta).close()
    damage(path, how)
    one_error_line(*run(["info", path], capsys)[::2], "damaged stamp set", fragment)
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--data", path, "--out", f"{tmp_path / 'p'}/", "--quiet"],
                        capsys)[::2], "damaged stamp set")
    assert not (tmp_path / "p").exists()


def test_a_stamp_set_damaged_inside_its_images_stops_predict_and_removes_the_new_folder(tmp_path, capsys):
    meta = StampMeta(bands=("u", "g", "r", "i", "z"), pixel_scale=0.396, flux_unit="nanomaggy")
    path = tmp_path / "s.h5"
    write_stampset(path, np.random.default_rng(3).normal(0, 1, (N, 5, 24, 24)), {}, meta, compression="gzip").close()
    with h5py.File(path, "r") as handle:
        offset = handle["images"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:  # garble the first compressed chunk
        fh.seek(offset + 8)
        fh.write(b"\xff" * 64)
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--data", path, "--out", f"{tmp_path / 'p'}/", "--quiet"],
                        capsys)[::2], "damaged stamp set", "images cannot be read")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("model, kind, survey", [("sgq-sdss", "sources", "sdss"), ("pointsource-sdss", "pointsources", "sdss"),
                                                 ("blend-cfis", "blends", "cfis")])
def test_a_stamp_without_a_finite_pixel_is_not_classified_from_its_fill(tmp_path, capsys, model, kind, survey):
    # An object off the tile's data: before, the networks classified the sky level its NaN
    # pixels are read as (inputs_used 'both' for sgq), and blend evaluate stopped on NaN.
    code, _, err = run(["simulate", "--survey", survey, "--kind", kind, "--n", 16, "--seed", 5, "--out", tmp_path / "sim.h5",
                        "--quiet", *(["--stamp-size", 24] if kind == "sources" else [])], capsys)
    assert code == 0, err
    with StampSet.open(tmp_path / "sim.h5") as stamps:
        images, table, meta = stamps.read_images(), stamps.table, stamps.meta
    images[:2] = np.nan
    if kind == "sources":
        for band in "ugriz":
            table[f"mag_{band}"][1] = np.nan  # object 1: no pixel and no magnitude
    write_stampset(tmp_path / "blank.h5", images, table, meta).close()
    code, _, err = run(["predict", "--model", model, "--data", tmp_path / "blank.h5", "--out", tmp_path / "p.parquet", "--quiet"],
                       capsys)
    assert code == 0, err
    result = pd.read_parquet(tmp_path / "p.parquet")
    assert (result["flags"][:2] & 256).all() and not (result["flags"][2:] & 256).any()
    assert result["class"][1] == "" and (result["class"][2:] != "").all()
    if kind == "sources":
        assert result["inputs_used"].tolist()[:3] == ["photometry", "none", "both"] and result["class"][0] != ""
    else:
        probability = result.filter(like="p_").to_numpy()
        assert np.isnan(probability[:2]).all() and np.isfinite(probability[2:]).all() and result["class"][0] == ""
    code, _, err = run(["evaluate", "--model", model, "--data", tmp_path / "blank.h5", "--out", tmp_path / "eval", "--quiet"],
                       capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    if kind == "sources":
        assert metrics["n_without_input"] == 1 and "not scored" in err
    else:
        assert metrics["n"] == 14 and metrics["n_without_pixels"] == 2 and "were not scored" in err


@pytest.mark.parametrize("fmt", ["fits", "parquet", "ecsv"])
def test_positions_in_other_angle_units_are_converted_and_fluxes_are_not_magnitudes(tmp_path, capsys, fmt):
    import astropy.units as u

    from skysort.data.catalog import read_catalog

    # Before, radians and arcseconds were read as degrees (the objects fell off every tile).
    ra, dec = np.array([150.1, 150.2]), np.array([2.1, 2.2])
    table = Table({"id": [1, 2], "ra": np.deg2rad(ra) * u.rad, "dec": dec * 3600 * u.arcsec,
                   **{f"mag_{b}": [20.0, 21.0] * u.mag for b in "ugriz"}})
    table.write(tmp_path / f"cat.{fmt}")
    read = read_catalog(tmp_path / f"cat.{fmt}")
    assert np.allclose(read["ra"], ra, rtol=0, atol=1e-9) and np.allclose(read["dec"], dec, rtol=0, atol=1e-9)
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / f"cat.{fmt}", "--out",
                        tmp_path / "p.parquet", "--quiet"], capsys)
    assert code == 0, err
    result = pd.read_parquet(tmp_path / "p.parquet")
    assert np.allclose(result["ra"], ra, rtol=0, atol=1e-9) and np.allclose(result["dec"], dec, rtol=0, atol=1e-9)
    for column, unit, fragment in (("ra", u.pix, "column 'ra' is in pix, not an angle"),
                                   ("mag_g", u.nJy, "column 'mag_g' holds fluxes (nJy), not magnitudes")):
        bad = table.copy()
        bad[column] = bad[column].value * unit
        bad.write(tmp_path / f"bad.{fmt}", overwrite=True)
        with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            read_catalog(tmp_path / f"bad.{fmt}")
        one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / f"bad.{fmt}", "--out",
                             tmp_path / "q.parquet", "--quiet"], capsys)[::2], f"bad.{fmt}", fragment)
        assert not (tmp_path / "q.parquet").exists()


def test_single_table_outputs_of_a_run_keep_their_units(tmp_path, capsys):
    # The parts carried units, but the assembled FITS / Parquet / ECSV table did not (no TUNITn).
    from astropy.io import fits

    from skysort.data.catalog import read_catalog

    frame = pd.DataFrame({"id": [1, 2], "ra": [150.1, 150.2], "dec": [2.1, 2.2], **{f"mag_{b}": [20.0, 21.0] for b in "ugriz"}})
    frame.to_csv(tmp_path / "cat.csv", index=False)
    for name in ("p.fits", "p.parquet", "p.ecsv"):
        code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "cat.csv", "--out", tmp_path / name,
                            "--quiet"], capsys)
        assert code == 0, err
        table = read_catalog(tmp_path / name)
        assert str(table["ra"].unit) == str(table["dec"].unit) == "deg", name
    with fits.open(tmp_path / "p.fits") as hdul:
        header = hdul[1].header
        units = {header[f"TTYPE{i}"]: header.get(f"TUNIT{i}") for i in range(1, header["TFIELDS"] + 1)}
    assert units["ra"] == units["dec"] == "deg"


def test_images_without_a_zero_point_are_warned_about_for_a_model_that_reads_fluxes(tmp_path, capsys):
    # Before, they were used as they are without a word: a survey in counts on zero point 30
    # would reach sgq-sdss (nanomaggies, 22.5) 1000 times too bright.
    images = np.random.default_rng(4).normal(0, 0.01, (N, 5, 24, 24)).astype(np.float32)
    for unit, warned in (("count", True), ("nanomaggy", False)):
        meta = StampMeta(bands=("u", "g", "r", "i", "z"), pixel_scale=0.396, flux_unit=unit, psf_fwhm={"r": 1.2})
        write_stampset(tmp_path / f"{unit}.h5", images, {"mag_r": np.full(N, 20.0)}, meta).close()
        code, _, err = run(["predict", "--model", "sgq-sdss", "--data", tmp_path / f"{unit}.h5", "--out",
                            tmp_path / f"{unit}.parquet", "--quiet"], capsys)
        assert code == 0 and ("no zero point for band(s) u, g, r, i, z" in err) == warned, err
    # A flux unit that fixes the zero point (nanomaggy: 22.5) counts as one: stamps in nJy are
    # brought to the model's scale.
    from skysort.inference.predictor import load_predictor, stampset_inputs

    meta = StampMeta(bands=("u", "g", "r", "i", "z"), pixel_scale=0.396, flux_unit="nJy")
    stamps = write_stampset(tmp_path / "njy.h5", images, {}, meta)
    inputs, _ = stampset_inputs(load_predictor("sgq-sdss"), stamps)
    np.testing.assert_allclose(inputs["image"], images * 10 ** (0.4 * (22.5 - 31.4)), rtol=1e-5)
    stamps.close()


def test_magnitude_errors_mapped_as_magnitudes_are_warned_about(tmp_path, capsys):
    # Each value passes the plausible range (-10 to 50) on its own; only the distribution shows
    # that these are errors, not magnitudes.
    errors = {f"mag_{b}": np.random.default_rng(k).uniform(0.01, 0.1, N) for k, b in enumerate("ugriz")}
    real = {f"mag_{b}": np.random.default_rng(k).uniform(17, 22, N) for k, b in enumerate("ugriz")}
    for name, columns, warned in (("errors", errors, True), ("real", real, False)):
        pd.DataFrame({"id": np.arange(N), **columns}).to_csv(tmp_path / f"{name}.csv", index=False)
        code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / f"{name}.csv", "--out",
                            tmp_path / f"{name}.parquet", "--quiet"], capsys)
        assert code == 0 and ("magnitudes unlike the model's training magnitudes: u median" in err) == warned, err
    from skysort.tasks.sgq import predict_sgq

    with pytest.warns(UserWarning, match="magnitude errors, fluxes or another system"):
        predict_sgq("sgq-sdss", mag=np.stack([errors[f"mag_{b}"] for b in "ugriz"], axis=1))


@pytest.mark.parametrize("separator, name", [(";", "semicolons"), ("\t", "tabs"), (" ", "spaces")])
def test_a_csv_separated_by_other_than_commas_is_named_so(tmp_path, capsys, separator, name):
    # Before: one column, then "no position columns" or "no column mag_u", which hid the cause.
    lines = [separator.join(["id", "ra", "dec", *(f"mag_{b}" for b in "ugriz")]),
             separator.join(["1", "150.1", "2.1", "20", "19.5", "19.2", "19.1", "19"])]
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    fragment = f"the header line is separated by {name}, not commas"
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "c.csv", "--out", tmp_path / "p.parquet",
                         "--quiet"], capsys)[::2], "c.csv", fragment)
    from skysort.data.catalog import read_catalog

    with pytest.raises(InputError, match=fragment):
        read_catalog(tmp_path / "c.csv")


def test_predict_takes_a_flux_catalogue_in_the_models_magnitude_convention(tmp_path, capsys):
    # Rubin and HSC object tables hold fluxes (nJy). sgq-sdss learnt SDSS asinh magnitudes, so
    # the fluxes must become asinh magnitudes with its softening, faint and negative ones included.
    from skysort.data.catalog import fluxes_to_magnitudes
    from skysort.inference.predictor import load_predictor

    rng = np.random.default_rng(6)
    mags = rng.uniform(18, 24, (N, 5))
    flux = 3631e9 * 10 ** (-0.4 * mags)
    flux[0, 0] = -20.0  # a u-band non-detection
    frame = pd.DataFrame({"id": np.arange(N), **{f"{b}_psfFlux": flux[:, k] for k, b in enumerate("ugriz")},
                          **{f"{b}_psfFluxErr": np.full(N, 30.0) for b in "ugriz"}})
    frame.to_parquet(tmp_path / "objects.parquet")
    mapping = "mag={band}_psfFlux,magerr={band}_psfFluxErr,bands=u g r i z,flux_unit=nJy"
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "objects.parquet", "--mapping", mapping,
                        "--out", tmp_path / "from_flux.parquet", "--quiet"], capsys)
    assert code == 0 and "warning" not in err, err
    softening = load_predictor("sgq-sdss").meta["catalogue_magnitudes"]["softening"]
    asinh = {f"mag_{b}": fluxes_to_magnitudes(flux[:, k], None, 1e-9 / 3631, softening[b])[0] for k, b in enumerate("ugriz")}
    pd.DataFrame({"id": np.arange(N), **asinh}).to_parquet(tmp_path / "magnitudes.parquet")
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "magnitudes.parquet", "--out",
                        tmp_path / "from_mag.parquet", "--quiet"], capsys)
    assert code == 0, err
    from_flux, from_mag = (pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("from_flux", "from_mag"))
    assert from_flux["n_missing_bands"].tolist() == [0] * N  # the negative flux is a finite asinh magnitude
    for column in ("p_star", "p_galaxy", "p_qso"):
        np.testing.assert_allclose(from_flux[column], from_mag[column], atol=1e-5)


def test_comment_lines_before_a_csv_header_are_skipped(tmp_path, capsys):
    # SDSS SkyServer's CSV output begins with a "#Table1" line. Before, predict took that line
    # for the header ("missing column(s) id, ...") and read_catalog failed on its column count.
    from skysort.data.catalog import read_catalog

    lines = ["id," + ",".join(f"mag_{b}" for b in "ugriz")]
    lines += [f"{v},{20 + 0.1 * k},19.5,19.2,19.1,19" for k, v in enumerate(SDSS_IDS)]
    (tmp_path / "plain.csv").write_text("\n".join(lines) + "\n")
    # Comments among the rows too (a note between two query results pasted together).
    (tmp_path / "sky.csv").write_text("\n".join(["#Table1", "", "# a query note, with a comma", *lines[:3], "# part 2",
                                                 *lines[3:]]) + "\n")
    # The same from a spreadsheet on Windows: a byte-order mark before the comment, CRLF line ends.
    (tmp_path / "excel.csv").write_bytes(("\ufeff" + "\r\n".join(["# note", *lines]) + "\r\n").encode())
    results = [predicted(tmp_path, capsys, f"{name}.csv") for name in ("plain", "sky", "excel")]
    assert results[1]["id"].tolist() == list(SDSS_IDS)
    pd.testing.assert_frame_equal(results[0], results[1])
    pd.testing.assert_frame_equal(results[0], results[2])
    for name in ("sky", "excel"):
        table = read_catalog(tmp_path / f"{name}.csv", require_positions=False)
        assert list(table["id"]) == list(SDSS_IDS) and np.allclose(table["mag_u"], 20 + 0.1 * np.arange(4))
    (tmp_path / "only.csv").write_text("#Table1\n# nothing else\n")
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "only.csv", "--out",
                         tmp_path / "o.parquet", "--quiet"], capsys)[::2], "only.csv", "no header line")


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_compressed_csv_catalogues_are_read_as_the_plain_file(tmp_path, capsys, compression):
    # Archives distribute CSV compressed (Gaia's bulk files are .csv.gz). Before: "unknown
    # catalogue format".
    import bz2
    import gzip
    import lzma

    from skysort.data.catalog import read_catalog, write_catalog

    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[compression]
    lines = ["#Table1", "id," + ",".join(f"mag_{b}" for b in "ugriz")]
    lines += [f"{v},{20 + 0.1 * k},19.5,19.2,19.1,19" for k, v in enumerate(SDSS_IDS)]
    text = "\n".join(lines) + "\n"
    (tmp_path / "plain.csv").write_text(text)
    packed = tmp_path / f"packed.csv.{compression}"
    with opener(packed, "wt") as fh:
        fh.write(text)
    for name in ("plain.csv", packed.name):
        code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / name, "--out",
                            tmp_path / f"{name}.parquet", "--quiet"], capsys)
        assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "plain.csv.parquet"),
                                  pd.read_parquet(tmp_path / f"{packed.name}.parquet"))
    table = read_catalog(packed, require_positions=False)
    assert list(table["id"]) == list(SDSS_IDS)
    # A file whose name says compressed but whose bytes are not, and a cut-off one.
    (tmp_path / f"bad.csv.{compression}").write_text(text)
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / f"bad.csv.{compression}", "--out",
                         tmp_path / "bad.parquet", "--quiet"], capsys)[::2], f"bad.csv.{compression}", "cannot read as")
    (tmp_path / f"cut.csv.{compression}").write_bytes(packed.read_bytes()[:40])
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / f"cut.csv.{compression}", "--out",
                         tmp_path / "cut.parquet", "--quiet"], capsys)[::2], f"cut.csv.{compression}", "cannot read as")
    assert not (tmp_path / "bad.parquet").exists() and not (tmp_path / "cut.parquet").exists()
    with pytest.raises(InputError, match="compressed CSV is read, not written"):
        write_catalog(table, tmp_path / f"out.csv.{compression}")


def test_null_text_in_a_numeric_column_is_a_missing_value_in_every_command(tmp_path, capsys):
    # predict (pyarrow) read "null" and "N/A" as missing, read_catalog (cutout, import) refused
    # the column as "not numeric". Now both mask them; other text is still refused, naming it.
    from skysort.data.catalog import read_catalog

    lines = ["id,ra,dec," + ",".join(f"mag_{b}" for b in "ugriz"),
             "1,150.1,2.1,null,19.5,19.2,19.1,19", "2,150.2,null,20.5,NaN,19.2,19.1,19", "3,150.3,2.3,N/A,19.5,19.2,19.1,19"]
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    table = read_catalog(tmp_path / "c.csv")
    assert list(table["mag_u"].mask) == [True, False, True] and list(table["mag_g"].mask) == [False, True, False]
    assert list(table["dec"].mask) == [False, True, False]
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "c.csv", "--out", tmp_path / "p.parquet",
                        "--quiet"], capsys)
    assert code == 0, err
    flags = pd.read_parquet(tmp_path / "p.parquet")["flags"].to_numpy()
    assert all(flags & Flags.MISSING_PHOTOMETRY)
    (tmp_path / "bad.csv").write_text("id,ra,dec,mag_r\n1,150.1,2.1,19\n2,150.2,2.2,abc\n")
    with pytest.raises(InputError, match="magnitude column 'mag_r' is not numeric \\(holds 'abc'\\)"):
        read_catalog(tmp_path / "bad.csv")


def test_sexagesimal_positions_are_read_as_astronomers_write_them(tmp_path, capsys):
    # VizieR's default text output writes RAJ2000 / DEJ2000 as "10 23 45.6" / "-00 30 00.0".
    # Before, predict and read_catalog refused the columns as not numeric.
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    from skysort.data.catalog import read_catalog

    positions = [("", ""), ("10 23 45.6", "+12 34 56.7"), ("10:23:46.60", "-00:30:00.0"), ("23h59m59.9s", "-89d59m59.9s")]
    mags = ",20,19.5,19.2,19.1,19"
    header = "RAJ2000,DEJ2000," + ",".join(f"mag_{b}" for b in "ugriz")
    (tmp_path / "sexa.csv").write_text("\n".join([header] + [f"{ra},{dec}{mags}" for ra, dec in positions]) + "\n")
    truth = SkyCoord([ra for ra, _ in positions[1:]], [dec for _, dec in positions[1:]], unit=(u.hourangle, u.deg))
    rows = [",", *(f"{float(c.ra.deg)!r},{float(c.dec.deg)!r}" for c in truth)]  # the first row has no position
    (tmp_path / "deg.csv").write_text("\n".join([header] + [f"{row}{mags}" for row in rows]) + "\n")
    results = {}
    for name in ("sexa", "deg"):
        code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / f"{name}.csv", "--out",
                            tmp_path / f"{name}.parquet", "--quiet"], capsys)
        assert code == 0, err
        results[name] = pd.read_parquet(tmp_path / f"{name}.parquet")
    for name in ("sexa", "deg"):
        table = read_catalog(tmp_path / f"{name}.csv")
        assert table["ra"].mask[0] and table["dec"].mask[0]
        assert np.allclose(table["ra"][1:], truth.ra.deg, rtol=0, atol=1e-9)
        assert np.allclose(table["dec"][1:], truth.dec.deg, rtol=0, atol=1e-9)
        assert np.isnan(results[name]["ra"][0]) and np.isnan(results[name]["dec"][0])
        assert np.allclose(results[name]["ra"][1:], truth.ra.deg, rtol=0, atol=1e-9)
        assert np.allclose(results[name]["dec"][1:], truth.dec.deg, rtol=0, atol=1e-9)
    assert results["sexa"]["class"].tolist() == results["deg"]["class"].tolist()
    # Not an angle: refused, naming the value; sexagesimal text where a magnitude belongs is named.
    (tmp_path / "bad.csv").write_text(header + "\n10 23 75.0,+12 34 56.7" + mags + "\n")
    with pytest.raises(InputError, match="60 or more minutes or seconds"):
        read_catalog(tmp_path / "bad.csv")
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "bad.csv", "--out", tmp_path / "b.parquet",
                         "--quiet"], capsys)[::2], "bad.csv", "60 or more minutes or seconds")
    # Decimal numbers among the angles: degrees, or hours as the angles beside them? Refused, naming both.
    (tmp_path / "mixed.csv").write_text(header + "\n10 23 45.6,+12 34 56.7" + mags + "\n150.5,+12 34 56.7" + mags + "\n")
    fragment = "column 'RAJ2000' mixes decimal numbers ('150.5') and sexagesimal angles ('10 23 45.6')"
    with pytest.raises(InputError, match=re.escape(fragment)):
        read_catalog(tmp_path / "mixed.csv")
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "mixed.csv", "--out",
                         tmp_path / "m.parquet", "--quiet"], capsys)[::2], "mixed.csv", fragment)
    (tmp_path / "mag.csv").write_text("id,ra,dec,mag_r\n1,150.1,2.1,10 23 45.6\n")
    with pytest.raises(InputError, match="magnitude column 'mag_r' is not numeric .*sexagesimal text"):
        read_catalog(tmp_path / "mag.csv")


def _vizier_tsv(rows, units=("deg", "deg", "", "mag", "mag", "mag", "mag", "mag", "mag")):
    """A VizieR "Tab-Separated-Values" download: query and column notes as '#' lines, the header,
    a units line, a dashes line, then rows padded to each column's width."""
    names = ["RA_ICRS", "DE_ICRS", "objID", "umag", "e_umag", "gmag", "rmag", "imag", "zmag"]
    widths = [max(len(name), *(len(row[k]) for row in rows)) for k, name in enumerate(names)]
    lines = ["#", "#   VizieR Astronomical Server vizier.cds.unistra.fr", "#Coosys\tJ2000:\teq_FK5 J2000", "",
             "#RESOURCE=yCat_5154", "#Name: V/154", "#Column\tRA_ICRS\t(F10.6)\tRight ascension (ICRS)\t[ucd=pos.eq.ra]",
             "\t".join(names), "\t".join(units), "\t".join("-" * w for w in widths)]
    lines += ["\t".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    return "\n".join(lines) + "\n\n"


def test_vizier_tab_separated_downloads_are_read(tmp_path, capsys):
    # VizieR's TSV download puts '#' notes, then a units line and a dashes line between the
    # header and the rows, and pads every cell (a blank magnitude is spaces). Before: "unknown
    # catalogue format '.tsv'", and as .csv "separated by tabs".
    import gzip

    from skysort.data.catalog import read_catalog, write_catalog

    ids = ["1237648720693755918", "1237648720693755919", "1237648720693755920", "1237648720693755921"]
    rows = [["150.100001", "+2.100002", ids[0], "20.123", "0.050", "19.5", "19.2", "19.1", "19"],
            ["150.200001", "-2.200002", ids[1], "", "", "19.4", "19.1", "19.0", "18.9"],
            ["150.300001", "+2.300002", ids[2], "21.0", "0.100", "20.5", "20.1", "20.0", "19.8"],
            ["150.400001", "+2.400002", ids[3], "19.5", "0.020", "18.5", "18.0", "17.8", "17.7"]]
    (tmp_path / "asu.tsv").write_text(_vizier_tsv(rows))
    with gzip.open(tmp_path / "asu.tsv.gz", "wt") as fh:
        fh.write(_vizier_tsv(rows))
    # The same table as comma-separated text; a blank cell padded with spaces is missing there too.
    header = "RA_ICRS,DE_ICRS,objID,umag,e_umag,gmag,rmag,imag,zmag"
    (tmp_path / "same.csv").write_text("\n".join([header, *(",".join(c or "   " for c in row) for row in rows)]) + "\n")
    mapping = "id=objID,ra=RA_ICRS,dec=DE_ICRS,mag={band}mag,bands=u g r i z"
    results = [predicted(tmp_path, capsys, name, "--mapping", mapping) for name in ("same.csv", "asu.tsv", "asu.tsv.gz")]
    assert results[1]["id"].tolist() == [int(i) for i in ids]  # exact int64
    assert np.allclose(results[1]["dec"], [2.100002, -2.200002, 2.300002, 2.400002])
    assert (results[1]["flags"].to_numpy() & Flags.MISSING_PHOTOMETRY).tolist() == [0, Flags.MISSING_PHOTOMETRY, 0, 0]
    pd.testing.assert_frame_equal(results[0], results[1])
    pd.testing.assert_frame_equal(results[1], results[2])
    table = read_catalog(tmp_path / "asu.tsv", mapping=mapping)
    assert list(table["id"]) == [int(i) for i in ids] and list(table["mag_u"].mask) == [False, True, False, False]
    assert table["ra"].unit == "deg" and np.allclose(table["mag_u"][[0, 2, 3]], [20.123, 21.0, 19.5])
    # VizieR's default positions: sexagesimal text with units h:m:s and d:m:s.
    sexagesimal = [["10 00 24.00024", "+02 06 00.0072", *row[2:]] for row in rows[:1]]
    (tmp_path / "sexa.tsv").write_text(_vizier_tsv(sexagesimal, ("h:m:s", "d:m:s", "", *["mag"] * 6)))
    table = read_catalog(tmp_path / "sexa.tsv", mapping=mapping)
    assert np.allclose([table["ra"][0], table["dec"][0]], [150.100001, 2.100002], rtol=0, atol=1e-6)
    code, _, err = run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "sexa.tsv", "--mapping", mapping, "--out",
                        tmp_path / "sexa.parquet", "--quiet"], capsys)
    assert code == 0, err
    assert np.allclose(pd.read_parquet(tmp_path / "sexa.parquet")["ra"], [150.100001], rtol=0, atol=1e-6)
    # A spreadsheet's tab-delimited export: the header right above the rows.
    (tmp_path / "sheet.tsv").write_text("\n".join(["\t".join(header.split(",")),
                                                   *("\t".join(row) for row in rows)]) + "\n")
    assert list(read_catalog(tmp_path / "sheet.tsv", mapping=mapping)["id"]) == [int(i) for i in ids]
    # A comma-separated file named .tsv, and a tab-separated one named .csv, are named so.
    (tmp_path / "commas.tsv").write_text((tmp_path / "same.csv").read_text())
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "commas.tsv", "--mapping", mapping,
                         "--out", tmp_path / "c.parquet", "--quiet"], capsys)[::2], "commas.tsv", "separated by commas, not tabs")
    (tmp_path / "tabs.csv").write_text((tmp_path / "sheet.tsv").read_text())
    with pytest.raises(InputError, match="separated by tabs, not commas: name the file .tsv"):
        read_catalog(tmp_path / "tabs.csv", mapping=mapping)
    with pytest.raises(InputError, match="TSV is read, not written"):
        write_catalog(table, tmp_path / "out.tsv")
    # Two tables one after the other (a VizieR query of two catalogues): the second header is named.
    (tmp_path / "two.tsv").write_text(_vizier_tsv(rows) + _vizier_tsv(rows))
    fragment = "a second header line among the rows (the file holds more than one table)"
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "two.tsv", "--mapping", mapping,
                         "--out", tmp_path / "two.parquet", "--quiet"], capsys)[::2], "two.tsv", "'RA_ICRS'", fragment)
    with pytest.raises(InputError, match=re.escape(fragment)):
        read_catalog(tmp_path / "two.tsv", mapping=mapping)


def test_masks_astropy_writes_beside_parquet_columns_are_honoured(tmp_path, capsys):
    # astropy's Table.write stores a masked column in Parquet as its data (the masked cells
    # holding ordinary numbers) plus a boolean "<name>.mask" column. Before, predict and
    # read_catalog read those numbers as magnitudes and showed "mag_u.mask" as a column.
    import astropy.units as u

    from skysort.data.catalog import read_catalog

    def table(rows):
        mag_u = MaskedColumn(20.0 + 0.1 * rows, mask=np.isin(rows, [1, 5]), unit=u.mag)
        return Table({"id": SDSS_IDS[0] + rows, "ra": (150 + 0.1 * rows) * u.deg, "dec": (2 + 0.1 * rows) * u.deg,
                      "mag_u": mag_u, **{f"mag_{b}": (19 + 0.1 * rows + k * 0.1) * u.mag for k, b in enumerate("griz")}})

    rows = np.arange(8)
    table(rows).write(tmp_path / "cat.fits")  # FITS stores the masked floats as NaN
    table(rows).write(tmp_path / "cat.parquet")
    assert "mag_u.mask" in pd.read_parquet(tmp_path / "cat.parquet").columns
    (tmp_path / "folder").mkdir()
    table(rows[:4]).write(tmp_path / "folder" / "a.parquet")
    table(rows[4:]).write(tmp_path / "folder" / "b.parquet")
    table(rows[6:]).write(tmp_path / "folder" / "c.parquet")  # no masked cell: no mask column
    results = [predicted(tmp_path, capsys, name) for name in ("cat.fits", "cat.parquet", "folder")]
    missing = (results[1]["flags"].to_numpy() & Flags.MISSING_PHOTOMETRY) > 0
    assert missing.tolist() == [False, True, False, False, False, True, False, False]
    pd.testing.assert_frame_equal(results[0], results[1])
    pd.testing.assert_frame_equal(results[1].iloc[:6].reset_index(drop=True), results[2].iloc[:6].reset_index(drop=True))
    for name in ("cat.parquet", "folder"):
        read = read_catalog(tmp_path / name)
        assert "mag_u.mask" not in read.colnames
        assert np.flatnonzero(read["mag_u"].mask).tolist() == [1, 5]


def test_vector_magnitude_columns_are_read_by_element(tmp_path, capsys):
    # SDSS's FITS products (photoObj, calibObj) hold the five bands in one column, PSFMAG[5].
    # Before: a vector column crashed predict with a traceback and read_catalog kept it whole.
    from skysort.data.catalog import read_catalog

    rng = np.random.default_rng(3)
    mags = rng.uniform(17, 22, (N, 5))
    mags[2, 0] = -9999.0  # a sentinel inside the vector
    ids = SDSS_IDS[0] + np.arange(N)
    vector = Table({"OBJID": ids, "RA": 150 + 0.01 * np.arange(N), "DEC": 2 + 0.01 * np.arange(N), "PSFMAG": mags,
                    "PSFMAGERR": np.full((N, 5), 0.05)})
    vector.write(tmp_path / "photo.fits")
    vector.write(tmp_path / "photo.parquet")
    flat = Table({"objID": ids, "ra": vector["RA"], "dec": vector["DEC"],
                  **{f"psfMag_{b}": mags[:, k] for k, b in enumerate("ugriz")},
                  **{f"psfMagErr_{b}": np.full(N, 0.05) for b in "ugriz"}})
    flat.write(tmp_path / "flat.parquet")
    by_element = "id=OBJID,ra=RA,dec=DEC,mag=PSFMAG[{index}],magerr=PSFMAGERR[{index}],bands=u g r i z,sentinels=-9999"
    by_name = "id=objID,ra=ra,dec=dec,mag=psfMag_{band},magerr=psfMagErr_{band},bands=u g r i z,sentinels=-9999"
    results = []
    for name, mapping in (("flat.parquet", by_name), ("photo.fits", by_element), ("photo.parquet", by_element)):
        results.append(predicted(tmp_path, capsys, name, "--mapping", mapping))
        read = read_catalog(tmp_path / name, mapping=mapping)
        assert np.allclose(read["mag_g"], mags[:, 1]) and np.flatnonzero(read["mag_u"].mask).tolist() == [2]
        assert "PSFMAG" not in read.colnames  # its elements are the magnitudes
    pd.testing.assert_frame_equal(results[0], results[1])
    pd.testing.assert_frame_equal(results[0], results[2])
    assert results[1]["flags"][2] & Flags.MISSING_PHOTOMETRY
    # The vector column named as one number, an element beyond it, an element of a scalar column.
    for mapping, fragment in (("id=OBJID,ra=RA,dec=DEC,mag=PSFMAG,bands=u", "'PSFMAG' holds 5 values per row, not one number"),
                              ("id=OBJID,ra=RA,dec=DEC,mag=PSFMAG[{index}],bands=x x2 x3 x4 x5 u", "'PSFMAG[5]' is beyond"),
                              ("id=OBJID,ra=RA[0],dec=DEC,mag=PSFMAG[{index}],bands=u g r i z", "'RA[0]' names nothing")):
        for name in ("photo.fits", "photo.parquet"):
            with pytest.raises(InputError, match=re.escape(fragment)):
                read_catalog(tmp_path / name, mapping=mapping, bands="u")
            one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / name, "--mapping", mapping,
                                 "--out", tmp_path / "x.parquet", "--quiet"], capsys)[::2], name)


@pytest.mark.parametrize("name", ["allwise.tbl", "allwise.tbl.gz"])
def test_ipac_tables_from_irsa_are_read(tmp_path, capsys, name):
    # IRSA's services (AllWISE, 2MASS, ZTF) hand over IPAC tables: units and nulls in the header.
    # Before: "unknown catalogue format '.tbl'".
    import astropy.units as u

    from skysort.data.catalog import read_catalog, write_catalog

    mag_u = MaskedColumn([20.0, 20.1, 20.2, 20.3], mask=[False, True, False, False], unit=u.mag)
    table = Table({"id": SDSS_IDS, "ra": [150.1, 150.2, 150.3, 150.4] * u.deg, "dec": [2.1, 2.2, 2.3, 2.4] * u.deg,
                   "mag_u": mag_u, **{f"mag_{b}": (np.linspace(18, 21, 4) + k * 0.1) * u.mag for k, b in enumerate("griz")}})
    table.write(tmp_path / "cat.parquet")
    table.write(tmp_path / name, format="ascii.ipac")
    results = [predicted(tmp_path, capsys, catalog) for catalog in ("cat.parquet", name)]
    pd.testing.assert_frame_equal(results[0], results[1])
    assert results[1]["id"].tolist() == list(SDSS_IDS)
    read = read_catalog(tmp_path / name)
    assert list(read["mag_u"].mask) == [False, True, False, False] and read["ra"].unit == u.deg
    # Positions the table declares in another angle unit are converted, as in FITS.
    table["ra"] = table["ra"].to(u.arcsec)
    table.write(tmp_path / "arcsec.tbl", format="ascii.ipac")
    assert np.allclose(read_catalog(tmp_path / "arcsec.tbl")["ra"], [150.1, 150.2, 150.3, 150.4])
    with pytest.raises(InputError, match="an IPAC table is read, not written"):
        write_catalog(table, tmp_path / "out.tbl")
    (tmp_path / "broken.tbl").write_text("|id|ra|\n|int|\n1 2 3\n")
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "broken.tbl", "--out", tmp_path / "x.parquet",
                         "--quiet"], capsys)[::2], "broken.tbl", "cannot read as IPAC")


@pytest.mark.parametrize("suffix, encoding", [("vot", "tabledata"), ("xml", "binary2")])
def test_votable_catalogues_from_tap_services_are_read(tmp_path, capsys, suffix, encoding):
    # TAP services (Gaia, ESO, CADC) and TOPCAT hand over VOTables. Before: "unknown catalogue format".
    import astropy.units as u

    from skysort.data.catalog import read_catalog, write_catalog

    table = Table({"id": SDSS_IDS, "ra": [150.1, 150.2, 150.3, 150.4] * u.deg, "dec": [2.1, 2.2, 2.3, 2.4] * u.deg,
                   **{f"mag_{b}": (np.linspace(18, 21, 4) + k * 0.1) * u.mag for k, b in enumerate("ugriz")}})
    table.write(tmp_path / "cat.parquet")
    table.write(tmp_path / f"cat.{suffix}", format="votable", tabledata_format=encoding)
    results = [predicted(tmp_path, capsys, name) for name in ("cat.parquet", f"cat.{suffix}")]
    pd.testing.assert_frame_equal(results[0], results[1])
    assert results[1]["id"].tolist() == list(SDSS_IDS)
    assert np.allclose(read_catalog(tmp_path / f"cat.{suffix}")["mag_r"], table["mag_r"])
    with pytest.raises(InputError, match="VOTable is read, not written"):
        write_catalog(table, tmp_path / f"out.{suffix}")
    (tmp_path / "page.xml").write_text("<html>not a table</html>\n")
    one_error_line(*run(["predict", "--model", "sgq-sdss", "--catalog", tmp_path / "page.xml", "--out", tmp_path / "x.parquet",
                         "--quiet"], capsys)[::2], "page.xml", "cannot read as VOTABLE")


@pytest.mark.parametrize("filter_name, band", [
    ("r", "r"), ("OCAM_r_SDSS", "r"), ("r DECam SDSS c0002 6415.0 1480.0", "r"), ("z DECam SDSS c0004 9260.0 1520.0", "z"),
    ("r.MP9602", "r"), ("i.00000", "i"), ("HSC-I", "i"), ("HSC-R2", "r"), ("ZTF_g", "g"), ("Ks", "Ks"), ("VIS", "VIS"),
    ("VR DECam c0007 6300.0 2600.0", "VR")])
def test_band_names_are_read_from_instruments_filter_keywords(tmp_path, filter_name, band):
    # Before: the last word of FILTER was taken, so a DECam image ("r DECam SDSS c0002 6415.0
    # 1480.0") was band "1480.0", and MegaCam's "r.MP9602" or HSC's "HSC-I" were bands of no model.
    from astropy.io import fits
    from astropy.wcs import WCS

    from skysort.data.images import read_band_image

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [150.0, 2.0], [8.0, 8.0], [-0.2 / 3600, 0.2 / 3600]
    header = wcs.to_header()
    header["FILTER"] = filter_name
    fits.writeto(tmp_path / "image.fits", np.zeros((16, 16), np.float32), header)
    assert read_band_image(tmp_path / "image.fits").band == band


@pytest.mark.parametrize("cards, fwhm, zero_point", [
    ({"SEEING": (1.1, "[arcsec] seeing FWHM")}, 1.1, np.nan),
    ({"SEEING": (4.0, "[pix] Seeing FWHM"), "MAGZP": 26.3}, 4.0 * 0.263, 26.3),  # ZTF
    ({"FWHM": (4.0, "[pixel] median FWHM"), "MAGZERO": 30.0}, 4.0 * 0.263, 30.0),  # DES
    ({"FLUXMAG0": 63095734448.0194}, np.nan, 27.0),  # HSC coadds: the flux of magnitude 0
])
def test_seeing_and_zero_point_are_read_in_the_units_headers_give(tmp_path, cards, fwhm, zero_point):
    # Before: a seeing keyword in pixels was read as arcsec (4" for a 1.05" image, a model input
    # of the sgq models), and HSC's FLUXMAG0 was no zero point.
    from astropy.io import fits
    from astropy.wcs import WCS

    from skysort.data.images import read_band_image

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [150.0, 2.0], [8.0, 8.0], [-0.263 / 3600, 0.263 / 3600]
    header = wcs.to_header()
    header["FILTER"] = "r"
    for key, value in cards.items():
        header[key] = value
    fits.writeto(tmp_path / "image.fits", np.zeros((16, 16), np.float32), header)
    image = read_band_image(tmp_path / "image.fits")
    np.testing.assert_allclose([image.psf_fwhm, image.zero_point], [fwhm, zero_point], rtol=1e-6)


def test_pan_starrs_asinh_compressed_stacks_are_read_as_linear_fluxes(tmp_path):
    # Pan-STARRS stack images store alpha * asinh((L - BOFFSET) / (2 BSOFTEN)); read as they are,
    # every object's profile and flux were distorted (a bright core compressed logarithmically).
    from astropy.io import fits
    from astropy.wcs import WCS

    from skysort.data.images import read_band_image

    alpha = 2.5 * np.log10(np.e)
    yy, xx = np.mgrid[:32, :32]
    linear = (5000.0 * np.exp(-((xx - 16.0) ** 2 + (yy - 16.0) ** 2) / 8.0) + np.random.default_rng(0).normal(0, 3, (32, 32)))
    soften, offset = 4.0, 1.5
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [150.0, 2.0], [16.0, 16.0], [-0.25 / 3600, 0.25 / 3600]
    header = wcs.to_header()
    header["FILTER"], header["BSOFTEN"], header["BOFFSET"] = "r.00000", soften, offset
    stored = alpha * np.arcsinh((linear - offset) / (2 * soften))
    fits.writeto(tmp_path / "rings.v3.skycell.1725.051.stk.r.unconv.fits", stored.astype(np.float32), header)
    image = read_band_image(tmp_path / "rings.v3.skycell.1725.051.stk.r.unconv.fits")
    assert image.band == "r"
    np.testing.assert_allclose(image.data, linear, rtol=1e-4, atol=1e-2)
    del header["BSOFTEN"]  # an ordinary image is read as it is
    fits.writeto(tmp_path / "plain.fits", linear.astype(np.float32), header)
    np.testing.assert_array_equal(read_band_image(tmp_path / "plain.fits").data, linear.astype(np.float32))


def test_sextractor_catalogues_are_read_ldac_and_ascii(tmp_path, capsys):
    # SExtractor writes FITS_LDAC (the objects in the second table, LDAC_OBJECTS, after the image
    # header's LDAC_IMHEAD) or ASCII_HEAD ('#   1 NUMBER ...  [unit]' lines). Before: the LDAC
    # image header was read as the catalogue (one row, no columns) and '.cat' was unknown.
    from astropy.io import fits

    from skysort.data.catalog import read_catalog, write_catalog

    rng = np.random.default_rng(8)
    mags = rng.uniform(17, 22, (N, 5))
    columns = {"NUMBER": np.arange(1, N + 1), "ALPHA_J2000": 150 + 0.01 * np.arange(N), "DELTA_J2000": 2 + 0.01 * np.arange(N),
               **{f"MAG_AUTO_{b}": mags[:, k] for k, b in enumerate("ugriz")}}
    Table(columns).write(tmp_path / "same.parquet")
    imhead = fits.BinTableHDU.from_columns([fits.Column(name="Field Header Card", format="80A",
                                                        array=np.array(["SIMPLE  =                    T"]))], name="LDAC_IMHEAD")
    objects = fits.BinTableHDU(Table(columns), name="LDAC_OBJECTS")
    objects.columns["ALPHA_J2000"].unit = "deg"
    for name in ("field.cat", "field.ldac", "field_ldac.fits"):
        fits.HDUList([fits.PrimaryHDU(), imhead, objects]).writeto(tmp_path / name)
    units = {"ALPHA_J2000": "[deg]", "DELTA_J2000": "[deg]", **{f"MAG_AUTO_{b}": "[mag]" for b in "ugriz"}}
    header = [f"# {k + 1:3d} {name:22s} {'a quantity':40s} {units.get(name, '')}" for k, name in enumerate(columns)]
    rows = [" ".join(f"{columns[name][i]:.7f}" if name != "NUMBER" else f"{i + 1:10d}" for name in columns) for i in range(N)]
    (tmp_path / "ascii.cat").write_text("\n".join(header + rows) + "\n")
    mapping = "id=NUMBER,ra=ALPHA_J2000,dec=DELTA_J2000,mag=MAG_AUTO_{band},bands=u g r i z"
    results = []
    for name in ("same.parquet", "field.cat", "field.ldac", "field_ldac.fits", "ascii.cat"):
        results.append(predicted(tmp_path, capsys, name, "--mapping", mapping))
        read = read_catalog(tmp_path / name, mapping=mapping)
        assert list(read["id"]) == list(range(1, N + 1)) and np.allclose(read["mag_r"], mags[:, 2], atol=1e-6)
    for result in results[1:]:
        pd.testing.assert_frame_equal(results[0], result, atol=1e-5)
    assert str(read_catalog(tmp_path / "ascii.cat")["ra"].unit) == "deg"
    with pytest.raises(InputError, match="a SExtractor catalogue is read, not written"):
        write_catalog(read, tmp_path / "out.cat")


def test_placeholder_dashes_and_seeing_comments_are_not_misread(tmp_path):
    # A row of '-' placeholders under a TSV header is data, not VizieR's rule line (which would
    # have dropped it and the row above as units); a seeing keyword in arcsec whose comment
    # mentions pixels is not converted.
    from astropy.io import fits
    from astropy.wcs import WCS

    from skysort.data.catalog import read_catalog, text_layout
    from skysort.data.images import header_seeing

    (tmp_path / "p.tsv").write_text("id\tra\tdec\tmag_r\n1\t10.0\t1.0\t20.0\n-\t-\t-\t-\n3\t10.2\t1.2\t20.2\n")
    assert text_layout(tmp_path / "p.tsv").skip_rows == 1
    with pytest.raises(InputError, match="holds '-'\\)$"):  # named, not read as a second table's rule
        read_catalog(tmp_path / "p.tsv")
    (tmp_path / "d.csv").write_text("id,ra,dec,mag_r\n---,---,---,---\n")
    assert text_layout(tmp_path / "d.csv").skip_rows == 1  # in CSV a line of dashes is data
    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [-0.2 / 3600, 0.2 / 3600]
    header = wcs.to_header()
    header["SEEING"] = (1.1, "[arcsec] FWHM from stars of 5-50 pixels")
    assert header_seeing(header, wcs) == 1.1
