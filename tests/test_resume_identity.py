"""Resuming a prediction run checks that its tiles are the ones it was planned on: a tile
replaced by another of the same size (a re-reduced image, a newer data release, another band's
file renamed) is told by its header, read without its pixels; a manifest that records no header
digests resumes on path and size as before."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skysort.cli import main
from skysort.inference.manifest import Manifest

from test_cli import assert_one_line_error, run
from test_inference_stream import make_survey, read_out, tiny_blend_model

N_TILES, PER_TILE, OUTSIDE = 3, 30, 2


class Stop(BaseException):
    """Ends a run as a kill would, after its first part is recorded."""


@pytest.fixture
def survey(tmp_path):
    folder = tmp_path / "survey"
    catalog, _ = make_survey(folder, n_tiles=N_TILES, per_tile=PER_TILE, outside=OUTSIDE)
    model = tiny_blend_model(folder / "tiny.pt")
    out = tmp_path / "out"
    return {"folder": folder, "out": out, "argv": predict_argv(model, catalog, folder, out)}


def predict_argv(model: Path, catalog: Path, folder: Path, out: Path) -> list[str]:
    return [str(a) for a in ["predict", "--model", model, "--catalog", catalog, "--tiles", folder / "t*" / "tile-*.fits",
                             "--out", f"{out}/", "--quiet", "--batch-size", 8]]


def interrupted_run(survey, monkeypatch) -> dict:
    """Run until the first part is recorded, then stop; returns the manifest left on disk."""
    record = Manifest.record

    def record_then_stop(self, *args, **kwargs):
        record(self, *args, **kwargs)
        self.save()
        raise Stop

    with monkeypatch.context() as patch:
        patch.setattr(Manifest, "record", record_then_stop)
        with pytest.raises(Stop):
            main(survey["argv"])
    manifest = json.loads((survey["out"] / "manifest.json").read_text())
    finished = [u for u in manifest["units"] if u["part"]]
    assert len(finished) == 1 and manifest["n_units"] > 2 and not manifest["complete"]
    return manifest


def rewrite_tile(path: Path, *, pixels_offset: float = 0.0, cards: dict | None = None, checksum: bool = False) -> None:
    """Write ``path`` again with its pixels shifted and header cards set, keeping its size."""
    size = path.stat().st_size
    with fits.open(path) as hdul:
        data, header = hdul[0].data + np.float32(pixels_offset), hdul[0].header.copy()
    header.update(cards or {})
    fits.PrimaryHDU(data, header).writeto(path, overwrite=True, checksum=checksum)
    assert path.stat().st_size == size  # the case path and size alone cannot tell


def assert_every_source_once(out: Path) -> dict:
    manifest, table = read_out(out)
    n = N_TILES * PER_TILE + OUTSIDE
    assert manifest["complete"] and len(table) == n and table["id"].is_unique
    return manifest


def test_a_tile_replaced_by_one_of_the_same_size_is_refused_naming_it(survey, monkeypatch, capsys):
    before = interrupted_run(survey, monkeypatch)
    finished_tile = before["tiles"][next(u["tile"] for u in before["units"] if u["part"])]["files"]["r"]
    replaced = next(Path(t["files"]["r"]) for t in before["tiles"] if t["files"]["r"] != finished_tile)
    # A re-reduction: other pixels, and a header that says so.
    rewrite_tile(replaced, pixels_offset=1.0, cards={"PROCVER": "2.0"})
    manifest_bytes = (survey["out"] / "manifest.json").read_bytes()
    parts = sorted(p.name for p in survey["out"].glob("part-*.parquet"))
    code, _, err = run(survey["argv"], capsys)
    assert_one_line_error(code, err, str(survey["out"]), str(replaced.resolve()), "replaced",
                          "give a new --out folder or remove this one")
    # Nothing of the old run is touched.
    assert (survey["out"] / "manifest.json").read_bytes() == manifest_bytes
    assert sorted(p.name for p in survey["out"].glob("part-*.parquet")) == parts
    # A new folder runs on the new tile.
    new = survey["out"].with_name("new")
    argv = [f"{new}/" if a == f"{survey['out']}/" else a for a in survey["argv"]]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert_every_source_once(new)


def test_a_finished_tile_replaced_by_a_newer_release_is_refused(survey, monkeypatch, capsys):
    """The tile whose part is already written counts as much: the folder would hold parts of
    two releases."""
    before = interrupted_run(survey, monkeypatch)
    finished = Path(before["tiles"][next(u["tile"] for u in before["units"] if u["part"])]["files"]["r"])
    rewrite_tile(finished, pixels_offset=-0.25, cards={"RELEASE": "DR10"})
    code, _, err = run(survey["argv"], capsys)
    assert_one_line_error(code, err, str(finished.resolve()), "replaced")


def test_unchanged_tiles_resume_and_their_header_digests_are_recorded(survey, monkeypatch, capsys):
    before = interrupted_run(survey, monkeypatch)
    files = {str(Path(t["files"]["r"]).resolve()) for t in before["tiles"]}
    for tile in before["tiles"]:
        assert set(tile["header_sha256"]) == {str(Path(tile["files"]["r"]).resolve())}
        assert all(len(digest) == 64 for digest in tile["header_sha256"].values())
    assert len(files) == N_TILES
    # Touched only (copied back, as a sync does): same headers, same run.
    for path in files:
        Path(path).write_bytes(Path(path).read_bytes())
    code, _, err = run(survey["argv"], capsys)
    assert code == 0, err
    after = assert_every_source_once(survey["out"])
    assert [t["header_sha256"] for t in after["tiles"]] == [t["header_sha256"] for t in before["tiles"]]


def test_a_tile_repackaged_with_new_date_and_checksums_resumes(survey, monkeypatch, capsys):
    """An archive rewriting a file of the same pixels (DATE, CHECKSUM, DATASUM rewritten) is
    the same tile; other pixels under an otherwise equal header are not, by DATASUM."""
    tile = survey["folder"] / "t01" / "tile-r.fits"
    rewrite_tile(tile, cards={"DATE": "2020-01-01T00:00:00"}, checksum=True)
    interrupted_run(survey, monkeypatch)
    rewrite_tile(tile, cards={"DATE": "2024-06-30T12:00:00"}, checksum=True)
    code, _, err = run(survey["argv"], capsys)
    assert code == 0, err
    assert_every_source_once(survey["out"])

    shutil.rmtree(survey["out"])
    interrupted_run(survey, monkeypatch)
    rewrite_tile(tile, pixels_offset=0.5, cards={"DATE": "2025-01-01T00:00:00"}, checksum=True)
    code, _, err = run(survey["argv"], capsys)
    assert_one_line_error(code, err, str(tile.resolve()), "replaced")


def test_a_manifest_without_header_digests_resumes_as_before(survey, monkeypatch, capsys):
    """A run planned by a skysort that recorded no digests resumes on path and size; the
    digests are recorded from then on."""
    interrupted_run(survey, monkeypatch)
    path = survey["out"] / "manifest.json"
    content = json.loads(path.read_text())
    for tile in content["tiles"]:
        tile.pop("header_sha256", None)
    path.write_text(json.dumps(content, indent=1))
    code, _, err = run(survey["argv"], capsys)
    assert code == 0, err
    after = assert_every_source_once(survey["out"])
    assert all(len(t["header_sha256"]) == 1 for t in after["tiles"])


def test_header_digest_reads_headers_only_also_of_compressed_tiles(tmp_path):
    """A .gz or .fz tile's header is read without decompressing its pixels: the digest of a
    file whose data is damaged or cut short after its header is that of the whole file."""
    from skysort.inference.manifest import header_digest

    rng = np.random.default_rng(1)
    data = rng.normal(size=(300, 400)).astype(np.float32)  # noise: the compressed data is long
    header = fits.Header({"FILTER": "r", "BUNIT": "nanomaggy", "DATE-OBS": "2019-03-01"})
    plain = tmp_path / "tile-r.fits"
    fits.PrimaryHDU(data, header).writeto(plain)
    packed = tmp_path / "tile-r.fits.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    cut = tmp_path / "cut-r.fits.gz"
    cut.write_bytes(packed.read_bytes()[:2000])  # the header, and not a quarter of the pixels
    assert header_digest(packed) == header_digest(plain) == header_digest(cut)

    tiled = tmp_path / "tile-r.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)]).writeto(tiled)
    whole = header_digest(tiled)
    with open(tiled, "r+b") as fh:
        fh.truncate(tiled.stat().st_size // 2)  # half the compressed pixels, the headers whole
    assert header_digest(tiled) == whole

    other = tmp_path / "tile-i.fits"
    fits.PrimaryHDU(data, fits.Header({**header, "FILTER": "i"})).writeto(other)
    assert header_digest(other) != header_digest(plain)
