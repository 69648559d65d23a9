"""Catalogue-scale prediction throughput: end to end over synthetic tiles versus the model alone.

Writes synthetic survey tiles (default 2048x2048 px, every band the model needs, TAN WCS at the
model's pixel scale, stars drawn as Gaussian PSFs and galaxies as exponential profiles, with sky
noise) holding ``--n`` sources in all, and a Parquet catalogue of them; then

1. end to end: ``skysort predict --catalog CAT --tiles ... --out DIR/`` in a child process
   (planning, tile reading, cutting, model, Parquet parts, manifest), wall-clock sources/s;
2. model only: the same model on batches of stamps cut beforehand (the bound), sources/s;
3. their ratio and the peak resident memory of the prediction process (its own ``VmHWM``,
   GiB; this process, which writes the tiles, is reported on its own line).

The default model is the shipped ``sgq-kids`` when present; otherwise the shipped
``blend-cfis`` stands in (named in the output). Tiles reuse one rendered pixel pattern per
band, each with its own WCS (its own patch of sky), so that writing 1,000,000 sources' tiles
takes seconds. The last line is::

    end_to_end_sources_per_s=<x> model_only_sources_per_s=<y> ratio=<r> peak_rss_gb=<m>

Run ``nice -n 5 python benchmarks/predict_throughput.py --n 100000 --threads 2``; ``--hats`` gives
the catalogue as a HATS catalogue instead (LSDB's default partitioning) and writes a HATS result;
``--csv`` gives it as a CSV file (parsed in blocks, so peak memory should not grow with ``--n``);
``--photometry-only`` writes no tiles and classifies from the catalogue magnitudes alone (models
with a photometry branch), which isolates the catalogue path at millions of rows.
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


# The prediction process, run as ``python -c CHILD PEAK_FILE ARGS...``: ``skysort ARGS`` that
# writes its peak resident memory (KiB) to PEAK_FILE at exit. It reads VmHWM, the high-water
# mark of its own address space: getrusage's maxrss of a child also counts the pages it shared
# with this process between fork and exec, i.e. this process's size at that moment.
CHILD = """
import atexit, resource, sys
from pathlib import Path

def write_peak(path=Path(sys.argv[1])):
    try:
        status = Path("/proc/self/status").read_text()
        kib = int(status.split("VmHWM:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    path.write_text(str(kib))

atexit.register(write_peak)
from skysort.cli import main
sys.exit(main(sys.argv[2:]))
"""


def default_model() -> str:
    from skysort.models.registry import shipped_model_names

    return "sgq-kids" if "sgq-kids" in shipped_model_names() else "blend-cfis"


def render_pattern(size: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source pixel positions ``x``, ``y``, AB magnitudes and whether each is a star."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(4, size - 5, n)
    y = rng.uniform(4, size - 5, n)
    mag = rng.uniform(18, 24, n)
    star = rng.random(n) < 0.3
    return x, y, mag, star


def draw(size: int, x, y, mag, star, pixel_scale: float, noise: float, seed: int, half: int = 7) -> np.ndarray:
    """A noisy image (counts, zero point 30): Gaussian PSF stars and exponential galaxies."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0, noise, (size, size)).astype(np.float32)
    flux = 10 ** (-0.4 * (mag - 30))
    offsets = np.arange(-half, half + 1)
    xi, yi = np.rint(x).astype(int), np.rint(y).astype(int)
    dx = offsets[None, None, :] + xi[:, None, None] - x[:, None, None]
    dy = offsets[None, :, None] + yi[:, None, None] - y[:, None, None]
    r = np.hypot(dx, dy) * pixel_scale
    sigma = 0.7 / 2.355
    scale = rng.uniform(0.25, 0.8, len(x))[:, None, None]
    profile = np.where(star[:, None, None], np.exp(-0.5 * (r / sigma) ** 2), np.exp(-r / scale))
    profile /= profile.sum(axis=(1, 2), keepdims=True)
    values = (profile * flux[:, None, None]).astype(np.float32)
    rows = np.clip(yi[:, None, None] + offsets[None, :, None], 0, size - 1)
    cols = np.clip(xi[:, None, None] + offsets[None, None, :], 0, size - 1)
    np.add.at(image, (np.broadcast_to(rows, values.shape).ravel(), np.broadcast_to(cols, values.shape).ravel()), values.ravel())
    return image


def make_survey(folder: Path, n: int, per_tile: int, size: int, image_bands: list[str], phot_bands: list[str], pixel_scale: float,
                write_tiles: bool = True):
    """Tiles (one folder each, unless ``write_tiles`` is false) and a Parquet catalogue; returns
    (catalogue, tile pattern, tiles)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.io import fits
    from astropy.wcs import WCS

    n_tiles = math.ceil(n / per_tile)
    x, y, mag, star = render_pattern(size, per_tile, seed=1)
    bands = list(dict.fromkeys(image_bands or ["r"]))
    images = {b: draw(size, x, y, mag + 0.2 * i, star, pixel_scale, noise=5.0, seed=10 + i) for i, b in enumerate(bands)} if write_tiles else {}
    writer = None
    side = size * pixel_scale / 3600
    for t in range(n_tiles):
        count = min(per_tile, n - t * per_tile)
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [10.0 + (t % 50) * 2 * side, -30.0 + (t // 50) * 2 * side]
        w.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
        w.wcs.cd = [[-pixel_scale / 3600, 0], [0, pixel_scale / 3600]]
        header = w.to_header()
        sub = folder / f"tile{t:05d}"
        for b in images:
            sub.mkdir(parents=True, exist_ok=True)
            header["FILTER"] = b
            header["MAGZP"] = 30.0
            fits.PrimaryHDU(images[b], header).writeto(sub / f"img-{b}.fits", overwrite=True)
        ra, dec = w.all_pix2world(x[:count], y[:count], 0)
        columns = {"id": np.arange(t * per_tile, t * per_tile + count, dtype=np.int64), "ra": ra, "dec": dec}
        for i, b in enumerate(phot_bands):
            columns[f"mag_{b}"] = (mag[:count] + 0.2 * i).astype(np.float32)
            columns[f"magerr_{b}"] = np.full(count, 0.05, np.float32)
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(folder / "catalog.parquet", table.schema)
        writer.write_table(table)
    writer.close()
    return folder / "catalog.parquet", str(folder / "tile*" / "img-*.fits"), n_tiles


def write_hats(catalog: Path) -> Path:
    """The Parquet catalogue as a HATS catalogue beside it (LSDB's default partitioning)."""
    import lsdb
    import pyarrow.parquet as pq

    start = time.perf_counter()
    path = catalog.parent / "catalog_hats"
    shutil.rmtree(path, ignore_errors=True)
    hats = lsdb.from_dataframe(pq.read_table(catalog).to_pandas(), ra_column="ra", dec_column="dec")
    hats.write_catalog(path, catalog_name="catalog_hats", progress_bar=False)
    print(f"HATS catalogue: {len(hats.get_healpix_pixels())} partitions, written in {time.perf_counter() - start:.1f} s")
    return path


def write_csv(catalog: Path) -> Path:
    """The Parquet catalogue as a CSV file beside it, written row group by row group."""
    import pyarrow.csv as pc
    import pyarrow.parquet as pq

    start = time.perf_counter()
    path = catalog.with_suffix(".csv")
    parquet = pq.ParquetFile(catalog)
    with pc.CSVWriter(path, parquet.schema_arrow) as writer:
        for group in range(parquet.metadata.num_row_groups):
            writer.write_table(parquet.read_row_group(group))
    print(f"CSV catalogue: {path.stat().st_size / 2**20:,.0f} MiB, written in {time.perf_counter() - start:.1f} s")
    return path


def model_only(model: str, folder: Path, device: str, batch: int, n: int, threads: int | None,
               blocks: int = 5, block_s: float = 3.0, images: bool = True) -> float:
    """Sources/s of the model alone on batches cut beforehand from the first tile (the best of
    ``blocks`` timed blocks of at least ``block_s`` s each); photometry alone when ``images``
    is false."""
    import torch

    from skysort.data.cutout import sky_to_pixel
    from skysort.data.images import expand_image_paths, read_band_images
    from skysort.inference.predictor import load_predictor
    from skysort.inference.stream import run_model

    if threads:
        torch.set_num_threads(threads)
    predictor = load_predictor(model, device)
    spec = predictor.spec
    inputs: dict[str, np.ndarray] = {}
    count = min(batch, n)
    if spec.uses_images and images:
        import pyarrow.parquet as pq

        files = expand_image_paths(str(folder / "tile00000" / "img-*.fits"))
        images = read_band_images(files, spec.image_bands)
        cat = pq.ParquetFile(folder / "catalog.parquet").read_row_group(0, columns=["ra", "dec"]).slice(0, count)
        ref = spec.image_bands.index("r") if "r" in spec.image_bands else 0
        x, y = sky_to_pixel(images[ref], cat.column("ra").to_numpy(), cat.column("dec").to_numpy())
        from skysort.data.cutout import cut_stamps

        inputs["image"], _ = cut_stamps(images, x, y, size=spec.stamp_size_to_cut[0], reference=ref)
    if spec.uses_photometry:
        inputs["mag"] = np.full((count, len(spec.photometry_bands)), 21.0, np.float32)
        inputs["magerr"] = np.full((count, len(spec.photometry_bands)), 0.05, np.float32)
    run_model(predictor, inputs, images_available=images, device=device)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    # The bound is the best of several timed blocks of at least ``block_s`` seconds each:
    # one short block is at the mercy of whatever else the machine is doing.
    rates = []
    for _ in range(blocks):
        done, start = 0, time.perf_counter()
        while True:
            run_model(predictor, inputs, images_available=images, device=device)
            done += count
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= block_s:
                break
        rates.append(done / elapsed)
    print(f"model only: {len(rates)} blocks of >= {block_s:.0f} s, {min(rates):,.0f} to {max(rates):,.0f} sources/s")
    return max(rates)


def main() -> None:
    import torch

    from skysort.inference.predictor import load_predictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="sources in all")
    parser.add_argument("--per-tile", type=int, default=10_000, help="sources per tile")
    parser.add_argument("--tile-size", type=int, default=2048, help="tile side in pixels")
    parser.add_argument("--model", default=None, help="model (default: sgq-kids, else blend-cfis as a stand-in)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=None, help="cutting processes (skysort predict --workers)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--memory-gb", type=float, default=4.0)
    parser.add_argument("--folder", type=Path, default=None, help="where to write the tiles (default: a temporary folder)")
    parser.add_argument("--hats", action="store_true", help="give the catalogue as a HATS catalogue (needs lsdb); the result is HATS too")
    parser.add_argument("--csv", action="store_true", help="give the catalogue as a CSV file")
    parser.add_argument("--photometry-only", action="store_true", help="no tiles: classify from the catalogue magnitudes alone")
    args = parser.parse_args()
    model = args.model or default_model()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    spec = load_predictor(model, "cpu").spec
    stand_in = "" if model == "sgq-kids" or args.model else " (stand-in: sgq-kids is not shipped yet)"
    print(f"model {model}{stand_in}: image bands {spec.image_bands}, stamps {spec.stamp_size_to_cut}, photometry {spec.photometry_bands}")
    folder = args.folder or Path(tempfile.mkdtemp(prefix="skysort-predict-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.photometry_only and not spec.uses_photometry:
        parser.error(f"--photometry-only needs a model with a photometry branch; {model} has none")
    catalog, pattern, n_tiles = make_survey(folder, args.n, args.per_tile, args.tile_size, spec.image_bands,
                                            spec.photometry_bands, spec.pixel_scale or 0.2, write_tiles=not args.photometry_only)
    if args.photometry_only:
        print(f"{args.n:,} sources written in {time.perf_counter() - start:.1f} s (no tiles)")
    else:
        print(f"{args.n:,} sources on {n_tiles} tiles of {args.tile_size}x{args.tile_size} px written in {time.perf_counter() - start:.1f} s")
    if args.csv:
        catalog = write_csv(catalog)
    out = folder / "out"
    shutil.rmtree(out, ignore_errors=True)
    target = f"{out}/"
    if args.hats:
        catalog, target = write_hats(catalog), str(out)
    peak_file = folder / "prediction_peak_rss.txt"
    tiles = [] if args.photometry_only else ["--tiles", pattern]
    command = [sys.executable, "-c", CHILD, str(peak_file), "predict", "--model", model, "--catalog", str(catalog), *tiles,
               "--out", target, "--quiet", "--device", device, "--batch-size", str(args.batch_size),
               "--memory-gb", str(args.memory_gb)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    elapsed = time.perf_counter() - start
    end_to_end = args.n / elapsed
    print(f"end to end: {elapsed:.1f} s ({end_to_end:,.0f} sources/s, process start and planning included)")
    bound = model_only(model, folder, device, args.batch_size, args.n, args.threads, images=not args.photometry_only)
    children = int(peak_file.read_text()) / 2**20
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS: prediction process {children:.2f} GiB, this process (tile writing, model-only) {own:.2f} GiB")
    if end_to_end > bound:
        print("end to end is above the model-only bound: the cutting overlaps the model entirely; compare the "
              "spread of the model-only blocks above")
    if args.folder is None:
        shutil.rmtree(folder, ignore_errors=True)
    # peak_rss_gb is the prediction process's (what --memory-gb bounds); the tiles are written here, not there.
    print(f"end_to_end_sources_per_s={end_to_end:.0f} model_only_sources_per_s={bound:.0f} ratio={end_to_end / bound:.3f} "
          f"peak_rss_gb={children:.2f}")


if __name__ == "__main__":
    main()
