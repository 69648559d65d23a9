"""Backbone features of a stamp set, computed once and cached on disk.

Transfer learning with a frozen backbone (BlendHunter's first stage) spends nearly all of its
time in the backbone; the head then trains for hundreds of epochs on the same vectors. This
module runs the backbone once per (stamp set, backbone, weights, input transform) and keeps the
result as a ``.npy`` file (float32, memory-mapped on reuse) with a JSON sidecar describing it.

Cache key: the stamp set's resolved path, size in bytes and modification time (any rewrite of
the file invalidates its features), the selected rows (for views), the backbone name, the
SHA-256 of its weights, its pooling and the input mode. The cache folder is ``cache_dir``,
else ``$SKYSORT_CACHE/features``, else ``~/.cache/skysort/features``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .._cores import available_cores
from .._io import atomic_path
from .._progress import progress_bar
from ..data.stampset import StampSet
from ..models.backbones import Backbone, BackboneSpec, backbone_spec, load_backbone, prepare_images

#: Stamps read from the HDF5 file at a time: large reads are cheap, and 2048 65x65 stamps plus
#: their 3-channel copies stay under 150 MB.
_READ_BLOCK = 2048

#: Backbone batch: 32-64 is fastest on a CPU for 65x65 stamps (EfficientNet-Lite0 ran at
#: 420 images/s with 32 and 330 with 128 on 2 cores: larger batches fall out of the caches).
DEFAULT_BATCH = 32

#: Bumped when the cache layout or the meaning of a key changes.
_CACHE_VERSION = 1


@dataclasses.dataclass
class FeatureSet:
    """Features of the rows of a stamp set.

    Attributes
    ----------
    features : ndarray, shape (N, D), float32
        One row per stamp, in stamp-set (view) order; memory-mapped when read from the cache.
    spec : BackboneSpec
        Backbone, weights identity, pooling and input mode that produced them.
    path : Path or None
        The cache file (None when caching was disabled).
    computed : bool
        True when this call ran the backbone, False when the cache was reused.
    seconds : float
        Backbone time of this call (0 for a cache hit), s.
    rate : float
        Stamps per second of the backbone run (NaN for a cache hit).
    """

    features: np.ndarray
    spec: BackboneSpec
    path: Path | None
    computed: bool
    seconds: float
    rate: float


def default_cache_dir() -> Path:
    """``$SKYSORT_CACHE/features`` or ``~/.cache/skysort/features``."""
    root = os.environ.get("SKYSORT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "skysort") / "features"


@contextlib.contextmanager
def all_cores(threads: int | None = None) -> Iterator[int]:
    """Let torch use ``threads`` threads (default: every core, or ``$SKYSORT_THREADS``) for the
    duration; restores the previous count.

    On a machine shared with other busy processes fewer threads can be much faster: oneDNN's
    threads wait for each other at every layer, so one descheduled thread stalls them all
    (EfficientNet-Lite0 ran at 14 stamps/s with 2 threads and 60-100 with 1 on 2 cores
    loaded by two other trainings).
    """
    previous = torch.get_num_threads()
    if threads is None:
        threads = int(os.environ.get("SKYSORT_THREADS", 0)) or available_cores()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield int(threads)
    finally:
        torch.set_num_threads(previous)


def stampset_identity(stamps: StampSet) -> dict[str, Any]:
    """What identifies the stamps' content: file path, size, mtime and selected rows."""
    stat = stamps.path.stat()
    rows = stamps.file_rows()
    identity = {"path": str(stamps.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "length": len(stamps)}
    if len(rows) != stamps._length or np.any(rows != np.arange(len(rows))):
        identity["rows_sha256"] = hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()
    return identity


def cache_key(stamps: StampSet, spec: BackboneSpec) -> tuple[str, dict[str, Any]]:
    """``(hex digest, key record)`` of the features of ``stamps`` under ``spec``."""
    record = {"version": _CACHE_VERSION, "stamps": stampset_identity(stamps), "backbone": spec.name,
              "weights": spec.weights_id, "pooling": spec.pooling, "input_mode": spec.input_mode}
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]
    return digest, record


def compute_features(stamps: StampSet, backbone: Backbone, input_mode: str, *, out: np.ndarray | None = None,
                     batch_size: int = DEFAULT_BATCH, band: int = 0, progress: bool = True,
                     threads: int | None = None) -> np.ndarray:
    """Run ``backbone`` over every stamp (no caching).

    Parameters
    ----------
    stamps : StampSet
        Stamps (a file or a view); band ``band`` is used.
    backbone : Backbone
        Frozen feature extractor.
    input_mode : {"paper8bit", "float"}
        Input transform, see :func:`skysort.models.backbones.prepare_images`.
    out : ndarray, shape (N, D), optional
        Where to write (e.g. a memory map); allocated when not given.
    batch_size : int
        Stamps per backbone call.
    progress : bool
        Show a progress bar on standard error.
    threads : int, optional
        Torch threads (default: all cores, see :func:`all_cores`).

    Returns
    -------
    ndarray, shape (N, D), float32
    """
    n = len(stamps)
    dim = backbone.output_dim(tuple(stamps.shape[-2:]))
    if out is None:
        out = np.empty((n, dim), dtype=np.float32)
    backbone.eval()
    with all_cores(threads), torch.inference_mode(), progress_bar(n, f"{backbone.name} features", "stamp", progress) as advance:
        for start in range(0, n, _READ_BLOCK):
            stop = min(n, start + _READ_BLOCK)
            images = prepare_images(stamps.read_images(slice(start, stop)), input_mode, band=band)
            for first in range(0, len(images), batch_size):
                batch = images[first:first + batch_size]
                count = len(batch)
                if count < batch_size:
                    # Padded to the usual shape: a new batch shape makes oneDNN build new
                    # kernels, which costs more than computing the padding rows.
                    batch = torch.cat([batch, batch.new_zeros((batch_size - count,) + batch.shape[1:])])
                out[start + first:start + first + count] = backbone(batch)[:count].numpy()
                advance(count)
    return out


def cached_features(stamps: StampSet | str | os.PathLike, backbone: Backbone | str = "efficientnet-lite0", *,
                    weights: str | os.PathLike | None = None, input_mode: str = "paper8bit",
                    pooling: str | None = None, cache_dir: str | os.PathLike | None = None,
                    use_cache: bool = True, recompute: bool = False, batch_size: int = DEFAULT_BATCH,
                    progress: bool = True, threads: int | None = None) -> FeatureSet:
    """Backbone features of a stamp set, from the cache when present, else computed and cached.

    Parameters
    ----------
    stamps : StampSet or path-like
        The stamps.
    backbone : Backbone or str
        A loaded backbone or a name for :func:`~skysort.models.backbones.load_backbone`.
    weights, pooling
        Passed to ``load_backbone`` when ``backbone`` is a name.
    input_mode : {"paper8bit", "float"}
        Input transform.
    cache_dir : path-like, optional
        Cache folder (default :func:`default_cache_dir`).
    use_cache : bool
        False: compute in memory, read and write no cache.
    recompute : bool
        Ignore (and overwrite) an existing cache entry.
    batch_size : int
        Stamps per backbone call.
    progress : bool
        Progress bar while computing.
    threads : int, optional
        Torch threads (default: all cores).

    Returns
    -------
    FeatureSet
    """
    if not isinstance(stamps, StampSet):
        stamps = StampSet.open(stamps)
    if isinstance(backbone, str):
        backbone = load_backbone(backbone, weights=weights, pooling=pooling)
    spec = backbone_spec(backbone, input_mode, weights)
    if not use_cache:
        start = time.perf_counter()
        values = compute_features(stamps, backbone, input_mode, batch_size=batch_size, progress=progress,
                                  threads=threads)
        seconds = time.perf_counter() - start
        return FeatureSet(values, spec, None, True, seconds, len(stamps) / max(seconds, 1e-9))

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    digest, record = cache_key(stamps, spec)
    path = folder / f"{spec.name}-{spec.input_mode}-{digest}.npy"
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists() and not recompute:
        values = np.load(path, mmap_mode="r")
        if values.shape[0] == len(stamps):
            return FeatureSet(values, spec, path, False, 0.0, float("nan"))

    dim = backbone.output_dim(tuple(stamps.shape[-2:]))
    # Written under a temporary name and renamed, so an interrupted run never leaves a
    # truncated file that a later call would take for a complete cache entry.
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(stamps), dim))
        start = time.perf_counter()
        compute_features(stamps, backbone, input_mode, out=out, batch_size=batch_size, progress=progress,
                         threads=threads)
        seconds = time.perf_counter() - start
        out.flush()
        del out
    rate = len(stamps) / max(seconds, 1e-9)
    sidecar.write_text(json.dumps({**record, "spec": spec.as_dict(), "shape": [len(stamps), dim],
                                   "seconds": round(seconds, 2), "stamps_per_second": round(rate, 1)}, indent=1))
    return FeatureSet(np.load(path, mmap_mode="r"), spec, path, True, seconds, rate)
