"""Catalogue-scale prediction: stream survey tiles, cut stamps, batch, predict, write Parquet parts.

The work is split into *work units* that are planned once and recorded in the output folder's
manifest (:mod:`skysort.inference.manifest`):

1. **Tiles.** The ``--tiles`` files are grouped into tiles (one file per band; files whose
   names differ only in the band token, e.g. ``frame-r-003918-3-0213.fits.bz2``, form one
   tile). Only FITS headers are read while planning. Separate weight files (``--weights``)
   are matched to the tile files by name and checked against them there, from their headers;
   a tile file's own weight extension is found when the tile is read
   (:func:`skysort.data.images.read_band_image`), and each part's metadata records the
   weight maps read.
2. **Ownership.** The catalogue is read in chunks of bounded size (Parquet by row groups,
   FITS memory-mapped, CSV parsed block by block; ECSV is read whole). Each source is owned
   by exactly one tile: among the tiles whose reference-band image contains it, the one
   where it lies farthest from the image edge (in arcsec), ties going to the first tile in
   path order. The choice depends only on the inputs, so every run plans the same units.
   Sources in no tile are predicted from photometry alone when the model can, otherwise
   written with NaN probabilities and the ``MISSING_BAND`` and
   :data:`~skysort.inference.predictor.MISSING_INPUT_FLAG` flags: every catalogue row appears
   in the output exactly once. Rows with no position on the sky (ra or dec NaN or infinite,
   or ``|dec| > 90``) are in no tile; one warning gives their number. Any finite ra is valid
   (angles wrap).
3. **Shards.** Each chunk's rows (only the columns prediction needs) are written to
   ``OUT/_shards/`` as Parquet, one row group per owning tile, so a unit reads its own rows
   without reading the catalogue again.
4. **Units.** A tile's sources form one unit, split into several when they exceed the part
   size of the memory setting; catalogue sources without images form units of consecutive
   rows. Each unit becomes one part file.

Stamps are cut by :func:`skysort.data.cutout.cut_stamps`, as ``skysort cutout`` cuts them
(integer-pixel cut in the reference band and in bands on exactly its pixel grid, others
resampled through their WCS), so both give an object the same stamp. Cutting runs in a
producer thread, or in ``workers`` processes, while the model predicts, so the CPU cutting
and the model (GPU with bf16 autocast, or CPU threads) overlap. Memory is bounded by
:class:`MemoryPlan`.

A tile that cannot be read when its unit comes up (pixels cut short, every pixel without
data) stops that unit only: the run goes on with the others, records the units left and why
in the manifest (``unreadable``) and ends with one :class:`~skysort.errors.UnfinishedRunError`;
rerunning the same command once the file is replaced computes only those units. A survey
run of hours is not lost to one damaged file met near its end.
"""

from __future__ import annotations

import math
import os
import queue
import re
import shutil
import threading
import uuid
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..data.cutout import aligned_bands, cut_stamps, same_pixel_grid
from ..data.flags import Flags
from ..data.stampset import stamps_missing_a_band
from ..data.images import pixel_to_world, world_to_pixel
from ..errors import InputError, UnfinishedRunError, report_problem
from .manifest import SHARDS_DIR, Manifest, file_identity, file_sha256, header_digest, part_name
from .predictor import MISSING_INPUT_FLAG, ClassDecision, Predictor, class_table, unknown_zero_point_message

if TYPE_CHECKING:
    from ..data.catalog import TextLayout

#: Resident memory of the process before any data (Python, torch, astropy), in GiB; the
#: memory setting bounds what comes on top of it.
BASELINE_GB = 0.75
#: Bytes per catalogue row held while planning (ids, positions, a few magnitudes, indices).
CATALOG_ROW_BYTES = 512
#: Bytes per output row held before a part is written (inputs kept for the table, outputs).
OUTPUT_ROW_BYTES = 1024
#: Bytes per row of each catalogue column carried to the output (``--keep``), while planning and
#: before a part is written: a number takes 8, a short text as a numpy object about 64.
CARRIED_COLUMN_BYTES = 64


# ------------------------------------------------------------------------------------------
# Memory
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryPlan:
    """Sizes derived from the memory setting so that the process stays within it.

    Attributes
    ----------
    memory_gb : float
        The setting (GiB), baseline included.
    batch_size : int
        Stamps per model batch (at most the one asked for).
    queue_batches : int
        Cut batches waiting for the model (the producer blocks beyond it).
    tile_cache_tiles : int
        Tiles (all bands) kept in memory; at least one, whatever its size.
    rows_per_part : int
        Most sources in one work unit, hence in one part.
    catalog_chunk_rows : int
        Catalogue rows read at a time while planning.
    """

    memory_gb: float
    batch_size: int
    queue_batches: int
    tile_cache_tiles: int
    rows_per_part: int
    catalog_chunk_rows: int

    @property
    def stamps_in_flight(self) -> int:
        """Most stamps held at once: the queue, the batch being cut and the one predicting."""
        return self.batch_size * (self.queue_batches + 2)


def memory_plan(memory_gb: float, *, stamp_bytes: int, tile_bytes: int = 0, batch_size: int = 1024,
                processes: int = 1, carried_columns: int = 0) -> MemoryPlan:
    """Split a memory setting among stamps in flight, the tile cache, parts and catalogue chunks.

    Parameters
    ----------
    memory_gb : float
        Total resident memory allowed (GiB), including :data:`BASELINE_GB`.
    stamp_bytes : int
        Bytes of one object's stamps (bands x H x W x 4); 0 without images.
    tile_bytes : int
        Bytes of one tile, all bands, as float32.
    batch_size : int
        Wanted model batch size.
    processes : int
        Processes sharing the setting (cutting workers or Dask workers), each with its own
        tile cache and queue.
    carried_columns : int
        Catalogue columns carried to the output (``--keep``): each adds
        :data:`CARRIED_COLUMN_BYTES` to a row while planning and before its part is written.

    Returns
    -------
    MemoryPlan
        30% of the budget above the baseline goes to stamps in flight, 40% to the tile cache,
        10% to rows awaiting their part and 15% to catalogue chunks.
    """
    if not memory_gb or memory_gb <= 0:
        raise InputError("--memory-gb", f"must be positive, got {memory_gb}")
    if batch_size < 1:
        raise InputError("--batch-size", f"must be at least 1, got {batch_size}")
    budget = max(memory_gb - BASELINE_GB, 0.25 * memory_gb) * 2**30
    per_process = budget / max(1, processes)
    stamps_budget = 0.3 * per_process
    batch = batch_size if stamp_bytes == 0 else int(max(1, min(batch_size, stamps_budget // (3 * stamp_bytes))))
    queue_batches = 8 if stamp_bytes == 0 else int(max(1, min(8, stamps_budget // (batch * stamp_bytes) - 2)))
    tiles = 1 if tile_bytes <= 0 else int(max(1, min(8, 0.4 * per_process // tile_bytes)))
    carried = CARRIED_COLUMN_BYTES * max(0, int(carried_columns))
    rows_per_part = int(min(1_000_000, max(1000, 0.1 * per_process // (OUTPUT_ROW_BYTES + carried))))
    chunk_rows = int(min(1_000_000, max(10_000, 0.15 * budget // (CATALOG_ROW_BYTES + carried))))
    return MemoryPlan(float(memory_gb), batch, queue_batches, tiles, rows_per_part, chunk_rows)


# ------------------------------------------------------------------------------------------
# Tiles
# ------------------------------------------------------------------------------------------


@dataclass
class TileInfo:
    """One survey tile: a file per band and the reference band's pixel grid.

    Attributes
    ----------
    key : str
        Path with the band token replaced by ``{band}`` (or the folder when names have none).
    files : dict of str to str
        Band -> file.
    shape : (int, int)
        Reference-band image shape ``(ny, nx)``.
    weights : dict of str to str
        Band -> separate weight file (``--weights``); empty when none was given, and the
        files' own weight HDUs, if any, are read.
    """

    key: str
    files: dict[str, str]
    shape: tuple[int, int]
    wcs: Any = field(default=None, repr=False)
    pixel_scale: float = float("nan")
    #: Band -> AB zero point of one pixel unit from the file's header (NaN where none).
    zero_points: dict[str, float] = field(default_factory=dict, repr=False)
    weights: dict[str, str] = field(default_factory=dict)
    #: Band -> why the header's zero point is likely not that of one pixel unit
    #: (:func:`skysort.data.images.zero_point_note`; bands without a doubt are absent).
    zero_point_notes: dict[str, str] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "files": dict(self.files), "shape": list(self.shape), "weights": dict(self.weights)}


def _header_info(path: Path, known_bands: Sequence[str]) -> tuple[str, Any, tuple[int, int], float, str]:
    """Band, celestial WCS, shape, zero point (NaN if unknown) and any doubt about that zero
    point (:func:`~skysort.data.images.zero_point_note`) of an image file, from its header only."""
    from ..data.images import (_band_from_header, _band_from_name, celestial_wcs, first_image_header, header_flux_unit,
                               zero_point_note)

    header = first_image_header(path)
    if header is None:
        raise InputError(path, "no 2-D image in any HDU")
    wcs = celestial_wcs(header, path)
    band = _band_from_header(header) or _band_from_name(path, known_bands)
    if band is None:
        raise InputError(path, "band name not found in the header (FILTER) or file name")
    return (band, wcs, (int(header["NAXIS2"]), int(header["NAXIS1"])), header_flux_unit(header, path)[1],
            zero_point_note(header, path))


def _tile_key(path: Path, band: str) -> str:
    parts = re.split(r"([-_.])", path.name)
    for i, token in enumerate(parts):
        if token == band:
            parts[i] = "{band}"
            return str(path.parent / "".join(parts))
    return str(path.parent / "*")


def scan_tiles(patterns: str | Sequence[str], bands: Sequence[str], reference_band: str, *, threads: int = 4,
               weights: str | Sequence[str] | None = None, weight_hdu: str | None = None) -> list[TileInfo]:
    """Group the files matching ``patterns`` into tiles holding every band in ``bands``.

    Parameters
    ----------
    patterns : str or sequence of str
        Glob patterns (or a comma-separated string of them) of the tile images.
    bands : sequence of str
        The bands every tile must have.
    reference_band : str
        The band whose pixel grid the stamps share.
    threads : int
        Headers are read in this many threads.
    weights : str or sequence of str, optional
        Glob patterns of separate weight files, matched to the tile files by name
        (:func:`skysort.data.images.match_weight_files`): every file of a needed band must have
        one, of its shape and pixels (checked here, from the headers). Files matching both
        ``patterns`` and ``weights`` are weight maps, not tiles.
    weight_hdu : str, optional
        The ``--weight-hdu`` of the run, refused beside ``weights`` (it names an extension of
        the tile files themselves, which ``weights`` replaces).

    Raises
    ------
    InputError
        No file matches; a tile lacks a needed band or has two files of one band; a tile file
        without a weight file, or with one of another shape or other pixels.
    """
    from astropy.utils.exceptions import AstropyWarning
    from astropy.wcs.utils import proj_plane_pixel_scales

    from ..data.images import BAND_ORDER, expand_paths, patterns_text, separate_weight_files

    paths = expand_paths(patterns, what="tile file", option="--tiles")
    paths, weight_files = separate_weight_files(paths, weights, weight_hdu, patterns_text(patterns))
    known = tuple(dict.fromkeys([*bands, *BAND_ORDER]))
    # The readers silence astropy's header warnings with warnings.catch_warnings, which is not
    # thread-safe: one thread leaving it can restore the filters while another still reads,
    # and a stray "FITSFixedWarning" line then appears. Silenced here too, around the threads.
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        warnings.simplefilter("ignore", AstropyWarning)
        infos = list(pool.map(lambda p: (p, *_header_info(p, known)), paths))
    groups: dict[str, dict[str, tuple[Path, Any, tuple[int, int], float]]] = {}
    notes: dict[str, str] = {}
    for path, band, wcs, shape, zero_point, note in infos:
        key = _tile_key(path, band)
        group = groups.setdefault(key, {})
        if band in group:
            raise InputError(path, f"band {band!r} of tile {key} also comes from {group[band][0]}")
        group[band] = (path, wcs, shape, zero_point)
        if note:
            notes[str(path)] = note
    tiles = []
    for key in sorted(groups):
        group = groups[key]
        missing = [b for b in bands if b not in group]
        if missing:
            raise InputError(key, f"tile has no file for band(s) {missing} needed by the model (has {sorted(group)})")
        _, wcs, shape, _ = group[reference_band]
        scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
        tiles.append(TileInfo(key=key, files={b: str(group[b][0]) for b in bands}, shape=shape, wcs=wcs, pixel_scale=scale,
                              zero_points={b: group[b][3] for b in bands},
                              zero_point_notes={b: notes[str(group[b][0])] for b in bands if str(group[b][0]) in notes}))
    _refuse_tiles_on_the_same_pixels(tiles, reference_band)
    if weight_files:
        _match_tile_weights(tiles, groups, weight_files, threads)
    return tiles


def _match_tile_weights(tiles: Sequence[TileInfo], groups: Mapping[str, Mapping[str, tuple[Path, Any, tuple[int, int], float]]],
                        weight_files: Sequence[Path], threads: int) -> None:
    """Give each tile file its weight file (:attr:`TileInfo.weights`), checked against it from
    the headers, so that a weight map of another shape or tile stops the run before anything is
    written rather than in the middle of it."""
    from ..data.images import check_weight_header, match_weight_files, weight_file_header

    needed = [(tile, band, groups[tile.key][band]) for tile in tiles for band in tile.files]
    matched = match_weight_files([info[0] for _, _, info in needed], weight_files)

    def check(item: tuple[tuple[TileInfo, str, tuple[Path, Any, tuple[int, int], float]], Path]) -> None:
        (_, _, (path, wcs, shape, _)), weight = item
        check_weight_header(weight_file_header(weight, path), shape, wcs, weight, path)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(check, zip(needed, matched)))
    for (tile, band, _), weight in zip(needed, matched):
        tile.weights[band] = str(weight)


def _refuse_tiles_on_the_same_pixels(tiles: Sequence[TileInfo], reference_band: str) -> None:
    """Refuse two tiles on one pixel grid: which of them an object's stamp comes from would be
    arbitrary, and the second is nearly always a weight, mask or variance image that the
    pattern also matched (KiDS ``*_wei.fits``, SWarp ``*.weight.fits``)."""
    seen: dict[tuple[Any, ...], TileInfo] = {}
    for tile in tiles:
        crval = tuple(np.round(np.asarray(tile.wcs.wcs.crval, float), 8))
        bucket = (tuple(tile.shape), crval, tuple(np.round(np.asarray(tile.wcs.wcs.crpix, float), 4)))
        other = seen.setdefault(bucket, tile)
        if other is not tile and same_pixel_grid(other, tile):
            raise InputError(tile.files[reference_band], f"covers the same pixels as {other.files[reference_band]}: give only "
                                                         "the science images (a weight, mask or variance image matched "
                                                         "the --tiles pattern?)")


def valid_sky_positions(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Whether each ``(ra, dec)`` (degrees) is a position on the sky: both finite and
    ``|dec| <= 90``. Any finite ra is valid: the unit vectors and the WCS wrap it."""
    ra, dec = np.asarray(ra, np.float64), np.asarray(dec, np.float64)
    return np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)


class TileIndex:
    """Which tile owns each sky position (see the module docstring for the rule)."""

    def __init__(self, tiles: Sequence[TileInfo]):
        self.tiles = list(tiles)
        centres, radii = [], []
        for tile in self.tiles:
            ny, nx = tile.shape
            xs = np.array([(nx - 1) / 2, -0.5, nx - 0.5, -0.5, nx - 0.5])
            ys = np.array([(ny - 1) / 2, -0.5, -0.5, ny - 0.5, ny - 0.5])
            ra, dec = pixel_to_world(tile.wcs.celestial, xs, ys)
            vectors = _unit_vectors(ra, dec)
            centres.append(vectors[0])
            radii.append(float(np.max(np.linalg.norm(vectors[1:] - vectors[0], axis=1))))
        self.centres = np.array(centres).reshape(-1, 3)
        # Chord lengths, with a margin for distortion between the corners.
        self.radii = np.array(radii) * 1.05 + 1e-9

    def owners(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Index of the owning tile of each position, -1 for none (or positions off the sky,
        see :func:`valid_sky_positions`)."""
        from scipy.spatial import cKDTree

        n = len(ra)
        owner = np.full(n, -1, np.int32)
        best = np.full(n, -np.inf)
        # A dec beyond the pole is no position: its unit vector and the WCS would fold it
        # onto the other side of the pole (dec 95 at ra 150 is dec 85 at ra 330).
        good = np.flatnonzero(valid_sky_positions(ra, dec))
        if not len(good) or not self.tiles:
            return owner
        tree = cKDTree(_unit_vectors(ra[good], dec[good]))
        for t, tile in enumerate(self.tiles):
            candidates = good[np.asarray(tree.query_ball_point(self.centres[t], self.radii[t]), dtype=np.int64)]
            if not len(candidates):
                continue
            # The tile's own frame and axis order (a Galactic tile), and NaN rather than a
            # NoConvergence error for positions far beyond a distortion polynomial's chip.
            x, y = world_to_pixel(tile.wcs.celestial, ra[candidates], dec[candidates])
            ny, nx = tile.shape
            margin = np.minimum(np.minimum(x + 0.5, nx - 0.5 - x), np.minimum(y + 0.5, ny - 0.5 - y)) * tile.pixel_scale
            inside = np.isfinite(margin) & (margin > 0)
            better = inside & (margin > best[candidates])
            chosen = candidates[better]
            owner[chosen] = t
            best[chosen] = margin[better]
        return owner


# ------------------------------------------------------------------------------------------
# Catalogue streaming
# ------------------------------------------------------------------------------------------


def _parquet_pieces(parquet: Any, chunk_rows: int, columns: Sequence[str]) -> Iterator[Any]:
    """Consecutive tables or record batches of at most ``chunk_rows`` rows (whole row groups
    together where they fit).

    ``ParquetFile.iter_batches`` across row groups keeps buffers of the groups already read
    (pyarrow's allocated bytes grow by about 60 bytes per row read), so memory would grow with
    the catalogue; reading row groups explicitly releases each chunk. A row group larger than
    ``chunk_rows`` is batched on its own.
    """
    metadata = parquet.metadata
    group: list[int] = []
    rows = 0
    for g in range(metadata.num_row_groups):
        n = metadata.row_group(g).num_rows
        if group and rows + n > chunk_rows:
            yield parquet.read_row_groups(group, columns=list(columns))
            group, rows = [], 0
        if n > chunk_rows:
            yield from parquet.iter_batches(batch_size=chunk_rows, row_groups=[g], columns=list(columns))
            continue
        group.append(g)
        rows += n
    if group:
        yield parquet.read_row_groups(group, columns=list(columns))


#: Bytes of CSV text parsed at a time (pyarrow's block size); a block's rows are converted
#: together, so this bounds the parser's memory, not the chunk size.
CSV_BLOCK_BYTES = 1 << 24


#: Whitespace-only cells are missing values: pyarrow trims blanks around a number before
#: converting it but matches its null strings against the untrimmed cell, so the padded blank
#: cells of fixed-width text (VizieR's TSV pads every column) would fail as "invalid value ''".
_BLANK_CELLS = tuple(" " * width for width in range(1, 65))


def _csv_batches(path: Path, layout: TextLayout, columns: Sequence[str], float_columns: Sequence[str],
                 types: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """pyarrow record batches of ``columns`` of a plain CSV or TSV file, parsed block by block.

    astropy's reader (used for ECSV) holds the whole file; a survey catalogue of tens of
    millions of rows would then need tens of GB. The numeric columns are read as float64 so
    that a column whose first block happens to hold only integers does not fail later.
    ``types`` gives other columns' pyarrow types (the id column's, :func:`_csv_rows_and_id_type`).
    Reader failures become :class:`~skysort.errors.InputError` naming the file and column.
    """
    import pyarrow as pa
    import pyarrow.csv as pc

    from ..data.catalog import open_csv_bytes, text_format_name

    names = layout.names
    read_options = pc.ReadOptions(column_names=list(names), skip_rows=layout.skip_rows, block_size=CSV_BLOCK_BYTES)
    convert_options = pc.ConvertOptions(include_columns=list(columns),
                                        column_types={**{name: pa.float64() for name in float_columns}, **(types or {})},
                                        null_values=[*pc.ConvertOptions().null_values, *_BLANK_CELLS])
    # A '#' comment line among the rows is skipped, as astropy's reader (read_catalog) skips it.
    parse_options = pc.ParseOptions(delimiter=layout.delimiter, invalid_row_handler=_skip_comment_row)
    try:
        # A Python file object, not the path: given a path, pyarrow reads the raw file ahead
        # without bound (the whole file before the first batch).
        with open_csv_bytes(path) as fh:
            yield from pc.open_csv(fh, read_options=read_options, parse_options=parse_options,
                                   convert_options=convert_options)
    except (pa.ArrowInvalid, UnicodeDecodeError, EOFError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        found = re.match(r"In CSV column #(\d+): CSV conversion error to double: (.*)", message)
        if found and int(found.group(1)) < len(names):
            from ..data.catalog import not_numeric_hint

            value = re.search(r"'([^']*)'", found.group(2))
            hint = not_numeric_hint(value.group(1), names[int(found.group(1))]) if value else ""
            raise InputError(path, f"column {names[int(found.group(1))]!r} is not numeric ({found.group(2)}){hint}") from None
        raise InputError(path, f"cannot read as {text_format_name(layout.delimiter)}: {message}") from None


def _csv_column_types(path: Path, layout: TextLayout, columns: Sequence[str]) -> dict[str, Any]:
    """pyarrow types to read text columns as, the same in every block: as pyarrow infers them
    over the whole file when every block agrees; else float64 when every value is a number;
    else text. (pyarrow infers a type from the first block and fails on a later block that does
    not fit it: integers, then a decimal number.) Dates and times stay text, which every output
    format holds."""
    import pyarrow as pa

    def types_read(names: Sequence[str], given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for batch in _csv_batches(path, layout, names, (), given):
            found = {field.name: field.type for field in batch.schema}
        return found

    if not columns:
        return {}
    try:
        inferred = types_read(columns)
    except InputError:
        inferred = {}
        for name in columns:
            for given in (None, pa.float64()):
                try:
                    inferred[name] = types_read([name], {name: given} if given is not None else None)[name]
                    break
                except InputError:
                    continue
            else:
                inferred[name] = pa.string()
    out = {}
    for name in columns:
        kind = inferred.get(name, pa.string())
        if pa.types.is_temporal(kind):
            kind = pa.string()
        elif pa.types.is_null(kind):
            kind = pa.float64()  # empty throughout
        out[name] = kind
    return out


def _skip_comment_row(row: Any) -> str:
    """pyarrow's handler of a CSV row with the wrong number of fields: skip it when it is a
    ``#`` comment line, else fail as before."""
    return "skip" if row.text.lstrip().startswith("#") else "error"


def _csv_rows_and_id_type(path: Path, layout: TextLayout, id_column: str | None) -> tuple[int, Any]:
    """Rows of a plain CSV file, and the pyarrow type its id column is read as (None without one).

    pyarrow infers a column's type from the first block and then fails on a later block that
    does not fit it (integer ids, then text ids), and reads integers beyond int64 as floats,
    which merges neighbouring ids. So the ids are int64 when every one is a whole number that
    int64 holds, text otherwise, exact either way. The counting pass reads them as pyarrow
    infers them; only when that gives neither int64 nor text, or a later block does not fit,
    does a second pass read them as text and decide.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if id_column is None:
        return sum(batch.num_rows for batch in _csv_batches(path, layout, layout.names[:1], ())), None
    rows, inferred = 0, None
    try:
        for batch in _csv_batches(path, layout, [id_column], ()):
            rows += batch.num_rows
            inferred = batch.schema.field(0).type
    except InputError:
        inferred = None  # a later block of another type
    if inferred is not None and (inferred == pa.int64() or pa.types.is_string(inferred)):
        return rows, inferred
    rows, integer = 0, True
    for batch in _csv_batches(path, layout, [id_column], (), {id_column: pa.string()}):
        rows += batch.num_rows
        if integer:
            try:
                pc.cast(pc.utf8_trim_whitespace(batch.column(0)), pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                integer = False
    return rows, pa.int64() if integer else pa.string()


def _rebatch(batches: Iterator[Any], rows: int) -> Iterator[Any]:
    """Tables of exactly ``rows`` rows (the last one shorter) from record batches of any size."""
    import pyarrow as pa

    pending: list[Any] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def _masked_null(values: np.ndarray, null: Any) -> np.ndarray:
    """Integer ``values`` with the cells equal to a FITS column's TNULL ``null`` masked."""
    if null is None or values.dtype.kind not in "iu":
        return values
    return np.ma.MaskedArray(values, mask=values == null)


#: Prefix of the catalogue columns a run carries to its output (``--keep``) among the row
#: arrays of shards and batches, so that a carried column never meets an input of the same name
#: (a catalogue's own ``mag_r`` carried beside the model's ``mag_r``).
CARRIED_PREFIX = "carried:"


def carried_pairs(spec: str | Sequence[str] | Mapping[str, str] | None) -> list[tuple[str, str]]:
    """``(output name, column)`` of each entry of a ``--keep`` spec (:func:`parse_carried`),
    before any check against a catalogue; an empty entry is refused."""
    if not spec:
        return []
    if isinstance(spec, Mapping):
        return [(str(k), str(v)) for k, v in spec.items()]
    pairs = []
    for item in (str(item).strip() for item in (spec.split(",") if isinstance(spec, str) else spec)):
        if not item:
            raise InputError("--keep", f"an empty column name in {spec!r}")
        output, _, source = item.partition("=") if "=" in item else (item, "", item)
        pairs.append((output.strip(), source.strip()))
    return pairs


def parse_carried(spec: str | Sequence[str] | Mapping[str, str] | None, names: Sequence[str],
                  where: str | os.PathLike, reserved: Sequence[str] = ()) -> dict[str, str]:
    """The catalogue columns to copy to the output: output name -> catalogue column.

    Parameters
    ----------
    spec : str, sequence of str or mapping
        ``"A,B,NEW=C"`` (``NEW=C`` writes column ``C`` as ``NEW``), the same as a list, or a
        mapping output name -> column. None or empty: nothing is carried.
    names : sequence of str
        The catalogue's columns.
    where : str or path-like
        The catalogue, named in error messages.
    reserved : sequence of str
        The prediction's own output columns.

    Raises
    ------
    InputError
        A column the catalogue lacks, or an output name that repeats one of the prediction's
        or another carried column's. Names are compared without case: FITS column names
        ignore it, and an output may be written as FITS.
    """
    taken = {name.lower(): f"the prediction's column {name!r}" for name in reserved}
    carried: dict[str, str] = {}
    for output, source in carried_pairs(spec):
        if source not in names:
            close = [name for name in names if name.lower() == source.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(where, f"--keep names column {source!r}, which the catalogue does not have{hint}")
        if not output:
            raise InputError("--keep", f"an empty output name for column {source!r}")
        clash = taken.get(output.lower())
        if clash:
            raise InputError("--keep", f"output column {output!r} would repeat {clash}: give it another name, "
                                       f"e.g. --keep cat_{output}={source}")
        taken[output.lower()] = f"the carried column {output!r}"
        carried[output] = source
    return carried


def _decoded_bytes(data: np.ndarray) -> np.ndarray:
    """An object array holding byte strings (text read from FITS, some Parquet writers) with
    them decoded as UTF-8; any other array as it is."""
    if data.dtype.kind == "O" and any(isinstance(v, bytes) for v in data[:100]):
        return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in data], dtype=object)
    return data


def carried_values(values: np.ndarray, name: str, where: str | os.PathLike) -> np.ndarray:
    """A carried column's values as a 1-D array (masked where empty), text decoded.

    Raises
    ------
    InputError
        A column holding several values per row (a vector column).
    """
    from ..data.catalog import _values_per_row

    data = np.ma.getdata(values)
    mask = np.ma.getmaskarray(values)
    if _values_per_row(data) is not None:
        raise InputError(where, f"--keep: column {name!r} holds several values per row; carry columns of one value per row")
    data = _decoded_bytes(np.char.decode(data, "utf-8", "replace") if data.dtype.kind == "S" else data)
    if data.dtype.kind == "O":
        # Text with empty cells (None from Arrow): masked text, as an astropy table holds it.
        missing = np.array([v is None for v in data], bool)
        mask = mask | missing
        data = np.where(missing, "", data).astype(str)
    data = data.astype(data.dtype.newbyteorder("=")) if data.dtype.kind in "iufb" else data
    return np.ma.MaskedArray(data, mask=mask) if mask.any() else data


def add_stamp_columns(table: Any, stamps: Any, carried: Mapping[str, str]) -> Any:
    """Copy the stamp set table's columns ``carried`` (output name -> column,
    :func:`parse_carried`) to the prediction ``table`` of ``stamps`` (one row per stamp, in
    order), with their units; returns the table."""
    for output, source in carried.items():
        table[output] = carried_values(stamps.column(source), source, stamps.path)
        _set_carried_unit(table[output], stamps.column_unit(source))
    return table


def _set_carried_unit(column: Any, unit: str | None) -> None:
    """Give a carried column its catalogue's unit; a unit astropy does not know is kept as
    text, not refused (it is the catalogue's own business)."""
    if unit:
        from astropy import units as u

        column.unit = u.Unit(unit, parse_strict="silent")


def stampset_carried(keep: Any, stamps: Any, where: str | os.PathLike, predictor: Predictor) -> dict[str, str]:
    """:func:`parse_carried` for a stamp set's table and ``predictor``'s output columns (the
    model is probed for them only when ``keep`` names columns)."""
    if not keep:
        return {}
    return parse_carried(keep, stamps.columns, where, prediction_output_names(predictor, probe_predictor(predictor)))


def _empty_text_as_null(column: Any) -> Any:
    """A text Arrow column with its empty and blank cells as nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""), pa.scalar(None, column.type), column)


def output_id_dtype(dtype: np.dtype) -> np.dtype:
    """The type numeric ids of ``dtype`` are carried in: integers as int64 (uint64 as it is),
    floats as float64, any other type unchanged.

    The files of a folder catalogue often hold the ids at different widths (int32 in one,
    int64 in the next); one exact type for all keeps every shard and part of one schema, so
    that the rows of several files can go into one part and the parts into one table.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "u" and dtype.itemsize == 8:
        return np.dtype(np.uint64)
    if dtype.kind in "iu":
        return np.dtype(np.int64)
    if dtype.kind == "f":
        return np.dtype(np.float64)
    return dtype


class CatalogColumns:
    """Where a catalogue keeps what prediction needs, and how to read it from raw columns.

    Parameters
    ----------
    names : sequence of str
        The catalogue's column names.
    where : str or path-like
        The catalogue, named in error messages.
    mapping : ColumnMapping
        Resolved column mapping (:func:`skysort.data.catalog.resolve_mapping`).
    bands : sequence of str
        Photometry bands the model needs.
    require_sky : bool
        Whether ``ra``/``dec`` columns are required (to place sources on tiles).
    units : mapping, optional
        Column name -> unit the file declares (astropy unit or text): positions in another
        angle unit are converted to degrees, magnitude columns holding fluxes are refused.
    magnitudes : mapping, optional
        The magnitude convention the model learnt (its ``catalogue_magnitudes``): fluxes of a
        mapping with ``flux_unit`` become asinh magnitudes with the model's softening where
        it learnt those (SDSS), Pogson magnitudes otherwise.
    """

    def __init__(self, names: Sequence[str], where: str | os.PathLike, mapping: Any, bands: Sequence[str], *, require_sky: bool,
                 units: Mapping[str, Any] | None = None, magnitudes: Mapping[str, Any] | None = None):
        from astropy.table import Table

        from ..data.catalog import (_locate_columns, check_flux_unit, check_magnitude_unit, degrees_per_unit, element_reference,
                                    maggies_per_unit)

        self.where = where
        self.bands = tuple(bands)
        #: Catalogue columns copied to the output: output name -> column (:func:`parse_carried`).
        self.carried: dict[str, str] = {}
        names = list(names)
        empty = Table(names=names, dtype=[float] * len(names)) if names else Table()
        self.sources, _ = _locate_columns(empty, mapping, self.bands or None, where, require_positions=require_sky)
        if not self.bands:
            # Without photometry bands the auto mapping would pick up every mag_ column.
            self.sources = {k: v for k, v in self.sources.items() if not k.startswith(("mag_", "magerr_"))}
        if require_sky and self.sources.get("ra") is None:
            raise InputError(where, "no ra/dec columns: tiles need sky positions (x/y pixel positions refer to a single image)")
        self.sentinels = np.array(mapping.effective_sentinels(), dtype=np.float64)
        #: Sources that name one element of a vector column (``PSFMAG[2]``) -> that column.
        self.elements: dict[str, str] = {}
        for name in self.sources.values():
            element = element_reference(name) if name is not None and name not in names else None
            if element is not None:
                self.elements[name] = element[0]
        units = {**{name: (units or {}).get(base) for name, base in self.elements.items()}, **(units or {})}
        self.degrees_per_unit = {key: degrees_per_unit(units.get(self.sources[key]), self.sources[key], where, key)
                                 for key in ("ra", "dec") if self.sources.get(key) is not None}
        #: Maggies per unit of the flux columns the mapping names as mag (None: magnitudes).
        self.maggies_per_flux = maggies_per_unit(mapping.flux_unit, where) if mapping.flux_unit else None
        #: Magnitudes added to a band's catalogue magnitudes to put them on AB, as read_catalog
        #: adds them (a mapping with flux_unit has none: fluxes in a physical unit are AB).
        self.ab_offsets = {band: float(mapping.ab_offsets[band]) for band in self.bands if mapping.ab_offsets.get(band)}
        magnitudes = magnitudes or {}
        self.softening = dict(magnitudes.get("softening") or {}) if magnitudes.get("system") == "asinh" else {}
        for key, column in self.sources.items():
            if column is None or not key.startswith(("mag_", "magerr_")):
                continue
            if self.maggies_per_flux is not None:
                check_flux_unit(units.get(column), column, mapping.flux_unit, where)
            elif key.startswith("mag_"):
                check_magnitude_unit(units.get(column), column, where, self.ab_offsets.get(key.removeprefix("mag_"), 0.0))

    @property
    def needed(self) -> list[str]:
        """Catalogue columns to read (a vector column once for all its elements), then the
        carried ones."""
        sources = [self.elements.get(v, v) for v in self.sources.values() if v is not None]
        return list(dict.fromkeys([*sources, *self.carried.values()]))

    def _column(self, raw: Mapping[str, np.ndarray], name: str) -> np.ndarray:
        """Source column ``name`` of the raw columns read: itself, or one element of each row
        of a vector column (:func:`~skysort.data.catalog.column_element`)."""
        if name not in self.elements:
            return raw[name]
        from ..data.catalog import column_element

        return column_element(raw[self.elements[name]], name, self.where)

    def _float(self, values: np.ndarray, name: str, sentinels: bool) -> np.ndarray:
        from ..data.catalog import as_float

        values, masked = as_float(values, "column", self.where, name)
        bad = ~np.isfinite(values) | masked
        if sentinels and self.sentinels.size:
            bad |= np.isin(values, self.sentinels)
        return np.where(bad, np.nan, values)

    def _position(self, values: np.ndarray, key: str, name: str) -> np.ndarray:
        """ra or dec in degrees, NaN where missing: numbers in the column's unit, or sexagesimal
        text (:func:`~skysort.data.catalog.position_degrees`)."""
        from ..data.catalog import position_degrees

        degrees, missing = position_degrees(values, key, self.where, name, self.degrees_per_unit[key])
        return np.where(missing | ~np.isfinite(degrees), np.nan, degrees)

    def _ids(self, values: np.ndarray, name: str, start: int | None) -> np.ndarray:
        """Ids as given (numbers in native byte order, anything else as text); a row without one
        is refused. Predictions are matched back to the catalogue by id, and an integer column
        with an empty cell would otherwise be read as floats, which cannot hold 64-bit ids
        (every SDSS objID of a chunk would become the same number)."""
        from ..data.catalog import missing_ids

        data = _decoded_bytes(np.asarray(np.ma.getdata(values)))
        missing = missing_ids(data, np.ma.getmaskarray(values))
        ids = data.astype(output_id_dtype(data.dtype)) if data.dtype.kind in "iuf" else data.astype(str)
        if missing.any():
            rows = np.flatnonzero(missing)
            if start is None:
                where = f"{rows.size:,} row(s) of a partition"
            else:
                more = f" and {rows.size - 1:,} more of rows {start + 1:,}-{start + len(ids):,}" if rows.size > 1 else ""
                where = f"data row {start + rows[0] + 1:,}{more}"
            raise InputError(self.where, f"column {name!r} has no value in {where}: every prediction carries its object's "
                                         "id, so every row needs one")
        return ids

    def reduce(self, raw: Mapping[str, np.ndarray], start: int | None, n: int) -> dict[str, np.ndarray]:
        """``id``, ``ra``, ``dec`` (deg, NaN when absent), ``mag_<band>``, ``magerr_<band>``
        (float32, NaN where missing) of ``n`` rows from raw columns (catalogue name -> array);
        ``id`` defaults to the row number counted from ``start`` (None: rows whose place in the
        catalogue is not known, a HATS partition's, numbered from 0); the carried columns
        follow as ``carried:<output name>`` (:data:`CARRIED_PREFIX`)."""
        from ..data.catalog import fluxes_to_magnitudes

        out: dict[str, np.ndarray] = {}
        if self.sources.get("id") is not None:
            out["id"] = self._ids(self._column(raw, self.sources["id"]), self.sources["id"], start)
        else:
            out["id"] = np.arange(start or 0, (start or 0) + n, dtype=np.int64)
        for key in ("ra", "dec"):
            column = self.sources.get(key)
            out[key] = self._position(self._column(raw, column), key, column) if column else np.full(n, np.nan)
        for band in self.bands:
            values = {}
            for prefix in ("mag", "magerr"):
                column = self.sources.get(f"{prefix}_{band}")
                values[prefix] = self._float(self._column(raw, column), column, True) if column else np.full(n, np.nan)
            if self.maggies_per_flux is not None:
                values["mag"], values["magerr"] = fluxes_to_magnitudes(values["mag"], values["magerr"], self.maggies_per_flux,
                                                                       self.softening.get(band))
            values["mag"] = values["mag"] + self.ab_offsets.get(band, 0.0)
            for prefix in ("mag", "magerr"):
                out[f"{prefix}_{band}"] = values[prefix].astype(np.float32)
        for band in self.bands:
            out[f"magerr_{band}"][~np.isfinite(out[f"mag_{band}"])] = np.nan
        for output, source in self.carried.items():
            out[CARRIED_PREFIX + output] = carried_values(raw[source], source, self.where)
        return out


def prediction_columns(names: Sequence[str], where: str | os.PathLike, mapping: Any, spec: Any, inputs: Any,
                       warn: Callable[[str | os.PathLike, str], None] | None,
                       units: Mapping[str, Any] | None = None,
                       magnitudes: Mapping[str, Any] | None = None) -> tuple["CatalogColumns", bool]:
    """The catalogue columns a prediction reads, and whether the model's magnitudes are missing.

    Normally the model's photometry bands are required. A model that also reads images, given
    tiles and a catalogue with no magnitude in any of its bands (a catalogue of positions),
    classifies from the images alone: no magnitude is read, the model gets them as missing and
    every row is flagged MISSING_PHOTOMETRY. A catalogue holding some of the bands is refused
    as before (a mapping problem, not a catalogue of positions).
    """
    bands = list(spec.photometry_bands)
    try:
        return CatalogColumns(names, where, mapping, bands, require_sky=inputs.needs_sky, units=units,
                              magnitudes=magnitudes), False
    except InputError:
        image_only_possible = bool(bands) and spec.uses_images and inputs.images_available
        if not image_only_possible or any(_has_band(names, where, mapping, band) for band in bands):
            raise
    report_problem(warn, where, f"no magnitude column for any of the model's bands {bands}: classifying from the images "
                                "alone (flagged MISSING_PHOTOMETRY)")
    return CatalogColumns(names, where, mapping, (), require_sky=inputs.needs_sky, units=units), True


def _has_band(names: Sequence[str], where: str | os.PathLike, mapping: Any, band: str) -> bool:
    try:
        CatalogColumns(names, where, mapping, (band,), require_sky=False)
    except InputError:
        return False
    return True


class CatalogStream:
    """A catalogue read in chunks, reduced to what prediction needs.

    Each chunk is a dict of arrays: ``id``, ``ra``, ``dec`` (deg, NaN when absent),
    ``mag_<band>``, ``magerr_<band>`` (float32, NaN where missing) for the model's photometry
    bands. Parquet files are read by row groups, FITS tables memory-mapped and plain CSV
    files parsed block by block (one extra pass counts the rows), so memory does not grow
    with the catalogue; ECSV files are read whole.

    Parameters
    ----------
    path : path-like
        Catalogue file.
    mapping : optional
        Column mapping (preset name, YAML file, compact string; see
        :func:`skysort.data.catalog.resolve_mapping`).
    bands : sequence of str
        Photometry bands the model needs.
    require_sky : bool
        Whether ``ra``/``dec`` columns are required (to place sources on tiles).
    """

    def __init__(self, path: str | os.PathLike, mapping: Any = None, bands: Sequence[str] = (), require_sky: bool = True):
        from astropy.table import Table

        from ..data.catalog import (_format_of, _read_raw, _unknown_format, parquet_folder_files, parquet_mask_columns,
                                    parquet_units, resolve_mapping, text_layout)

        self.path = Path(path)
        self.mapping = resolve_mapping(mapping)
        self.format = _format_of(self.path)
        if self.format is None:
            raise _unknown_format(self.path)
        if not self.path.is_file() and not self.path.is_dir():
            raise InputError(self.path, "catalogue file not found")
        #: The file, or the Parquet files of a folder catalogue (read in turn).
        self._parquet_files = parquet_folder_files(self.path) if self.path.is_dir() else [self.path]
        self._raw: Table | None = None
        self._fits_hdu_index: int | None = None
        self._csv_layout: TextLayout | None = None
        #: The first Parquet file's schema, which every other file of a folder must agree with.
        self._parquet_schema: Any = None
        #: Units the file declares per column (FITS TUNITn, astropy's metadata in Parquet and ECSV).
        self.units: dict[str, Any] = {}
        try:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                schema = self._parquet_schema = pq.read_schema(self._parquet_files[0])
                # The masks astropy writes beside masked columns are read with them, not as columns.
                names = [name for name in schema.names if name not in parquet_mask_columns(schema).values()]
                self.n_rows = 0
                for file in self._parquet_files:
                    try:
                        self.n_rows += pq.read_metadata(file).num_rows
                    except Exception as exc:  # noqa: BLE001 - a reader failure is that file's problem
                        raise InputError(file, f"cannot read as PARQUET: {exc}") from None
                self.units = parquet_units(schema)
            elif self.format == "fits" and not self.path.name.lower().endswith(".gz"):
                from astropy.io import fits

                from ..data.catalog import fits_table_hdu

                with fits.open(self.path, memmap=True) as hdul:
                    index = fits_table_hdu(hdul, self.path)
                    names = list(hdul[index].columns.names)
                    self.n_rows = int(hdul[index].header["NAXIS2"])
                    self.units = {column.name: column.unit for column in hdul[index].columns}
                self._fits_hdu_index = index
            elif self.format == "tsv" or (self.format == "csv" and not self._is_ecsv_file()):
                self._csv_layout = text_layout(self.path)
                names = self._csv_layout.names
                self.units = dict(self._csv_layout.units)
                self.n_rows = -1  # counted below, with the id column's type
            else:
                self._raw, _ = _read_raw(self.path)
                names = list(self._raw.colnames)
                self.n_rows = len(self._raw)
                self.units = {name: self._raw[name].unit for name in names}
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - every reader failure is the file's problem
            raise InputError(self.path, f"cannot read as {self.format.upper()}: {exc}") from None
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise InputError(self.path, f"column name(s) {', '.join(repeated)} appear more than once: which one is meant "
                                        "is ambiguous")
        #: The file's column names, and the columns read (:func:`prediction_columns` chooses them
        #: for a prediction run; the id column is the same whichever bands are read).
        self.names = list(names)
        self.columns = CatalogColumns(names, self.path, self.mapping, bands, require_sky=require_sky, units=self.units)
        self._csv_id_type = None
        #: (carried columns, the pyarrow types a text catalogue's carried columns are read as).
        self._carried_types: tuple[tuple[str, ...], dict[str, Any]] | None = None
        if self._csv_layout is not None:
            self.n_rows, self._csv_id_type = _csv_rows_and_id_type(self.path, self._csv_layout, self.columns.sources.get("id"))
        if self.n_rows == 0:
            raise InputError(self.path, "catalogue has no rows")

    def _is_ecsv_file(self) -> bool:
        from ..data.catalog import _is_ecsv

        if self.path.stat().st_size == 0:
            raise InputError(self.path, "catalogue file is empty")
        return _is_ecsv(self.path)

    def _sexagesimal_columns(self, rows: int = 1000) -> list[str]:
        """The ra/dec columns of a plain CSV file holding sexagesimal text in its first ``rows``
        data rows (an empty first cell does not hide the convention)."""
        import csv
        import io
        import itertools

        from ..data.catalog import is_sexagesimal, open_csv_bytes

        wanted = [self.columns.sources.get(key) for key in ("ra", "dec")]
        if self._csv_layout is None or any(name not in self._csv_layout.names for name in wanted):
            return []  # no sky positions, or ones a text file cannot hold (elements of vector columns)
        where = [self._csv_layout.names.index(name) for name in wanted]
        found: set[str] = set()
        with io.TextIOWrapper(open_csv_bytes(self.path), encoding="utf-8-sig", errors="replace", newline="") as fh:
            lines = itertools.islice(fh, self._csv_layout.skip_rows, self._csv_layout.skip_rows + rows)
            for cells in csv.reader((line for line in lines if line.strip()), delimiter=self._csv_layout.delimiter):
                found.update(name for name, k in zip(wanted, where) if k < len(cells) and is_sexagesimal(cells[k]))
        return [name for name in wanted if name in found]

    def identity(self) -> Any:
        """What fixes this catalogue's content for a run's signature: the file's path, size and
        modification time, or those of each file of a folder catalogue (so a file added to or
        changed in the folder is noticed on resuming)."""
        if self.path.is_dir():
            return [file_identity(file) for file in self._parquet_files]
        return file_identity(self.path)

    @property
    def needed_columns(self) -> list[str]:
        return self.columns.needed

    def _numpy(self, column: Any, name: str) -> np.ndarray:
        """An Arrow column as numpy: a carried column with its nulls masked (an integer column
        with empty cells stays integer), any other as pyarrow converts it (nulls as NaN)."""
        if name in self.columns.carried.values():
            from ..data.catalog import arrow_to_numpy

            return arrow_to_numpy(column)
        return column.to_numpy(zero_copy_only=False)

    def _raw_chunks(self, chunk_rows: int) -> Iterator[dict[str, np.ndarray]]:
        columns = self.needed_columns
        if self.format == "parquet":
            import pyarrow.parquet as pq

            import pyarrow as pa

            from ..data.catalog import check_same_columns, masks_as_nulls, parquet_mask_columns

            for file in self._parquet_files:
                # A chunk does not span files: a folder's chunks are at most a file's rows.
                with pq.ParquetFile(file) as parquet:
                    check_same_columns(file, self.names, parquet.schema_arrow.names, self._parquet_files[0], columns,
                                       first_schema=self._parquet_schema, schema=parquet.schema_arrow)
                    masks = {name: mask for name, mask in parquet_mask_columns(parquet.schema_arrow).items() if name in columns}
                    for piece in _parquet_pieces(parquet, chunk_rows, [*columns, *masks.values()]):
                        if masks:
                            table = piece if isinstance(piece, pa.Table) else pa.Table.from_batches([piece])
                            piece = masks_as_nulls(table, masks)
                        yield {name: self._numpy(piece.column(name), name) for name in columns}
        elif self._csv_layout is not None:
            import pyarrow as pa

            # Positions written as sexagesimal text are read as text and converted in reduce().
            text = self._sexagesimal_columns()
            numeric = [name for key, name in self.columns.sources.items()
                       if name is not None and name not in text
                       and (key in ("ra", "dec", "x", "y") or key.startswith(("mag_", "magerr_")))]
            id_column = self.columns.sources.get("id")
            types = {name: pa.string() for name in text}
            if id_column and self._csv_id_type is not None:
                types[id_column] = self._csv_id_type
            # A carried column that is also an input keeps the input's type. The others' types
            # take a pass over the file, made once (planning again reads the file again).
            carried = tuple(c for c in self.columns.carried.values() if c not in numeric and c not in types)
            if self._carried_types is None or self._carried_types[0] != carried:
                self._carried_types = (carried, _csv_column_types(self.path, self._csv_layout, carried))
            types = {**self._carried_types[1], **types}
            # An empty text cell is a missing value, as astropy's reader (read_catalog) reads it;
            # pyarrow reads it as the text "". Its strings_can_be_null would also null text cells
            # holding "NA" or "null", which astropy keeps as text.
            text_carried = {name for name in self.columns.carried.values() if types.get(name) == pa.string()}
            for piece in _rebatch(_csv_batches(self.path, self._csv_layout, columns, numeric, types), chunk_rows):
                yield {name: self._numpy(_empty_text_as_null(piece.column(name)) if name in text_carried else piece.column(name),
                                         name) for name in columns}
        elif self._fits_hdu_index is not None:
            from astropy.io import fits

            with fits.open(self.path, memmap=True) as hdul:
                hdu = hdul[self._fits_hdu_index]
                # Integer FITS columns mark empty cells with a TNULL value, which astropy's
                # record array does not mask.
                nulls = {name: hdu.columns[name].null for name in columns}
                for start in range(0, self.n_rows, chunk_rows):
                    rows = hdu.data[start : start + chunk_rows]
                    yield {name: _masked_null(np.array(rows[name]), nulls[name]) for name in columns}
        else:
            # Masked columns stay masked: their empty cells are missing values (or missing ids).
            for start in range(0, self.n_rows, chunk_rows):
                yield {name: self._raw[name][start : start + chunk_rows] for name in columns}

    def chunks(self, chunk_rows: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(first_row, columns)`` for consecutive chunks of at most ``chunk_rows`` rows."""
        start = 0
        for raw in self._raw_chunks(chunk_rows):
            n = len(next(iter(raw.values()))) if raw else min(chunk_rows, self.n_rows - start)
            yield start, self.columns.reduce(raw, start, n)
            start += n


# ------------------------------------------------------------------------------------------
# Planning
# ------------------------------------------------------------------------------------------


def plan_units(folder: Path, catalog: CatalogStream, tiles: Sequence[TileInfo], memory: MemoryPlan,
               progress: Callable[[int], None] | None = None,
               inspect: Callable[[Mapping[str, np.ndarray]], None] | None = None) -> dict[str, Any]:
    """Assign catalogue rows to tiles, write the shards and cut the work into units.

    ``inspect`` is called with the first chunk's columns (a look at the data at no extra read).

    Returns
    -------
    dict
        ``mode``, ``n_sources``, ``n_outside`` (sources in no tile), ``n_invalid_positions``
        (those of them with no position on the sky), ``tiles`` and ``units`` (see
        ``docs/formats.md``); the manifest records it as it is.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .._io import atomic_path

    shard_dir = folder / SHARDS_DIR
    shard_dir.mkdir(parents=True, exist_ok=True)
    index = TileIndex(tiles) if tiles else None
    refs: dict[int, list[tuple[str, int, int]]] = {}
    n_total = n_invalid = 0
    for chunk_number, (start, columns) in enumerate(catalog.chunks(memory.catalog_chunk_rows)):
        if chunk_number == 0 and inspect:
            inspect(columns)
        n = len(columns["ra"])
        owner = index.owners(columns["ra"], columns["dec"]) if index else np.full(n, -1, np.int32)
        if index:
            # Counted chunk by chunk for one warning (report_invalid_positions), not one per chunk.
            n_invalid += n - int(np.count_nonzero(valid_sky_positions(columns["ra"], columns["dec"])))
        order = np.argsort(owner, kind="stable")
        owner_sorted = owner[order]
        arrays = {"catalog_row": np.arange(start, start + n, dtype=np.int64)[order]}
        arrays.update({name: values[order] for name, values in columns.items()})
        name = f"chunk-{chunk_number:05d}.parquet"
        with atomic_path(shard_dir / name) as tmp:
            table = pa.table({k: pa.array(v) for k, v in arrays.items()})
            with pq.ParquetWriter(tmp, table.schema) as writer:
                for group, (lo, hi) in enumerate(_runs(owner_sorted)):
                    writer.write_table(table.slice(lo, hi - lo), row_group_size=max(1, hi - lo))
                    refs.setdefault(int(owner_sorted[lo]), []).append((name, group, int(hi - lo)))
        n_total += n
        if progress:
            progress(n)
    if tiles and n_total and set(refs) == {-1}:
        # As skysort cutout does: a catalogue and tiles of different skies is a mistake, not a run.
        raise off_tiles_error(catalog.path, n_total)
    units: list[dict[str, Any]] = []
    owners = [t for t in range(len(tiles)) if t in refs] + ([-1] if -1 in refs else [])
    for t in owners:
        pieces: list[list[Any]] = []
        size = 0
        for name, group, count in refs[t]:
            lo = 0
            while lo < count:
                take = min(count - lo, memory.rows_per_part - size)
                pieces.append([name, group, lo, lo + take])
                size += take
                lo += take
                if size == memory.rows_per_part:
                    units.append(_unit(len(units), t, tiles, pieces, size))
                    pieces, size = [], 0
        if pieces:
            units.append(_unit(len(units), t, tiles, pieces, size))
    return {
        "mode": "tiles" if tiles else "photometry",
        "n_sources": int(n_total),
        "n_outside": int(sum(c for _, _, c in refs.get(-1, []))) if tiles else 0,
        "n_invalid_positions": int(n_invalid),
        "tiles": [dict(tile.to_json(), n_sources=int(sum(c for _, _, c in refs.get(t, [])))) for t, tile in enumerate(tiles)],
        "units": units,
    }


def off_tiles_error(catalog: str | os.PathLike, n_sources: int) -> InputError:
    """The error for a catalogue none of whose ``n_sources`` sources lies on a tile."""
    return InputError(catalog, f"none of its {n_sources:,} sources lies on a tile of --tiles; the catalogue and the "
                               "images cover different skies")


def report_invalid_positions(manifest: Manifest, catalog: str | os.PathLike,
                             warn: Callable[[str | os.PathLike, str], None] | None) -> None:
    """Report the catalogue rows planned without a position on the sky (once per run)."""
    n_invalid = int(manifest.content.get("n_invalid_positions") or 0)
    if n_invalid:
        report_problem(warn, catalog, f"{n_invalid:,} of {manifest.content['n_sources']:,} rows have no valid sky position "
                                      "(ra or dec NaN or infinite, or |dec| > 90): no stamps are cut for them, they are "
                                      "treated as sources in no tile")


def report_without_input(used: Sequence[np.ndarray], catalog: str | os.PathLike,
                         warn: Callable[[str | os.PathLike, str], None] | None) -> None:
    """Report the objects that had no usable input, from the ``inputs_used`` columns of a run's
    results (one array per part; an sgq model's output)."""
    missing = sum(int(np.count_nonzero(np.asarray(values) == "none")) for values in used)
    if missing:
        total = sum(len(values) for values in used)
        report_problem(warn, catalog, f"{missing:,} of {total:,} objects had no usable input (no magnitude in the model's "
                                      "bands and no image): their class is empty and their probabilities are the prior "
                                      "(inputs_used none)")


def _runs(sorted_keys: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` of each run of equal values in a sorted array (none for an empty one)."""
    bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
    starts = np.concatenate([[0], bounds]) if len(sorted_keys) else bounds
    stops = np.concatenate([bounds, [len(sorted_keys)]]) if len(sorted_keys) else bounds
    return zip(starts.tolist(), stops.tolist())


def _unit(index: int, tile: int, tiles: Sequence[TileInfo], refs: list[list[Any]], n: int) -> dict[str, Any]:
    return {"index": index, "kind": "tile" if tile >= 0 else "catalog", "tile": tile if tile >= 0 else None,
            "input_tiles": sorted(tiles[tile].files.values()) if tile >= 0 else [], "refs": refs, "n_sources": int(n)}


# ------------------------------------------------------------------------------------------
# Cutting: work unit -> batches of model inputs
# ------------------------------------------------------------------------------------------


@dataclass
class ReaderConfig:
    """What the cutting side needs (picklable: travels to worker processes and Dask tasks)."""

    folder: str
    tiles: list[dict[str, Any]]
    image_bands: list[str]
    photometry_bands: list[str]
    stamp_size: int
    reference_band: str
    batch_size: int
    tile_cache_tiles: int
    images_available: bool
    photometry_only_ok: bool
    background: str = "sep"
    #: The model reads the seeing in this band: it is measured on each tile (None: it does not).
    seeing_band: str | None = None
    #: AB zero points of the model's flux unit per image band: tiles on others are rescaled to it.
    zero_points: dict[str, float] | None = None
    #: The catalogue has none of the model's magnitudes: they are given to the model as missing
    #: (NaN) and every row is flagged.
    photometry_missing: bool = False
    #: Units of the catalogue columns carried to the output (output name -> unit text).
    carried_units: dict[str, str] | None = None
    #: The extension of each tile file holding its weight map, or "none" (None: the one whose
    #: name is recognised; see :func:`skysort.data.images.find_weight_hdu`).
    weight_hdu: str | None = None
    #: AB zero points of one pixel unit of the tiles given by the user (``--zero-points``), per
    #: band, replacing the headers'.
    image_zero_points: dict[str, float] | None = None
    #: The model's pixel scale [arcsec/px]: tiles whose reference band differs from it by more
    #: than :data:`PIXEL_SCALE_TOLERANCE` are resampled to it (None: cut as they are).
    model_pixel_scale: float | None = None
    #: A token fresh for each run: a worker process keeps its tile reader (open tiles, and the
    #: tiles it found unreadable) for the run it was made for only, so that a rerun after a
    #: damaged tile was copied again reads the new file.
    run: str = ""


#: Relative difference between a tile's pixel scale and the model's beyond which stamps are
#: resampled to the model's scale rather than cut on the tile's own pixels.
PIXEL_SCALE_TOLERANCE = 0.02


def stamp_pixel_scale(model_scale: float | None, tile_scale: float) -> float | None:
    """The pixel scale to cut a tile's stamps at [arcsec/px]: the model's when the tile's
    differs from it by more than :data:`PIXEL_SCALE_TOLERANCE`, else None (the tile's own
    pixels, cut without resampling)."""
    if model_scale and np.isfinite(tile_scale) and abs(tile_scale / model_scale - 1.0) > PIXEL_SCALE_TOLERANCE:
        return float(model_scale)
    return None


class UnitReader:
    """Turns work units into batches of model inputs (reads shards and tiles, cuts stamps)."""

    def __init__(self, config: ReaderConfig):
        self.config = config
        self._tiles: OrderedDict[int, tuple[list[Any], list[bool], int, float]] = OrderedDict()
        # Tiles found unreadable, so that the other units of such a tile fail without reading it again.
        self._unreadable: dict[int, InputError] = {}

    def _tile(self, t: int) -> tuple[list[Any], list[bool], int, float]:
        """The tile's band images, which of them share the reference grid, the reference band's
        index and the seeing [arcsec] in the model's seeing band (NaN if it reads none)."""
        from ..data.images import read_band_images

        if t in self._tiles:
            self._tiles.move_to_end(t)
            return self._tiles[t]
        if t in self._unreadable:
            raise self._unreadable[t]
        while len(self._tiles) >= self.config.tile_cache_tiles:
            self._tiles.popitem(last=False)
        files = self.config.tiles[t]["files"]
        weights = self.config.tiles[t].get("weights") or {}
        bands = self.config.image_bands
        try:
            images = read_band_images([files[b] for b in bands], bands, threads=len(bands), background=self.config.background,
                                      weights=[weights.get(b) for b in bands], weight_hdu=self.config.weight_hdu,
                                      zero_points=self.config.image_zero_points)
        except InputError as error:
            self._unreadable[t] = error
            raise
        reference = bands.index(self.config.reference_band)
        aligned = aligned_bands(images, reference)  # once per tile, not per batch
        seeing = float("nan")
        if self.config.seeing_band in bands:
            from ..data.ingest import image_seeing

            image = images[bands.index(self.config.seeing_band)]
            seeing = image_seeing([image])[image.band][0]
        self._tiles[t] = (images, aligned, reference, seeing)
        return self._tiles[t]

    def read_rows(self, unit: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The unit's catalogue rows from the shards."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        pieces = []
        files: dict[str, Any] = {}
        for name, group, lo, hi in unit["refs"]:
            if name not in files:
                path = Path(self.config.folder) / SHARDS_DIR / name
                if not path.exists():
                    raise InputError(self.config.folder, f"the catalogue shard {name} of unfinished unit {unit['index']} is gone; "
                                                         "remove the folder and run again")
                files[name] = pq.ParquetFile(path)
            pieces.append(files[name].read_row_group(group).slice(lo, hi - lo))
        from ..data.catalog import arrow_to_numpy

        # Carried columns may differ in width between the files of a folder catalogue (int32 in
        # one, int64 in the next): widened, never narrowed or turned into floats.
        table = pa.concat_tables(pieces, promote_options="permissive")
        # Only carried columns hold nulls in a shard; they stay masked, with their type.
        return {name: arrow_to_numpy(table.column(name)) for name in table.column_names}

    def batches(self, unit: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Batches of one unit: model inputs plus the rows' ids, positions and flags."""
        return self.batches_of_rows(unit, self.read_rows(unit))

    def batches_or_errors(self, units: Sequence[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """The batches of each of ``units`` in turn; a unit that meets bad input (its tile
        damaged, say) gives instead one item :func:`unit_input_error`, and the next unit
        follows."""
        for unit in units:
            try:
                yield from self.batches(unit)
            except InputError as error:
                yield unit_input_error(unit, error, self.config)

    def batches_of_rows(self, unit: Mapping[str, Any], rows: Mapping[str, np.ndarray]) -> Iterator[dict[str, Any]]:
        """Batches of a unit's rows (``catalog_row``, ``id``, ``ra``, ``dec``, photometry), cut
        from the unit's tile (``unit["kind"] == "tile"``) or photometry only."""
        from ..data.cutout import sky_to_pixel

        config = self.config
        n = len(rows["catalog_row"])
        with_images = unit["kind"] == "tile" and config.images_available and bool(config.image_bands)
        if with_images:
            from .predictor import flux_scale

            images, aligned, reference, seeing = self._tile(unit["tile"])
            weight_maps = {image.band: image.weight_map for image in images}
            stamp_scale = stamp_pixel_scale(config.model_pixel_scale, images[reference].pixel_scale)
            x, y = sky_to_pixel(images[reference], rows["ra"], rows["dec"])
            factors = flux_scale(config.image_bands, config.zero_points, {image.band: image.zero_point for image in images})
        n_batches = max(1, math.ceil(n / config.batch_size))
        for k in range(n_batches):
            part = slice(k * config.batch_size, min(n, (k + 1) * config.batch_size))
            m = part.stop - part.start
            inputs: dict[str, np.ndarray] = {}
            flags = np.zeros(m, np.uint32)
            if with_images:
                inputs["image"], flags = cut_stamps(images, x[part], y[part], size=config.stamp_size, reference=reference,
                                                      aligned=aligned, pixel_scale=stamp_scale)
                flags[stamps_missing_a_band(inputs["image"])] |= np.uint32(MISSING_INPUT_FLAG)
                if factors is not None:
                    inputs["image"] *= factors[None, :, None, None]
                if config.seeing_band:
                    inputs["psf_fwhm"] = np.full(m, seeing, np.float32)
            elif config.image_bands:
                flags |= np.uint32(MISSING_INPUT_FLAG)
                if unit["kind"] == "tile" or config.tiles:
                    flags |= np.uint32(Flags.MISSING_BAND)
            if config.photometry_bands:
                if config.photometry_missing:
                    mag = err = np.full((m, len(config.photometry_bands)), np.nan, np.float32)
                else:
                    mag = np.stack([rows[f"mag_{b}"][part] for b in config.photometry_bands], axis=1).astype(np.float32)
                    err = np.stack([rows[f"magerr_{b}"][part] for b in config.photometry_bands], axis=1).astype(np.float32)
                inputs["mag"], inputs["magerr"] = mag, err
                missing = ~np.isfinite(mag).all(axis=1)
                flags[missing] |= np.uint32(Flags.MISSING_PHOTOMETRY | MISSING_INPUT_FLAG)
            yield {
                "unit": unit["index"], "batch": k, "n_batches": n_batches, "inputs": inputs,
                "predict": with_images or (not config.image_bands) or (config.photometry_only_ok and not config.photometry_missing),
                "images_used": with_images, "flags": flags.astype(np.int32),
                "id": rows["id"][part], "ra": rows["ra"][part], "dec": rows["dec"][part],
                "catalog_row": rows["catalog_row"][part],
                "carried": {name: values[part] for name, values in rows.items() if name.startswith(CARRIED_PREFIX)},
                **({"weight_maps": weight_maps, "stamp_pixel_scale": stamp_scale} if with_images else {}),
            }


# ------------------------------------------------------------------------------------------
# Prediction: batches -> part tables
# ------------------------------------------------------------------------------------------


def probe_predictor(predictor: Predictor) -> dict[str, Any]:
    """Extra outputs (name -> dtype) of a predictor, and whether it can run without images.

    Runs the model once on two blank objects, so that rows the model cannot classify (no
    images) get the same columns as the others.
    """
    from ..errors import InputError as _InputError

    spec = predictor.spec
    n = 2
    photometry = {}
    if spec.uses_photometry:
        photometry = {"mag": np.full((n, len(spec.photometry_bands)), 20.0, np.float32),
                      "magerr": np.full((n, len(spec.photometry_bands)), 0.05, np.float32)}
    inputs = dict(photometry)
    if spec.uses_images:
        height, width = spec.stamp_size_to_cut or (32, 32)
        inputs["image"] = np.zeros((n, len(spec.image_bands), height, width), np.float32)
    outputs = predictor.predict(inputs)
    extras = {k: np.asarray(v).dtype.str for k, v in outputs.items() if k != "probabilities" and np.ndim(v) == 1}
    photometry_only = not spec.uses_images
    if spec.uses_images and spec.uses_photometry:
        try:
            predictor.predict(photometry, images_available=False)
            photometry_only = True
        except _InputError:
            photometry_only = False
    return {"extras": extras, "photometry_only": photometry_only}


def run_model(predictor: Predictor, inputs: Mapping[str, np.ndarray], *, images_available: bool, device: str) -> dict[str, np.ndarray]:
    """``predictor.predict`` under bf16 autocast on CUDA; probabilities as float32."""
    if str(device).startswith("cuda"):
        import torch

        with torch.autocast("cuda", dtype=torch.bfloat16):
            outputs = predictor.predict(inputs, images_available=images_available)
    else:
        outputs = predictor.predict(inputs, images_available=images_available)
    outputs = dict(outputs)
    outputs["probabilities"] = np.asarray(outputs["probabilities"], np.float32)
    return outputs


def prediction_output_names(predictor: Predictor, probe: Mapping[str, Any]) -> list[str]:
    """The columns a prediction run writes for ``predictor`` (before any carried column)."""
    from .predictor import class_table

    outputs = _blank_outputs(0, len(predictor.classes), probe["extras"])
    table = class_table(predictor, outputs, np.zeros(0, np.int64), {"ra": np.zeros(0), "dec": np.zeros(0)}, np.zeros(0, np.int32))
    return [*table.colnames, "images_used", "catalog_row"]


def _blank_outputs(n: int, n_classes: int, extras: Mapping[str, str]) -> dict[str, np.ndarray]:
    outputs = {"probabilities": np.full((n, n_classes), np.nan, np.float32)}
    for name, dtype in extras.items():
        dt = np.dtype(dtype)
        outputs[name] = np.full(n, np.nan if dt.kind == "f" else ("" if dt.kind in "US" else 0), dt)
    return outputs


class UnitAssembler:
    """Predicts batches and assembles each unit's rows into its output table."""

    def __init__(self, predictor: Predictor, probe: Mapping[str, Any], *, decision: ClassDecision | None, device: str,
                 carried_units: Mapping[str, str] | None = None):
        self.predictor = predictor
        #: Units of the carried catalogue columns (output name -> unit text).
        self.carried_units = dict(carried_units or {})
        self.extras = dict(probe["extras"])
        self.decision = decision or ClassDecision()
        self.decision.check(predictor)
        self.device = device
        self._pending: dict[int, list[tuple[dict[str, Any], dict[str, np.ndarray]]]] = {}

    def predict(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        n = len(batch["flags"])
        if not batch["predict"]:
            return _blank_outputs(n, len(self.predictor.classes), self.extras)
        outputs = run_model(self.predictor, batch["inputs"], images_available=batch["images_used"], device=self.device)
        # Every unit's part has the probe's columns, even where a predictor omits an output
        # for some inputs (e.g. a per-image quantity for photometry-only rows).
        kept = {k: v for k, v in outputs.items() if k == "probabilities" or k in self.extras}
        absent = {k: dtype for k, dtype in self.extras.items() if k not in kept}
        if absent:
            kept.update({k: v for k, v in _blank_outputs(n, 0, absent).items() if k != "probabilities"})
        return kept

    def drop(self, unit: int) -> int:
        """Forget the batches kept of ``unit`` (stopped by bad input); returns their rows."""
        return sum(len(batch["flags"]) for batch, _ in self._pending.pop(unit, []))

    def add(self, batch: dict[str, Any], outputs: dict[str, np.ndarray]):
        """Keep a predicted batch; return the unit's table once its last batch has arrived."""
        batch = {k: v for k, v in batch.items() if k != "inputs"}
        done = self._pending.setdefault(batch["unit"], [])
        done.append((batch, outputs))
        if len(done) < batch["n_batches"]:
            return None
        del self._pending[batch["unit"]]
        done.sort(key=lambda item: item[0]["batch"])
        return self.table([b for b, _ in done], [o for _, o in done])

    def table(self, batches: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, np.ndarray]]):
        def cat(key, source):
            return np.concatenate([np.asarray(item[key]) for item in source])

        merged = {k: cat(k, outputs) for k in outputs[0]}
        table = class_table(self.predictor, merged, cat("id", batches), {"ra": cat("ra", batches), "dec": cat("dec", batches)},
                            cat("flags", batches), self.decision)
        unknown = ~np.isfinite(merged["probabilities"]).all(axis=1)
        if unknown.any():
            table["class"][unknown] = ""
        table["images_used"] = np.concatenate([np.full(len(b["flags"]), bool(b["images_used"])) for b in batches])
        table["catalog_row"] = cat("catalog_row", batches)
        if "weight_maps" in batches[0]:
            # Which weight map made pixels of the unit's tile NaN (None per band: none was read).
            table.meta["weight_maps"] = batches[0]["weight_maps"]
            # The scale the unit's stamps were resampled to [arcsec/px]; None: the tile's own pixels.
            table.meta["stamp_pixel_scale"] = batches[0].get("stamp_pixel_scale")
        for key in batches[0].get("carried", {}):
            pieces = [b["carried"][key] for b in batches]
            name = key[len(CARRIED_PREFIX):]
            table[name] = np.ma.concatenate(pieces) if any(np.ma.isMaskedArray(p) for p in pieces) else np.concatenate(pieces)
            _set_carried_unit(table[name], self.carried_units.get(name))
        return table


def write_part(folder: str | os.PathLike, unit: Mapping[str, Any], table, meta: Mapping[str, Any]) -> tuple[str, int, str]:
    """Write a unit's table as its part (atomically); returns ``(name, rows, sha256)``."""
    from ..data.catalog import write_catalog

    table.meta.update(meta)
    table.meta.update({"unit": int(unit["index"]), "input_tiles": list(unit.get("input_tiles", []))})
    path = Path(folder) / part_name(unit["index"])
    write_catalog(table, path)
    return path.name, len(table), file_sha256(path)


# ------------------------------------------------------------------------------------------
# Running units in this process
# ------------------------------------------------------------------------------------------

_DONE = object()


def _in_thread(generator: Iterator[Any], maxsize: int) -> Iterator[Any]:
    """Run ``generator`` in a producer thread, at most ``maxsize`` items ahead."""
    items: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
    stop = threading.Event()

    def produce():
        try:
            for item in generator:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            items.put(exc)

    thread = threading.Thread(target=produce, name="skysort-cutting", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _identity(item):
    return item


class _UnitBatches:
    """Iterable over the batches of some units; with worker processes each takes every
    ``num_workers``-th unit (torch ``IterableDataset`` protocol)."""

    def __init__(self, config: ReaderConfig, units: Sequence[Mapping[str, Any]]):
        self.config = config
        self.units = list(units)

    def __iter__(self):
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        units = self.units if info is None else self.units[info.id :: info.num_workers]
        if info is not None:
            import torch

            torch.set_num_threads(1)
        # Bad input comes back as an item, not raised: the loader rebuilds a worker's exception
        # from its traceback text alone, which an InputError (file and problem) cannot take, and
        # the worker goes on with its other units.
        yield from UnitReader(self.config).batches_or_errors(units)


#: Key of the item the cutting side sends instead of a unit's batches when the unit meets bad
#: input: ``(unit index, where, problem, whether where is one of the unit's tile files)``.
UNIT_INPUT_ERROR = "skysort-unit-input-error"


def unit_input_error(unit: Mapping[str, Any], error: InputError, config: ReaderConfig) -> dict[str, tuple[int, str, str, bool]]:
    """The item that stands for ``unit`` stopped by ``error`` (see :data:`UNIT_INPUT_ERROR`)."""
    return {UNIT_INPUT_ERROR: (int(unit["index"]), str(error.where), error.problem, about_unit_tile(unit, error, config))}


def about_unit_tile(unit: Mapping[str, Any], error: InputError, config: ReaderConfig) -> bool:
    """Whether ``error`` names one of the image or weight files of ``unit``'s tile (a damaged
    tile, which sets the unit aside) rather than anything else (which stops the run)."""
    if unit.get("tile") is None:
        return False
    tile = config.tiles[unit["tile"]]
    files = [*tile["files"].values(), *(tile.get("weights") or {}).values()]
    return str(Path(error.where).resolve()) in {str(Path(f).resolve()) for f in files}


def iter_batches(config: ReaderConfig, units: Sequence[Mapping[str, Any]], *, workers: int, queue_batches: int) -> Iterator[dict[str, Any]]:
    """Batches of ``units`` cut ahead of the model: by a thread (``workers=0``) or processes."""
    if workers <= 0:
        yield from _in_thread(UnitReader(config).batches_or_errors(units), queue_batches)
        return
    import torch.utils.data

    dataset = type("UnitBatchDataset", (_UnitBatches, torch.utils.data.IterableDataset), {})(config, units)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_identity,
                                         prefetch_factor=max(1, queue_batches // workers), persistent_workers=False)
    yield from loader


class UnreadableUnits:
    """The units of a run that met bad input, and whether to stop.

    A unit stopped by one of its tile files is set aside and the run goes on. Any other bad
    input (the run folder's own files) stops the run at once. Until one unit of the run has
    been written, :data:`GIVE_UP_AFTER` failures per unit cut at a time (``parallel``: cutting
    processes, Dask tasks in flight) stop it too: failures from the start more likely come
    from something shared by every tile (an option, a mount) than from damaged files, and
    reading all tiles to say so wastes the run's time. Failures come back sooner than finished
    units, hence the allowance per unit in flight.
    """

    #: Failures with no unit written yet that stop the run, per unit cut at a time.
    GIVE_UP_AFTER = 3

    def __init__(self, manifest: Manifest, parallel: int = 1):
        self.manifest = manifest
        self.parallel = max(1, int(parallel))
        self.failed: list[dict[str, Any]] = []
        self.written = 0
        self.fatal: InputError | None = None

    def add(self, item: Mapping[str, tuple[int, str, str, bool]]) -> int:
        """Record a :data:`UNIT_INPUT_ERROR` item; returns the unit's number of sources."""
        index, where, problem, about_tile = item[UNIT_INPUT_ERROR]
        if not about_tile:
            self.fatal = self.fatal or InputError(where, problem)
        else:
            self.failed.append({"unit": int(index), "where": where, "problem": problem})
        return int(self.manifest.units[index]["n_sources"])

    def give_up(self) -> bool:
        return self.fatal is not None or (not self.written and len(self.failed) >= self.GIVE_UP_AFTER * self.parallel)

    def raise_if_any(self) -> None:
        """Record the failures in the manifest (or clear an earlier run's) and raise for them.

        Raises
        ------
        UnfinishedRunError
            Units failed on their tile files and others are written: the folder is worth
            resuming.
        InputError
            Units failed and none of this folder is written; or bad input other than a tile.
        """
        manifest = self.manifest
        manifest.content.pop("unreadable", None)
        if self.fatal is not None:
            manifest.save()
            raise self.fatal
        if not self.failed:
            return
        manifest.content["unreadable"] = self.failed
        manifest.save()
        where, problem = self.failed[0]["where"], failures_problem(self.failed)
        finished = sum(1 for unit in manifest.units if unit.get("part"))
        if not finished:
            raise InputError(where, problem)
        sources = sum(int(manifest.units[f["unit"]]["n_sources"]) for f in self.failed)
        raise UnfinishedRunError(where, f"{problem}; {len(self.failed)} of {len(manifest.units)} work "
                                                 f"units ({sources:,} sources) are left unfinished and listed under "
                                                 f"'unreadable' in {Manifest.path_in(manifest.folder)}; the other {finished} are "
                                                 "written: replace the file(s) and run the same command again to finish")


def failures_problem(failed: Sequence[Mapping[str, Any]]) -> str:
    """The problem of the first of ``failed`` (entries with ``where`` and ``problem``), with
    how many other files failed too: the text of the error line that ends a run."""
    files = {entry["where"] for entry in failed}
    return failed[0]["problem"] + (f" ({len(files) - 1} other file(s) too)" if len(files) > 1 else "")


def run_local(manifest: Manifest, reader_config: ReaderConfig, assembler: UnitAssembler, part_meta: Mapping[str, Any], *,
              workers: int, queue_batches: int, progress: Callable[[int], None] | None = None) -> UnreadableUnits:
    """Process the manifest's pending units in this process, recording each finished part;
    returns the units that met bad input (:class:`UnreadableUnits`)."""
    pending = manifest.pending()
    meta = dict(part_meta, run_id=manifest.run_id)
    unreadable = UnreadableUnits(manifest, parallel=workers)
    for batch in iter_batches(reader_config, pending, workers=workers, queue_batches=queue_batches):
        if UNIT_INPUT_ERROR in batch:
            unit_sources = unreadable.add(batch)
            # Batches of the unit already predicted (none when its tile fails to read) are dropped.
            done = assembler.drop(batch[UNIT_INPUT_ERROR][0])
            if progress:
                progress(unit_sources - done)
            if unreadable.give_up():
                break
            continue
        outputs = assembler.predict(batch)
        table = assembler.add(batch, outputs)
        if progress:
            progress(len(batch["flags"]))
        if table is not None:
            unit = manifest.units[batch["unit"]]
            name, rows, digest = write_part(manifest.folder, unit, table, meta)
            manifest.record(unit["index"], name, rows, digest)
            unreadable.written += 1
    return unreadable


# ------------------------------------------------------------------------------------------
# The whole run
# ------------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    """Options of :func:`predict_catalog` (see ``skysort predict --help``)."""

    tiles: str | Sequence[str] | None = None
    mapping: Any = None
    reference_band: str | None = None
    batch_size: int = 1024
    memory_gb: float = 4.0
    device: str | None = None
    threads: int | None = None
    workers: int | None = None
    dask: str | None = None
    threshold: float | None = None
    prior: Mapping[str, float] | str | None = None
    background: str = "sep"
    #: Glob patterns of separate weight files of the tiles (see :func:`scan_tiles`).
    weights: str | Sequence[str] | None = None
    #: The extension of each tile file holding its weight map, or "none" (None: the one whose
    #: name is recognised).
    weight_hdu: str | None = None
    #: AB zero point of one pixel unit of the tiles, one for every band or per band, replacing
    #: the headers' (``--zero-points``).
    zero_points: float | Mapping[str, float] | None = None
    quiet: bool = True
    #: Catalogue columns copied to the output (:func:`parse_carried`: ``"A,B,NEW=C"``, a list or
    #: a mapping output name -> column).
    keep: str | Sequence[str] | Mapping[str, str] | None = None

    def carried_count(self) -> int:
        """How many catalogue columns ``keep`` names (for the memory plan)."""
        return len(carried_pairs(self.keep))

    def decision(self) -> ClassDecision:
        """How probabilities become classes (threshold, class prior)."""
        return ClassDecision(threshold=self.threshold, prior=self.prior)

    def signature(self) -> dict[str, Any]:
        """Options that change results (a resumed run must use the same; :func:`run_signature`
        adds the background method when stamps are cut)."""
        return {"mapping": str(self.mapping) if self.mapping is not None else None,
                "reference_band": self.reference_band, **self.decision().signature(),
                **({"keep": str(self.keep)} if self.keep else {}),
                **({"weight_hdu": str(self.weight_hdu)} if self.weight_hdu else {}),
                **({"zero_points": self.zero_points if isinstance(self.zero_points, (int, float)) else dict(self.zero_points)}
                   if self.zero_points is not None else {})}


def model_record(predictor: Predictor) -> dict[str, Any]:
    """Model name, task, classes, the bands it reads (images and magnitudes), version
    (creation date and creator) and file SHA-256."""
    meta = predictor.meta
    return {"name": predictor.name, "file": str(Path(predictor.model_file).resolve()), "sha256": file_sha256(predictor.model_file),
            "task": predictor.task, "classes": list(predictor.classes), "image_bands": list(predictor.spec.image_bands),
            "photometry_bands": list(predictor.spec.photometry_bands), "created": meta.get("created"),
            "creator": meta.get("creator"), "format_version": meta.get("format_version")}


def resolve_device(device: str | None) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (default: CUDA when available).

    Raises
    ------
    InputError
        CUDA asked for but absent, a GPU number this machine does not have, or another name.
    """
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    found = re.fullmatch(r"cuda(?::(\d+))?", device)
    if device != "cpu" and not found:
        raise InputError("--device", f"expected cpu, cuda or cuda:N, got {device!r}")
    if found and not torch.cuda.is_available():
        raise InputError("--device", "CUDA is not available on this machine")
    if found and found.group(1) is not None and int(found.group(1)) >= torch.cuda.device_count():
        # Found now, not as a torch error once the model is moved there.
        raise InputError("--device", f"this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0; "
                                     f"got {device!r}")
    return device


def magnitude_range_check(predictor: Any, found: list[str]) -> Callable[[Mapping[str, np.ndarray]], None]:
    """A :func:`plan_units` ``inspect`` that appends to ``found`` the caution for catalogue
    magnitudes unlike the model's training magnitudes
    (:func:`~skysort.inference.predictor.magnitude_range_message`), judged on the first chunk."""
    from .predictor import magnitude_range_message

    bands = list(predictor.spec.photometry_bands)

    def inspect(rows: Mapping[str, np.ndarray]) -> None:
        message = magnitude_range_message(predictor.meta, bands, np.stack([rows[f"mag_{b}"] for b in bands], axis=1))
        if message:
            found.append(message)

    return inspect


def warn_zero_points(tiles: Sequence[TileInfo], spec: Any, warn: Callable[[str | os.PathLike, str], None] | None) -> None:
    """Warn once when tiles have no zero point in a band of a model that reads absolute fluxes
    (:func:`~skysort.inference.predictor.unknown_zero_point_message`), and once when a tile's
    header zero point is likely not that of one pixel unit (CASU's ``MAGZPT``)."""
    if not warn:
        return
    doubted = [(tile, band) for tile in tiles for band in tile.zero_point_notes]
    if doubted:
        tile, band = doubted[0]
        others = f" ({len(doubted) - 1} other tile file(s) alike)" if len(doubted) > 1 else ""
        warn(tile.files[band], tile.zero_point_notes[band] + others)

    def lacks(tile: TileInfo, band: str) -> bool:
        return not np.isfinite(tile.zero_points.get(band, np.nan))

    unknown = [b for b in spec.image_bands if any(lacks(t, b) for t in tiles)]
    message = unknown_zero_point_message(spec.zero_points, unknown)
    if message:
        warn(next(t for t in tiles if any(lacks(t, b) for b in unknown)).key, message)


def warn_pixel_scale(tiles: Sequence[TileInfo], spec: Any, warn: Callable[[str | os.PathLike, str], None] | None) -> None:
    """Say once that tiles whose pixel scale differs from the model's by more than
    :data:`PIXEL_SCALE_TOLERANCE` have their stamps resampled to the model's scale."""
    if not (spec.pixel_scale and warn):
        return
    off = [t for t in tiles if stamp_pixel_scale(spec.pixel_scale, t.pixel_scale) is not None]
    if off:
        warn(off[0].key, f"pixel scale {off[0].pixel_scale:.4g}\"/px differs from the model's {spec.pixel_scale:.4g}\"/px "
                         f"({len(off)} tile(s)): their stamps are resampled to the model's scale (cubic spline, flux "
                         "kept, noise made up to that of such pixels), which leaves neighbouring pixels' noise somewhat "
                         "correlated; the model was trained on stamps whose noise was not")


@dataclass
class PreparedInputs:
    """What a catalogue run works out from the model and the options before reading any row."""

    spec: Any
    probe: dict[str, Any]
    images_available: bool
    reference_band: str
    stamp_size: int
    tiles: list[TileInfo]
    #: The user's zero points of the tiles (``--zero-points``), per band.
    image_zero_points: dict[str, float] = field(default_factory=dict)

    @property
    def needs_sky(self) -> bool:
        """Whether sources are placed on tiles (so ra/dec are required)."""
        return self.images_available and self.spec.uses_images

    @property
    def stamp_bytes(self) -> int:
        """Bytes of one source's stamps (0 without tiles)."""
        return 4 * len(self.spec.image_bands) * self.stamp_size ** 2 if self.tiles else 0

    @property
    def tile_bytes(self) -> int:
        """Bytes of the largest tile as it is held: all bands as float32, and as many again for
        the spline coefficients of the bands resampled onto the stamps' grid
        (:func:`skysort.data.cutout.resample_stamps`; an upper bound)."""
        return max((2 * 4 * len(t.files) * t.shape[0] * t.shape[1] for t in self.tiles), default=0)

    def memory_plan(self, options: "RunOptions", *, processes: int = 1) -> MemoryPlan:
        """:func:`memory_plan` for these stamps and tiles."""
        return memory_plan(options.memory_gb, stamp_bytes=self.stamp_bytes, tile_bytes=self.tile_bytes,
                           batch_size=options.batch_size, processes=processes, carried_columns=options.carried_count())

    def reader_config(self, folder: str | os.PathLike, tiles: list[dict[str, Any]], options: "RunOptions", memory: MemoryPlan,
                      *, photometry_missing: bool, carried_units: dict[str, str] | None = None) -> ReaderConfig:
        """The cutting side's settings for a run into ``folder`` over ``tiles`` (their JSON
        records): one place, so that the streamed, Dask and HATS runs read, rescale and cut
        tiles alike."""
        spec = self.spec
        return ReaderConfig(
            folder=str(folder), tiles=tiles, image_bands=list(spec.image_bands), photometry_bands=list(spec.photometry_bands),
            stamp_size=self.stamp_size, reference_band=self.reference_band, batch_size=memory.batch_size,
            tile_cache_tiles=memory.tile_cache_tiles, images_available=self.images_available,
            photometry_only_ok=self.probe["photometry_only"], background=options.background, seeing_band=spec.seeing_band,
            zero_points=spec.zero_points, photometry_missing=photometry_missing, carried_units=carried_units,
            weight_hdu=options.weight_hdu, image_zero_points=self.image_zero_points or None,
            model_pixel_scale=spec.pixel_scale, run=uuid.uuid4().hex)


def prepare_inputs(model: str | os.PathLike, predictor: Predictor, options: "RunOptions",
                   warn: Callable[[str | os.PathLike, str], None] | None = None) -> PreparedInputs:
    """Check that the model can run on what the options give, and scan the tiles.

    Raises
    ------
    InputError
        An image model without tiles (unless it can fall back on photometry), tiles for a
        model that reads no images, or a model with no square stamp size to cut.
    """
    spec = predictor.spec
    images_available = options.tiles is not None
    probe = probe_predictor(predictor)
    if not images_available and spec.uses_images and not probe["photometry_only"]:
        raise InputError(model, f"model {predictor.name} needs image stamps ({', '.join(spec.image_bands)}); give --tiles "
                                "(or classify a stamp set with --data)")
    if images_available and not spec.uses_images:
        # The tiles would be ignored: a run that looks image-based but is not.
        raise InputError("--tiles", f"model {predictor.name} reads no images (photometry only); leave out --tiles")
    cut = spec.stamp_size_to_cut
    if images_available and spec.uses_images and not cut:
        raise InputError(model, f"model {predictor.name} states no stamp size to cut from tiles")
    if cut and cut[0] != cut[1] and images_available:
        raise InputError(model, f"streaming cuts square stamps; the model expects {cut}")
    reference_band = _reference_band(spec.image_bands, options.reference_band) if spec.uses_images else ""
    tiles: list[TileInfo] = []
    given: dict[str, float] = {}
    if images_available and spec.uses_images:
        from ..data.images import given_zero_points

        given = given_zero_points(options.zero_points, list(spec.image_bands))
        tiles = scan_tiles(options.tiles, spec.image_bands, reference_band, weights=options.weights,
                           weight_hdu=options.weight_hdu)
        for tile in tiles:
            tile.zero_points.update(given)
            tile.zero_point_notes = {b: note for b, note in tile.zero_point_notes.items() if b not in given}
        warn_pixel_scale(tiles, spec, warn)
        warn_zero_points(tiles, spec, warn)
    return PreparedInputs(spec, probe, images_available, reference_band, int(cut[0]) if cut else 0, tiles, given)


def run_signature(model_info: Mapping[str, Any], catalog_identity: Any, inputs: PreparedInputs,
                  options: "RunOptions") -> dict[str, Any]:
    """What fixes a run's results: a rerun (resume) must have the same."""
    return {
        "model_sha256": model_info["sha256"],
        "catalog": catalog_identity,
        "tiles": _path_and_size([f for t in inputs.tiles for f in t.files.values()]),
        "images_available": inputs.images_available,
        **options.signature(),
        # Without tiles no stamp is cut, so the background method changes nothing.
        "background": options.background if inputs.tiles else None,
        # Only when given, so that runs without weight files resume as they were planned.
        **({"weights": _path_and_size([f for t in inputs.tiles for f in t.weights.values()])}
           if any(t.weights for t in inputs.tiles) else {}),
    }


def _path_and_size(files: Sequence[str]) -> list[str]:
    """``"PATH:SIZE"`` of each file (resolved path, bytes), sorted: how a run's signature names them."""
    return sorted(f"{identity['path']}:{identity['size']}" for identity in map(file_identity, files))


def tile_header_digests(tiles: Sequence[TileInfo], *, threads: int = 4) -> dict[str, str]:
    """Resolved path -> :func:`~skysort.inference.manifest.header_digest` of every tile and
    weight file of ``tiles``.

    Kept out of :func:`run_signature`, which a folder's recorded signature must equal: a run
    planned by a skysort that recorded no digests then still resumes, and the digests are
    compared file by file (:meth:`Manifest.prepare_folder`), so that a refusal names the
    replaced tiles. Headers only are read, in ``threads`` threads (latency of network file
    systems, where survey tiles live).
    """
    files = sorted({str(Path(f).resolve()) for t in tiles for f in (*t.files.values(), *t.weights.values())})
    if not files:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(files)))) as pool:
        return dict(zip(files, pool.map(header_digest, files)))


def _reference_band(spec_bands: Sequence[str], wanted: str | None) -> str:
    if wanted:
        if wanted not in spec_bands:
            raise InputError("--reference-band", f"band {wanted!r} is not among the model's image bands {list(spec_bands)}")
        return wanted
    return "r" if "r" in spec_bands else spec_bands[0]


def _run_predictor(model: str | os.PathLike, predictor: Predictor | None,
                   options: RunOptions) -> tuple[str, Predictor, ClassDecision]:
    """The device of a run, its predictor (loaded there unless given) and its class decision,
    checked against the model; torch's CPU threads set where the options name them."""
    import torch

    from .predictor import load_predictor

    device = resolve_device(options.device)
    if options.threads:
        torch.set_num_threads(int(options.threads))
    predictor = predictor or load_predictor(model, device)
    decision = options.decision()
    decision.check(predictor)
    return device, predictor, decision


def predict_catalog(model: str | os.PathLike, catalog: str | os.PathLike, out: str | os.PathLike,
                    options: RunOptions | None = None, *, predictor: Predictor | None = None,
                    warn: Callable[[str | os.PathLike, str], None] | None = None) -> Manifest:
    """Classify every source of a catalogue, from survey tiles or from photometry alone.

    Writes Parquet parts plus a manifest into the folder ``out`` and returns the manifest.
    Rerunning with the same arguments resumes an interrupted run (see
    :mod:`skysort.inference.manifest`).

    Parameters
    ----------
    model : str or path-like
        Model file or shipped model name.
    catalog : path-like
        Catalogue (Parquet, FITS, CSV) with ``ra``/``dec`` in degrees (any column names the
        mapping translates) and the model's ``mag_<band>``/``magerr_<band>``.
    out : path-like
        Output folder.
    options : RunOptions
        ``tiles`` (glob patterns; None: photometry only), mapping, memory, device, Dask, ...
    predictor : Predictor, optional
        An already loaded predictor (then ``model`` only names it); not usable with Dask.
    warn : callable, optional
        ``warn(where, message)`` for non-fatal problems.

    Raises
    ------
    InputError
        Bad inputs; photometry only with a model that needs images; ``out`` holding another run.
    UnfinishedRunError
        Work units whose tile could not be read, while the others are written (an
        :class:`InputError` too; see the module notes): ``out`` is worth resuming.
    """
    from .._progress import progress_bar

    options = options or RunOptions()
    if predictor is not None and options.dask:
        raise ValueError("Dask workers load the model from its file: pass the model, not a predictor object")
    device, predictor, decision = _run_predictor(model, predictor, options)
    spec = predictor.spec
    inputs = prepare_inputs(model, predictor, options, warn)
    probe, images_available, tiles = inputs.probe, inputs.images_available, inputs.tiles
    reference_band = inputs.reference_band
    out = Path(out)
    model_info = model_record(predictor)
    catalog_stream = CatalogStream(catalog, options.mapping, (), require_sky=inputs.needs_sky)
    catalog_stream.columns, photometry_missing = prediction_columns(catalog_stream.names, catalog, catalog_stream.mapping, spec,
                                                                    inputs, warn, catalog_stream.units,
                                                                    predictor.meta.get("catalogue_magnitudes"))
    catalog_stream.columns.carried = parse_carried(options.keep, catalog_stream.names, catalog,
                                                   prediction_output_names(predictor, probe))
    carried_units = {output: str(catalog_stream.units[source]) for output, source in catalog_stream.columns.carried.items()
                     if catalog_stream.units.get(source) not in (None, "")}
    cautions: list[str] = []
    inspect = magnitude_range_check(predictor, cautions) if warn and spec.photometry_bands and not photometry_missing else None
    signature = run_signature(model_info, catalog_stream.identity(), inputs, options)
    headers = tile_header_digests(tiles)
    folder_existed = out.exists()
    manifest = Manifest.prepare_folder(out, signature, headers)
    workers = options.workers if options.workers is not None else 0
    processes = max(1, workers)
    if options.dask:
        processes = 1  # each Dask worker plans its own share of the setting below
    memory = inputs.memory_plan(options, processes=processes)
    if manifest is None:
        try:
            with progress_bar(catalog_stream.n_rows, "planning", unit="src", enabled=not options.quiet) as advance:
                plan = plan_units(out, catalog_stream, tiles, memory, progress=advance, inspect=inspect)
        except InputError:
            # A catalogue found bad while planning leaves nothing behind (an interruption
            # leaves the shards, which the next run plans again).
            shutil.rmtree(out / SHARDS_DIR, ignore_errors=True)
            if not folder_existed and not any(out.iterdir()):
                out.rmdir()
            raise
        manifest = Manifest.create(
            out, signature=signature, plan=plan, model=model_info,
            inputs={"catalog": str(Path(catalog).resolve()), "tiles": options.tiles if isinstance(options.tiles, (str, type(None)))
                    else list(options.tiles), "n_tile_files": sum(len(t.files) for t in tiles),
                    "weights": options.weights if isinstance(options.weights, (str, type(None))) else list(options.weights)},
            options={"batch_size": memory.batch_size, "memory_gb": options.memory_gb, "rows_per_part": memory.rows_per_part,
                     "reference_band": reference_band, "mapping": signature["mapping"], **decision.record(),
                     "images_available": images_available, "device": device, "background": signature["background"],
                     "weight_hdu": options.weight_hdu if tiles else None},
            headers=headers)
    else:
        manifest.reconcile()
        restore_shards(manifest, catalog_stream, tiles, inputs, options)
    report_invalid_positions(manifest, catalog, warn)
    for message in cautions:
        warn(catalog, message)
    unreadable: UnreadableUnits | None = None
    if manifest.pending():
        reader_config = inputs.reader_config(out, manifest.content["tiles"], options, memory,
                                             photometry_missing=photometry_missing, carried_units=carried_units)
        part_meta = {"model": model_info["name"], "model_file": model_info["file"], "model_sha256": model_info["sha256"],
                     "model_created": model_info["created"], "task": predictor.task, "classes": list(predictor.classes),
                     "image_bands": model_info["image_bands"], "photometry_bands": model_info["photometry_bands"],
                     "catalog": str(Path(catalog).resolve()), "images_available": images_available,
                     **decision.record()}
        remaining = sum(u["n_sources"] for u in manifest.pending())
        with progress_bar(remaining, "predicting", unit="src", enabled=not options.quiet) as advance:
            if options.dask:
                from .distributed import run_dask

                unreadable = run_dask(options.dask, manifest, reader_config, part_meta, model=model_info["file"], probe=probe,
                                      decision=decision, memory_gb=options.memory_gb, batch_size=options.batch_size,
                                      stamp_bytes=inputs.stamp_bytes, tile_bytes=inputs.tile_bytes, device=device,
                                      progress=advance)
            else:
                assembler = UnitAssembler(predictor, probe, decision=decision, device=device, carried_units=carried_units)
                unreadable = run_local(manifest, reader_config, assembler, part_meta, workers=workers,
                                       queue_batches=memory.queue_batches, progress=advance)
    if unreadable is not None:
        unreadable.raise_if_any()
    # Also after a kill between marking the run complete and removing the shards.
    manifest.finish()
    _report_parts_without_input(manifest, catalog, warn)
    return manifest


def restore_shards(manifest: Manifest, catalog: CatalogStream, tiles: Sequence[TileInfo], inputs: PreparedInputs,
                   options: RunOptions) -> None:
    """Write again the shards that unfinished units need when they are gone.

    A finished run removes its shards; a part of it deleted or found damaged afterwards
    (:meth:`Manifest.reconcile`) needs its unit's rows again. The catalogue is planned again
    with the recorded part size and the chunk size of the recorded memory setting, which gives
    the recorded units (the plan depends only on the inputs, which the signature fixes).

    Raises
    ------
    InputError
        Planning again gives other units (a skysort that plans differently): the folder
        cannot be completed.
    """
    from dataclasses import replace

    from .._progress import progress_bar

    shard_dir = manifest.folder / SHARDS_DIR
    needed = {ref[0] for unit in manifest.pending() for ref in unit.get("refs", [])}
    if all((shard_dir / name).exists() for name in needed):
        return
    recorded = manifest.content["options"]
    memory = replace(inputs.memory_plan(replace(options, memory_gb=recorded["memory_gb"])),
                     rows_per_part=int(recorded["rows_per_part"]))
    with progress_bar(catalog.n_rows, "planning again", unit="src", enabled=not options.quiet) as advance:
        plan = plan_units(manifest.folder, catalog, tiles, memory, progress=advance)
    keys = ("index", "kind", "tile", "input_tiles", "refs", "n_sources")
    if [{k: u.get(k) for k in keys} for u in plan["units"]] != [{k: u.get(k) for k in keys} for u in manifest.units]:
        shutil.rmtree(shard_dir, ignore_errors=True)
        raise InputError(manifest.folder, "the catalogue rows of its parts to recompute are gone and planning again gives "
                                          "other work units; remove the folder and run again")


def _report_parts_without_input(manifest: Manifest, catalog, warn) -> None:
    import pyarrow.parquet as pq

    parts = manifest.part_paths()
    if parts and "inputs_used" in pq.read_schema(parts[0]).names:
        report_without_input([pq.read_table(part, columns=["inputs_used"]).column(0).to_numpy(zero_copy_only=False)
                              for part in parts], catalog, warn)


def predict_stampset_parts(model: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                           options: RunOptions | None = None, *, predictor: Predictor | None = None) -> Manifest:
    """Classify a stamp set into Parquet parts plus a manifest (resumable, like :func:`predict_catalog`).

    Each unit is a block of consecutive stamps, predicted by
    :func:`~skysort.inference.predictor.predict_stampset`.
    """
    from .._progress import progress_bar
    from ..data.stampset import StampSet
    from .predictor import predict_stampset, resolve_seeing

    options = options or RunOptions()
    device, predictor, decision = _run_predictor(model, predictor, options)
    stamps = StampSet.open(data)
    if len(stamps) == 0:
        # Refused before the folder is made, as an empty catalogue is (and as one table is).
        raise InputError(data, "the stamp set holds no objects: there is nothing to classify")
    carried = stampset_carried(options.keep, stamps, data, predictor)
    # Once for the whole set: a seeing measured from the stamps must not differ between parts.
    seeing = resolve_seeing(predictor, stamps)
    seeing_record = {"seeing": seeing.record()} if seeing is not None else {}
    model_info = model_record(predictor)
    signature = {"model_sha256": model_info["sha256"], "data": file_identity(data), **decision.signature(),
                 **({"keep": str(options.keep)} if options.keep else {})}
    manifest = Manifest.prepare_folder(out, signature)
    stamp_bytes = 4 * int(np.prod(stamps.shape[1:]))
    memory = memory_plan(options.memory_gb, stamp_bytes=stamp_bytes, batch_size=options.batch_size,
                         carried_columns=len(carried))
    if manifest is None:
        n = len(stamps)
        step = memory.rows_per_part
        units = [{"index": i, "kind": "stamps", "stamp_rows": [a, min(n, a + step)], "input_tiles": [], "n_sources": min(n, a + step) - a}
                 for i, a in enumerate(range(0, n, step))]
        manifest = Manifest.create(out, signature=signature, plan={"mode": "stamps", "n_sources": n, "units": units},
                                   model=model_info, inputs={"data": str(Path(data).resolve())},
                                   options={"batch_size": memory.batch_size, "memory_gb": options.memory_gb,
                                            "rows_per_part": step, **decision.record(), "device": device, **seeing_record})
    else:
        manifest.reconcile()
    part_meta = {"model": model_info["name"], "model_file": model_info["file"], "model_sha256": model_info["sha256"],
                 "model_created": model_info["created"], "task": predictor.task, "classes": list(predictor.classes),
                 "image_bands": model_info["image_bands"], "photometry_bands": model_info["photometry_bands"],
                 "data": str(Path(data).resolve()), **decision.record(), "run_id": manifest.run_id, **seeing_record}
    pending = manifest.pending()
    with progress_bar(sum(u["n_sources"] for u in pending), "predicting", unit="src", enabled=not options.quiet) as advance:
        for unit in pending:
            a, b = unit["stamp_rows"]
            table = predict_stampset(predictor, stamps[a:b], batch_size=memory.batch_size, decision=decision,
                                     progress=advance, psf_fwhm=seeing.values[a:b] if seeing is not None else None)
            add_stamp_columns(table, stamps[a:b], carried)
            name, rows, digest = write_part(out, unit, table, part_meta)
            manifest.record(unit["index"], name, rows, digest)
    manifest.finish()
    return manifest


def assemble_parts(manifest: Manifest, path: str | os.PathLike) -> Path:
    """Write a finished run's parts as one table (catalogue order when known), atomically.

    A Parquet file is written part by part through on-disk buckets of catalogue rows, so
    memory stays bounded by the run's part size whatever the catalogue's length; FITS and
    CSV files are assembled in memory (about 250 bytes per source).
    """
    from ..data.catalog import _format_of, write_catalog
    from .manifest import read_parts

    content = manifest.content
    meta = {"model": content["model"], "inputs": content["inputs"], "options": content["options"],
            "mode": content.get("mode"), "n_sources": content.get("n_sources"),
            "images_available": content["options"].get("images_available", True)}
    if _format_of(Path(path)) == "parquet":
        return _assemble_parquet(manifest.part_paths(), Path(path), meta,
                                 bucket_rows=int(content["options"].get("rows_per_part") or 1_000_000))
    table = read_parts(manifest.part_paths())
    if "catalog_row" in table.colnames:
        table = table[np.argsort(np.asarray(table["catalog_row"]), kind="stable")]
    table.meta.update(meta)
    return write_catalog(table, path)


def _assemble_parquet(parts: Sequence[Path], path: Path, meta: Mapping[str, Any], *, bucket_rows: int) -> Path:
    """Parts into one Parquet file in ``catalog_row`` order, holding one bucket at a time.

    Tile units interleave catalogue rows, so a plain concatenation is out of order and a sort
    in memory needs every row at once. Instead each part's rows go to bucket files of
    ``bucket_rows`` consecutive catalogue rows; each bucket is then sorted and appended.
    Without ``catalog_row`` the parts are appended in order.
    """
    import json
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .._io import atomic_path
    from ..data.catalog import (_PARQUET_META_KEY, astropy_text_widths, catalog_metadata, parquet_units, text_column_lengths,
                                text_columns)

    first = pq.read_schema(parts[0]) if parts else pa.schema([])
    # Parts of files of different widths (a carried int32 column here, int64 there) are
    # written in the wider type; a cast to the first part's could not hold the others' values.
    schema = pa.unify_schemas([first, *(pq.read_schema(part) for part in parts[1:])], promote_options="permissive")
    record = {**catalog_metadata(meta), "units": parquet_units(first)}
    # The widths of the text columns go into the schema before the first row is written: one
    # pass over those columns of the parts.
    text = text_columns(schema)
    lengths: dict[str, int | None] = {}
    for part in parts if text else ():
        lengths = text_column_lengths(pq.read_table(part, columns=text), lengths)
    schema = schema.remove_metadata()
    schema = schema.with_metadata({_PARQUET_META_KEY: json.dumps(record).encode(), **astropy_text_widths(lengths)})
    buckets_dir = path.parent / f".{path.name}.buckets"
    shutil.rmtree(buckets_dir, ignore_errors=True)
    try:
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as out:
            if "catalog_row" not in schema.names:
                for part in parts:
                    out.write_table(pq.read_table(part).cast(schema))
            else:
                buckets_dir.mkdir(parents=True)
                writers: dict[int, Any] = {}
                try:
                    for part in parts:
                        table = pq.read_table(part).cast(schema)
                        bucket = table.column("catalog_row").to_numpy() // bucket_rows
                        order = np.argsort(bucket, kind="stable")
                        table, bucket = table.take(pa.array(order)), bucket[order]
                        for lo, hi in _runs(bucket):
                            b = int(bucket[lo])
                            if b not in writers:
                                writers[b] = pq.ParquetWriter(buckets_dir / f"bucket-{b:08d}.parquet", schema)
                            writers[b].write_table(table.slice(lo, hi - lo))
                finally:
                    for writer in writers.values():
                        writer.close()
                for b in sorted(writers):
                    table = pq.read_table(buckets_dir / f"bucket-{b:08d}.parquet").cast(schema)
                    out.write_table(table.take(pa.array(np.argsort(table.column("catalog_row").to_numpy(), kind="stable"))))
                    (buckets_dir / f"bucket-{b:08d}.parquet").unlink()
    except OSError as exc:
        raise InputError(path, f"cannot write: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(buckets_dir, ignore_errors=True)
    return path


__all__ = ["MemoryPlan", "memory_plan", "TileInfo", "scan_tiles", "TileIndex", "CatalogStream", "plan_units",
           "UnitReader", "UnitAssembler", "RunOptions", "predict_catalog", "predict_stampset_parts",
           "assemble_parts", "probe_predictor", "run_model", "off_tiles_error", "report_without_input", "parse_carried"]
