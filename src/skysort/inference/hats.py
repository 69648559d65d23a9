"""Prediction on a HATS catalogue, written as a HATS result catalogue (optional extra ``lsdb``).

HATS (Hierarchical Adaptive Tiling Scheme) stores a catalogue as Parquet files, one per
HEALPix pixel, sized by the catalogue's author; LSDB reads it lazily with Dask. Each
partition is one task: its rows go through the same column mapping, tile assignment,
cutting and model as :func:`skysort.inference.stream.predict_catalog`, and the task returns
the partition's rows of output (``id``, ``ra``, ``dec``, ``p_<class>``, ``class``, ``flags``,
the model's extras, ``images_used``), keeping the input's spatial index so that the result
is a HATS catalogue on the same partitions.

Without ``--dask`` the partitions run one after the other in this process (memory is then
that of one partition plus the model and the tile cache); with ``--dask local:N`` or a
scheduler address they run on that cluster. Workers must see the tiles under the same paths.

The result is written to a folder beside ``out`` (``.NAME.partial``) and renamed when
complete, so an interrupted run never leaves a half-written catalogue at ``out``. Rerunning
the same command resumes it: partitions LSDB has marked done are kept, the others are
recomputed. A rerun with another model, catalogue, tiles or options is refused, as is one on
a tile replaced by another of the same size (its FITS headers differ). A tile found damaged
while cutting stops only the partitions with rows on it: the others are written, the run ends
with one :class:`~skysort.errors.UnfinishedRunError` and lists them in the signature file
(``unreadable``), and once the tile is copied again (whatever its size now) the rerun
computes those partitions only. Provenance
(model, file hash, inputs, software versions) goes into the catalogue's ``hats.properties``
as ``skysort_*`` keys.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .._io import atomic_path
from ..data.images import patterns_text
from ..errors import InputError, UnfinishedRunError
from .manifest import changed_headers, failed_files, file_identity, repaired_files_only, replaced_files
from .predictor import ClassDecision
from .stream import (CatalogColumns, ReaderConfig, RunOptions, TileIndex, TileInfo, UnitAssembler, UnitReader, UnreadableUnits,
                     _blank_outputs, _in_thread, about_unit_tile, failures_problem, magnitude_range_check, model_record,
                     output_id_dtype, parse_carried, prediction_columns, prediction_output_names, prepare_inputs,
                     resolve_device, run_signature, tile_header_digests)

# One tile reader and tile index per worker process, kept between partitions.
_READERS: dict[str, UnitReader] = {}
_INDEXES: dict[tuple[str, ...], TileIndex] = {}


def is_hats_catalog(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a HATS catalogue or collection folder (it holds ``hats.properties``,
    ``properties`` or ``collection.properties``)."""
    from ..data.catalog import _is_hats_folder

    path = Path(path)
    return path.is_dir() and _is_hats_folder(path)


#: The key of the unfinished run's signature file that holds its tiles' header digests
#: (resolved path -> :func:`~skysort.inference.manifest.header_digest`).
_HEADERS_KEY = "header_sha256"


def unfinished_paths(out: str | os.PathLike) -> tuple[Path, Path]:
    """Where an unfinished result for ``out`` is written, and the signature of its run."""
    out = Path(out)
    return out.parent / f".{out.name}.partial", out.parent / f".{out.name}.partial.json"


def _import_lsdb(where: str | os.PathLike):
    try:
        import lsdb
    except ImportError:
        raise InputError(where, "a HATS catalogue needs the optional lsdb package: pip install 'skysort[lsdb]'") from None
    return lsdb


def _result_frame(table, index, extra: Mapping[str, np.ndarray]):
    """An output table as a pandas frame on the input's spatial index."""
    frame = table.to_pandas(index=False)
    frame.index = index
    for name, values in extra.items():
        frame[name] = values
    return frame


def _empty_result(predictor, probe: Mapping[str, Any], id_dtype: np.dtype, index, extra: Mapping[str, np.ndarray]):
    from .predictor import class_table

    outputs = _blank_outputs(0, len(predictor.classes), probe["extras"])
    table = class_table(predictor, outputs, np.zeros(0, id_dtype), {"ra": np.zeros(0), "dec": np.zeros(0)}, np.zeros(0, np.int32))
    table["images_used"] = np.zeros(0, bool)
    return _result_frame(table, index, extra)


def predict_partition(frame, *, model: str, device: str, threads: int | None, columns: CatalogColumns,
                      reader_config: ReaderConfig, tiles: Sequence[TileInfo], probe: Mapping[str, Any],
                      decision: ClassDecision | None, keep: Mapping[str, str], queue_batches: int = 4,
                      slice_rows: int = 250_000):
    """Classify the rows of one HATS partition (a pandas frame); returns a frame on its index.

    ``keep`` maps output names to input columns copied to the output as they are (the
    catalogue's own ra/dec columns when they are not called ``ra``/``dec``, and ``--keep``'s). The partition is processed in
    slices of at most ``slice_rows`` rows, so that the working arrays of a large partition do
    not add to its own size.
    """
    import pandas as pd

    from .distributed import worker_predictor

    predictor = worker_predictor(model, device, threads=threads)
    n = len(frame)
    if n == 0:
        id_column = columns.sources.get("id")
        id_dtype = output_id_dtype(frame[id_column].to_numpy().dtype) if id_column else np.dtype(np.int64)
        return _empty_result(predictor, probe, id_dtype, frame.index, _copied(frame, keep))
    options = dict(predictor=predictor, device=device, columns=columns, reader_config=reader_config, tiles=tiles, probe=probe,
                   decision=decision, keep=keep, queue_batches=queue_batches)
    if n <= slice_rows:
        return _predict_rows(frame, **options)
    return pd.concat([_predict_rows(frame.iloc[a : a + slice_rows], **options) for a in range(0, n, slice_rows)])


def _predict_rows(frame, *, predictor, device: str, columns: CatalogColumns, reader_config: ReaderConfig,
                  tiles: Sequence[TileInfo], probe: Mapping[str, Any], decision: ClassDecision | None, keep: Mapping[str, str],
                  queue_batches: int):
    from astropy.table import vstack

    n = len(frame)
    extra = _copied(frame, keep)
    rows = columns.reduce({name: frame[name].to_numpy() for name in columns.needed}, None, n)
    if columns.sources.get("id") is None:
        # Row numbers would repeat from one partition to the next; the spatial index does not.
        rows["id"] = np.asarray(frame.index.to_numpy(), np.int64)
    rows["catalog_row"] = np.arange(n, dtype=np.int64)
    # Tasks arrive with fresh copies of the configuration: compare contents, not identities.
    reader = _READERS.get(reader_config.folder)
    if reader is None or reader.config != reader_config:
        _READERS.clear()
        reader = _READERS[reader_config.folder] = UnitReader(reader_config)
    if tiles:
        key = tuple(tile.key for tile in tiles)
        index = _INDEXES.get(key)
        if index is None:
            _INDEXES.clear()
            index = _INDEXES[key] = TileIndex(tiles)
        owner = index.owners(rows["ra"], rows["dec"])
    else:
        owner = np.full(n, -1, np.int32)
    def batches():
        for k, tile in enumerate(np.unique(owner)):
            chosen = np.flatnonzero(owner == tile)
            unit = {"index": k, "kind": "tile" if tile >= 0 else "catalog", "tile": int(tile) if tile >= 0 else None}
            try:
                yield from reader.batches_of_rows(unit, {name: values[chosen] for name, values in rows.items()})
            except InputError as error:
                if about_unit_tile(unit, error, reader_config):
                    raise PartitionSetAside(error.where, error.problem, int(frame.index[0])) from None
                raise

    assembler = UnitAssembler(predictor, probe, decision=decision, device=device)
    tables = []
    # Cut in a producer thread while the model predicts, as in the Parquet path.
    for batch in _in_thread(batches(), maxsize=queue_batches):
        table = assembler.add(batch, assembler.predict(batch))
        if table is not None:
            tables.append(table)
    table = vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    order = np.argsort(np.asarray(table["catalog_row"]), kind="stable")
    table = table[order]
    del table["catalog_row"]
    return _result_frame(table, frame.index, extra)


class PartitionSetAside(InputError):
    """A partition stopped by one of its tile files (a truncated image, say): it is left
    unwritten while the run goes on with the others.

    ``spatial_index`` is the HATS spatial index (``_healpix_29``) of one of its rows, from
    which the client finds the partition.
    """

    def __init__(self, where: str | os.PathLike, problem: str, spatial_index: int):
        super().__init__(where, problem)
        self.spatial_index = int(spatial_index)


def _copied(frame, keep: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The input columns copied to the output as they are: output name -> values, of the input's
    pandas type (so that an empty partition's and a full one's agree, as Dask requires)."""
    return {output: frame[source].array for output, source in keep.items()}


def predict_hats(model: str | os.PathLike, catalog: str | os.PathLike, out: str | os.PathLike,
                 options: RunOptions | None = None, *,
                 warn: Callable[[str | os.PathLike, str], None] | None = None) -> dict[str, Any]:
    """Classify every source of a HATS catalogue and write the result as a HATS catalogue.

    Parameters
    ----------
    model : str or path-like
        Model file or shipped model name.
    catalog : path-like
        HATS catalogue folder; ``ra``/``dec`` in degrees and the model's ``mag_<band>`` /
        ``magerr_<band>`` (or any names the mapping in ``options`` translates). Without an
        ``id`` column, the output ``id`` is the HATS spatial index (``_healpix_29``).
    out : path-like
        Result catalogue folder; must not exist yet.
    options : RunOptions
        ``tiles`` (glob patterns; None: photometry only), mapping, memory, device, threads,
        threshold, prior, ``dask`` (``local:N`` or a scheduler address).

    Returns
    -------
    dict
        ``n_sources``, ``n_partitions``, ``out`` and the provenance written.

    Raises
    ------
    InputError
        lsdb missing, an unreadable catalogue, ``out`` already present, or a model that needs
        images without ``tiles``.
    """
    import dask

    from .. import __version__
    from ..provenance import software_versions
    from .distributed import connect, worker_predictor

    lsdb = _import_lsdb(catalog)
    options = options or RunOptions()
    out = Path(out)
    if out.exists():
        raise InputError(out, "already exists: a HATS result is written whole; remove it or choose another --out")
    from ..models.registry import resolve_model

    device = resolve_device(options.device)
    # The file path, not the name: partitions (here or on Dask workers) load the same file, and in
    # this process find the model already loaded under that key.
    model_file = str(Path(resolve_model(model)).resolve())
    predictor = worker_predictor(model_file, device, threads=options.threads)
    decision = options.decision()
    decision.check(predictor)
    spec = predictor.spec
    inputs = prepare_inputs(model, predictor, options, warn)
    probe, images_available, tiles = inputs.probe, inputs.images_available, inputs.tiles
    try:
        hats_catalog = lsdb.read_hats(catalog)
    except Exception as exc:  # noqa: BLE001 - every reader failure is the catalogue's problem
        raise InputError(catalog, f"cannot read as a HATS catalogue: {exc}") from None
    from ..data.catalog import resolve_mapping

    names = list(hats_catalog.columns)
    columns, photometry_missing = prediction_columns(names, catalog, resolve_mapping(options.mapping), spec, inputs, warn,
                                                     magnitudes=predictor.meta.get("catalogue_magnitudes"))
    properties = hats_catalog.hc_structure.catalog_info
    keep = {c: c for c in (properties.ra_column, properties.dec_column) if c and c not in ("ra", "dec") and c in names}
    keep.update(parse_carried(options.keep, names, catalog, [*prediction_output_names(predictor, probe), *keep]))
    # Survey catalogues hold hundreds of columns: read only those the model needs (and the sky
    # position columns LSDB keeps, and the carried ones), so a partition costs I/O and memory for
    # these alone.
    wanted = list(dict.fromkeys(columns.needed + [c for c in (properties.ra_column, properties.dec_column) if c in names]
                                + list(keep.values())))
    try:
        hats_catalog = lsdb.read_hats(catalog, columns=wanted)
    except Exception as exc:  # noqa: BLE001 - every reader failure is the catalogue's problem
        raise InputError(catalog, f"cannot read as a HATS catalogue: {exc}") from None
    if warn and spec.photometry_bands and not photometry_missing:
        _warn_magnitude_range(hats_catalog, columns, predictor, catalog, warn)
    memory = inputs.memory_plan(options)
    reader_config = inputs.reader_config(out, [t.to_json() for t in tiles], options, memory, photometry_missing=photometry_missing)
    id_column = columns.sources.get("id")
    meta_frame = hats_catalog.meta
    id_dtype = output_id_dtype(meta_frame[id_column].to_numpy().dtype) if id_column else np.dtype(np.int64)
    meta = _empty_result(predictor, probe, id_dtype, meta_frame.index, _copied(meta_frame, keep))
    model_info = model_record(predictor)
    threads = 1 if options.dask else options.threads
    result = hats_catalog.map_partitions(
        predict_partition, model=model_file, device=device, threads=threads, columns=columns,
        reader_config=reader_config, tiles=tiles, probe=probe, decision=decision, keep=keep,
        queue_batches=memory.queue_batches, slice_rows=memory.rows_per_part, meta=meta)
    signature = run_signature(model_info, [file_identity(path) for path in sorted(Path(catalog).glob("*properties"))],
                              inputs, options)
    provenance = {
        "skysort_version": __version__, "skysort_model": model_info["name"], "skysort_model_file": str(model_info["file"]),
        "skysort_model_sha256": model_info["sha256"], "skysort_model_created": str(model_info["created"]),
        "skysort_classes": " ".join(model_info["classes"]), "skysort_image_bands": " ".join(model_info["image_bands"]) or "none",
        "skysort_photometry_bands": " ".join(model_info["photometry_bands"]) or "none",
        "skysort_input_catalog": str(Path(catalog).resolve()), "skysort_tiles": patterns_text(options.tiles),
        "skysort_weights": patterns_text(options.weights),
        "skysort_images_available": str(images_available), "skysort_threshold": str(options.threshold),
        "skysort_prior": json.dumps(decision.record()["prior"]),
        "skysort_background": signature["background"] or "",
        "skysort_software": ";".join(f"{k}={v}" for k, v in software_versions().items()),
    }
    partial, partial_signature = unfinished_paths(out)
    resume = partial.exists()
    # The tiles' header digests go beside the signature, not into it, as in a streaming run's
    # manifest: an unfinished result of a skysort that recorded none still resumes, and a
    # refusal names the replaced tiles.
    headers = tile_header_digests(tiles)
    if resume:
        recorded = json.loads(partial_signature.read_text()) if partial_signature.is_file() else None
        recorded = recorded if isinstance(recorded, dict) else {}
        recorded_headers = recorded.pop(_HEADERS_KEY, {})
        set_aside_before = recorded.pop(_SET_ASIDE_KEY, [])
        current = json.loads(json.dumps(signature))
        # Tiles that stopped partitions last time may since have been copied again whole (another
        # size): nothing was written from them, and their headers are still compared below.
        if recorded != current and not repaired_files_only(recorded, current, failed_files(set_aside_before)):
            raise InputError(partial, "holds an unfinished HATS result of another run (model, catalogue, tiles or options "
                                      "differ); remove it to start again")
        changed = changed_headers(recorded_headers, headers)
        if changed:
            raise InputError(partial, f"holds an unfinished HATS result planned on other images: {replaced_files(changed)}; "
                                      "resuming would mix predictions of both: remove it to start again")
    with atomic_path(partial_signature) as tmp:
        Path(tmp).write_text(json.dumps({**signature, _HEADERS_KEY: headers}, indent=1))
    client = cluster = None
    try:
        if options.dask:
            client, cluster = connect(options.dask)
            context = dask.config.set()
            parallel = max(1, sum(client.nthreads().values()))
        else:
            # One partition at a time in this process: memory is that of one partition.
            context = dask.config.set(scheduler="synchronous")
            parallel = 1
        with context:
            writer = _partition_writer()
            try:
                if writer is None:
                    # An LSDB release without the partition writer: its own resumable write, which
                    # stops at the first partition that fails.
                    result.write_catalog(partial, catalog_name=out.name, addl_hats_properties=provenance, as_collection=False,
                                         resume=resume, progress_bar=not options.quiet)
                    set_aside = []
                else:
                    set_aside = _write_partitions(result, partial, writer, parallel=parallel, quiet=options.quiet)
            except Exception as exc:
                problem = _input_error_in(exc)
                if problem is None:
                    raise
                if not resume or isinstance(problem, _NothingWritten):  # nothing of this run is worth resuming
                    shutil.rmtree(partial, ignore_errors=True)
                    partial_signature.unlink(missing_ok=True)
                raise problem from None
            if set_aside:
                _record_set_aside(partial_signature, set_aside)
                raise _unfinished_error(set_aside, partial, partial_signature, len(hats_catalog.get_healpix_pixels()))
            if writer is not None:
                # Every partition is marked done: LSDB writes the catalogue's metadata and properties.
                writer.to_hats(result, base_catalog_path=partial, catalog_name=out.name, addl_hats_properties=provenance,
                               resume=True, progress_bar=False, histogram_order=_histogram_order(result))
        os.replace(partial, out)
        partial_signature.unlink()
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    written = lsdb.read_hats(out)
    n_sources = int(written.hc_structure.catalog_info.total_rows or 0)
    _check_result(out, list(written.columns), catalog, n_sources, bool(options.tiles), warn)
    return {"out": out, "n_sources": n_sources, "n_partitions": len(hats_catalog.get_healpix_pixels()), "provenance": provenance}


#: The key of the unfinished run's signature file that lists the partitions its tiles stopped
#: (``where``, ``problem``, ``pixel``), as the streaming manifest's ``unreadable``.
_SET_ASIDE_KEY = "unreadable"


class _NothingWritten(InputError):
    """Partitions failed on their tiles before any was written: the run stopped early."""


def _histogram_order(result) -> int:
    """The HEALPix order of the result's point-count histogram (LSDB's own choice), given to
    both steps of the write so that their histograms add up."""
    order = result.hc_structure.catalog_info.skymap_order
    if order is not None:
        return int(order)
    pixels = result.get_healpix_pixels()
    return max(max((p.order for p in pixels), default=0), 8)


def _partition_writer():
    """LSDB's partition writer (``lsdb.io.to_hats``: ``write_partitions``, ``read_done_pixels``,
    ``to_hats``, as in LSDB 0.11), or None with an LSDB that has none under these names."""
    import importlib

    try:
        writer = importlib.import_module("lsdb.io.to_hats")
    except ImportError:
        return None
    return writer if all(hasattr(writer, name) for name in ("write_partitions", "read_done_pixels", "to_hats")) else None


def _write_partitions(result, partial: Path, writer, *, parallel: int, quiet: bool) -> list[dict[str, Any]]:
    """Write every partition of ``result`` into ``partial`` that is not marked done there,
    going on past partitions stopped by one of their tiles; returns those (``where``,
    ``problem``, ``pixel``), left unmarked for a rerun.

    LSDB's write stops at the first partition that fails and has no way to leave one out, so
    the partitions are written through its partition writer (which marks each one done, as its
    resumable write does) and again without the partitions set aside, until none fails. The
    catalogue's metadata is written afterwards, once all are done.

    Raises
    ------
    _NothingWritten
        Partitions failed on their tiles and none is written: all of them, or partitions
        stopped by :attr:`UnreadableUnits.GIVE_UP_AFTER` different files per partition written
        at a time.
    """
    from hats.pixel_math import HealpixPixel

    read_done_pixels, write_partitions = writer.read_done_pixels, writer.write_partitions
    pixels = list(result.get_healpix_pixels())
    order = _histogram_order(result)
    partial.mkdir(parents=True, exist_ok=True)
    set_aside: dict[HealpixPixel, dict[str, Any]] = {}
    while True:
        done = list(read_done_pixels(partial))
        try:
            write_partitions(result, partial, order, existing_pixels=[*done, *set_aside], progress_bar=not quiet)
            return list(set_aside.values())
        except Exception as exc:
            stopped = _input_error_in(exc)
            if not isinstance(stopped, PartitionSetAside):
                raise
            pixel = _pixel_holding(pixels, stopped.spatial_index)
            set_aside[pixel] = {"where": stopped.where, "problem": stopped.problem, "pixel": f"{pixel.order}/{pixel.pixel}"}
        failed = list(set_aside.values())
        # Counted in files, not partitions: one damaged tile may stop every partition computed
        # first, and it is no sign of a problem shared by all tiles.
        files = {entry["where"] for entry in failed}
        if not read_done_pixels(partial) and (len(files) >= UnreadableUnits.GIVE_UP_AFTER * parallel
                                              or len(set_aside) == len(pixels)):
            raise _NothingWritten(failed[0]["where"], failures_problem(failed))


def _pixel_holding(pixels, spatial_index: int):
    """The partition (HEALPix pixel) of ``pixels`` holding a row of this HATS spatial index."""
    from hats.pixel_math import spatial_index_to_healpix

    for pixel in pixels:
        if int(spatial_index_to_healpix([spatial_index], target_order=pixel.order)[0]) == pixel.pixel:
            return pixel
    raise ValueError(f"no partition holds spatial index {spatial_index}")


def _record_set_aside(partial_signature: Path, set_aside: Sequence[Mapping[str, Any]]) -> None:
    content = json.loads(partial_signature.read_text())
    content[_SET_ASIDE_KEY] = list(set_aside)
    with atomic_path(partial_signature) as tmp:
        Path(tmp).write_text(json.dumps(content, indent=1))


def _unfinished_error(set_aside: Sequence[Mapping[str, Any]], partial: Path, partial_signature: Path,
                      n_partitions: int) -> UnfinishedRunError:
    return UnfinishedRunError(set_aside[0]["where"], f"{failures_problem(set_aside)}; {len(set_aside)} of {n_partitions} "
                                                     f"HEALPix partitions are left unfinished in {partial} (listed under "
                                                     f"'{_SET_ASIDE_KEY}' in {partial_signature}); the other "
                                                     f"{n_partitions - len(set_aside)} are written: replace the file(s) and "
                                                     "run the same command again to finish")


def _warn_magnitude_range(hats_catalog, columns: CatalogColumns, predictor, catalog, warn) -> None:
    """The magnitude-range caution of :func:`~skysort.inference.stream.magnitude_range_check`,
    judged on the first partitions' rows (up to the rows a stamp set is judged on)."""
    import pandas as pd

    from .predictor import MAGNITUDE_SAMPLE_ROWS

    found: list[str] = []
    check = magnitude_range_check(predictor, found)
    frames, rows = [], 0
    # Not lsdb's head(): it prints progress lines even under --quiet.
    for partition in hats_catalog.partitions:
        if rows >= MAGNITUDE_SAMPLE_ROWS:
            break
        frame = partition.compute(progress_bar=False).iloc[: MAGNITUDE_SAMPLE_ROWS - rows]
        frames.append(frame)
        rows += len(frame)
    if not rows:
        return
    frame = pd.concat(frames) if len(frames) > 1 else frames[0]
    try:
        check(columns.reduce({name: frame[name].to_numpy() for name in columns.needed}, None, rows))
    except InputError:
        return  # a damaged row: the run reports it, naming its partition
    for message in found:
        warn(catalog, message)


def _check_result(out: Path, columns: Sequence[str], catalog, n_sources: int, with_tiles: bool, warn) -> None:
    """What the plain-file path finds while planning, found here from the result (a HATS
    catalogue is not read before its partitions run): a catalogue entirely off the tiles is an
    error (the result is removed); objects without any usable input are reported."""
    import lsdb

    from .stream import off_tiles_error, report_without_input

    if not n_sources:
        return
    wanted = [name for name in ("images_used", "inputs_used") if name in columns]
    if not wanted:
        return
    # A read of two flag columns, not long work: lsdb's own progress lines would print even under
    # --quiet.
    frame = lsdb.read_hats(out, columns=wanted).compute(progress_bar=False)
    if with_tiles and "images_used" in frame and not frame["images_used"].any():
        shutil.rmtree(out, ignore_errors=True)
        raise off_tiles_error(catalog, n_sources)
    if "inputs_used" in frame:
        report_without_input([frame["inputs_used"].to_numpy()], catalog, warn)


def _input_error_in(exc: BaseException) -> InputError | None:
    """The :class:`InputError` a partition raised, found in the exception Dask re-raises
    around it (a ``RuntimeError`` "Error applying function ..." whose cause chain holds it)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InputError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


__all__ = ["is_hats_catalog", "predict_hats", "predict_partition"]
