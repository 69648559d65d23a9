"""Output folders of streaming prediction: Parquet parts plus a JSON manifest, resumable.

A run writes into one folder::

    OUT/manifest.json        the plan (work units) and which units are finished
    OUT/part-00000.parquet   one part per finished work unit, named after the unit's index
    OUT/_shards/             catalogue rows grouped by work unit (removed when the run completes)

Why a run can be killed at any moment and rerun
-----------------------------------------------
* Every file is written under a temporary name and renamed when complete, so a part or the
  manifest on disk is always whole.
* The manifest is written once the plan is complete, before any part. Without it a rerun
  plans again from scratch; with it the rerun reuses the recorded plan, so unit boundaries
  never move.
* A part's name is fixed by its unit's index, and its Parquet metadata names the unit and the
  run (:attr:`Manifest.run_id`). A part found on disk but not recorded in the manifest (killed
  between the rename and the manifest update) is adopted when its unit, run and row count
  match, and otherwise deleted and recomputed: a unit is never written twice under two names.
* A recorded part that is gone, or whose SHA-256 differs from the recorded one (damaged or
  altered after the run, even a finished one), is deleted and recomputed.
* A rerun with a different model, different inputs or options that change results is refused
  (:class:`~skysort.errors.InputError`) rather than mixed into the same folder. Tile files
  are told apart by path and size in the signature and by a digest of their headers
  (:func:`header_digest`) in the manifest's tile entries, so a tile replaced by another of
  the same size is noticed without reading any pixel; a manifest without digests (written
  by an older skysort) is resumed on path and size alone.

The manifest format is documented in ``docs/formats.md`` ("Prediction manifest").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zlib
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .._io import atomic_path
from ..data.fits_headers import card_value, card_values, header_stream, read_header_cards, skip_data
from ..errors import InputError
from ..provenance import provenance_record, utc_now

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "skysort.predict-manifest"
MANIFEST_VERSION = 1
SHARDS_DIR = "_shards"
#: Parquet schema-metadata key skysort writes its JSON metadata under (see ``skysort.data.catalog``).
PARQUET_META_KEY = b"skysort"


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """Absolute path, size (bytes) and modification time (ns) of an input file."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


#: Cards left out of :func:`header_digest`. What counts as the same tile is the same header
#: cards apart from these, which an archive rewrites when it re-packages or re-checksums a file
#: whose pixels stay the same: ``CHECKSUM`` and ``ZHECKSUM`` (checksums of the header itself,
#: which would change with any card left out here) and ``DATE`` (when the file was written, not
#: observed: ``DATE-OBS`` and the like stay in). ``DATASUM`` stays in for uncompressed data,
#: where it is a checksum of the pixels themselves and so the cheapest sign of re-reduced
#: pixels; in a tile-compressed HDU it sums the compressed bytes, which another compressor
#: version may lay out differently, so there it is left out and ``ZDATASUM`` (the pixels')
#: stays in. Blank cards (space a writer reserves) and inline comments are left out too;
#: ``COMMENT`` and ``HISTORY`` stay in, as reduction steps are recorded there.
_VOLATILE_CARDS = frozenset({b"CHECKSUM", b"ZHECKSUM", b"DATE"})


def _refused_resume(folder: Path, unfinished: str, other: str) -> InputError:
    """The error refusing to resume into ``folder``: for the hidden work folder of a one-table
    ``--out``, which the user never named, it names that output (``unfinished`` follows its
    name); for a folder the user gave, ``other``."""
    table = work_folder_output(folder)
    if table is not None:
        return InputError(folder, f"holds the unfinished run of --out {table}{unfinished}")
    return InputError(folder, other)


def header_digest(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a FITS file's headers, read without its pixels: what tells a tile from
    another of the same size when a run is resumed.

    The cards of every HDU are hashed in order, each as its keyword and value (the cards of
    ``_VOLATILE_CARDS`` and blank cards left out, see there for why), so a re-packaged copy
    of the same pixels keeps its digest while a re-reduced image or another band's file does
    not. The data of each HDU is skipped by seeking; in a file gzip- or bzip2-compressed as a
    whole, where skipping data means decompressing it, the headers end with the first image
    HDU's (the one read for the pixels). A tile-compressed ``.fz`` file is a plain FITS file
    and has all its headers read.

    Parameters
    ----------
    path : path-like
        A FITS file, plain, tile-compressed, or gzip- or bzip2-compressed.

    Returns
    -------
    str
        64 hex digits.

    Raises
    ------
    InputError
        Naming the file: unreadable, or its first header is cut short.
    """
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with header_stream(path) as (stream, compressed):
            first = True
            while (cards := read_header_cards(stream, path, first)) is not None:
                values = card_values(cards)
                zimage = values.get(b"ZIMAGE") == b"T"
                tokens = [b"HDU"]
                for card in cards:
                    keyword = card[:8].rstrip()
                    if not keyword or keyword in _VOLATILE_CARDS or (keyword == b"DATASUM" and zimage):
                        continue
                    if card[8:10] == b"= ":
                        tokens.append(keyword + b"=" + card_value(card[10:]))
                    elif keyword == b"CONTINUE":
                        tokens.append(keyword + b" " + card_value(card[8:]))
                    else:
                        tokens.append(card.rstrip())
                digest.update(b"\n".join(tokens) + b"\n")
                image = zimage or ((first or values.get(b"XTENSION") == b"'IMAGE'")
                                   and values.get(b"NAXIS", b"0") not in (b"0", b"1"))
                if compressed and image:
                    break
                if not skip_data(stream, values):
                    break  # a header without a usable size: what follows cannot be found
                first = False
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise InputError(path, f"cannot read its FITS headers ({exc})") from None
    return digest.hexdigest()


def json_sha256(value: Any) -> str:
    """Hex SHA-256 of a JSON value in canonical form (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def part_name(index: int) -> str:
    """File name of the part of work unit ``index``."""
    return f"part-{index:05d}.parquet"


def _describe_signature_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The signature entries that differ, each with its two values when they are short (a
    threshold, a reference band), so that the user sees which setting to give back."""
    described = []
    for key in sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)):
        before, now = ("none" if side.get(key) is None else json.dumps(side[key], sort_keys=True, default=str)
                       for side in (old, new))
        described.append(f"{key}: {before} there, {now} now" if len(before) + len(now) <= 120 else key)
    return "; ".join(described) or "signature"


def failed_files(failed: Sequence[Mapping[str, Any]]) -> set[str]:
    """Resolved paths of the files named by a run's failures (entries with ``where``)."""
    return {str(Path(entry["where"]).resolve()) for entry in failed}


def repaired_files_only(old: Mapping[str, Any], new: Mapping[str, Any], repaired: set[str]) -> bool:
    """Whether two run signatures differ only in the sizes of ``repaired`` files (resolved
    paths) among their tile and weight files (``"PATH:SIZE"`` items)."""
    if not repaired or json_sha256(old) == json_sha256(new):
        return False

    def sizes_hidden(signature: Mapping[str, Any]) -> dict[str, Any]:
        hidden = dict(signature)
        for key in ("tiles", "weights"):
            if isinstance(hidden.get(key), list):
                hidden[key] = sorted(item.rpartition(":")[0] + ":?" if item.rpartition(":")[0] in repaired else item
                                     for item in hidden[key])
        return hidden

    return json_sha256(sizes_hidden(old)) == json_sha256(sizes_hidden(new))


def changed_headers(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """The files whose header digest now differs from the one recorded, in recorded order.

    A file without a recorded digest (a run planned by an older skysort) or without one now
    is not compared: the run's signature has already matched its path and size.
    """
    return [path for path, digest in recorded.items() if now.get(path) is not None and now[path] != digest]


def replaced_files(changed: Sequence[str]) -> str:
    """``tile file X was replaced since ...`` for the refusal to resume on replaced tiles."""
    named = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return (f"tile file {named} was" if len(changed) == 1 else f"{len(changed)} tile files ({named}) were"
            ) + " replaced since (same path and size, another header)"


def _add_header_digests(tiles: Iterable[dict[str, Any]], headers: Mapping[str, str]) -> None:
    """Give manifest tile entries ``header_sha256`` (resolved path -> header digest) for their
    tile and weight files that have none recorded yet."""
    for tile in tiles:
        recorded = tile.setdefault("header_sha256", {})
        for file in [*(tile.get("files") or {}).values(), *(tile.get("weights") or {}).values()]:
            path = str(Path(file).resolve())
            if path in headers:
                recorded.setdefault(path, headers[path])


def work_folder_output(folder: str | os.PathLike) -> Path | None:
    """The one-table output whose hidden work folder ``folder`` is (``DIR/.NAME.parts`` for
    ``--out DIR/NAME``), or None for a folder of another name."""
    folder = Path(folder)
    name = folder.name
    if name.startswith(".") and name.endswith(".parts") and len(name) > len("..parts"):
        return folder.parent / name[1 : -len(".parts")]
    return None


class Manifest:
    """The manifest of one output folder: the plan, the finished units, and their parts.

    Parameters
    ----------
    folder : path-like
        Output folder.
    content : dict
        The manifest's JSON content (see ``docs/formats.md``).
    """

    def __init__(self, folder: str | os.PathLike, content: dict[str, Any]):
        self.folder = Path(folder)
        self.content = content
        self._last_save = 0.0

    # ---- creation and loading -----------------------------------------------------------

    @classmethod
    def path_in(cls, folder: str | os.PathLike) -> Path:
        return Path(folder) / MANIFEST_NAME

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Manifest | None":
        """The folder's manifest, or None when there is none yet."""
        path = cls.path_in(folder)
        if not path.exists():
            return None
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(path, f"unreadable prediction manifest ({exc}); remove the folder to start again") from None
        if content.get("format") != MANIFEST_FORMAT:
            raise InputError(path, "not a skysort prediction manifest")
        if content.get("format_version") != MANIFEST_VERSION:
            raise InputError(path, f"manifest format version {content.get('format_version')} is not supported "
                                   f"(this skysort writes {MANIFEST_VERSION})")
        return cls(folder, content)

    @classmethod
    def prepare_folder(cls, folder: str | os.PathLike, signature: dict[str, Any],
                       headers: Mapping[str, str] | None = None) -> "Manifest | None":
        """Check ``folder`` can hold this run; return its manifest when one is being resumed.

        Parameters
        ----------
        folder : path-like
            Output folder.
        signature : dict
            The run's signature (what fixes its results).
        headers : mapping of str to str, optional
            Resolved path -> :func:`header_digest` of this run's tile and weight files, compared
            with those the manifest's tile entries record.

        Raises
        ------
        InputError
            The folder holds another run (different signature, or a tile file whose header
            changed since it was planned) or files that are not a run's.
        """
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise InputError(folder, "exists and is not a folder")
        manifest = cls.load(folder)
        if manifest is not None:
            old = manifest.content.get("signature", {})
            if repaired_files_only(old, signature, manifest.unreadable_files()):
                # The files that stopped units were replaced (a truncated tile copied again, say):
                # no part was made from them, and their headers are still checked below.
                manifest.content["signature"] = old = signature
            if json_sha256(old) != json_sha256(signature):
                difference = _describe_signature_difference(old, signature)
                raise _refused_resume(folder, f" with other settings ({difference}); rerun with those settings to finish it, "
                                              "or remove this folder to start again",
                                      f"holds the output of a different prediction run (differs in {difference}); "
                                      "give a new --out folder or remove it")
            changed = manifest.changed_files(headers or {})
            if changed:
                what = replaced_files(changed)
                raise _refused_resume(folder, f", planned on other images: {what}; remove this folder to start again",
                                      f"holds a prediction run planned on other images: {what}; resuming would mix "
                                      "predictions of both: give a new --out folder or remove this one")
            # A run planned by a skysort that recorded no digests: from now on a replaced tile
            # is noticed (saved with the manifest's next update).
            _add_header_digests(manifest.content.get("tiles", []), headers or {})
            return manifest
        if folder.exists():
            foreign = [p.name for p in folder.iterdir() if p.name != SHARDS_DIR and not p.name.startswith(".")]
            if foreign:
                raise InputError(folder, f"is not empty and holds no prediction manifest ({', '.join(sorted(foreign)[:3])} ...); "
                                         "give a new or empty --out folder")
        # A run killed while planning leaves shards only: plan again from scratch.
        shutil.rmtree(folder / SHARDS_DIR, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        return None

    @classmethod
    def create(cls, folder: str | os.PathLike, *, signature: dict[str, Any], plan: dict[str, Any],
               model: dict[str, Any], inputs: dict[str, Any], options: dict[str, Any],
               headers: Mapping[str, str] | None = None) -> "Manifest":
        """A new manifest for a finished plan; written to disk at once.

        ``headers`` (resolved path -> :func:`header_digest`) gives each of the plan's tile
        entries the digests of its files, as ``header_sha256``.
        """
        units = plan["units"]
        for unit in units:
            unit.update(part=None, rows=None, sha256=None)
        _add_header_digests(plan.get("tiles", []), headers or {})
        content = {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "run_id": json_sha256(signature)[:16],
            "signature": signature,
            "provenance": provenance_record(),
            "model": model,
            "inputs": inputs,
            "options": options,
            **{k: v for k, v in plan.items() if k != "units"},
            "n_units": len(units),
            "units": units,
            "complete": False,
            "rows_written": 0,
            "updated": utc_now(),
        }
        manifest = cls(folder, content)
        manifest.save()
        return manifest

    # ---- state -----------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.content["run_id"]

    @property
    def units(self) -> list[dict[str, Any]]:
        return self.content["units"]

    @property
    def complete(self) -> bool:
        return bool(self.content.get("complete"))

    def changed_files(self, headers: Mapping[str, str]) -> list[str]:
        """The tile and weight files whose header digest differs from the one recorded.

        Parameters
        ----------
        headers : mapping of str to str
            Resolved path -> :func:`header_digest` now.

        Returns
        -------
        list of str
            Their paths, in the order of the tile entries. A file without a recorded digest
            (a manifest of an older skysort) or without one now is not compared: the
            signature has already matched its path and size.
        """
        return [path for tile in self.content.get("tiles", [])
                for path in changed_headers(tile.get("header_sha256") or {}, headers)]

    def unreadable_files(self) -> set[str]:
        """Resolved paths of the files that stopped units of the last run (``unreadable``)."""
        return failed_files(self.content.get("unreadable", []))

    def pending(self) -> list[dict[str, Any]]:
        """Units without a recorded part, in index order."""
        return [u for u in self.units if u.get("part") is None]

    def record(self, index: int, part: str, rows: int, sha256: str, *, save_every_s: float = 2.0) -> None:
        """Mark unit ``index`` finished with its part; the file is rewritten at most every
        ``save_every_s`` seconds (a part missing from the manifest is adopted on resume)."""
        unit = self.units[index]
        if unit["index"] != index:
            raise RuntimeError("manifest units are out of order")
        unit.update(part=part, rows=int(rows), sha256=sha256)
        if time.monotonic() - self._last_save >= save_every_s:
            self.save()

    def save(self) -> None:
        """Write the manifest atomically."""
        self.content["rows_written"] = int(sum(u["rows"] or 0 for u in self.units))
        self.content["updated"] = utc_now()
        with atomic_path(self.path_in(self.folder)) as tmp:
            tmp.write_text(json.dumps(self.content, indent=1, default=str))
        self._last_save = time.monotonic()

    def finish(self) -> None:
        """Check every unit is recorded with its expected row count, mark complete, drop shards."""
        missing = [u["index"] for u in self.units if u.get("part") is None]
        if missing:
            raise RuntimeError(f"units {missing[:5]} are not finished")
        wrong = [u["index"] for u in self.units if u["rows"] != u["n_sources"]]
        if wrong:
            raise RuntimeError(f"parts of units {wrong[:5]} have the wrong number of rows")
        self.content["complete"] = True
        self.save()
        shutil.rmtree(self.folder / SHARDS_DIR, ignore_errors=True)

    def part_paths(self) -> list[Path]:
        """The finished parts, in unit order."""
        return [self.folder / u["part"] for u in self.units if u.get("part")]

    # ---- reconciliation with the folder ------------------------------------------------------

    def reconcile(self) -> tuple[int, int]:
        """Adopt whole parts the manifest does not record yet; delete temporary and stray files,
        and recorded parts that are gone or whose SHA-256 no longer matches (recomputed).

        Returns
        -------
        (adopted, removed) : (int, int)
            Parts adopted, and part or temporary files deleted.
        """
        adopted = removed = 0
        for tmp in self.folder.glob(".part-*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        for unit in self.units:
            path = self.folder / part_name(unit["index"])
            if unit.get("part") is not None:
                if not path.exists():
                    # The recorded part was deleted by hand: compute it again.
                    unit.update(part=None, rows=None, sha256=None)
                    self.content["complete"] = False
                    removed += 1
                elif file_sha256(path) != unit.get("sha256"):
                    # Altered or damaged since it was recorded (truncated, overwritten): reading
                    # each part once per rerun costs less than assembling or keeping a damaged output.
                    path.unlink()
                    unit.update(part=None, rows=None, sha256=None)
                    self.content["complete"] = False
                    removed += 1
                continue
            if not path.exists():
                continue
            if self._part_belongs(path, unit):
                unit.update(part=path.name, rows=int(unit["n_sources"]), sha256=file_sha256(path))
                adopted += 1
            else:
                path.unlink()
                removed += 1
        if adopted or removed:
            self.save()
        return adopted, removed

    def _part_belongs(self, path: Path, unit: dict[str, Any]) -> bool:
        import pyarrow.parquet as pq

        try:
            metadata = pq.read_metadata(path)
            raw = (pq.read_schema(path).metadata or {}).get(PARQUET_META_KEY)
            meta = json.loads(raw.decode()) if raw else {}
        except Exception:  # noqa: BLE001 - any unreadable part is recomputed
            return False
        return (meta.get("run_id") == self.run_id and meta.get("unit") == unit["index"]
                and metadata.num_rows == unit["n_sources"])


def read_parts(paths: Iterable[str | os.PathLike]):
    """Concatenate Parquet parts into one astropy Table (for single-file outputs), with the
    column units the parts record."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.table import Table

    from ..data.catalog import arrow_to_numpy, parquet_units

    tables = [pq.read_table(p) for p in paths]
    units = parquet_units(tables[0].schema) if tables else {}
    # Widened where parts differ (a carried column of int32 in one file, int64 in the next).
    arrow = pa.concat_tables([t.replace_schema_metadata(None) for t in tables], promote_options="permissive")
    table = Table()
    for name, column in zip(arrow.column_names, arrow.columns):
        # Empty cells (carried catalogue columns) stay empty, of their column's type.
        values = arrow_to_numpy(column)
        table[name] = values.astype(str) if values.dtype.kind == "O" else values
        if units.get(name):
            table[name].unit = units[name]
    return table
