"""Simulator throughput in stamps per second per core, and colour loci against real SDSS.

Measures, in one process pinned to one core, after a warm-up block (tables and caches are
built once per process):

* 9-band ``kids`` sources (64x64, default class mix), target >= 300 stamps/s/core;
* ``cfis`` blends, parametric and realistic (65x65), target >= 300 stamps/s/core;
* ``sdss`` point sources with spectra (report);

then prints the per-class median colour offsets of the ``sdss`` preset against the real SDSS
DR17 spectroscopic objects (target |offset| <= 0.15 mag in u-g, g-r, r-i, i-z).

Run ``python benchmarks/simulate_throughput.py [--n 2000]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def rate(config, n: int, warmup: int = 64) -> float:
    from skysort.simulate.simulator import simulate_block

    simulate_block(config, 10_000_000, warmup)  # builds tables and caches
    start = time.perf_counter()
    for first in range(0, n, 512):
        simulate_block(config, first, min(512, n - first))
    return n / (time.perf_counter() - start)


def main() -> None:
    from skysort.simulate.population import colour_offsets_vs_real
    from skysort.simulate.simulator import SimulationConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="stamps per measurement")
    parser.add_argument("--skip-colours", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cases = [
        ("kids_sources_9band", SimulationConfig(survey="kids", kind="sources", seed=1), 300),
        ("cfis_blends_parametric", SimulationConfig(survey="cfis", kind="blends", seed=1, mode="parametric"), 300),
        ("cfis_blends_realistic", SimulationConfig(survey="cfis", kind="blends", seed=1, mode="realistic"), 300),
        ("sdss_pointsources_with_spectra", SimulationConfig(survey="sdss", kind="pointsources", seed=1), None),
    ]
    for name, config, target in cases:
        value = rate(config, args.n)
        print(f"{name}_stamps_per_s_per_core={value:,.0f}" + (f" (target >= {target})" if target else ""))
    if args.skip_colours:
        return
    offsets = colour_offsets_vs_real("sdss")
    print("per-class median colour offset, sdss preset minus real SDSS DR17 (mag):")
    for row in offsets:
        print("  " + "  ".join(f"{name}={row[name]:.3f}" if isinstance(row[name], (float, np.floating)) else f"{name}={row[name]}" for name in offsets.colnames))
    worst = float(np.max(np.abs(offsets["offset"])))
    print(f"max_abs_colour_offset={worst:.3f} (target <= 0.15)")


if __name__ == "__main__":
    main()
