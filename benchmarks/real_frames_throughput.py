"""Prediction over real survey frames: what each tile costs where the synthetic benchmark cannot say.

``predict_throughput.py`` reuses one rendered pixel pattern on every synthetic tile, uncompressed,
so the per-tile work of real frames (decompressing them, measuring the seeing on their own
stars) is the same there on every tile. Here the real SDSS fields of the shared data (five
bzip2-compressed frames each, ``surveys/sdss_frames/``) are classified with ``sgq-sdss``:

1. per field, the stages a streamed run goes through for one tile, timed one after the other in
   this process as :class:`skysort.inference.stream` runs them: reading the five bands (one
   thread per band, background subtracted), the seeing of the model's seeing band, and cutting
   the aligned 5-band stamps of the field's objects (4 bands resampled through their WCS);
2. end to end: ``skysort predict --model sgq-sdss --catalog CAT --tiles 'FIELD/frame-*-*.fits.bz2'
   --out DIR/`` in a child process per field, wall clock (process start included).

A field's objects are its ``objects.csv`` where it has one, else the SEP detections above 10
sigma on its r frame (at least 40 px from the edges), as the background test does. The last
line is::

    fields=<n> sources=<n> end_to_end_s=<s> sources_per_s=<x> read_s_per_tile=<s> seeing_s_per_tile=<s> cut_ms_per_source=<ms>

Run ``python benchmarks/real_frames_throughput.py [--threads 2]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FRAMES = SHARED / "surveys" / "sdss_frames"
MODEL = "sgq-sdss"


def field_catalogue(field: Path, out: Path) -> Path:
    """The field's ``objects.csv``, else a CSV of the SEP detections on its r frame."""
    if (field / "objects.csv").exists():
        return field / "objects.csv"
    import sep
    from astropy.table import Table

    from skysort.data.images import read_band_images

    (r_frame,) = read_band_images(sorted(field.glob("frame-r-*.fits*")), ["r"], background="sep")
    data = np.ascontiguousarray(r_frame.data, np.float64)
    objects = sep.extract(data, 10.0, err=r_frame.background["global_rms"], minarea=5)
    ny, nx = data.shape
    inside = (objects["flag"] == 0) & (objects["x"] > 40) & (objects["x"] < nx - 40) & (objects["y"] > 40) & (objects["y"] < ny - 40)
    ra, dec = r_frame.wcs.all_pix2world(objects["x"][inside], objects["y"][inside], 0)
    path = out / f"{field.name}.csv"
    Table({"id": np.arange(len(ra)), "ra": ra, "dec": dec}).write(path, overwrite=True)
    return path


def stage_times(field: Path, catalogue: Path) -> dict[str, float]:
    """Seconds of each stage of one tile of ``field`` in a streamed run (see the module notes)."""
    from skysort.data.catalog import read_catalog
    from skysort.data.cutout import aligned_bands, cut_stamps, sky_to_pixel
    from skysort.data.images import read_band_images
    from skysort.data.ingest import image_seeing
    from skysort.inference.predictor import load_predictor

    spec = load_predictor(MODEL, "cpu").spec
    bands = list(spec.image_bands)
    files = [next(field.glob(f"frame-{band}-*.fits*")) for band in bands]
    start = time.perf_counter()
    images = read_band_images(files, bands, threads=len(bands), background="sep")
    read = time.perf_counter() - start
    reference = bands.index("r")
    start = time.perf_counter()
    aligned = aligned_bands(images, reference)
    image_seeing([images[reference]])
    seeing = time.perf_counter() - start
    table = read_catalog(catalogue)
    x, y = sky_to_pixel(images[reference], np.asarray(table["ra"], float), np.asarray(table["dec"], float))
    start = time.perf_counter()
    cut_stamps(images, x, y, size=spec.stamp_size_to_cut[0], reference=reference, aligned=aligned)
    cut = time.perf_counter() - start
    return {"read": read, "seeing": seeing, "cut": cut, "sources": len(table)}


def end_to_end(field: Path, catalogue: Path, out: Path, threads: int | None) -> float:
    """Wall-clock seconds of ``skysort predict --tiles`` over the field, in a child process."""
    target = out / f"pred_{field.name}"
    shutil.rmtree(target, ignore_errors=True)
    command = [sys.executable, "-m", "skysort.cli", "predict", "--model", MODEL, "--catalog", str(catalogue),
               "--tiles", str(field / "frame-*-*.fits*"), "--out", f"{target}/", "--quiet"]
    if threads:
        command += ["--threads", str(threads)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=FRAMES, help="folder of field folders with frame-[ugriz]-*.fits.bz2")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads of the prediction runs")
    args = parser.parse_args()
    fields = sorted(p for p in args.frames.iterdir() if p.is_dir() and any(p.glob("frame-r-*.fits*")))
    if not fields:
        sys.exit(f"real_frames_throughput: {args.frames}: no field folders with SDSS frames (set SKYSORT_DATA)")
    out = Path(tempfile.mkdtemp(prefix="skysort-real-frames-"))
    try:
        totals = {"read": 0.0, "seeing": 0.0, "cut": 0.0, "sources": 0, "wall": 0.0}
        print("| field | sources | read 5 bands [s] | seeing [s] | cut [ms/source] | end to end [s] | sources/s |")
        print("|---|---|---|---|---|---|---|")
        for field in fields:
            catalogue = field_catalogue(field, out)
            stages = stage_times(field, catalogue)
            wall = end_to_end(field, catalogue, out, args.threads)
            for key in ("read", "seeing", "cut", "sources"):
                totals[key] += stages[key]
            totals["wall"] += wall
            print(f"| {field.name} | {stages['sources']:,} | {stages['read']:.2f} | {stages['seeing']:.2f} | "
                  f"{1e3 * stages['cut'] / max(1, stages['sources']):.2f} | {wall:.1f} | {stages['sources'] / wall:,.0f} |", flush=True)
        n = len(fields)
        print(f"fields={n} sources={totals['sources']} end_to_end_s={totals['wall']:.1f} "
              f"sources_per_s={totals['sources'] / totals['wall']:.0f} read_s_per_tile={totals['read'] / n:.2f} "
              f"seeing_s_per_tile={totals['seeing'] / n:.2f} cut_ms_per_source={1e3 * totals['cut'] / max(1, totals['sources']):.2f}")
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
