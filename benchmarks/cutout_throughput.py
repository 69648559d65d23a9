"""Cutout throughput: stamps per second per core.

1. single-band 64x64 stamps from an in-memory tile (integer-pixel cuts; target >= 20,000/s/core);
2. aligned 5-band stamps from the in-memory real SDSS field (4 bands resampled through WCS);
3. end to end from the compressed real SDSS FITS files to a stamp set on disk;
4. the real SDSS r frame (0.396"/px) cut at another pixel scale, as for a model trained at
   that scale (:func:`skysort.data.cutout.cut_stamps` ``pixel_scale``): onto finer pixels
   (0.2"/px, spline plus the noise those pixels would hold) and coarser ones (0.6"/px, box
   average first), stamps of ``--size`` pixels of the new grid.

Run ``python benchmarks/cutout_throughput.py`` (one process, pinned to one core where possible).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIELD = Path(os.environ.get("SKYSORT_DATA", REPO.parent / "shared" / "data")) / "surveys" / "sdss_frames" / "003918-3-0213"


def pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def single_band(n: int, size: int) -> float:
    from skysort.data.cutout import cut_integer

    rng = np.random.default_rng(0)
    tile = rng.normal(size=(4096, 4096)).astype(np.float32)
    x = rng.uniform(size, 4096 - size, n)
    y = rng.uniform(size, 4096 - size, n)
    cut_integer(tile, x[:1000], y[:1000], size)  # warm-up
    start = time.perf_counter()
    for block in range(0, n, 4096):
        cut_integer(tile, x[block : block + 4096], y[block : block + 4096], size)
    return n / (time.perf_counter() - start)


def aligned_five_band(repeats: int, size: int) -> tuple[float, int]:
    import pandas as pd

    from skysort.data.cutout import cut_stamps, sky_to_pixel
    from skysort.data.images import expand_image_paths, read_band_images

    images = read_band_images(expand_image_paths(str(FIELD / "frame-*-*.fits.bz2")))
    objects = pd.read_csv(FIELD / "objects.csv")
    x, y = sky_to_pixel(images[2], objects["ra"].to_numpy(), objects["dec"].to_numpy())
    x, y = np.tile(x, repeats), np.tile(y, repeats)
    start = time.perf_counter()
    cut_stamps(images, x, y, size=size, reference=2)
    return len(x) / (time.perf_counter() - start), len(x)


def other_pixel_scale(repeats: int, size: int, pixel_scale: float) -> tuple[float, int]:
    import pandas as pd

    from skysort.data.background import subtract_background
    from skysort.data.cutout import cut_stamps, sky_to_pixel
    from skysort.data.images import read_band_image

    image = subtract_background(read_band_image(next(FIELD.glob("frame-r-*.fits.bz2"))), "sep")
    objects = pd.read_csv(FIELD / "objects.csv")
    x, y = sky_to_pixel(image, objects["ra"].to_numpy(), objects["dec"].to_numpy())
    x, y = np.tile(x, repeats) + np.repeat(np.arange(repeats) * 1e-3, len(x)), np.tile(y, repeats)
    start = time.perf_counter()
    cut_stamps([image], x, y, size=size, pixel_scale=pixel_scale)
    return len(x) / (time.perf_counter() - start), len(x)


def end_to_end(size: int) -> tuple[float, float, int]:
    from skysort.data.catalog import read_catalog
    from skysort.data.images import expand_image_paths, read_band_images
    from skysort.data.ingest import cutout_to_stampset

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        images = read_band_images(expand_image_paths(str(FIELD / "frame-*-*.fits.bz2")), threads=1)
        read_time = time.perf_counter() - start
        stamps = cutout_to_stampset(images, read_catalog(FIELD / "objects.csv"), Path(tmp) / "s.h5", size=size)
        total = time.perf_counter() - start
        return len(stamps) / total, read_time, len(stamps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="single-band stamps to cut")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the SDSS field's 643 objects for the 5-band test")
    args = parser.parse_args()
    pin_to_one_core()
    rate = single_band(args.n, args.size)
    print(f"single_band_{args.size}px_stamps_per_s_per_core={rate:,.0f} (target >= 20,000)")
    if not FIELD.exists():
        print(f"real SDSS field not found at {FIELD}: 5-band and end-to-end figures skipped")
        return
    rate5, n5 = aligned_five_band(args.repeats, args.size)
    print(f"aligned_5band_{args.size}px_stamps_per_s_per_core={rate5:,.0f} ({n5} stamps, 4 bands resampled)")
    rate_e2e, read_time, n = end_to_end(args.size)
    print(f"end_to_end_from_fits_bz2_stamps_per_s={rate_e2e:,.1f} ({n} objects; reading 5 bz2 frames took {read_time:.1f} s of it)")
    for scale in (0.2, 0.6):
        rate_s, n_s = other_pixel_scale(args.repeats, args.size, scale)
        print(f"r_band_at_{scale:g}arcsec_{args.size}px_stamps_per_s_per_core={rate_s:,.0f} ({n_s} stamps resampled from 0.396\"/px)")


if __name__ == "__main__":
    main()
