"""Running prediction work units as Dask tasks, on a local cluster or an existing one.

``--dask local:N`` starts a :class:`distributed.LocalCluster` of ``N`` worker processes (one
thread each); ``--dask tcp://host:port`` connects to a running scheduler. The driver plans the
units (as in a single-process run), then submits each pending unit as one task. A task loads
the model once per worker process, cuts and predicts its unit, and writes the unit's part
itself; the driver alone updates the manifest as results come back, so resuming works exactly
as for a local run. Workers must see the output folder and the input files under the same
paths (a shared file system).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Mapping

from ..errors import InputError
from .manifest import Manifest
from .predictor import ClassDecision
from .stream import (UNIT_INPUT_ERROR, ReaderConfig, UnitAssembler, UnitReader, UnreadableUnits, memory_plan, resolve_device,
                     unit_input_error, write_part)

# One loaded model and one tile reader per worker process, kept between tasks.
_PREDICTORS: dict[tuple[str, str], Any] = {}
_READERS: dict[str, UnitReader] = {}


def check_dask_spec(spec: str) -> int | None:
    """Check a ``--dask`` value before any work: ``local:N`` (returns N) or a scheduler
    address with a scheme such as ``tcp://host:8786`` (returns None).

    Raises
    ------
    InputError
        Any other value.
    """
    spec = spec.strip()
    if spec.startswith("local:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise InputError("--dask", f"expected local:N with N >= 1 workers, got {spec!r}")
        return n
    if "://" not in spec:
        raise InputError("--dask", f"expected local:N or a scheduler address such as tcp://host:8786, got {spec!r}")
    return None


def connect(spec: str):
    """A Dask client for ``local:N`` or a scheduler address; returns ``(client, cluster or None)``."""
    from distributed import Client, LocalCluster

    spec = spec.strip()
    n = check_dask_spec(spec)
    if n is not None:
        # A failed task reaches the client as its exception, which skysort reports as one line:
        # the workers' own ERROR log of it would print a traceback beside that line.
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
        return Client(cluster), cluster
    try:
        return Client(spec, timeout="30s"), None
    except (OSError, TimeoutError) as exc:
        raise InputError("--dask", f"cannot connect to the Dask scheduler {spec}: {exc}") from None


def worker_predictor(model: str, device: str, *, threads: int | None = 1):
    """The model loaded once per worker process (kept between tasks).

    On CPU, torch gets ``threads`` threads: Dask runs one task per worker thread, and more
    torch threads would oversubscribe the cores.
    """
    import torch

    from .predictor import load_predictor

    key = (model, device)
    if key not in _PREDICTORS:
        if device == "cpu" and threads:
            torch.set_num_threads(threads)
        _PREDICTORS[key] = load_predictor(model, device)
    return _PREDICTORS[key]


def run_unit_task(unit: Mapping[str, Any], reader_config: ReaderConfig, part_meta: Mapping[str, Any], model: str,
                  probe: Mapping[str, Any], decision: ClassDecision | None,
                  device: str | None) -> tuple[int, str, int, str] | dict[str, tuple[int, str, str, bool]]:
    """One work unit on a worker: cut, predict, write its part; returns ``(index, part, rows, sha256)``.

    Bad input (a damaged tile, say) is returned as the item
    :data:`~skysort.inference.stream.UNIT_INPUT_ERROR` rather than raised: it is no worker
    failure for Dask to log with a traceback and retry, and the driver sets the unit aside
    as a local run does (:func:`run_dask`).
    """
    try:
        device = resolve_device(device)
        predictor = worker_predictor(model, device)
        reader = _READERS.get(reader_config.folder)
        if reader is None or reader.config != reader_config:
            reader = _READERS[reader_config.folder] = UnitReader(reader_config)
        assembler = UnitAssembler(predictor, probe, decision=decision, device=device, carried_units=reader_config.carried_units)
        table = None
        for batch in reader.batches(unit):
            table = assembler.add(batch, assembler.predict(batch))
        name, rows, digest = write_part(reader_config.folder, unit, table, part_meta)
    except InputError as error:
        return unit_input_error(unit, error, reader_config)
    return int(unit["index"]), name, rows, digest


def run_dask(spec: str, manifest: Manifest, reader_config: ReaderConfig, part_meta: Mapping[str, Any], *, model: str,
             probe: Mapping[str, Any], decision: ClassDecision | None, memory_gb: float, batch_size: int, stamp_bytes: int,
             tile_bytes: int, device: str | None = None, progress: Callable[[int], None] | None = None) -> UnreadableUnits:
    """Process the manifest's pending units as Dask tasks; the manifest is updated here only.
    Returns the units that met bad input (:class:`~skysort.inference.stream.UnreadableUnits`).

    ``memory_gb`` is shared among the workers of ``local:N``, and is per worker on a remote
    cluster (each worker has its own host or memory limit there).
    """
    from distributed import as_completed

    client, cluster = connect(spec)
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        shared = n_workers if cluster is not None else 1
        memory = memory_plan(memory_gb, stamp_bytes=stamp_bytes, tile_bytes=tile_bytes, batch_size=batch_size, processes=shared)
        config = replace(reader_config, batch_size=memory.batch_size, tile_cache_tiles=memory.tile_cache_tiles)
        meta = dict(part_meta, run_id=manifest.run_id)
        pending = iter(manifest.pending())
        window = 2 * n_workers
        futures = as_completed()

        def submit(unit):
            futures.add(client.submit(run_unit_task, unit, config, meta, model, probe, decision, device,
                                      key=f"skysort-unit-{manifest.run_id}-{unit['index']}", pure=False, retries=1))

        for _ in range(window):
            unit = next(pending, None)
            if unit is None:
                break
            submit(unit)
        unreadable = UnreadableUnits(manifest, parallel=window)
        for future in futures:
            result = future.result()
            if isinstance(result, dict) and UNIT_INPUT_ERROR in result:
                rows = unreadable.add(result)
                if unreadable.give_up():
                    break
            else:
                index, name, rows, digest = result
                manifest.record(index, name, rows, digest)
                unreadable.written += 1
            if progress:
                progress(rows)
            unit = next(pending, None)
            if unit is not None:
                submit(unit)
        manifest.save()
        return unreadable
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
