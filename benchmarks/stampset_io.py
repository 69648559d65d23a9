"""Stamp-set read throughput and memory.

Writes a multi-GB stamp set (single-band 64x64 float32 by default), then measures
random-access batches of 256 stamps (target >= 10,000 stamps/s) and the resident memory while
iterating over every stamp (it must stay bounded, far below the file size).

Run ``python benchmarks/stampset_io.py [--gb 2.0] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    """Current resident set size in MB (Linux)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def main() -> None:
    from skysort.data.dataset import StampDataset
    from skysort.data.stampset import StampMeta, StampSet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0, help="size of the test stamp set in GB")
    parser.add_argument("--bands", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the test file (default: a temporary folder)")
    args = parser.parse_args()

    stamp_bytes = 4 * args.bands * args.size * args.size
    n = int(args.gb * 1e9 / stamp_bytes)
    bands = tuple("ugrizy"[: args.bands])
    meta = StampMeta.with_provenance(bands=bands, pixel_scale=0.2, flux_unit="count", survey="benchmark", seed=0)
    rng = np.random.default_rng(0)
    block = rng.normal(size=(4096, args.bands, args.size, args.size)).astype(np.float32)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.h5"
        start = time.perf_counter()
        with StampSet.create(path, meta, (args.size, args.size)) as writer:
            for first in range(0, n, len(block)):
                count = min(len(block), n - first)
                writer.append(block[:count], {"id": np.arange(first, first + count), "label": np.full(count, "galaxy")})
        write_s = time.perf_counter() - start
        size_gb = path.stat().st_size / 1e9
        print(f"wrote {n:,} stamps ({size_gb:.2f} GB) in {write_s:.1f} s ({n / write_s:,.0f} stamps/s)")

        stamps = StampSet.open(path)
        stamps.read_images(rng.integers(0, n, args.batch))  # open file, warm metadata
        start = time.perf_counter()
        for _ in range(args.batches):
            stamps.read_images(rng.integers(0, n, args.batch))
        random_rate = args.batches * args.batch / (time.perf_counter() - start)
        print(f"random_access_batch{args.batch}_stamps_per_s={random_rate:,.0f} (target >= 10,000)")

        dataset = StampDataset(stamps, classes=["galaxy"])
        start = time.perf_counter()
        for _ in range(args.batches // 3):
            dataset.__getitems__(rng.integers(0, n, args.batch))
        dataset_rate = (args.batches // 3) * args.batch / (time.perf_counter() - start)
        print(f"dataset_random_batch{args.batch}_stamps_per_s={dataset_rate:,.0f} (normalised torch tensors)")

        baseline = rss_mb()
        peak = baseline
        start = time.perf_counter()
        for _, images in stamps.iter_batches(batch_size=4096):
            peak = max(peak, rss_mb())
        iterate_s = time.perf_counter() - start
        print(f"sequential_iteration_stamps_per_s={n / iterate_s:,.0f}")
        print(f"iteration_rss_mb baseline={baseline:,.0f} peak={peak:,.0f} growth={peak - baseline:,.0f} (file {size_gb * 1e3:,.0f} MB)")


if __name__ == "__main__":
    main()
