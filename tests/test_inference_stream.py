"""Catalogue-scale prediction: streaming tiles, Parquet parts + manifest, resume after kill -9, Dask.

Models here are real (small) torch networks: a tiny BlendNet saved as a model file (task
``blend``, so every process and Dask worker can load it), and in-test predictors implementing
the Predictor protocol for two-band images and photometry.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS

from skysort.cli import main
from skysort.data.flags import Flags
from skysort.errors import InputError
from skysort.inference.manifest import Manifest, file_sha256
from skysort.inference.predictor import MISSING_INPUT_FLAG, InputSpec, predict_stampset
from skysort.inference.stream import RunOptions, _in_thread, memory_plan, predict_catalog

SCALE = 0.4  # arcsec per pixel
STAMP = 16


# ------------------------------------------------------------------------------------------
# Synthetic survey: tiles with WCS, a catalogue, small models
# ------------------------------------------------------------------------------------------


def tile_wcs(ra0: float, dec0: float, shape, shift=(0.0, 0.0)) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [shape[1] / 2 + 0.5 + shift[0], shape[0] / 2 + 0.5 + shift[1]]
    w.wcs.cd = [[-SCALE / 3600, 0], [0, SCALE / 3600]]
    return w


def make_survey(folder: Path, n_tiles=3, per_tile=60, shape=(120, 140), bands=("r",), shifted_band=None, outside=5, seed=0,
                catalog_name="cat.parquet"):
    """Overlapping tiles in a row along RA, one folder each, sources drawn as Gaussians with noise.

    Returns the catalogue path and the (ra, dec) of the tile centres.
    """
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    step = (shape[1] - 30) * SCALE / 3600  # tiles overlap by 30 px
    centres = [(150.0 + i * step, 2.0) for i in range(n_tiles)]
    width, height = shape[1] * SCALE / 3600, shape[0] * SCALE / 3600
    n = n_tiles * per_tile
    ra = rng.uniform(centres[0][0] - width / 2, centres[-1][0] + width / 2, n)
    dec = rng.uniform(2.0 - height / 2, 2.0 + height / 2, n)
    far = np.column_stack([np.full(outside, 151.5), np.full(outside, 3.0) + 0.001 * np.arange(outside)])
    ra, dec = np.concatenate([ra, far[:, 0]]), np.concatenate([dec, far[:, 1]])
    flux = rng.uniform(20, 400, len(ra))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for t, (ra0, dec0) in enumerate(centres):
        sub = folder / f"t{t:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        for band in bands:
            shift = (1.3, -0.7) if band == shifted_band else (0.0, 0.0)
            w = tile_wcs(ra0, dec0, shape, shift)
            x, y = w.all_world2pix(ra, dec, 0)
            data = rng.normal(0, 2.0, shape).astype(np.float32)
            for k in np.flatnonzero((x > -5) & (x < shape[1] + 5) & (y > -5) & (y < shape[0] + 5)):
                data += (flux[k] * np.exp(-((xx - x[k]) ** 2 + (yy - y[k]) ** 2) / (2 * 1.5**2))).astype(np.float32)
            header = w.to_header()
            header["FILTER"] = band
            header["BUNIT"] = "nanomaggy"
            fits.PrimaryHDU(data, header).writeto(sub / f"tile-{band}.fits")
    table = pa.table({"id": np.arange(1000, 1000 + len(ra), dtype=np.int64), "ra": ra, "dec": dec,
                      "mag_r": (22.5 - 2.5 * np.log10(flux)).astype(np.float32)})
    pq.write_table(table, folder / catalog_name)
    return folder / catalog_name, centres


def tiny_blend_model(path: Path, seed=0) -> Path:
    """A real (untrained, seeded) BlendNet on 16x16 r stamps, saved as a skysort model file."""
    from skysort.models.blend import BlendNet
    from skysort.models.checkpoint import save_model_file

    torch.manual_seed(seed)
    net = BlendNet(widths=(4, 8), convs_per_stage=1, hidden=8, padding=0)
    meta = {"task": "blend", "architecture": "BlendNet", "architecture_config": net.config, "classes": ["isolated", "blended"],
            "image_bands": ["r"], "pixel_scale": SCALE, "stamp_size": [STAMP, STAMP]}
    return save_model_file(path, net.state_dict(), meta, command="test")


class TinyPredictor:
    """A Predictor of a small torch network: images (any bands) and/or photometry, three classes."""

    task = "test"

    def __init__(self, model_file: Path, image_bands=("g", "r"), photometry_bands=(), photometry_only=False, seeing_band=None,
                 zero_points=None):
        torch.manual_seed(1)
        self.classes = ["star", "galaxy", "qso"]
        self.name = "tiny"
        self.meta = {"created": "test"}
        self.model_file = Path(model_file)
        self.spec = InputSpec(image_bands=list(image_bands), stamp_size=(STAMP, STAMP) if image_bands else None,
                              pixel_scale=SCALE, photometry_bands=list(photometry_bands), seeing_band=seeing_band,
                              zero_points=zero_points)
        self.conv = torch.nn.Conv2d(max(1, len(image_bands)), 4, 3)
        self.mags = torch.nn.Linear(max(1, len(photometry_bands)), 4)
        self.head = torch.nn.Linear(4, 3)
        self.photometry_only = photometry_only

    def to(self, device):
        return self

    @torch.inference_mode()
    def predict(self, inputs, *, images_available=True):
        if not images_available and self.spec.uses_images and not self.photometry_only:
            raise InputError(self.name, "needs images")
        h = 0
        if images_available and self.spec.uses_images:
            x = torch.as_tensor(np.nan_to_num(inputs["image"]))
            h = torch.relu(self.conv(torch.asinh(x / 10))).mean(dim=(2, 3))
        if self.spec.uses_photometry:
            h = h + self.mags(torch.as_tensor(np.nan_to_num(inputs["mag"], nan=25.0)) - 20)
        p = torch.softmax(self.head(h), dim=1).numpy()
        outputs = {"probabilities": p.astype(np.float32), "score": p[:, 0].astype(np.float32) * 2}
        if self.spec.seeing_band and images_available:  # a per-image output, absent for photometry-only rows
            outputs["seeing"] = np.asarray(inputs.get("psf_fwhm", np.full(len(p), np.nan)), np.float32)
        return outputs


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    folder = tmp_path_factory.mktemp("survey")
    catalog, centres = make_survey(folder)
    model = tiny_blend_model(folder / "tiny.pt")
    return {"folder": folder, "catalog": catalog, "centres": centres, "model": model, "tiles": str(folder / "t*" / "tile-*.fits")}


def read_out(folder: Path):
    manifest = json.loads((folder / "manifest.json").read_text())
    tables = [pq.read_table(folder / u["part"]) for u in manifest["units"]]
    import pyarrow as pa

    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables]).to_pandas()
    return manifest, table.sort_values("catalog_row").reset_index(drop=True)


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_points", [None, {"g": 30.0, "r": 30.0}])
def test_stream_equals_predict_stampset_on_the_same_stamps(tmp_path, zero_points):
    """Two bands, one resampled through its WCS: streaming gives what cutout + predict_stampset
    give, also for a model trained on another flux unit (the nanomaggy tiles then rescaled to
    it on both paths)."""
    from skysort.data.catalog import read_catalog
    from skysort.data.ingest import cutout

    catalog, _ = make_survey(tmp_path, n_tiles=1, per_tile=80, bands=("g", "r"), shifted_band="g", outside=0)
    predictor = TinyPredictor(tmp_path / "none.pt", zero_points=zero_points)
    (tmp_path / "none.pt").write_bytes(b"tiny")
    manifest = predict_catalog("tiny", catalog, tmp_path / "out", RunOptions(tiles=str(tmp_path / "t*" / "tile-*.fits"), batch_size=16),
                               predictor=predictor)
    assert manifest.complete and manifest.content["rows_written"] == 80
    _, streamed = read_out(tmp_path / "out")
    stamps = cutout(str(tmp_path / "t00" / "tile-*.fits"), read_catalog(catalog), tmp_path / "s.h5", size=STAMP, bands=["g", "r"])
    reference = predict_stampset(predictor, stamps, batch_size=7).to_pandas()
    assert list(streamed["id"]) == list(reference["id"])
    assert np.array_equal(streamed["flags"].to_numpy(), reference["flags"].to_numpy())
    interior = (streamed["flags"].to_numpy() & int(Flags.EDGE)) == 0
    assert interior.sum() > 40
    for name in ("p_star", "p_galaxy", "p_qso", "score"):
        assert np.allclose(streamed[name].to_numpy()[interior], reference[name].to_numpy()[interior], atol=1e-5)
    assert np.array_equal(streamed["class"].to_numpy()[interior], reference["class"].to_numpy()[interior])
    assert streamed["images_used"].all()
    if zero_points:  # the rescaling matters: without it the model gives other probabilities
        plain = predict_stampset(TinyPredictor(tmp_path / "none.pt"), stamps, batch_size=7).to_pandas()
        assert not np.allclose(plain["p_star"].to_numpy(), reference["p_star"].to_numpy(), atol=1e-3)


def test_seeing_is_measured_on_each_tile_as_cutout_measures_it(tmp_path):
    """A model that reads the seeing gets, for every object of a tile, the FWHM that cutout records."""
    from skysort.data.catalog import read_catalog
    from skysort.data.ingest import cutout

    catalog, _ = make_survey(tmp_path, n_tiles=1, per_tile=30, shape=(200, 240), bands=("g", "r"), outside=0)
    predictor = TinyPredictor(tmp_path / "none.pt", seeing_band="r")
    (tmp_path / "none.pt").write_bytes(b"tiny")
    predict_catalog("tiny", catalog, tmp_path / "out", RunOptions(tiles=str(tmp_path / "t*" / "tile-*.fits"), batch_size=8),
                    predictor=predictor)
    _, streamed = read_out(tmp_path / "out")
    stamps = cutout(str(tmp_path / "t00" / "tile-*.fits"), read_catalog(catalog), tmp_path / "s.h5", size=STAMP, bands=["g", "r"])
    seeing = stamps.meta.psf_fwhm["r"]
    # Gaussian sources of sigma 1.5 px at 0.4"/px: FWHM 1.41" (sampled at pixel centres, not integrated over
    # pixels, so a little more concentrated than the fitted profile family allows).
    assert stamps.meta.extra["psf_fwhm_source"]["r"] == "measured" and seeing == pytest.approx(1.41, rel=0.06)
    assert np.allclose(streamed["seeing"].to_numpy(), seeing, atol=1e-3)
    assert np.allclose(np.asarray(predict_stampset(predictor, stamps)["seeing"]), seeing, atol=1e-3)


def test_an_output_a_predictor_omits_for_some_rows_is_blank_there(survey, tmp_path):
    """Sources beyond every tile are classified from photometry, where a per-image output is
    absent: their part still has every column, blank there."""
    (tmp_path / "m.pt").write_bytes(b"tiny")
    predictor = TinyPredictor(tmp_path / "m.pt", image_bands=("r",), photometry_bands=("r",), photometry_only=True, seeing_band="r")
    manifest = predict_catalog("tiny", survey["catalog"], tmp_path / "out", RunOptions(tiles=survey["tiles"]), predictor=predictor)
    assert manifest.complete
    _, table = read_out(tmp_path / "out")
    outside = ~table["images_used"].to_numpy()
    assert outside.sum() == 5 and table.loc[outside, "seeing"].isna().all()
    assert table.loc[outside, ["p_star", "p_galaxy", "p_qso"]].notna().all().all()


def test_parts_manifest_ownership_and_provenance(survey, tmp_path):
    out = tmp_path / "out"
    code = main(["predict", "--model", str(survey["model"]), "--catalog", str(survey["catalog"]), "--tiles", survey["tiles"],
                 "--out", f"{out}/", "--quiet", "--batch-size", "32"])
    assert code == 0
    manifest, table = read_out(out)
    n = pq.read_metadata(survey["catalog"]).num_rows
    assert manifest["complete"] and manifest["rows_written"] == n == len(table)
    assert sorted(table["id"]) == list(range(1000, 1000 + n))
    assert not (out / "_shards").exists()
    assert manifest["model"]["sha256"] == file_sha256(survey["model"])
    # Every part: one unit, its row count and hash; Parquet metadata with provenance.
    for unit in manifest["units"]:
        part = out / unit["part"]
        assert pq.read_metadata(part).num_rows == unit["rows"] == unit["n_sources"]
        assert file_sha256(part) == unit["sha256"]
        meta = json.loads(pq.read_schema(part).metadata[b"skysort"])
        assert meta["unit"] == unit["index"] and meta["model_sha256"] == manifest["model"]["sha256"]
        assert meta["provenance"]["software"]["torch"] and meta["provenance"]["created"]
        assert meta["input_tiles"] == unit["input_tiles"]
    # Ownership: the tile where the source is farthest from the edge; sources in no tile flagged.
    ra, dec = table["ra"].to_numpy(), table["dec"].to_numpy()
    margins = []
    for tile in manifest["tiles"]:
        w = WCS(fits.getheader(tile["files"]["r"]))
        x, y = w.all_world2pix(ra, dec, 0)
        ny, nx = tile["shape"]
        m = np.minimum(np.minimum(x + 0.5, nx - 0.5 - x), np.minimum(y + 0.5, ny - 0.5 - y))
        margins.append(np.where(m > 0, m, -np.inf))
    margins = np.array(margins)
    expected = np.where(np.isfinite(margins.max(axis=0)), np.argmax(margins, axis=0), -1)
    owner_of_row = np.full(len(table), -1)
    for unit in manifest["units"]:
        rows = pq.read_table(out / unit["part"], columns=["catalog_row"]).column(0).to_numpy()
        owner_of_row[rows] = unit["tile"] if unit["tile"] is not None else -1
    assert np.array_equal(owner_of_row[table["catalog_row"].to_numpy()], expected)
    assert (np.sum(margins > -np.inf, axis=0) > 1).sum() > 5  # the overlaps were exercised
    outside = expected == -1
    assert outside.sum() == manifest["n_outside"] == 5
    assert np.all(table["flags"].to_numpy()[outside] & (int(Flags.MISSING_BAND) | MISSING_INPUT_FLAG))
    assert table["p_blended"][outside].isna().all() and (table["class"][outside] == "").all()
    assert table["p_blended"][~outside].notna().all() and table["images_used"][~outside].all()



def test_tiles_given_by_several_patterns_are_all_read(survey, tmp_path):
    """--tiles repeated, or patterns separated by commas, reads every pattern's files: an option
    given twice must not keep its last value alone."""
    folder = survey["folder"]
    whole = tmp_path / "whole.parquet"
    assert main(["predict", "--model", str(survey["model"]), "--catalog", str(survey["catalog"]), "--tiles", survey["tiles"],
                 "--out", str(whole), "--quiet"]) == 0
    first, rest = str(folder / "t00" / "tile-*.fits"), str(folder / "t0[1-9]" / "tile-*.fits")
    expected = pd.read_parquet(whole)
    for name, tiles in (("repeated", ["--tiles", first, "--tiles", rest]), ("commas", ["--tiles", f"{first},{rest}"])):
        out = tmp_path / f"{name}.parquet"
        assert main(["predict", "--model", str(survey["model"]), "--catalog", str(survey["catalog"]), *tiles,
                     "--out", str(out), "--quiet"]) == 0
        table = pd.read_parquet(out)
        assert table["images_used"].sum() == expected["images_used"].sum() > 0, name
        np.testing.assert_allclose(table["p_blended"], expected["p_blended"], err_msg=name)

def test_single_file_output_in_catalogue_order(survey, tmp_path):
    out = tmp_path / "pred.fits"
    assert main(["predict", "--model", str(survey["model"]), "--catalog", str(survey["catalog"]), "--tiles", survey["tiles"],
                 "--out", str(out), "--quiet"]) == 0
    with fits.open(out) as hdul:
        data = hdul[1].data
        meta = json.loads(hdul[1].header["SKYSORT"])
    assert list(data["id"]) == list(range(1000, 1000 + len(data)))
    assert meta["model"]["sha256"] == file_sha256(survey["model"]) and meta["provenance"]["software"]["skysort"]
    assert not any(p.name.startswith(".pred.fits") for p in tmp_path.iterdir())


def test_parquet_single_file_is_assembled_through_buckets_like_the_in_memory_table(survey, tmp_path):
    """Tile units interleave catalogue rows; the bucketed Parquet assembly (small buckets here,
    so each part spreads over many) gives the same rows, types and metadata as sorting the
    whole table in memory, and leaves no bucket files behind."""
    from skysort.data.catalog import write_catalog
    from skysort.inference.manifest import read_parts
    from skysort.inference.stream import _assemble_parquet

    manifest = predict_catalog(survey["model"], survey["catalog"], tmp_path / "run", RunOptions(tiles=survey["tiles"], memory_gb=0.3))
    parts = manifest.part_paths()
    rows = [pq.read_table(p).column("catalog_row").to_numpy() for p in parts]
    assert len(parts) > 1 and any(np.any(np.diff(r) != 1) for r in rows)  # the parts do interleave
    meta = {"model": manifest.content["model"], "mode": manifest.content["mode"]}
    bucketed = _assemble_parquet(parts, tmp_path / "bucketed.parquet", meta, bucket_rows=37)
    table = read_parts(parts)
    table = table[np.argsort(np.asarray(table["catalog_row"]), kind="stable")]
    table.meta.update(meta)
    in_memory = write_catalog(table, tmp_path / "in_memory.parquet")
    a, b = pq.read_table(bucketed), pq.read_table(in_memory)
    assert a.schema.remove_metadata() == b.schema.remove_metadata()
    assert a.num_rows == b.num_rows == manifest.content["n_sources"]
    for name in a.column_names:  # NaN-aware: Arrow's equals counts NaN as different from NaN
        x, y = a.column(name).to_numpy(zero_copy_only=False), b.column(name).to_numpy(zero_copy_only=False)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
    assert np.array_equal(a.column("catalog_row").to_numpy(), np.arange(a.num_rows))
    meta_a, meta_b = (json.loads(t.schema.metadata[b"skysort"]) for t in (a, b))
    assert meta_a.keys() == meta_b.keys() and meta_a["model"] == meta_b["model"]
    # Both record the width of each text column for astropy's reader, the longest value's.
    widths = {k: v for k, v in a.schema.metadata.items() if k.startswith(b"table::len::")}
    assert widths and widths == {k: v for k, v in b.schema.metadata.items() if k.startswith(b"table::len::")}
    for key, width in widths.items():
        assert int(width) == max(len(v) for v in a.column(key.decode()[len("table::len::"):]).to_pylist())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bucketed.parquet", "in_memory.parquet", "run"]


def _manifest_done(out: Path) -> bool:
    try:
        return json.loads((out / "manifest.json").read_text()).get("complete", False)
    except (OSError, ValueError):
        return False


def test_resume_after_kill_leaves_every_source_exactly_once(tmp_path):
    catalog, _ = make_survey(tmp_path, n_tiles=6, per_tile=700, shape=(160, 180), outside=3, seed=3)
    model = tiny_blend_model(tmp_path / "tiny.pt")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "skysort.cli", "predict", "--model", str(model), "--catalog", str(catalog),
            "--tiles", str(tmp_path / "t*" / "tile-*.fits"), "--out", f"{out}/", "--quiet", "--batch-size", "16",
            "--threads", "1", "--memory-gb", "0.5"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not list(out.glob("part-*.parquet")):
        time.sleep(0.01)
    assert process.poll() is None, process.stderr.read().decode()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not _manifest_done(out)  # killed mid-run
    first = len(list(out.glob("part-*.parquet")))
    assert main(["predict", "--model", str(model), "--catalog", str(catalog), "--tiles", str(tmp_path / "t*" / "tile-*.fits"),
                 "--out", f"{out}/", "--quiet", "--batch-size", "16", "--memory-gb", "0.5"]) == 0
    manifest, table = read_out(out)
    n = 6 * 700 + 3
    assert manifest["complete"] and len(table) == n and first < manifest["n_units"]
    assert table["id"].is_unique and sorted(table["id"]) == list(range(1000, 1000 + n))
    assert len(list(out.glob("part-*.parquet"))) == manifest["n_units"]


def test_part_renamed_but_not_recorded_is_adopted_not_duplicated(survey, tmp_path, monkeypatch):
    out = tmp_path / "out"
    options = RunOptions(tiles=survey["tiles"], batch_size=32)
    # Stop short of finishing (as a kill would): the shards stay for the rerun.
    monkeypatch.setattr(Manifest, "finish", lambda self: self.save())
    predict_catalog(survey["model"], survey["catalog"], out, options)
    monkeypatch.undo()
    manifest_path = out / "manifest.json"
    content = json.loads(manifest_path.read_text())
    n_units = content["n_units"]
    assert n_units >= 3
    # As if killed after renaming part 1 but before the manifest update; part 2 holds another
    # unit's rows (wrong unit in its metadata) and a temporary file was left behind.
    content["complete"] = False
    for index in (1, 2):
        content["units"][index].update(part=None, rows=None, sha256=None)
    manifest_path.write_text(json.dumps(content))
    kept = file_sha256(out / "part-00001.parquet")
    (out / "part-00002.parquet").write_bytes((out / "part-00000.parquet").read_bytes())
    (out / ".part-00003.parquet.x1y2.tmp").write_bytes(b"half written")
    manifest = predict_catalog(survey["model"], survey["catalog"], out, options)
    assert manifest.complete
    assert manifest.units[1]["sha256"] == kept  # adopted as it was
    _, table = read_out(out)
    assert table["id"].is_unique and len(table) == manifest.content["n_sources"]
    assert not list(out.glob(".part-*.tmp"))
    # A different model in the same folder is refused, not mixed in.
    other = tiny_blend_model(tmp_path / "other.pt", seed=5)
    with pytest.raises(InputError, match="different prediction run"):
        predict_catalog(other, survey["catalog"], out, options)


def _damage(path: Path) -> str:
    """Overwrite bytes in the middle of a file, keeping its size; returns the new SHA-256."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))
    return file_sha256(path)


def _part_frame(path: Path):
    return pq.read_table(path).replace_schema_metadata(None).to_pandas()


def test_damaged_part_of_a_finished_stamp_set_run_is_recomputed(survey, tmp_path):
    """A recorded part altered after the run (same size, other bytes) is found by its SHA-256 on
    the rerun, deleted and computed again; the other parts are left as they are."""
    from skysort.data.stampset import StampMeta, write_stampset
    from skysort.inference.stream import predict_stampset_parts

    rng = np.random.default_rng(4)
    n = 2100  # three parts: 1000 rows each (the least) under a tiny memory setting
    images = rng.normal(0, 2, (n, 1, STAMP, STAMP)).astype(np.float32)
    images[:, 0, STAMP // 2, STAMP // 2] += rng.uniform(5, 200, n).astype(np.float32)
    meta = StampMeta.with_provenance(command="pytest", bands=("r",), pixel_scale=SCALE, flux_unit="nanomaggy",
                                     zero_points={"r": 22.5}, psf_fwhm={"r": 1.0}, survey="test", seed=0)
    write_stampset(tmp_path / "s.h5", images, {"id": np.arange(n, dtype=np.int64)}, meta).close()
    out = tmp_path / "parts"
    first = predict_stampset_parts(survey["model"], tmp_path / "s.h5", out, RunOptions(batch_size=256, memory_gb=0.01))
    assert first.complete and first.content["n_units"] == 3
    original = _part_frame(out / "part-00001.parquet")
    untouched = {i: (out / f"part-0000{i}.parquet").stat().st_mtime_ns for i in (0, 2)}
    damaged = _damage(out / "part-00001.parquet")
    assert damaged != first.units[1]["sha256"]
    again = predict_stampset_parts(survey["model"], tmp_path / "s.h5", out, RunOptions(batch_size=256, memory_gb=0.01))
    assert again.complete and again.content["rows_written"] == n
    recomputed = file_sha256(out / "part-00001.parquet")
    assert recomputed != damaged and again.units[1]["sha256"] == recomputed
    assert json.loads((out / "manifest.json").read_text())["units"][1]["sha256"] == recomputed
    frame = _part_frame(out / "part-00001.parquet")
    assert list(frame.columns) == list(original.columns) and len(frame) == len(original) == 1000
    for column in original.columns:
        x, y = original[column].to_numpy(), frame[column].to_numpy()
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), column
    assert {i: (out / f"part-0000{i}.parquet").stat().st_mtime_ns for i in (0, 2)} == untouched


def test_damaged_or_deleted_part_of_a_finished_catalogue_run_is_recomputed(survey, tmp_path):
    """A finished run has removed its shards: a damaged or deleted part is recomputed from the
    catalogue planned again, into the same unit, with the same rows and predictions."""
    out = tmp_path / "out"
    options = RunOptions(tiles=survey["tiles"], batch_size=32)
    first = predict_catalog(survey["model"], survey["catalog"], out, options)
    assert first.complete and first.content["n_units"] >= 3 and not (out / "_shards").exists()
    _, original = read_out(out)
    _damage(out / "part-00000.parquet")
    (out / "part-00002.parquet").unlink()
    # A later run's memory setting does not move the recorded units.
    again = predict_catalog(survey["model"], survey["catalog"], out, RunOptions(tiles=survey["tiles"], batch_size=32, memory_gb=0.3))
    assert again.complete and not (out / "_shards").exists()
    assert [u["refs"] for u in again.units] == [u["refs"] for u in first.units]
    assert all(u["sha256"] == file_sha256(out / u["part"]) for u in again.units)
    _, table = read_out(out)
    assert list(table.columns) == list(original.columns) and len(table) == len(original)
    for column in original.columns:
        x, y = original[column].to_numpy(), table[column].to_numpy()
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), column


def test_rows_without_a_sky_position_are_reported_once_and_kept_out_of_tiles(survey, tmp_path, capsys):
    """NaN ra and |dec| > 90 give one warning with their number; they are written as sources in
    no tile (a dec of 95 is not folded over the pole onto a tile) and the other rows are
    predicted as before. A finite ra beyond 360 wraps."""
    import pyarrow as pa

    table = pq.read_table(survey["catalog"])
    ra, dec = table.column("ra").to_numpy().copy(), table.column("dec").to_numpy().copy()
    ra[3], dec[7], ra[11] = np.nan, 95.0, ra[11] + 360.0
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.set_column(1, "ra", pa.array(ra)).set_column(2, "dec", pa.array(dec)), bad)
    reference = tmp_path / "reference"
    predict_catalog(survey["model"], survey["catalog"], reference, RunOptions(tiles=survey["tiles"]))
    out = tmp_path / "out"
    argv = ["predict", "--model", str(survey["model"]), "--catalog", str(bad), "--tiles", survey["tiles"], "--out", f"{out}/",
            "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "sky position" in line]
    assert len(lines) == 1 and lines[0].startswith("skysort: warning: ") and str(bad) in lines[0], err
    assert f"2 of {len(ra):,} rows have no valid sky position" in lines[0] and "|dec| > 90" in lines[0]
    manifest, got = read_out(out)
    _, expected = read_out(reference)
    assert manifest["n_invalid_positions"] == 2 and manifest["n_outside"] == 5 + 2
    assert len(got) == len(expected) == len(ra) and list(got["id"]) == list(expected["id"])
    invalid = np.isin(got["catalog_row"].to_numpy(), [3, 7])
    assert not got.loc[invalid, "images_used"].any() and got.loc[invalid, "p_blended"].isna().all()
    assert np.all(got.loc[invalid, "flags"].to_numpy() & MISSING_INPUT_FLAG)
    assert got.loc[got["catalog_row"] == 11, "images_used"].all()  # ra + 360: the same place
    same = ~invalid
    for column in ("flags", "images_used"):
        assert np.array_equal(expected.loc[same, column].to_numpy(), got.loc[same, column].to_numpy()), column
    for column in ("p_isolated", "p_blended"):  # batches hold other rows: float rounding differs
        assert np.allclose(expected.loc[same, column].to_numpy(), got.loc[same, column].to_numpy(), atol=1e-5, equal_nan=True)
    # The rerun of the finished run says it again (once).
    assert main(argv) == 0
    assert capsys.readouterr().err.count("no valid sky position") == 1


def test_a_dec_beyond_the_pole_is_on_no_tile():
    """dec 95 at ra 150 would fold onto dec 85 at ra 330 (unit vectors, WCS): it is no position."""
    from skysort.inference.stream import TileIndex, TileInfo

    tile = TileInfo(key="polar", files={"r": "polar.fits"}, shape=(120, 140), wcs=tile_wcs(330.0, 85.0, (120, 140)),
                    pixel_scale=SCALE)
    owners = TileIndex([tile]).owners(np.array([330.0, 150.0, -30.0, np.nan, 330.0]), np.array([85.0, 95.0, 85.0, 85.0, np.inf]))
    assert owners.tolist() == [0, -1, 0, -1, -1]


def test_dask_local_two_workers_equals_single_process(survey, tmp_path):
    pytest.importorskip("distributed")
    local = predict_catalog(survey["model"], survey["catalog"], tmp_path / "local", RunOptions(tiles=survey["tiles"], batch_size=32))
    distributed = predict_catalog(survey["model"], survey["catalog"], tmp_path / "dask",
                                  RunOptions(tiles=survey["tiles"], batch_size=32, dask="local:2"))
    assert local.complete and distributed.complete
    _, a = read_out(tmp_path / "local")
    _, b = read_out(tmp_path / "dask")
    assert len(a) == len(b) == local.content["n_sources"]
    for column in ("id", "catalog_row", "flags", "class", "images_used", "n_sources"):
        assert np.array_equal(a[column].to_numpy(), b[column].to_numpy()), column
    for column in ("p_isolated", "p_blended", "ra", "dec"):
        assert np.allclose(a[column].to_numpy(), b[column].to_numpy(), atol=1e-5, equal_nan=True), column


def test_photometry_only_refused_for_image_models_and_flagged_otherwise(survey, tmp_path, capsys):
    code = main(["predict", "--model", str(survey["model"]), "--catalog", str(survey["catalog"]), "--out", str(tmp_path / "p.parquet"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "needs image stamps" in err
    (tmp_path / "m.pt").write_bytes(b"tiny")
    predictor = TinyPredictor(tmp_path / "m.pt", image_bands=("r",), photometry_bands=("r",), photometry_only=True)
    manifest = predict_catalog("tiny", survey["catalog"], tmp_path / "phot", RunOptions(), predictor=predictor)
    assert manifest.content["options"]["images_available"] is False and manifest.content["mode"] == "photometry"
    _, table = read_out(tmp_path / "phot")
    assert len(table) == manifest.content["n_sources"] and not table["images_used"].any()
    assert np.all(table["flags"].to_numpy() & MISSING_INPUT_FLAG)
    assert table[["p_star", "p_galaxy", "p_qso"]].notna().all().all()
    mags = pq.read_table(survey["catalog"]).column("mag_r").to_numpy()[table["catalog_row"].to_numpy(), None]
    expected = predictor.predict({"mag": mags.astype(np.float32)}, images_available=False)["probabilities"]
    assert np.allclose(table[["p_star", "p_galaxy", "p_qso"]].to_numpy(), expected, atol=1e-6)


def test_catalogue_of_positions_is_classified_from_images_alone(survey, tmp_path):
    """A model of images and photometry given tiles and a catalogue with none of its magnitudes
    classifies from the images, flags every row, and leaves rows outside every tile unpredicted."""
    (tmp_path / "m.pt").write_bytes(b"tiny")
    predictor = TinyPredictor(tmp_path / "m.pt", image_bands=("r",), photometry_bands=("u", "g"), photometry_only=True)
    warnings = []
    manifest = predict_catalog("tiny", survey["catalog"], tmp_path / "out", RunOptions(tiles=survey["tiles"]), predictor=predictor,
                               warn=lambda where, message: warnings.append(message))
    assert manifest.complete and len(warnings) == 1 and "from the images alone" in warnings[0]
    _, table = read_out(tmp_path / "out")
    flags = table["flags"].to_numpy()
    assert np.all(flags & MISSING_INPUT_FLAG) and np.all(flags & int(Flags.MISSING_PHOTOMETRY))
    inside = table["images_used"].to_numpy()
    assert inside.sum() > 100 and (~inside).sum() == 5  # the five sources beyond every tile
    assert table.loc[inside, ["p_star", "p_galaxy", "p_qso"]].notna().all().all()
    assert table.loc[~inside, ["p_star", "p_galaxy", "p_qso"]].isna().all().all()
    # A catalogue with some of the bands is a mapping problem, not a catalogue of positions.
    partial = TinyPredictor(tmp_path / "m.pt", image_bands=("r",), photometry_bands=("r", "g"), photometry_only=True)
    with pytest.raises(InputError, match="mag_g"):
        predict_catalog("tiny", survey["catalog"], tmp_path / "out2", RunOptions(tiles=survey["tiles"]), predictor=partial)


@pytest.mark.parametrize("case", ["no tiles match", "no positions", "both inputs", "tiles without catalogue"])
def test_bad_inputs_give_one_line_errors(survey, tmp_path, capsys, case):
    import pyarrow as pa

    catalog = str(survey["catalog"])
    tiles = survey["tiles"]
    if case == "no tiles match":
        tiles = str(tmp_path / "nothing" / "*.fits")
    if case == "no positions":
        catalog = str(tmp_path / "nopos.parquet")
        pq.write_table(pa.table({"id": [1, 2], "mag_r": [20.0, 21.0]}), catalog)
    argv = ["predict", "--model", str(survey["model"]), "--out", f"{tmp_path / 'o'}/", "--quiet"]
    if case != "tiles without catalogue":
        argv += ["--catalog", catalog]
    argv += ["--tiles", tiles]
    if case == "both inputs":
        argv += ["--data", str(tmp_path / "s.h5")]
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("skysort: error: "), err
    fragment = {"no tiles match": "no tile file matches", "no positions": "no position columns",
                "both inputs": "exactly one of", "tiles without catalogue": "needs --catalog"}[case]
    assert fragment in lines[0]


def test_stamp_set_to_file_and_to_parts_agree(survey, tmp_path):
    from skysort.data.catalog import read_catalog
    from skysort.data.ingest import cutout

    # The survey catalogue spans several tiles; the objects beyond this one are kept and counted.
    with pytest.warns(UserWarning, match="of its 40 objects lie wholly off the images"):
        stamps = cutout(str(survey["folder"] / "t00" / "tile-*.fits"), read_catalog(survey["catalog"]).copy()[:40],
                        tmp_path / "s.h5", size=STAMP)
    assert main(["predict", "--model", str(survey["model"]), "--data", str(tmp_path / "s.h5"), "--out", str(tmp_path / "p.parquet"),
                 "--quiet"]) == 0
    assert main(["predict", "--model", str(survey["model"]), "--data", str(tmp_path / "s.h5"), "--out", f"{tmp_path / 'parts'}/",
                 "--quiet"]) == 0
    whole = pq.read_table(tmp_path / "p.parquet").to_pandas()
    manifest = json.loads((tmp_path / "parts" / "manifest.json").read_text())
    parts = pq.read_table(tmp_path / "parts" / manifest["units"][0]["part"]).to_pandas()
    assert len(whole) == len(parts) == len(stamps) and manifest["complete"]
    assert np.allclose(whole["p_blended"], parts["p_blended"], equal_nan=True) and list(whole["id"]) == list(parts["id"])
    # The objects wholly off the images have no pixel to be classified from.
    off = np.isnan(whole["p_blended"])
    assert off.any() and (whole["class"][off] == "").all() and (whole["class"][~off] != "").all()
    meta = json.loads(pq.read_schema(tmp_path / "p.parquet").metadata[b"skysort"])
    assert meta["model"]["sha256"] == file_sha256(survey["model"])


def test_memory_setting_bounds_batches_queue_tiles_and_parts():
    stamp = 5 * 64 * 64 * 4
    tile = 5 * 2048 * 1489 * 4
    plans = [memory_plan(gb, stamp_bytes=stamp, tile_bytes=tile, batch_size=4096) for gb in (1.0, 2.0, 4.0, 16.0)]
    for plan in plans:
        budget = (plan.memory_gb - 0.75) * 2**30
        assert plan.stamps_in_flight * stamp <= 0.3 * budget + stamp * plan.batch_size
        assert plan.tile_cache_tiles == 1 or plan.tile_cache_tiles * tile <= 0.4 * budget
        assert plan.catalog_chunk_rows * 512 <= 0.15 * budget or plan.catalog_chunk_rows == 10_000
    assert [p.batch_size for p in plans] == sorted(p.batch_size for p in plans) and plans[0].batch_size < 4096
    assert plans[0].rows_per_part < plans[-1].rows_per_part
    # Carried catalogue columns (--keep) make rows larger: fewer of them per chunk and part.
    wide = memory_plan(4.0, stamp_bytes=stamp, tile_bytes=tile, batch_size=4096, carried_columns=20)
    assert wide.catalog_chunk_rows < plans[2].catalog_chunk_rows and wide.rows_per_part < plans[2].rows_per_part
    assert wide.catalog_chunk_rows * (512 + 20 * 64) <= 0.15 * (4.0 - 0.75) * 2**30
    # Shared among processes: each gets less.
    assert memory_plan(4.0, stamp_bytes=stamp, tile_bytes=tile, processes=4).tile_cache_tiles < plans[2].tile_cache_tiles
    with pytest.raises(InputError, match="--memory-gb"):
        memory_plan(0, stamp_bytes=stamp)
    # The producer never runs more than the queue bound ahead of a slow consumer.
    produced = []

    def items():
        for i in range(40):
            produced.append(i)
            yield i

    ahead = []
    for i in _in_thread(items(), maxsize=3):
        time.sleep(0.002)
        ahead.append(len(produced) - i - 1)
    assert max(ahead) <= 3 + 1 and len(produced) == 40


def test_memory_setting_reaches_the_run(survey, tmp_path):
    manifest = predict_catalog(survey["model"], survey["catalog"], tmp_path / "o", RunOptions(tiles=survey["tiles"], memory_gb=0.3,
                                                                                              batch_size=100000))
    plan = memory_plan(0.3, stamp_bytes=4 * STAMP * STAMP, tile_bytes=4 * 120 * 140, batch_size=100000)
    assert manifest.content["options"]["batch_size"] == plan.batch_size < 100000
    assert manifest.content["options"]["rows_per_part"] == plan.rows_per_part


@pytest.mark.parametrize("fmt", ["csv", "fits"])
def test_csv_and_fits_catalogues_and_cutting_processes_give_the_same_rows(survey, tmp_path, fmt):
    from astropy.table import Table

    reference = predict_catalog(survey["model"], survey["catalog"], tmp_path / "ref", RunOptions(tiles=survey["tiles"]))
    table = Table.read(survey["catalog"])
    table.rename_column("ra", "RAJ2000")  # found by the automatic mapping
    other = tmp_path / f"cat.{fmt}"
    table.write(other, format="ascii.csv" if fmt == "csv" else "fits")
    # Cutting in a worker process instead of a thread must not change anything either.
    run = predict_catalog(survey["model"], other, tmp_path / "other", RunOptions(tiles=survey["tiles"], workers=1))
    assert reference.complete and run.complete
    _, a = read_out(tmp_path / "ref")
    _, b = read_out(tmp_path / "other")
    assert np.array_equal(a["id"].to_numpy(), b["id"].to_numpy())
    assert np.array_equal(a["flags"].to_numpy(), b["flags"].to_numpy())
    assert np.allclose(a["p_blended"].to_numpy(), b["p_blended"].to_numpy(), atol=1e-6, equal_nan=True)


def test_parquet_catalogue_chunks_cover_every_row_once_within_the_chunk_size(tmp_path):
    """Row groups smaller and larger than a chunk: every row once, in order, no chunk too big,
    and pyarrow's allocations do not grow with the rows already read."""
    import pyarrow as pa

    from skysort.inference.stream import CatalogStream

    path = tmp_path / "cat.parquet"
    sizes = [300] * 40 + [2500] + [700] * 10
    schema = pa.schema([("id", pa.int64()), ("ra", pa.float64()), ("dec", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        start = 0
        for size in sizes:
            ids = np.arange(start, start + size)
            writer.write_table(pa.table({"id": ids, "ra": 10 + ids * 1e-5, "dec": -ids * 1e-5}, schema=schema))
            start += size
    stream = CatalogStream(path)
    # pyarrow's count is the process's: tables of earlier tests awaiting garbage collection
    # would count as this stream's.
    gc.collect()
    before = pa.total_allocated_bytes()
    seen, allocated = [], []
    for first, columns in stream.chunks(1000):
        assert len(columns["id"]) <= 1000
        assert columns["id"][0] == first
        seen.append(columns["id"])
        allocated.append(pa.total_allocated_bytes() - before)
    assert np.array_equal(np.concatenate(seen), np.arange(sum(sizes)))
    # After the last chunk pyarrow holds about one chunk (1,000 rows x 3 columns x 8 bytes);
    # reading by ``iter_batches`` across row groups held over 20 times that here, growing.
    assert allocated[-1] <= 3 * 1000 * 3 * 8


def test_csv_catalogue_is_streamed_in_chunks_with_the_values_astropy_reads(tmp_path, monkeypatch):
    """Plain CSV is parsed block by block: integer-looking first blocks, empty fields and
    padded header names read as astropy reads them; every row once, chunks bounded."""
    from astropy.table import Table

    from skysort.inference import stream as stream_module
    from skysort.inference.stream import CatalogStream

    monkeypatch.setattr(stream_module, "CSV_BLOCK_BYTES", 512)  # many parser blocks
    rows = ["id, ra ,dec,mag_r,magerr_r,class"]  # class: a text label column, found by the automatic mapping
    for i in range(3000):
        mag = "20" if i < 400 else ("" if i % 97 == 0 else f"{20 + (i % 50) / 10:.2f}")
        rows.append(f"{i},{10 + i * 1e-4:.6f},{-5 - i * 1e-4:.6f},{mag},{'0.1' if mag else ''},{'star' if i % 2 else 'galaxy'}")
    path = tmp_path / "cat.csv"
    path.write_text("\n".join(rows) + "\n")
    reference = Table.read(path, format="ascii.csv")
    stream = CatalogStream(path, bands=["r"])
    assert stream.n_rows == 3000 and stream.columns.sources["label"] == "class"
    seen = {"id": [], "ra": [], "mag_r": []}
    for first, columns in stream.chunks(700):
        assert len(columns["id"]) <= 700 and columns["id"][0] == first
        for key in seen:
            seen[key].append(columns[key])
    assert np.array_equal(np.concatenate(seen["id"]), np.arange(3000))
    assert np.allclose(np.concatenate(seen["ra"]), reference["ra"])
    expected = np.ma.filled(reference["mag_r"].astype(float), np.nan).astype(np.float32)
    assert np.array_equal(np.concatenate(seen["mag_r"]), expected, equal_nan=True)
    assert np.isnan(expected).sum() == len([i for i in range(400, 3000) if i % 97 == 0])


@pytest.mark.parametrize("content, fragment", [
    ("ra,dec,mag_r\n" + "1,2,20\n" * 2000 + "3,4,bright\n", "column 'mag_r' is not numeric (invalid value 'bright')"),
    ("ra,dec,mag_r\n1,2,20\n3,4,5,6\n", "cannot read as CSV: "),
    ("", "catalogue file is empty"),
    ("ra,dec,mag_r\n", "catalogue has no rows"),
])
def test_csv_catalogue_problems_name_the_file(tmp_path, content, fragment):
    from skysort.inference.stream import CatalogStream

    path = tmp_path / "cat.csv"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        stream = CatalogStream(path, bands=["r"])
        for _ in stream.chunks(100):
            pass
    assert info.value.where == str(path) and fragment in info.value.problem, info.value.problem


def test_prediction_does_not_import_lightning():
    # Lightning is for training; importing it would add seconds to every prediction process
    # (and every Dask worker) for nothing.
    code = ("import sys\nfrom skysort.inference.predictor import load_predictor\n"
            "for name in ('sgq-kids', 'pointsource-sdss', 'blend-cfis'):\n    load_predictor(name, device='cpu')\n"
            "import skysort.cli, skysort.inference.stream, skysort.inference.distributed\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_folder_of_parquet_files_is_one_catalogue(tmp_path, capsys):
    # Dask, Spark and survey butlers write a catalogue as a folder of Parquet files. Before, such
    # a folder was refused ("is a folder, not a catalogue file").
    from skysort.data.catalog import read_catalog

    catalog, _ = make_survey(tmp_path)
    model = tiny_blend_model(tmp_path / "tiny.pt")
    tiles = str(tmp_path / "t*" / "tile-*.fits")
    table = pq.read_table(catalog)
    folder = tmp_path / "cat_folder"
    (folder / "tract=2").mkdir(parents=True)
    pq.write_table(table.slice(0, 70), folder / "part-0.parquet", row_group_size=25)
    pq.write_table(table.slice(70), folder / "tract=2" / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / "_metadata").write_bytes(b"not read")
    options = RunOptions(tiles=tiles, batch_size=32)
    predict_catalog(model, catalog, tmp_path / "one", options)
    predict_catalog(model, folder, tmp_path / "many", options)
    _, expected = read_out(tmp_path / "one")
    _, got = read_out(tmp_path / "many")
    assert len(got) == table.num_rows
    for column in ("id", "flags", "images_used", "catalog_row"):
        assert np.array_equal(got[column].to_numpy(), expected[column].to_numpy()), column
    assert np.allclose(got["p_blended"], expected["p_blended"], equal_nan=True)
    assert list(read_catalog(folder)["id"]) == table.column("id").to_pylist()
    # A file added to the folder is noticed when the run is resumed.
    pq.write_table(table.slice(0, 3), folder / "part-2.parquet")
    with pytest.raises(InputError, match="different prediction run"):
        predict_catalog(model, folder, tmp_path / "many", options)
    # One catalogue has one set of columns; the output may not go inside the input folder.
    pq.write_table(table.drop_columns(["ra"]), folder / "part-2.parquet")
    code = main(["predict", "--model", str(model), "--catalog", str(folder), "--tiles", tiles, "--out",
                 str(tmp_path / "bad") + "/", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "part-2.parquet: lacks column(s) ra of part-0.parquet" in err, err
    assert not (tmp_path / "bad").exists()
    code = main(["predict", "--model", str(model), "--catalog", str(folder), "--tiles", tiles, "--out",
                 str(folder / "pred.parquet"), "--quiet"])
    assert code == 2 and "an input folder of this command" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["predict", "--model", "sgq-sdss", "--catalog", str(empty), "--out", str(tmp_path / "e.parquet"), "--quiet"])
    assert code == 2 and "folder without Parquet files" in capsys.readouterr().err


def test_two_tiles_on_the_same_pixels_are_refused(tmp_path):
    """A --tiles pattern that also matches the weight maps (KiDS *_wei.fits beside *_sci.fits)
    gave a second tile on the science tile's pixels; which one an object was cut from was a
    tie broken by file name."""
    from skysort.inference.stream import scan_tiles

    make_survey(tmp_path, n_tiles=2, per_tile=5)
    for folder in ("t00", "t01"):
        assert len(scan_tiles(str(tmp_path / folder / "tile-*.fits"), ["r"], "r")) == 1
    weights = fits.open(tmp_path / "t01" / "tile-r.fits")
    weights[0].data = np.ones_like(weights[0].data)
    weights.writeto(tmp_path / "t01" / "tile-r.weight.fits")
    assert len(scan_tiles(str(tmp_path / "t0*" / "tile-r.fits"), ["r"], "r")) == 2  # neighbours overlap, no grid shared
    with pytest.raises(InputError, match="covers the same pixels as .*tile-r.fits: give only the science images"):
        scan_tiles(str(tmp_path / "t0*" / "tile-r*.fits"), ["r"], "r")


def test_bands_with_different_tpv_distortions_are_not_one_grid():
    """astropy folds SCAMP's TPV polynomial (DECam, MegaCam) into the projection, where neither
    has_distortion nor the PV keywords show it: two bands with equal CRVAL, CRPIX and CD but
    different TPV terms were taken as one grid and cut without resampling."""
    from types import SimpleNamespace

    from skysort.data.images import celestial_wcs
    from skysort.inference.stream import same_pixel_grid

    def band(scale_term):
        header = fits.Header({"NAXIS": 2, "NAXIS1": 100, "NAXIS2": 80, "CTYPE1": "RA---TPV", "CTYPE2": "DEC--TPV",
                              "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 50.0, "CRPIX2": 40.0, "CD1_1": -7.3e-5, "CD1_2": 0.0,
                              "CD2_1": 0.0, "CD2_2": 7.3e-5, "PV1_0": 0.0, "PV1_1": scale_term, "PV1_4": 0.0,
                              "PV2_0": 0.0, "PV2_1": scale_term, "PV2_4": 0.0})
        return SimpleNamespace(shape=(80, 100), wcs=celestial_wcs(header, "tile.fits"))

    assert same_pixel_grid(band(1.0), band(1.0))
    assert not same_pixel_grid(band(1.0), band(1.0 + 1e-4))  # 0.005 px at the corners
    assert not same_pixel_grid(band(1.0), SimpleNamespace(shape=(80, 99), wcs=band(1.0).wcs))


def test_kept_catalogue_columns_travel_with_their_sources_through_tiles_parts_and_dask(survey, tmp_path):
    """--keep: catalogue columns reach each source's output row as they are (values, empty cells,
    integer and text types, units), whichever tile and part the source went through."""
    pytest.importorskip("distributed")
    from astropy.table import MaskedColumn, Table

    base = Table.read(survey["catalog"])
    n = len(base)
    rng = np.random.default_rng(5)
    base["FLAGS"] = MaskedColumn(rng.integers(0, 8, n).astype(np.int16), mask=np.arange(n) % 11 == 0)
    base["note"] = MaskedColumn([f"obj{i}" for i in range(n)], mask=np.arange(n) % 13 == 0)
    base["size"] = rng.uniform(0.5, 3.0, n) * u_arcsec()
    catalog = tmp_path / "cat.parquet"
    base.write(catalog)  # astropy's Parquet: masks in 'FLAGS.mask' and 'note.mask' columns
    keep = "sex_flags=FLAGS,note,size"
    predict_catalog(survey["model"], catalog, tmp_path / "local", RunOptions(tiles=survey["tiles"], batch_size=32, keep=keep))
    predict_catalog(survey["model"], catalog, tmp_path / "dask",
                    RunOptions(tiles=survey["tiles"], batch_size=32, keep=keep, dask="local:2"))
    for folder in ("local", "dask"):
        manifest, table = read_out(tmp_path / folder)
        rows = table["catalog_row"].to_numpy()
        assert len(table) == n and len(manifest["units"]) > 1
        for name, source in (("sex_flags", "FLAGS"), ("note", "note")):
            empty = np.asarray(base[source].mask)[rows]
            assert np.array_equal(table[name].isna().to_numpy(), empty), name
            assert np.array_equal(table[name][~empty].to_numpy(), np.asarray(base[source].data)[rows][~empty]), name
        assert np.allclose(table["size"].to_numpy(), np.asarray(base["size"])[rows])
        assert np.array_equal(table["id"].to_numpy(), np.asarray(base["id"])[rows])
    part = pq.read_table(tmp_path / "local" / json.loads((tmp_path / "local" / "manifest.json").read_text())["units"][0]["part"])
    assert json.loads(part.schema.metadata[b"skysort"])["units"]["size"] == "arcsec"
    assert str(part.schema.field("sex_flags").type) == "int16"  # integers with empty cells stay integers
    # One table, in catalogue order, as FITS: the same values; empty cells stay empty.
    assert main(["predict", "--model", str(survey["model"]), "--catalog", str(catalog), "--tiles", survey["tiles"],
                 "--keep", keep, "--out", str(tmp_path / "one.fits"), "--quiet"]) == 0
    one = Table.read(tmp_path / "one.fits")
    assert np.array_equal(np.asarray(one["catalog_row"]), np.arange(n))
    assert np.array_equal(np.ma.getmaskarray(one["sex_flags"]), np.asarray(base["FLAGS"].mask))
    assert np.array_equal(np.ma.getmaskarray(one["note"]), np.asarray(base["note"].mask))
    assert one["size"].unit == "arcsec" and np.allclose(one["size"], base["size"])


def u_arcsec():
    from astropy import units as u

    return u.arcsec


def test_kept_text_catalogue_columns_keep_one_type_across_parser_blocks(tmp_path, monkeypatch):
    """A CSV column of integers that turns decimal after the first parser block is carried as
    numbers, dates as text, blank text cells as empty cells."""
    from skysort.inference import stream as stream_module

    monkeypatch.setattr(stream_module, "CSV_BLOCK_BYTES", 512)
    rows = ["id,ra,dec,mag_r,magerr_r,area,seen,comment"]
    for i in range(600):
        area = str(i) if i < 400 else f"{i}.5"
        rows.append(f"{i},{10 + i * 1e-4:.6f},-5,{20 + (i % 30) / 10:.2f},0.05,{area},2021-03-{1 + i % 28:02d},"
                    f"{'' if i % 9 == 0 else ' ' if i % 9 == 1 else f'c{i}'}")
    path = tmp_path / "cat.csv"
    path.write_text("\n".join(rows) + "\n")
    (tmp_path / "m.pt").write_bytes(b"tiny")
    predictor = TinyPredictor(tmp_path / "m.pt", image_bands=(), photometry_bands=("r",))
    predict_catalog("tiny", path, tmp_path / "out", RunOptions(keep=["area", "seen", "comment"]), predictor=predictor)
    _, table = read_out(tmp_path / "out")
    assert len(table) == 600
    assert np.allclose(table["area"].to_numpy(), [i if i < 400 else i + 0.5 for i in range(600)])
    assert table["seen"].iloc[33] == "2021-03-06"
    empty = np.array([i % 9 in (0, 1) for i in range(600)])
    assert np.array_equal(table["comment"].isna().to_numpy(), empty)
    assert table["comment"].iloc[2] == "c2"


@pytest.mark.parametrize("keep, fragment", [
    ("NOTE", "--keep names column 'NOTE', which the catalogue does not have (did you mean 'note'?)"),
    ("FLAGS=note", "output column 'FLAGS' would repeat the prediction's column 'flags': give it another name, "
                   "e.g. --keep cat_FLAGS=note"),
    ("note,note", "output column 'note' would repeat the carried column 'note'"),
    ("vec", "column 'vec' holds several values per row"),
    ("note,", "an empty column name"),
])
def test_keep_problems_give_one_line_errors_and_leave_nothing(survey, tmp_path, capsys, keep, fragment):
    import pyarrow as pa

    table = pq.read_table(survey["catalog"])
    n = table.num_rows
    table = table.append_column("note", pa.array([f"n{i}" for i in range(n)]))
    table = table.append_column("vec", pa.array([[1.0, 2.0]] * n))
    catalog = tmp_path / "cat.parquet"
    pq.write_table(table, catalog)
    code = main(["predict", "--model", str(survey["model"]), "--catalog", str(catalog), "--tiles", survey["tiles"],
                 "--out", str(tmp_path / "p.parquet"), "--keep", keep, "--quiet"])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip() and "warning" not in line]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.parquet"]


def test_kept_stamp_set_columns_reach_file_and_parts_outputs(survey, tmp_path, capsys):
    """--keep with a stamp set copies its table's columns, row for row, to one table and to parts;
    a name the prediction already writes is refused before any stamp is classified."""
    from skysort.data.catalog import read_catalog
    from skysort.data.ingest import cutout
    from skysort.data.stampset import StampSet

    with pytest.warns(UserWarning, match="lie wholly off the images"):
        cutout(str(survey["folder"] / "t00" / "tile-*.fits"), read_catalog(survey["catalog"]).copy()[:40], tmp_path / "s.h5",
               size=STAMP)
    stamps = StampSet.open(tmp_path / "s.h5")
    argv = ["predict", "--model", str(survey["model"]), "--data", str(tmp_path / "s.h5"), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "p.fits"), "--keep", "cut_flags=flags,x,mag_r"]) == 0
    assert main([*argv, "--out", f"{tmp_path / 'parts'}/", "--keep", "cut_flags=flags,x,mag_r"]) == 0
    from astropy.table import Table

    whole = Table.read(tmp_path / "p.fits")
    manifest = json.loads((tmp_path / "parts" / "manifest.json").read_text())
    parts = pq.read_table(tmp_path / "parts" / manifest["units"][0]["part"]).to_pandas()
    for name, source in (("cut_flags", "flags"), ("x", "x"), ("mag_r", "mag_r")):
        assert np.array_equal(np.asarray(whole[name]), stamps.column(source), equal_nan=True), name
        assert np.array_equal(parts[name].to_numpy(), stamps.column(source), equal_nan=True), name
    assert whole["x"].unit == stamps.column_unit("x")
    code = main([*argv, "--out", str(tmp_path / "q.parquet"), "--keep", "flags"])
    err = capsys.readouterr().err
    assert code == 2 and "output column 'flags' would repeat the prediction's column 'flags'" in err
    assert not (tmp_path / "q.parquet").exists()
