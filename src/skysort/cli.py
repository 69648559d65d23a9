"""The ``skysort`` command line: a thin layer over the Python API.

Every problem with the user's input ends the command with one line,
``skysort: error: <file or option>: <problem>``, on standard error and exit code 2; ``--debug``
shows the traceback instead. Outputs are written under temporary names and renamed only when
complete, so a failed command leaves nothing half written.

Verbs reserved for the classification stages: ``simulate``, ``train``, ``evaluate``,
``predict``, ``baseline``, ``models``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table as RichTable

from . import __version__
from ._io import check_output_path
from .errors import InputError, UnfinishedRunError

app = typer.Typer(
    name="skysort",
    help="Classify sources in astronomical imaging surveys: stamps, simulation, training, prediction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


class NanPolicy(str, Enum):
    flag = "flag"
    error = "error"


#: Largest seed numpy's legacy generators accept (seeds are 32-bit there).
SEED_MAX = 2**32 - 1
#: File name endings of the stamp sets and model files the commands write (and ``info`` reads).
STAMPSET_SUFFIXES = (".h5", ".hdf5")
MODEL_SUFFIXES = (".pt", ".pth")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"skysort {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """skysort: deep-learning classification of survey sources."""


def _warn(where: str | Path, message: str) -> None:
    err_console.print(f"skysort: warning: {where}: {message}", highlight=False, soft_wrap=True)


def _require_number(value: float | None, option: str, *, positive: bool = False, minimum: float | None = None) -> None:
    """Refuse a NaN or infinite option value (``float("nan")`` passes every ``<`` test), and
    with ``positive`` one that is not above 0, with ``minimum`` one below it."""
    if value is None:
        return
    if not np.isfinite(value):
        raise InputError(option, f"must be a finite number, got {value}")
    if positive and not value > 0:
        raise InputError(option, f"must be positive, got {value:g}")
    if minimum is not None and value < minimum:
        raise InputError(option, f"must be at least {minimum:g}, got {value:g}")


_ZERO_POINTS_HELP = ("AB magnitude of one pixel unit of the images, replacing their headers' zero point: one value for all "
                     "bands or 'u=30,r=30.1' (other bands keep the header's). For images without a zero-point keyword, or "
                     "with one in another convention (CASU's MAGZPT is for one count per second).")


def _parse_zero_points(text: str | None) -> float | dict[str, float] | None:
    """``--zero-points``: one number for every band, or ``band=value`` pairs (the bands are
    checked against the images once they are read)."""
    if not text:
        return None
    if "=" not in text:
        return _parse_band_values(text, ["all"], "--zero-points")["all"]
    named = [item.split("=", 1)[0].strip() for item in text.split(",")]
    return _parse_band_values(text, named, "--zero-points")


def _parse_band_values(text: str | None, bands: list[str], option: str, *, positive: bool = False) -> dict[str, float]:
    """Parse ``"22.5"`` (all bands) or ``"g=22.5,r=22.4"`` into a per-band dict of finite
    numbers (positive ones with ``positive``)."""
    if not text:
        return {}
    text = text.strip()
    try:
        if "=" not in text:
            values = {band: float(text) for band in bands}
        else:
            values = {}
            for item in text.split(","):
                band, value = item.split("=", 1)
                values[band.strip()] = float(value)
    except ValueError:
        raise InputError(option, f"expected a number or band=value pairs, got {text!r}") from None
    unknown = set(values) - set(bands)
    if unknown:
        raise InputError(option, f"bands {sorted(unknown)} are not among {bands}")
    for value in values.values():
        _require_number(value, option, positive=positive)
    return values


def _split_bands(text: str | None, option: str) -> list[str] | None:
    """Names from 'g,r,i' (or spaces), None when the option is not given. An empty name
    (``''``, ``'r,'``, ``'g,,r'``: often a shell variable that expanded to nothing) and a
    repeated one are refused."""
    if text is None:
        return None
    if any(not item.strip() for item in text.split(",")):
        raise InputError(option, f"empty name in {text!r}: give names separated by single commas, e.g. 'g,r,i'")
    names = text.replace(",", " ").split()
    if len(set(names)) != len(names):
        raise InputError(option, f"each name may appear once, got {text!r}")
    return names


def _options_given(ctx: typer.Context) -> dict[str, str]:
    """The command's parameters set on the command line, by name, with their option spelling."""
    # Compared by name: click versions differ in where the ParameterSource enum lives.
    sources = {param.name: ctx.get_parameter_source(param.name) for param in ctx.command.params if param.name}
    return {param.name: param.opts[0] for param in ctx.command.params
            if sources.get(param.name) is not None and sources[param.name].name not in ("DEFAULT", "DEFAULT_MAP")}


def _refuse_options_outside(ctx: typer.Context, scope: str, applies_to: dict[str, tuple[str, ...]],
                            describe: dict[Any, str], subject: str) -> None:
    """Refuse an option given on the command line that does nothing in ``scope``.

    A silently ignored option is a run that did not do what was asked, found out (if ever) only
    after the work; ``applies_to`` maps parameter names to the scopes that read them, and
    ``describe`` names the scopes (or a tuple of them) for the message.
    """
    given = _options_given(ctx)
    for name, scopes in applies_to.items():
        if name in given and scope not in scopes:
            names = [describe[s] for s in scopes]
            where = describe.get(scopes) or (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])
            raise InputError(given[name], f"applies to {where}; {subject}")


def _print_stampset_summary(summary: dict[str, Any], elapsed: float | None = None) -> None:
    meta = summary["meta"]
    grid = RichTable(title=f"stamp set {summary['path']}", show_header=False, title_justify="left")
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("objects", f"{summary['n_objects']:,}")
    grid.add_row("stamps", f"{len(meta['bands'])} band(s) {' '.join(meta['bands'])}, {summary['stamp_shape'][1]}x{summary['stamp_shape'][2]} px at {meta['pixel_scale']:.4g}\"/px")
    grid.add_row("flux unit", f"{meta['flux_unit']}; zero points {meta['zero_points']}")
    seeing = {b: (meta.get("psf_fwhm") or {}).get(b, float("nan")) for b in meta["bands"]}
    seeing = {b: v for b, v in seeing.items() if v == v}  # NaN: unknown
    if seeing:
        source = (meta.get("extra") or {}).get("psf_fwhm_source") or {}
        variants = (meta.get("extra") or {}).get("psf_variants") or []
        how = " (measured on the images)" if set(source.values()) == {"measured"} else (
            f" (nominal; {len(variants)} PSF levels)" if len(variants) > 1 else "")
        grid.add_row("seeing", " ".join(f"{b} {v:.2f}\"" for b, v in seeing.items()) + how)
    grid.add_row("survey", meta["survey"] or "-")
    grid.add_row("classes", ", ".join(f"{k}: {v:,}" for k, v in summary["classes"].items()) or "-")
    grid.add_row("flags", ", ".join(f"{k}: {v:,}" for k, v in summary["flags"].items()))
    grid.add_row("columns", " ".join(summary["columns"]))
    if summary["arrays"]:
        grid.add_row("arrays", " ".join(summary["arrays"]))
    grid.add_row("created", f"{meta['created']} by {meta['creator']}")
    grid.add_row("command", meta["command"] or "-")
    grid.add_row("size", f"{summary['file_size_bytes'] / 1e6:,.1f} MB")
    if elapsed is not None:
        grid.add_row("time", f"{elapsed:.1f} s ({summary['n_objects'] / max(elapsed, 1e-9):,.0f} objects/s)")
    console.print(grid)


def _write_mosaic(stamps, path: Path, n: int = 48) -> Path:
    from .evaluation.plots import save_mosaic

    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(len(stamps), size=min(n, len(stamps)), replace=False))
    labels = stamps.column("label", chosen)
    ids = stamps.column("id", chosen)
    titles = [f"{i} {lab}".strip() for i, lab in zip(ids, labels)]
    return save_mosaic(stamps.read_images(chosen), stamps.meta.bands, path, titles=titles,
                       title=f"{stamps.path.name}: {len(chosen)} of {len(stamps)} stamps")


class Background(str, Enum):
    sep = "sep"
    none = "none"


_BACKGROUND_HELP = ("Sky background removed from each band image before stamps are cut: sep (SExtractor's 64-pixel "
                    "mesh estimate; the models expect sky-subtracted stamps) or none (pixels as in the files).")
_WEIGHTS_HELP = ("Separate weight maps (weight or inverse variance: 0 = no data; variance or rms: infinite, NaN or <= 0 = "
                 "no data): glob pattern(s) (repeat the option or separate patterns by commas), matched to the images by name (KiDS/SWarp X.fits and X.weight.fits, "
                 "X_sci.fits and X_wei.fits); every image needs one, of its shape and pixels. Pixels without data are cut "
                 "as NaN and flagged NAN_PIXELS. Without it, a weight extension of the image's own file is read "
                 "(WGT, WEIGHT, WHT, IVAR, INVVAR, VARIANCE, VAR, RMS, ERR, SIGMA; masks are not read). Quote patterns.")
_WEIGHT_HDU_HELP = ("Extension of each image's file that holds its weight map, where the file holds several (JWST: WHT "
                    "beside ERR), or 'none' to read no weight extension.")
_PRIOR_HELP = ("Class fractions expected among the sources, e.g. star=0.12,galaxy=0.86,qso=0.02 (normalised): "
               "probabilities are moved from the model's training balance (equal classes for the shipped sgq models) "
               "to these by Bayes' rule. 'auto' estimates them from the predictions (a stamp set into one output "
               "file). Models that record their training class counts only.")


def _format_prior(prior) -> str:
    """A prior as the --prior option takes it."""
    return ",".join(f"{name}={fraction:.4g}" for name, fraction in prior.items())


@app.command("cutout")
def cutout_command(
    images: Annotated[list[str], typer.Option("--images", help="Band images: glob pattern(s) (repeat the option or separate patterns by commas), one FITS file per band (.fits, .fits.gz, .fits.bz2, .fits.fz) holding one sky image (a multi-CCD mosaic is refused; a weight or variance extension on the same pixels marks pixels without data, see --weights; masks are not read). Quote patterns.")],
    catalog: Annotated[Path, typer.Option("--catalog", help="Catalogue (CSV, TSV, FITS, Parquet, VOTable, IPAC, SExtractor, or a folder of Parquet files) with ra/dec in degrees, or x/y in reference-band pixels.")],
    out: Annotated[Path, typer.Option("--out", help="Output stamp set (.h5).")],
    size: Annotated[int, typer.Option("--size", help="Stamp side in reference-band pixels.")] = 64,
    bands: Annotated[Optional[str], typer.Option("--bands", help="Bands to use, in order (e.g. 'u,g,r,i,z'); default: all, by wavelength.")] = None,
    reference_band: Annotated[Optional[str], typer.Option("--reference-band", help="Band whose pixel grid the stamps share (default r, else the first).")] = None,
    mapping: Annotated[Optional[str], typer.Option("--mapping", help="Catalogue column mapping: preset name (kids, sdss, ...), YAML file, or 'ra=RA,dec=DEC,...'.")] = None,
    survey: Annotated[Optional[str], typer.Option("--survey", help="Survey name stored in the metadata (default: from the FITS header).")] = None,
    nan: Annotated[NanPolicy, typer.Option("--nan", help="NaN pixels in the images: flag the stamps, or stop with an error.")] = NanPolicy.flag,
    background: Annotated[Background, typer.Option("--background", help=_BACKGROUND_HELP)] = Background.sep,
    weights: Annotated[Optional[list[str]], typer.Option("--weights", help=_WEIGHTS_HELP)] = None,
    weight_hdu: Annotated[Optional[str], typer.Option("--weight-hdu", help=_WEIGHT_HDU_HELP)] = None,
    zero_points: Annotated[Optional[str], typer.Option("--zero-points", help=_ZERO_POINTS_HELP)] = None,
    pixel_scale: Annotated[Optional[float], typer.Option("--pixel-scale", help="Pixel scale of the stamps in arcsec per pixel (e.g. a model's, when the images have another): every band is resampled onto a grid of this scale centred on each object, and --size counts its pixels. Default: the reference band's own pixels.")] = None,
    mosaic: Annotated[Optional[Path], typer.Option("--mosaic", help="Also write a PNG mosaic of stamps here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Cut aligned multi-band stamps of every catalogue object from FITS images into a stamp set."""
    from ._progress import progress_bar
    from .data.catalog import read_catalog
    from .data.images import expand_image_paths
    from .data.ingest import cutout

    image_paths = expand_image_paths(images, option="--images")
    if weights is not None:
        from .data.images import expand_paths

        image_paths += expand_paths(weights, what="weight file", option="--weights")
    check_output_path(out, inputs=[catalog, *image_paths], suffixes=STAMPSET_SUFFIXES)
    band_list = _split_bands(bands, "--bands")
    given_zero_points = _parse_zero_points(zero_points)
    if pixel_scale is not None:
        _require_number(pixel_scale, "--pixel-scale", positive=True)
    if mosaic:
        if Path(mosaic).resolve() == Path(out).resolve():
            raise InputError("--mosaic", "names the same file as --out")
        check_output_path(mosaic, option="--mosaic", inputs=[catalog, *image_paths], suffixes=(".png",))
    start = time.perf_counter()
    table = read_catalog(catalog, mapping=mapping)
    with progress_bar(len(table), "cutting", enabled=not quiet) as advance:
        stamps = cutout(images, table, out, size=size, bands=band_list,
                        reference_band=reference_band, survey=survey, nan_policy=nan.value, background=background.value,
                        weights=weights, weight_hdu=weight_hdu, zero_points=given_zero_points, pixel_scale=pixel_scale,
                        warn=_warn, progress=advance)
    _print_stampset_summary(stamps.summary(), time.perf_counter() - start)
    if mosaic:
        console.print(f"mosaic: {_write_mosaic(stamps, mosaic)}")


@app.command("import")
def import_command(
    images: Annotated[Path, typer.Option("--images", help="Stamp array (N,H,W) or (N,B,H,W): .npy, FITS cube, or .npz / plain HDF5 file whose 'images' array holds the stamps and whose other arrays, one value per stamp, are per-object columns.")],
    out: Annotated[Path, typer.Option("--out", help="Output stamp set (.h5).")],
    bands: Annotated[str, typer.Option("--bands", help="Band names of the image planes, in order (e.g. 'r' or 'g,r,i').")],
    pixel_scale: Annotated[float, typer.Option("--pixel-scale", help="Pixel scale in arcsec per pixel.")],
    table: Annotated[Optional[Path], typer.Option("--table", help="Per-object table (CSV, FITS, Parquet) with one row per stamp; not beside the per-object arrays of an .npz or HDF5 file.")] = None,
    mapping: Annotated[Optional[str], typer.Option("--mapping", help="Column mapping of the table, or of an .npz / HDF5 file's per-object arrays (preset, YAML file or compact string).")] = None,
    flux_unit: Annotated[str, typer.Option("--flux-unit", help="Unit of the pixel values.")] = "unknown",
    zero_points: Annotated[Optional[str], typer.Option("--zero-points", help="AB zero point of one flux unit: one value or 'g=30,r=30'.")] = None,
    psf_fwhm: Annotated[Optional[str], typer.Option("--psf-fwhm", help="PSF FWHM in arcsec: one value or 'g=0.8,r=0.7'.")] = None,
    survey: Annotated[str, typer.Option("--survey", help="Survey name stored in the metadata.")] = "",
    nan: Annotated[NanPolicy, typer.Option("--nan", help="NaN pixels: flag the stamps, or stop with an error.")] = NanPolicy.flag,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Turn an array of stamps plus a table (or the per-object arrays beside the stamps in an
    .npz or HDF5 file) into a stamp set."""
    from ._progress import progress_bar
    from .data.catalog import read_catalog
    from .data.ingest import import_to_stampset, load_stamp_array

    check_output_path(out, inputs=[images, table], suffixes=STAMPSET_SUFFIXES)
    _require_number(pixel_scale, "--pixel-scale", positive=True)
    start = time.perf_counter()
    band_list = _split_bands(bands, "--bands") or []
    object_table = read_catalog(table, mapping=mapping, require_positions=False) if table else None
    array = load_stamp_array(images)
    with progress_bar(len(array), "importing", enabled=not quiet) as advance:
        stamps = import_to_stampset(
            images, object_table, out, bands=band_list, pixel_scale=pixel_scale, flux_unit=flux_unit,
            zero_points=_parse_band_values(zero_points, band_list, "--zero-points"),
            psf_fwhm=_parse_band_values(psf_fwhm, band_list, "--psf-fwhm", positive=True), survey=survey,
            table_path=table, nan_policy=nan.value, array=array, mapping=mapping, progress=advance,
        )
    summary = stamps.summary()
    if summary["flags"].get("NAN_PIXELS"):
        _warn(images, f"{summary['flags']['NAN_PIXELS']} stamps have NaN or infinite pixels and are flagged NAN_PIXELS")
    _print_stampset_summary(summary, time.perf_counter() - start)


class SimKind(str, Enum):
    sources = "sources"
    pointsources = "pointsources"
    blends = "blends"


class SimMode(str, Enum):
    parametric = "parametric"
    clumpy = "clumpy"
    realistic = "realistic"


def _parse_overrides(items: list[str], option: str) -> tuple[tuple[str, Any], ...]:
    """``KEY=VALUE`` strings -> ``((key, value), ...)``; values read as YAML scalars (numbers, booleans, text)."""
    import yaml

    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(option, f"expected KEY=VALUE, got {item!r}")
        pairs.append((key.strip(), yaml.safe_load(value)))
    return tuple(pairs)


def _parse_band_numbers(text: Optional[str], option: str) -> dict[str, float] | None:
    """``"u=0.3,g=0.08"`` -> ``{"u": 0.3, "g": 0.08}``."""
    if not text:
        return None
    values = {}
    for key, value in _parse_overrides([item for item in text.split(",") if item.strip()], option):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(option, f"{key}: expected a number, got {value!r}")
        values[key] = float(value)
    return values


@app.command("simulate")
def simulate_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Output stamp set (.h5).")],
    survey: Annotated[str, typer.Option("--survey", help="Survey preset (kids, sdss, cfis) or a preset YAML file.")] = "kids",
    kind: Annotated[SimKind, typer.Option("--kind", help="sources: stars, galaxies, quasars; pointsources: stars and quasars with spectra; blends: isolated / blended galaxies (cfis).")] = SimKind.sources,
    n: Annotated[int, typer.Option("--n", help="Number of objects.")] = 10000,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Random seed; object i depends only on (seed, i).")] = 0,
    balanced: Annotated[bool, typer.Option("--balanced", help="sources / pointsources: equal class odds (blend sets are half blended already): each object's class is drawn with equal probability (counts scatter around n / classes).")] = False,
    mode: Annotated[SimMode, typer.Option("--mode", help="Galaxy morphologies: COSMOS parametric fits; clumpy (the fits with star-forming knots in their discs, and for blends sizes and magnitudes drawn apart from the shapes); or real COSMOS HST images.")] = SimMode.parametric,
    noise_sigma: Annotated[Optional[float], typer.Option("--noise-sigma", help="Sky noise per pixel in counts, every band (default: the preset's).")] = None,
    spectra_snr: Annotated[float, typer.Option("--spectra-snr", help="Median S/N per pixel of point-source spectra.")] = 10.0,
    real_galaxies: Annotated[str, typer.Option("--real-galaxies", help="realistic mode: all, train (even rows of the real COSMOS library) or test (odd rows): train and test on different galaxies; train-fit and train-check halve the training rows (0, 4, 8, ... and 2, 6, 10, ...) for choices made on galaxies unseen in fitting.")] = "all",
    image_bands: Annotated[Optional[str], typer.Option("--image-bands", help="sources / pointsources: render stamps in these bands only, comma-separated (photometry still covers every band; default all).")] = None,
    stamp_size: Annotated[Optional[int], typer.Option("--stamp-size", help="sources / pointsources: stamp side in pixels (default: the preset's).")] = None,
    mag_max: Annotated[Optional[float], typer.Option("--mag-max", help="sources / pointsources: faintest true magnitude in the selection band (AB; default: the preset's).")] = None,
    population: Annotated[Optional[list[str]], typer.Option("--population", help="sources / pointsources: override a population parameter of the preset, KEY=VALUE (repeatable), e.g. galaxy_target_fraction=0.5.")] = None,
    near_fraction: Annotated[float, typer.Option("--near-fraction", help="blends: probability that a companion lies within 10 px of the centre (near blends; about 0.12 of them when drawn anywhere in the stamp, the default 0).")] = 0.0,
    real_shear: Annotated[float, typer.Option("--real-shear", help="realistic blends: shear each real galaxy by a random reduced shear up to this (0-0.5, area kept, random axis), for more shapes in training than the library holds; default 0, the library's shapes.")] = 0.0,
    workers: Annotated[int, typer.Option("--workers", help="Parallel processes (the output does not depend on it).")] = 1,
    plots: Annotated[Optional[Path], typer.Option("--plots", help="Write validation plots (colour-colour, magnitudes, mosaics) to this folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Simulate a labelled stamp set of a survey: stars, galaxies, quasars, point sources or blends."""
    from ._progress import progress_bar
    from .simulate.simulator import SimulationConfig, simulate

    # The simulation's configuration refuses the other options of another kind; this one's default
    # is a number, so only the command line knows whether it was given.
    _refuse_options_outside(ctx, kind.value, {"spectra_snr": ("pointsources",)},
                            {k.value: f"--kind {k.value}" for k in SimKind}, f"this run is --kind {kind.value}")
    check_output_path(out, suffixes=STAMPSET_SUFFIXES)
    if plots:
        check_output_path(plots, folder=True, option="--plots")
    _require_number(noise_sigma, "--noise-sigma", minimum=0.0)
    _require_number(spectra_snr, "--spectra-snr", positive=True)
    _require_number(mag_max, "--mag-max")
    start = time.perf_counter()
    config = SimulationConfig(survey=survey, kind=kind.value, seed=seed, balanced=balanced, mode=mode.value,
                              noise_sigma=noise_sigma, spectra_snr=spectra_snr, real_galaxies=real_galaxies,
                              image_bands=tuple(_split_bands(image_bands, "--image-bands")) if image_bands is not None else None, stamp_size=stamp_size,
                              mag_max=mag_max, population=_parse_overrides(population or [], "--population"),
                              near_fraction=near_fraction, real_shear=real_shear)
    with progress_bar(n, "simulating", enabled=not quiet) as advance:
        stamps = simulate(config, n, out, workers=workers, progress=advance)
    _print_stampset_summary(stamps.summary(), time.perf_counter() - start)
    if plots:
        from .evaluation.plots import plot_stampset_overview

        for path in plot_stampset_overview(stamps, plots):
            console.print(f"plot: {path}")


class Task(str, Enum):
    sgq = "sgq"
    pointsource = "pointsource"
    blend = "blend"


class Branches(str, Enum):
    both = "both"
    image = "image"
    photometry = "photometry"


class Baseline(str, Enum):
    image_only = "image-only"


class Architecture(str, Enum):
    cnn = "cnn"
    paper = "paper"


class Backbone(str, Enum):
    efficientnet_lite0 = "efficientnet-lite0"
    vgg16 = "vgg16"


class InputMode(str, Enum):
    paper8bit = "paper8bit"
    float = "float"


@app.command("train")
def train_command(
    ctx: typer.Context,
    task: Annotated[Task, typer.Option("--task", help="What to learn: sgq (star / galaxy / quasar from stamps + photometry), pointsource (star vs quasar from images, with spectral knowledge) or blend (isolated vs blended galaxies).")],
    data: Annotated[Path, typer.Option("--data", help="Training stamp set (from skysort simulate).")],
    out: Annotated[Path, typer.Option("--out", help="Model file to write (.pt).")],
    val: Annotated[Optional[Path], typer.Option("--val", help="Validation stamp set (default: 10% of --data; the paper model splits --data 45/45/10 as published).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs (early stopping on the validation loss); default 30, paper 500.")] = None,
    patience: Annotated[Optional[int], typer.Option("--patience", help="Stop after this many epochs without improvement; default 6, paper 10.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Training batch; default 256, paper 250.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Initial Adam learning rate; default 2e-3, paper 1e-3.")] = None,
    noise_min: Annotated[float, typer.Option("--noise-min", help="blend: lowest noise sigma of the augmentation (counts).")] = 4.0,
    noise_max: Annotated[float, typer.Option("--noise-max", help="blend: highest noise sigma of the augmentation (counts); 0 disables it.")] = 36.0,
    max_objects: Annotated[Optional[int], typer.Option("--max-objects", help="Use at most this many training objects.")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Seed of the weights, the batches and, without --val, of the 10% validation split: keep it when continuing with --init on the same data, or the new validation rows include rows already trained on.")] = 0,
    architecture: Annotated[Architecture, typer.Option("--architecture", help="blend: cnn (one noise-augmented multi-task CNN) or paper (BlendHunter: frozen pretrained backbone + dense head on cached features).")] = Architecture.cnn,
    backbone: Annotated[Backbone, typer.Option("--backbone", help="paper: natural-image backbone.")] = Backbone.efficientnet_lite0,
    backbone_weights: Annotated[Optional[Path], typer.Option("--backbone-weights", help="paper: backbone state dict (e.g. a torchvision-format ImageNet VGG-16 file).")] = None,
    input_mode: Annotated[InputMode, typer.Option("--input-mode", help="paper: 8-bit per-stamp max scaling as published, or float asinh.")] = InputMode.paper8bit,
    fine_tune_top: Annotated[bool, typer.Option("--fine-tune-top", help="paper: also fine-tune the backbone's top block.")] = False,
    branches: Annotated[Branches, typer.Option("--branches", help="sgq: image and photometry branches, or one alone (ablations).")] = Branches.both,
    image_bands: Annotated[Optional[str], typer.Option("--image-bands", help="sgq / pointsource: image bands, comma-separated (sgq default: r; pointsource default: all).")] = None,
    photometry_bands: Annotated[Optional[str], typer.Option("--photometry-bands", help="sgq: photometric bands, comma-separated (default: all of the stamp set).")] = None,
    init: Annotated[Optional[str], typer.Option("--init", help="sgq, blend: start from this model's architecture and weights (fine-tuning).")] = None,
    false_positive_rate: Annotated[Optional[float], typer.Option("--false-positive-rate", help="blend, with --val: set the decision (p_blended > 0.5) to call this fraction of the --val set's isolated stamps blended, e.g. 0.04 on a --real-galaxies train-check set (galaxies unseen in training).")] = None,
    magnitude_balance: Annotated[bool, typer.Option("--magnitude-balance", help="sgq: weight objects so every class has the same r-magnitude distribution (removes the simulation's number-count prior).")] = False,
    freeze: Annotated[Optional[str], typer.Option("--freeze", help="sgq with --init: keep these branches (image, photometry; comma-separated) as they are and train the rest.")] = None,
    mag_jitter: Annotated[Optional[str], typer.Option("--mag-jitter", help="sgq: per-band standard deviation [mag] of random magnitude offsets added while training, BAND=SIGMA comma-separated, e.g. u=0.3,g=0.08 (robustness to the simulation's colour systematics).")] = None,
    seeing_input: Annotated[bool, typer.Option("--seeing-input", help="sgq: the image branch also reads each object's seeing (PSF FWHM), so one model serves fields of any seeing in the training range; the set must record its seeing (simulated sets do).")] = False,
    baseline: Annotated[Optional[Baseline], typer.Option("--baseline", help="pointsource: train the image-only baseline (same CNN, same split) instead.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train a model on a stamp set and write it, with its training record, to a model file."""
    from .tasks.blend import train_blend_model

    paper = task is Task.blend and architecture is Architecture.paper
    _refuse_options_outside(ctx, "paper" if paper else task.value, _TRAIN_OPTION_SCOPES, _TRAIN_SCOPE_NAMES,
                            f"this run is {_TRAIN_SCOPE_NAMES['paper' if paper else task.value]}")
    check_output_path(out, inputs=[data, val, backbone_weights, init], suffixes=MODEL_SUFFIXES)
    # The paper model keeps BlendHunter's protocol unless told otherwise.
    defaults = _PAPER_TRAINING if paper else _TRAINING
    epochs = defaults["epochs"] if epochs is None else epochs
    patience = defaults["patience"] if patience is None else patience
    batch_size = defaults["batch_size"] if batch_size is None else batch_size
    lr = defaults["lr"] if lr is None else lr
    if epochs < 1:
        raise InputError("--epochs", f"must be at least 1, got {epochs}")
    if patience < 1:
        raise InputError("--patience", f"must be at least 1, got {patience}")
    if batch_size < 1:
        raise InputError("--batch-size", f"must be at least 1, got {batch_size}")
    _require_number(lr, "--lr", positive=True)
    _require_number(noise_min, "--noise-min")
    _require_number(noise_max, "--noise-max")
    if max_objects is not None and max_objects < 1:
        raise InputError("--max-objects", f"must be at least 1, got {max_objects}")
    if noise_max > 0 and not 0 <= noise_min <= noise_max:
        raise InputError("--noise-min", f"must lie in 0 to --noise-max ({noise_max:g}), got {noise_min:g}")
    if noise_max < 0:
        raise InputError("--noise-max", f"must be 0 (no augmentation) or positive, got {noise_max:g}")
    if false_positive_rate is not None and val is None:
        raise InputError("--false-positive-rate", "sets the decision on galaxies unseen in training: give them with --val")
    if noise_max == 0 and "noise_min" in _options_given(ctx):
        raise InputError("--noise-min", "does nothing with --noise-max 0 (no noise augmentation)")
    image_band_list = _split_bands(image_bands, "--image-bands")
    photometry_band_list = _split_bands(photometry_bands, "--photometry-bands")
    freeze_list = _split_bands(freeze, "--freeze") or ()
    if backbone_weights is not None and not backbone_weights.is_file():
        raise InputError(backbone_weights, "no such file (--backbone-weights)")
    from .training.data import open_training_set

    for path in (data, val):
        if path is not None:
            open_training_set(path)
    if paper and backbone is Backbone.vgg16 and backbone_weights is None:
        raise InputError("--backbone-weights", "--backbone vgg16 needs ImageNet weights (a torchvision vgg16 state "
                                               "dict); none are installed. efficientnet-lite0 has them built in")

    if task is Task.sgq:
        from .tasks.sgq import train_sgq_model

        record = train_sgq_model(data, out, val_data=val, branches=branches.value, image_bands=image_band_list,
                                 photometry_bands=photometry_band_list, init=init, epochs=epochs,
                                 patience=patience, batch_size=batch_size, lr=lr, max_objects=max_objects, seed=seed,
                                 progress=not quiet, magnitude_balance=magnitude_balance, freeze=freeze_list,
                                 mag_jitter=_parse_band_numbers(mag_jitter, "--mag-jitter"), seeing_input=seeing_input)
        console.print(f"model: {out}")
        _print_metrics("validation", record, _SGQ_KEYS + ["epochs", "seconds", "accelerator", "precision"])
        return
    if task is Task.pointsource:
        from .tasks.pointsource import train_pointsource_model

        record = train_pointsource_model(data, out, val_data=val, baseline=baseline.value if baseline else None,
                                         image_bands=image_band_list, epochs=epochs, patience=patience,
                                         batch_size=batch_size, lr=lr, max_objects=max_objects, seed=seed, progress=not quiet)
        console.print(f"model: {out}")
        # Each stage stops early on its own, so a total over the stages would say little.
        per_stage = ", ".join(f"{name} {stage['epochs']}" for name, stage in record.get("stages", {}).items())
        _print_metrics("validation", {**record, "epochs": per_stage or record.get("epochs")},
                       _POINTSOURCE_KEYS + ["epochs", "seconds", "accelerator", "precision"])
        return

    if paper:
        from .tasks.blend_paper import train_paper_model

        result = train_paper_model(data, out, backbone=backbone.value, backbone_weights=backbone_weights, input_mode=input_mode.value,
                                   seed=seed, max_epochs=epochs, patience=patience, batch_size=batch_size, lr=lr,
                                   fine_tune_top=fine_tune_top, progress=not quiet)
        console.print(f"model: {out}")
        _print_metrics("paper-faithful model (held-out 10%)", result, ["test_accuracy", "test_accuracy_near_blends", "test_accuracy_far_blends", "test_accuracy_isolated", "head_training_seconds", "epochs"])
        return
    noise_range = (noise_min, noise_max) if noise_max > 0 else None
    record = train_blend_model(data, out, val_data=val, epochs=epochs, patience=patience, batch_size=batch_size, lr=lr,
                               noise_range=noise_range, max_objects=max_objects, seed=seed, init=init,
                               false_positive_rate=false_positive_rate, progress=not quiet)
    console.print(f"model: {out}")
    console.print(f"epochs {record['epochs']}, {record['seconds']:.0f} s on {record['accelerator']}; "
                  f"validation accuracy {record['val_accuracy']:.4f}, false-positive rate {record['val_false_positive_rate']:.4f}")


#: Training defaults of the networks, and BlendHunter's protocol for the paper model.
_TRAINING = {"epochs": 30, "patience": 6, "batch_size": 256, "lr": 2e-3}
_PAPER_TRAINING = {"epochs": 500, "patience": 10, "batch_size": 250, "lr": 1e-3}
_TRAIN_SCOPE_NAMES = {"sgq": "--task sgq", "pointsource": "--task pointsource", "blend": "--task blend (--architecture cnn)",
                      "paper": "--task blend --architecture paper", ("blend", "paper"): "--task blend"}
#: The train options each task (and the blend paper model) reads; any other given is refused.
_TRAIN_OPTION_SCOPES: dict[str, tuple[str, ...]] = {
    # The paper model splits --data 45 / 45 / 10 itself and trains on every stamp, as published.
    "val": ("sgq", "pointsource", "blend"),
    "max_objects": ("sgq", "pointsource", "blend"),
    "noise_min": ("blend",),
    "noise_max": ("blend",),
    "init": ("sgq", "blend"),
    "false_positive_rate": ("blend",),
    "architecture": ("blend", "paper"),
    "backbone": ("paper",),
    "backbone_weights": ("paper",),
    "input_mode": ("paper",),
    "fine_tune_top": ("paper",),
    "branches": ("sgq",),
    "image_bands": ("sgq", "pointsource"),
    "photometry_bands": ("sgq",),
    "magnitude_balance": ("sgq",),
    "freeze": ("sgq",),
    "mag_jitter": ("sgq",),
    "seeing_input": ("sgq",),
    "baseline": ("pointsource",),
}


def _print_metrics(title: str, metrics: dict[str, Any], keys: list[str]) -> None:
    grid = RichTable(title=title, show_header=False, title_justify="left")
    grid.add_column(style="bold")
    grid.add_column()
    # Calibration sits in its own record; its two headline scores are shown with the rest.
    calibration = {f"calibration_{k}": v for k, v in (metrics.get("calibration") or {}).items() if k in ("ece", "brier")}
    shown = {**metrics, **calibration}
    for key in [*keys, *calibration]:
        if key in shown and shown[key] is not None:
            value = shown[key]
            grid.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(grid)


_SGQ_KEYS = ["n", "accuracy", "f1_star", "f1_galaxy", "f1_qso", "point_extended_agreement", "expected_class_fraction",
             "n_expected_class_sample"]
_POINTSOURCE_KEYS = ["n", "accuracy", "f1", "f1_image_only", "error_rate_reduction", "f1_true_spectral_features",
                     "encoder_f1", "feature_cosine_similarity"]
_BLEND_KEYS = ["n", "accuracy", "accuracy_near", "accuracy_far", "false_positive_rate", "auc",
               "accuracy_near_minus_sep", "n_sources_accuracy", "companion_offset_median_error_px"]


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", help="Model file or shipped model name (see skysort models list).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: metrics.json, predictions, plots.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Labelled stamp set to evaluate on.")] = None,
    catalog: Annotated[Optional[Path], typer.Option("--catalog", help="sgq models with a photometry branch: a labelled catalogue (or, with --expect, a pure sample) evaluated on its magnitudes alone, instead of --data.")] = None,
    mapping: Annotated[Optional[str], typer.Option("--mapping", help="With --catalog: column mapping (preset name such as sdss-specphot, YAML file, or 'mag={band}mag,label=class,...').")] = None,
    no_sep: Annotated[bool, typer.Option("--no-sep", help="blend: skip the SEP baseline beside the model.")] = False,
    threshold: Annotated[Optional[float], typer.Option("--threshold", min=0.0, max=1.0, help="blend: probability threshold of the blended class (default 0.5).")] = None,
    expect: Annotated[Optional[str], typer.Option("--expect", help="sgq external validation on a pure sample, of --data or --catalog alike: every object is of this class (star, galaxy or qso); reports the fraction so classified, overall and per r magnitude. The class is not taken as a label: without labels no accuracy, purity or calibration is scored.")] = None,
    prior: Annotated[Optional[str], typer.Option("--prior", help="sgq: " + _PRIOR_HELP)] = None,
    baseline_model: Annotated[Optional[str], typer.Option("--baseline-model", help="pointsource: image-only baseline model to compare against (default: the one recorded in the model).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Evaluate a model on a labelled stamp set or catalogue: metrics.json, predictions and plots.

    The outputs appear in --out together or not at all; a rerun replaces them and keeps other files there.
    """
    from ._progress import progress_bar
    from .data.stampset import StampSet
    from .models.checkpoint import load_model_file
    from .models.registry import resolve_model
    from .tasks.blend import evaluate_blend_model

    if (data is None) == (catalog is None):
        raise InputError("--data", "give one of --data (a labelled stamp set) and --catalog (a labelled catalogue, for sgq "
                                   "models with a photometry branch)")
    if mapping is not None and catalog is None:
        raise InputError("--mapping", "maps the columns of a --catalog; a stamp set has skysort's own")
    check_output_path(out, folder=True, whole=True, inputs=[data, catalog])
    meta, _ = load_model_file(resolve_model(model))
    task = meta.get("task")
    _refuse_options_outside(ctx, task, {"prior": ("sgq",), "expect": ("sgq",), "threshold": ("blend",),
                                        "baseline_model": ("pointsource",), "no_sep": ("blend",), "catalog": ("sgq",)},
                            {"sgq": "sgq models", "blend": "blend models", "pointsource": "pointsource models"},
                            f"{model} is a {task!r} model")
    if catalog is not None:
        _evaluate_sgq_catalogue(model, meta, catalog, mapping, out, expect, prior)
        return
    assert data is not None
    stamps = StampSet.open(data)
    n = len(stamps)
    if n == 0:
        raise InputError(data, "the stamp set holds no objects")
    from .inference.predictor import ClassDecision, parse_prior

    prior_value = parse_prior(prior) if prior else None

    def require(predictor) -> None:
        _require_labels(task, stamps, expect)
        if predictor is not None and prior_value is not None:
            ClassDecision(prior=prior_value).check(predictor, allow_auto=True)

    _warn_inputs(model, meta, stamps, also_require=require)
    if task == "sgq":
        from .tasks.sgq import evaluate_sgq_model

        with progress_bar(n, "evaluating", enabled=not quiet) as advance:
            # The input warnings were printed above, before any work.
            metrics = evaluate_sgq_model(model, data, out, expected_class=expect, prior=prior_value, progress=advance,
                                         input_warnings=False)
        _print_metrics(f"{model} on {data}", metrics, _SGQ_KEYS)
        _warn_unscored(data, metrics)
        if metrics.get("prior_estimated"):
            console.print("class prior estimated from the predictions: " + _format_prior(metrics["prior"]))
        bright = metrics.get("bright") or {}
        if bright.get("n"):
            _print_metrics(f"r < {bright['r_max']:g} ({metrics.get('r_mag_source')})", bright, ["n", "accuracy", "point_extended_agreement"])
        console.print(f"metrics: {out / 'metrics.json'}")
        return
    if task == "pointsource":
        from .tasks.pointsource import evaluate_pointsource_model

        with progress_bar(n, "evaluating", enabled=not quiet) as advance:
            metrics = evaluate_pointsource_model(model, data, out, baseline_model=baseline_model, progress=advance)
        _print_metrics(f"{model} on {data}", metrics, _POINTSOURCE_KEYS)
        _warn_unscored(data, metrics)
        console.print(f"metrics: {out / 'metrics.json'}")
        return
    if task != "blend":
        raise InputError(model, f"evaluation of {task!r} models is not available in this version")
    with progress_bar(n, "evaluating", enabled=not quiet) as advance:
        metrics = evaluate_blend_model(model, data, out, with_sep=not no_sep, threshold=0.5 if threshold is None else threshold,
                                       progress=advance)
    _print_metrics(f"{model} on {data}", metrics, _BLEND_KEYS)
    if "sep" in metrics:
        _print_metrics("SEP baseline, same stamps", metrics["sep"], _BLEND_KEYS)
    _warn_unscored(data, metrics)
    console.print(f"metrics: {out / 'metrics.json'}")


def _evaluate_sgq_catalogue(model: str, meta: Mapping[str, Any], catalog: Path, mapping: str | None, out: Path,
                            expect: str | None, prior: str | None) -> None:
    """``evaluate --catalog``: an sgq model's photometry branch on a labelled catalogue (or a
    pure sample, ``--expect``, scored as a stamp set is), as the KiDS network was validated on
    Gaia stars."""
    from .data.catalog import read_catalog
    from .inference.predictor import parse_prior
    from .tasks.sgq import evaluate_sgq_catalog

    bands = list(meta.get("photometry_bands") or [])
    if not bands:
        raise InputError(model, "reads no photometry, so a catalogue cannot be evaluated with it: give --data")
    table = read_catalog(catalog, mapping=mapping, bands=bands, require_positions=False)
    metrics = evaluate_sgq_catalog(model, table, out, description=str(catalog), expected_class=expect,
                                   prior=parse_prior(prior) if prior else None)
    _print_metrics(f"{model} on {catalog} (photometry only)", metrics, _SGQ_KEYS)
    _warn_unscored(catalog, metrics)
    if metrics.get("prior_estimated"):
        console.print("class prior estimated from the predictions: " + _format_prior(metrics["prior"]))
    console.print(f"metrics: {out / 'metrics.json'}")


def _warn_unscored(data: Path, metrics: Mapping[str, Any]) -> None:
    """Warn about the objects an evaluation could not score (no pixel, or no input at all), and
    about labels that contradict a pure sample's class (``--expect``)."""
    for key, what in (("n_without_pixels", "stamp(s) hold no finite pixel"),
                      ("n_without_input", "object(s) have neither a finite pixel nor a magnitude")):
        if metrics.get(key):
            _warn(data, f"{metrics[key]:,} {what} and were not scored ({key})")
    other = metrics.get("n_labelled_other_class") or {}
    if other:
        counts = ", ".join(f"{name} {count:,}" for name, count in other.items())
        _warn(data, f"{sum(other.values()):,} of the {metrics['n_expected_class_sample']:,} objects are labelled as "
                    f"another class than --expect {metrics['expected_class']} ({counts}): the sample is not pure, "
                    "and the expected-class fraction counts them as missed when the model agrees with their label")


def _require_labels(task: str | None, stamps, expect: str | None) -> None:
    """Refuse a set without the labels an evaluation of a ``task`` model scores (or, for
    ``--expect``, a class the model does not have)."""
    if task == "sgq":
        from .tasks.sgq import require_sgq_evaluation_set

        require_sgq_evaluation_set(stamps, expect)
    elif task == "pointsource":
        from .tasks.pointsource import require_pointsource_set

        require_pointsource_set(stamps, spectra=False)
    elif task == "blend":
        from .tasks.blend import require_blend_set

        require_blend_set(stamps)


def _warn_inputs(model: str, model_meta: dict, stamps, also_require: Callable[[Any], None] | None = None) -> None:
    """Refuse stamps the model cannot read (missing bands, wrong size), and those ``also_require``
    refuses (given the model's predictor, None for a model the streaming predictor does not
    serve), before any warning; then warn when the stamps' pixel scale differs from the model's
    by more than 2% (as for tiles), report the seeing a model that reads it will get (measured
    from the stamps where the set records none, or unknown), and warn when that seeing lies
    outside the range the model was trained on."""
    from .inference.predictor import check_stampset, load_predictor, stampset_notes

    try:
        predictor = load_predictor(model, device="cpu")
    except InputError:
        predictor = None  # a model the streaming predictor does not serve: its task checks the stamps
    if predictor is not None:
        check_stampset(predictor, stamps)
    if also_require is not None:
        also_require(predictor)
    information, cautions = stampset_notes(model_meta, stamps)
    for line in information:
        console.print(line)
    for message in cautions:
        _warn(stamps.path, message)


_TABLE_SUFFIXES = (".parquet", ".pq", ".fits", ".fit", ".fts", ".fits.gz", ".csv", ".ecsv")


def _is_table_path(path: Path, text: str) -> bool:
    """Whether ``--out`` names one table file (else a folder of parts plus a manifest).

    A name with another suffix (``pred.txt``, ``pred.h5``) is refused rather than taken for a
    folder; a folder whose name holds a dot is given with a trailing ``/``."""
    if text.endswith(("/", "\\")) or path.is_dir():
        return False
    if path.name.lower().endswith(_TABLE_SUFFIXES):
        return True
    if path.suffix:
        raise InputError(text, f"unknown table format {path.suffix!r}: give one table (.parquet, .fits, .csv, .ecsv) "
                         "or a folder ending in /")
    return False


@app.command("predict")
def predict_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", help="Model file or shipped model name (see skysort models list).")],
    out: Annotated[str, typer.Option("--out", help="Output: one table (.parquet, .fits, .csv) or a folder (ending in /) of Parquet parts plus manifest.json; a folder run is resumed by rerunning the same command.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Stamp set to classify. For a model that reads the seeing, a set that records none has it measured from its own point sources (one value for the set).")] = None,
    catalog: Annotated[Optional[Path], typer.Option("--catalog", help="Catalogue (Parquet, FITS, CSV, TSV, VOTable, IPAC, SExtractor, a folder of Parquet files, or a HATS catalogue folder: the result is then a HATS catalogue at --out) with ra/dec in degrees; with --tiles stamps are cut around each source, without it the model classifies from photometry alone.")] = None,
    tiles: Annotated[Optional[list[str]], typer.Option("--tiles", help="Survey tile images: glob pattern(s), one FITS file per band and tile, e.g. 'DIR/*/frame-*.fits*'; repeat the option or separate patterns by commas. Quote patterns.")] = None,
    mapping: Annotated[Optional[str], typer.Option("--mapping", help="Catalogue column mapping: preset name (kids, sdss, ...), YAML file, or 'ra=RA,dec=DEC,...'.")] = None,
    catalog_preset: Annotated[Optional[str], typer.Option("--catalog-preset", help="Catalogue preset name (same as --mapping NAME).")] = None,
    reference_band: Annotated[Optional[str], typer.Option("--reference-band", help="Band whose pixel grid the stamps share (default r, else the model's first band).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Objects per model batch (reduced if --memory-gb needs it).")] = 1024,
    memory_gb: Annotated[float, typer.Option("--memory-gb", help="Memory bound in GiB: stamps in flight, tile cache, part size, catalogue chunks.")] = 4.0,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu or cuda (default: cuda when available; bf16 autocast there).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads of the model (torch).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Processes cutting stamps beside the model (default: 0, one thread, on CPU; up to 8 with CUDA). On a CPU with cores to spare, 1 or more keeps the tiles' background and seeing measurement (SEP, which holds Python's global lock) off the model's thread.")] = None,
    dask: Annotated[Optional[str], typer.Option("--dask", help="Run work units on Dask: local:N (N worker processes) or a scheduler address tcp://host:8786.")] = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", min=0.0, max=1.0, help="Binary models: the second class when its probability exceeds this (default: the most probable class).")] = None,
    prior: Annotated[Optional[str], typer.Option("--prior", help=_PRIOR_HELP)] = None,
    background: Annotated[Background, typer.Option("--background", help=_BACKGROUND_HELP + " Used with --tiles.")] = Background.sep,
    weights: Annotated[Optional[list[str]], typer.Option("--weights", help=_WEIGHTS_HELP.replace("every image needs", "every tile file needs") + " Used with --tiles.")] = None,
    weight_hdu: Annotated[Optional[str], typer.Option("--weight-hdu", help=_WEIGHT_HDU_HELP + " Used with --tiles.")] = None,
    zero_points: Annotated[Optional[str], typer.Option("--zero-points", help=_ZERO_POINTS_HELP + " Used with --tiles.")] = None,
    spectra: Annotated[Optional[list[str]], typer.Option("--spectra", help="Real 1-D spectra to classify with a point-source model's spectral encoder: FITS files or glob patterns (repeat the option or separate patterns by commas; SDSS spec / spSpec, LAMOST, flux tables, 1-D images); one row per file, with the coverage of the model's wavelength grid. Quote patterns.")] = None,
    keep: Annotated[Optional[str], typer.Option("--keep", help="Catalogue (or stamp set table) columns copied to the output beside the predictions, comma-separated, as they are (values, empty cells, units); NEW=OLD writes column OLD as NEW, e.g. 'MAG_AUTO,sex_flags=FLAGS'.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Classify sources: a stamp set, a catalogue with survey tiles (streamed, resumable), a catalogue alone, or real spectra."""
    import shutil

    from .inference.hats import is_hats_catalog
    from .inference.predictor import parse_prior
    from .inference.stream import RunOptions, assemble_parts, predict_catalog, predict_stampset_parts, resolve_device

    out_path = Path(out)
    hats_input = catalog is not None and is_hats_catalog(catalog)
    # A HATS result is a folder whatever its name; a table name for it is refused below.
    single_file = out_path.name.lower().endswith(_TABLE_SUFFIXES) if hats_input else _is_table_path(out_path, out)
    if not (single_file or hats_input or out.endswith(("/", "\\")) or out_path.is_dir()):
        # 'pred' could be meant as a file whose format was forgotten: do not guess a folder.
        raise InputError(out, "names neither a table (.parquet, .fits, .csv, .ecsv) nor a folder: end a new folder's name with /")
    if spectra is not None:
        from .data.images import expand_paths

        spectrum_paths = expand_paths(spectra, what="spectrum file", option="--spectra")
    else:
        spectrum_paths = []
    check_output_path(out_path, folder=not single_file, inputs=[data, catalog, model, *spectrum_paths])
    if batch_size < 1:
        raise InputError("--batch-size", f"must be at least 1, got {batch_size}")
    _require_number(memory_gb, "--memory-gb", positive=True)
    if tiles is not None and catalog is None:
        raise InputError("--tiles", "needs --catalog (the sources whose stamps to cut)")
    if sum(given is not None for given in (data, catalog, spectra)) != 1:
        raise InputError("--data/--catalog/--spectra", "give exactly one of --data (a stamp set), --catalog or --spectra")
    source = "spectra" if spectra is not None else "data" if data is not None else ("tiles" if tiles is not None else "catalog")
    images = ("data", "tiles", "catalog")  # what --spectra is not: options of the image and photometry runs
    _refuse_options_outside(ctx, source, {"mapping": ("tiles", "catalog"), "catalog_preset": ("tiles", "catalog"),
                                          "reference_band": ("tiles",), "background": ("tiles",), "weights": ("tiles",),
                                          "weight_hdu": ("tiles",), "zero_points": ("tiles",), "workers": ("tiles", "catalog"),
                                          **{name: images for name in ("batch_size", "memory_gb", "device", "threads", "dask",
                                                                       "prior", "keep")}},
                            {"data": "--data", "tiles": "--catalog with --tiles", "catalog": "--catalog alone",
                             ("tiles", "catalog"): "--catalog", images: "--data and --catalog"},
                            {"data": "a stamp set (--data) is read as it is",
                             "spectra": "real spectra (--spectra) are classified one file at a time by the model's spectral encoder"
                             }.get(source, "without --tiles no stamps are cut"))
    if source == "spectra":
        _predict_spectra(model, spectrum_paths, out_path, single_file, threshold, quiet)
        return
    if mapping and catalog_preset:
        raise InputError("--catalog-preset", "give either --catalog-preset or --mapping, not both")
    if threads is not None and threads < 1:
        raise InputError("--threads", f"must be at least 1, got {threads}")
    if workers is not None and workers < 0:
        raise InputError("--workers", f"must be 0 or more, got {workers}")
    if dask:
        if data is not None:
            raise InputError("--dask", "distributes catalogue runs (--catalog); a stamp set is classified in this process")
        from .inference.distributed import check_dask_spec

        check_dask_spec(dask)
    resolved_device = resolve_device(device)
    if workers is None:
        workers = min(8, max(0, (os.cpu_count() or 1) - 1)) if resolved_device.startswith("cuda") and not dask else 0
    options = RunOptions(tiles=tiles, mapping=mapping or catalog_preset, reference_band=reference_band, batch_size=batch_size,
                         memory_gb=memory_gb, device=resolved_device, threads=threads, workers=workers, dask=dask,
                         threshold=threshold, prior=parse_prior(prior) if prior else None, background=background.value, quiet=quiet,
                         keep=keep, weights=weights, weight_hdu=weight_hdu, zero_points=_parse_zero_points(zero_points))
    if catalog is not None:
        from .inference.hats import predict_hats

        if hats_input:
            if single_file:
                raise InputError(out, "the result of a HATS catalogue is a HATS catalogue: give a folder, not a file name")
            summary = predict_hats(model, catalog, out_path, options, warn=_warn)
            console.print(f"{summary['n_sources']:,} predictions in {summary['n_partitions']} HATS partition(s) -> {out_path}")
            return
    if data is not None:
        from .data.stampset import StampSet
        from .models.checkpoint import load_model_file
        from .models.registry import resolve_model

        _warn_inputs(model, load_model_file(resolve_model(model))[0], StampSet.open(data),
                     also_require=lambda predictor: _check_decision(options, predictor, model, single_file))
        if not single_file:
            with _removed_on_bad_input(out_path):
                manifest = predict_stampset_parts(model, data, out_path, options)
            console.print(f"{manifest.content['rows_written']:,} predictions in {manifest.content['n_units']} part(s) -> "
                          f"{out_path / 'manifest.json'}")
            return
        _predict_stampset_file(model, data, out_path, options)
        return
    if not single_file:
        with _removed_on_bad_input(out_path):
            manifest = predict_catalog(model, catalog, out_path, options, warn=_warn)
        _print_run_summary(manifest, out_path / "manifest.json")
        return
    # One table: the same resumable run in a hidden folder beside it, assembled at the end.
    work = out_path.parent / f".{out_path.name}.parts"
    with _removed_on_bad_input(work):
        manifest = predict_catalog(model, catalog, work, options, warn=_warn)
    try:
        assemble_parts(manifest, out_path)
    except InputError:
        # The output refused what the parts hold (e.g. text a FITS table cannot hold): a rerun of
        # this --out would fail the same way, so no hidden folder is left behind. An interruption
        # keeps it: the rerun then only assembles.
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    _print_run_summary(manifest, out_path)


def _predict_spectra(model: str, paths: list[Path], out_path: Path, single_file: bool, threshold: float | None,
                     quiet: bool) -> None:
    """``predict --spectra``: one table of the spectral encoder's classes, one row per file."""
    from .data.catalog import write_catalog
    from .tasks.pointsource import classify_real_spectra

    if not single_file:
        raise InputError(out_path, "the classes of --spectra are one table: give a .parquet, .fits or .csv file, not a folder")
    table = classify_real_spectra(model, paths, threshold=threshold, progress=not quiet)
    write_catalog(table, out_path)
    unreliable = int(np.sum(~np.asarray(table["reliable"], bool)))
    counts = ", ".join(f"{name}: {int(np.sum(np.asarray(table['class']) == name))}" for name in ("star", "qso"))
    console.print(f"{len(table):,} spectra ({counts}) -> {out_path}")
    if unreliable:
        _warn("--spectra", f"{unreliable} spectrum file(s) cover less of the wavelength grid than the encoder was trained on "
              f"({table.meta['min_trained_coverage']:.0%}): their class is unreliable (column reliable)")


@contextlib.contextmanager
def _removed_on_bad_input(folder: Path):
    """Remove a result folder this run created when the run stops on bad input (a damaged
    stamp set found mid-run, say): nothing of it is worth resuming. A folder that existed
    before (an interrupted run being resumed) is kept, as is one left by an interruption,
    and one where units were written beside units whose tile could not be read
    (:class:`~skysort.errors.UnfinishedRunError`: the rerun finishes it)."""
    import shutil

    existed = folder.exists()
    try:
        yield
    except UnfinishedRunError:
        raise
    except InputError:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _check_decision(options, predictor, model: str, single_file: bool) -> None:
    """Refuse a threshold or prior the model cannot take, and a folder output of a model the
    streaming predictor does not serve (``predictor`` None: the paper-faithful blend model)."""
    if predictor is None:
        if options.prior is not None:
            raise InputError("--prior", f"not available for model {model} (it records no training class counts)")
        if not single_file:
            raise InputError("--out", f"model {model} is written to one table (.parquet, .fits, .csv, .ecsv), not a folder of parts")
        return
    # One table sees every object at once, so there an 'auto' prior can be estimated.
    options.decision().check(predictor, allow_auto=single_file)


def _print_run_summary(manifest, where: Path) -> None:
    content = manifest.content
    note = "" if content["options"].get("images_available", True) else " (photometry only, no images)"
    outside = f", {content['n_outside']:,} in no tile" if content.get("n_outside") else ""
    console.print(f"{content['rows_written']:,} predictions{note} in {content['n_units']} work unit(s){outside} -> {where}")


def _predict_stampset_file(model: str, data: Path, out: Path, options) -> None:
    """A whole stamp set into one table (kept in memory: for sets of moderate size)."""
    import torch

    from ._progress import progress_bar
    from .data.catalog import write_catalog
    from .data.stampset import StampSet
    from .inference.predictor import load_predictor, predict_stampset
    from .inference.stream import add_stamp_columns, model_record, parse_carried, stampset_carried
    from .models.checkpoint import load_model_file
    from .models.registry import resolve_model

    if options.threads:
        torch.set_num_threads(int(options.threads))
    stamps = StampSet.open(data)
    path = resolve_model(model)
    meta, _ = load_model_file(path)
    if meta.get("task") == "blend" and meta.get("architecture") != "BlendNet":
        # Paper-faithful blend models (backbone + head on cached features) have their own loop.
        from .tasks.blend import PAPER_MODEL_COLUMNS, predict_any_blend_model

        carried = parse_carried(options.keep, stamps.columns, data, PAPER_MODEL_COLUMNS)
        with progress_bar(len(stamps), "predicting", unit="src", enabled=not options.quiet) as advance:
            table = predict_any_blend_model(path, stamps, threshold=options.threshold or 0.5, progress=advance)
        from .inference.manifest import file_sha256

        table.meta.update({"model": str(model), "model_file": str(path), "model_sha256": file_sha256(path),
                           "model_created": meta.get("created"), "data": str(data)})
    else:
        predictor = load_predictor(model, options.device)
        carried = stampset_carried(options.keep, stamps, data, predictor)
        with progress_bar(len(stamps), "predicting", unit="src", enabled=not options.quiet) as advance:
            table = predict_stampset(predictor, stamps, batch_size=options.batch_size, decision=options.decision(),
                                     progress=advance)
        table.meta.update({"model": model_record(predictor), "data": str(Path(data).resolve())})
        if table.meta.get("prior_estimated"):
            console.print("class prior estimated from the predictions: " + _format_prior(table.meta["prior"]))
    add_stamp_columns(table, stamps, carried)
    write_catalog(table, out)
    counts = ""
    if "class" in table.colnames and len(table):
        values, n = np.unique(np.asarray(table["class"]).astype(str), return_counts=True)
        counts = " (" + ", ".join(f"{v or 'no class'}: {c:,}" for v, c in zip(values, n)) + ")"
    console.print(f"{len(table):,} predictions{counts} -> {out}")


baseline_app = typer.Typer(help="Classical baselines beside the networks.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")


class SepNoise(str, Enum):
    stamp = "stamp"
    known = "known"


@baseline_app.command("sep")
def baseline_sep_command(
    data: Annotated[Path, typer.Option("--data", help="Blend stamp set.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: predictions and metrics.json.")],
    noise: Annotated[SepNoise, typer.Option("--noise", help="Detection threshold relative to each stamp's global rms (as the paper), or to the known simulated noise.")] = SepNoise.stamp,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """SExtractor-like blend identification with SEP (BlendHunter's baseline)."""
    from ._progress import progress_bar
    from .baselines.sep_blend import run_sep_baseline
    from .data.stampset import StampSet

    check_output_path(out, folder=True, whole=True, inputs=[data])
    stamps = StampSet.open(data)
    with progress_bar(len(stamps), "SEP", enabled=not quiet) as advance:
        metrics = run_sep_baseline(stamps, out, noise=noise.value, progress=advance)
    _print_metrics(f"SEP on {data}", metrics, _BLEND_KEYS)
    console.print(f"metrics: {out / 'metrics.json'}")


models_app = typer.Typer(help="Shipped pretrained models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list_command(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List the pretrained models shipped with skysort (usable as --model NAME)."""
    from .models.registry import list_models

    rows = list_models()
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    grid = RichTable(title="shipped models (classes, metrics: --json and the model cards)", title_justify="left")
    # One line per model at 80 columns: names are what users copy into --model.
    for column in ("name", "task", "bands", "size", "created", "val acc"):
        grid.add_column(column, no_wrap=True)
    for row in rows:
        metrics = row["metrics"] or {}
        accuracy = metrics.get("val_accuracy", metrics.get("accuracy"))
        grid.add_row(row["name"], str(row["task"]), "".join(row["image_bands"] or []),
                     f"{row['size_mb']} MB", str(row["created"])[:10], f"{accuracy:.3f}" if isinstance(accuracy, float) else "-")
    console.print(grid)


reproduce_app = typer.Typer(help="Reproduce the published experiments skysort builds on.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")


@reproduce_app.command("blendhunter")
def reproduce_blendhunter_command(
    out: Annotated[Path, typer.Option("--out", help="Output folder: data, models, report.md, results.json, plots.")] = Path("outputs/blendhunter"),
    quick: Annotated[bool, typer.Option("--quick", help="Small sets, minutes on a laptop CPU (checks the pipeline; not the published figures).")] = False,
    model: Annotated[Optional[str], typer.Option("--model", help="Our single blend model to evaluate beside (default: the shipped blend-cfis, if present).")] = None,
    input_mode: Annotated[InputMode, typer.Option("--input-mode", help="Backbone input: 8-bit as published, or float.")] = InputMode.paper8bit,
    workers: Annotated[int, typer.Option("--workers", help="Simulation processes.")] = 2,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Random seed of the simulated sets and the trainings.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """BlendHunter's experiment: per-noise paper models and SEP on parametric and realistic stamps; Markdown report."""
    from .models.registry import shipped_model_names
    from .simulate.presets import shared_data_dir
    from .tasks.blend_reproduce import ReproduceConfig, reproduce_blendhunter

    check_output_path(out, folder=True, whole=True)
    if workers < 1:
        raise InputError("--workers", f"must be at least 1, got {workers}")
    options = {"input_mode": input_mode.value, "seed": seed, "workers": workers}
    config = ReproduceConfig.quick(**options) if quick else ReproduceConfig(**options)
    single = model or ("blend-cfis" if "blend-cfis" in shipped_model_names() else None)
    if single is not None:
        # Checked now, not after the hours of training that come before its evaluation.
        from .models.checkpoint import load_model_file
        from .models.registry import resolve_model

        single_meta, _ = load_model_file(resolve_model(single))
        if single_meta.get("task") != "blend":
            raise InputError(single, f"--model must be a blend model, this one is for the {single_meta.get('task')!r} task")
    reference = shared_data_dir() / "reference" / "blendhunter"
    report = reproduce_blendhunter(out, config, single_model=single, reference_dir=reference,
                                   hsc_dir=shared_data_dir() / "blends" / "hsc_real_scenes", progress=not quiet)
    console.print(report.read_text())
    console.print(f"report: {report}")


def _describe_file(path: Path, weight_hdu: str | None = None) -> dict[str, Any]:
    """Summarise a stamp set, model, image or catalogue, whichever ``path`` is; an image with its
    weight map read as ``cutout`` and ``predict`` read it (``weight_hdu`` as their --weight-hdu)."""
    import h5py

    if not path.exists():
        from .models.registry import resolve_model, shipped_model_names

        if str(path) not in shipped_model_names():
            raise InputError(path, "no such file")
        path = Path(resolve_model(str(path)))
    if path.is_dir():
        from .inference.manifest import Manifest

        manifest = Manifest.load(path)
        if manifest is not None:
            return _describe_prediction_folder(path, manifest)
    if h5py.is_hdf5(path):
        from .data.stampset import StampSet

        return StampSet.open(path).summary()
    name = path.name.lower()
    if name.endswith((".pt", ".ckpt", ".pth")):
        from .models.checkpoint import load_model_file

        meta, state = load_model_file(path)
        n_parameters = int(sum(t.numel() for t in state.values()))
        return {"path": str(path), "kind": "model", "n_parameters": n_parameters, "file_size_bytes": path.stat().st_size, "meta": meta}
    if name.endswith((".fits", ".fit", ".fits.gz", ".fits.bz2", ".fits.fz", ".fts")):
        from .data.images import first_image_header

        # From the headers: reading the data here would fail on a truncated file with
        # astropy's own errors before read_band_image can say what is wrong.
        has_image = first_image_header(path) is not None
        if has_image:
            from .data.images import read_band_image

            # Summarised as cutout and predict read it, weight map applied and chosen by the same
            # option: a file is checked with info before it is cut, and a summary without the
            # weights would count as data pixels that the stamps will have as NaN.
            image = read_band_image(path, weight_hdu=weight_hdu)
            from .data.background import subtract_background
            from .data.ingest import image_seeing

            # The seeing that cutout and predict --tiles record for this image (with their
            # default background subtraction): the header's, else measured on its stars.
            psf_fwhm, psf_fwhm_source = image_seeing([subtract_background(image)])[image.band]
            summary = {
                "path": str(path), "kind": "image", "band": image.band, "shape": list(image.shape),
                "pixel_scale_arcsec": round(image.pixel_scale, 5), "flux_unit": image.flux_unit,
                "zero_point": image.zero_point, "psf_fwhm_arcsec": psf_fwhm, "psf_fwhm_source": psf_fwhm_source,
                "n_nan_pixels": image.n_nan,
                "saturation": image.saturation, "n_saturated_pixels": len(image.saturated_pixels),
                "survey": image.survey, "footprint_deg": image.wcs.calc_footprint().tolist(),
                "weight_map": image.weight_map, "zero_point_note": image.zero_point_note or None,
            }
            # What the header does not give is null, not NaN (which JSON does not have).
            return {key: None if isinstance(value, float) and not np.isfinite(value) else value
                    for key, value in summary.items()}
    from .data.catalog import _read_raw, _standardise, catalog_bands, resolve_mapping

    raw, carried = _read_raw(path)
    if isinstance(carried.get("model"), dict) and "class" in raw.colnames:
        return _describe_predictions(path, raw, carried)
    # What read_catalog returns, from the table already read.
    table = _standardise(raw, carried, path, resolve_mapping(None), None, False)
    labels = {}
    if "label" in table.colnames:
        values, counts = np.unique(np.asarray(np.ma.filled(table["label"], "")).astype(str), return_counts=True)
        labels = {str(v) or "(unlabelled)": int(c) for v, c in zip(values, counts)}
    return {
        "path": str(path), "kind": "catalog", "n_rows": len(table), "columns": table.colnames,
        "bands": catalog_bands(table), "classes": labels, "mapping": table.meta.get("mapping"),
    }


def _describe_prediction_folder(path: Path, manifest) -> dict[str, Any]:
    """Summarise a ``skysort predict`` output folder, finished or not: its run's progress, and
    the predictions of its finished parts (only the columns summarised are read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.table import Table

    parts = [part for part in manifest.part_paths() if part.is_file()]
    columns = pq.read_schema(parts[0]).names if parts else []
    wanted = [name for name in ("class", "inputs_used", "flags") if name in columns]
    table = Table({"class": np.array([], str)})
    if parts and wanted:
        arrow = pa.concat_tables([pq.read_table(part, columns=wanted).replace_schema_metadata(None) for part in parts])
        table = Table({name: arrow.column(name).to_numpy(zero_copy_only=False) for name in wanted})
    summary = _describe_predictions(path, table, manifest.content)
    summary.update(kind="prediction folder", columns=columns, complete=manifest.complete,
                   units_done=f"{len(manifest.units) - len(manifest.pending())} of {len(manifest.units)}",
                   n_sources_planned=manifest.content.get("n_sources"))
    unreadable = manifest.content.get("unreadable") or []
    if unreadable:
        # What stopped the last run: the files to replace before running it again.
        files = sorted({entry["where"] for entry in unreadable})
        summary["units_unreadable"] = (f"{len(unreadable)} unit(s) on {len(files)} file(s), e.g. {unreadable[0]['where']}: "
                                       f"{unreadable[0]['problem']}")
    return summary


def _describe_predictions(path: Path, table, meta: dict[str, Any]) -> dict[str, Any]:
    """Summarise a file ``skysort predict`` wrote: its model, and the classes it gave (its
    ``class`` column is a prediction, not the truth a catalogue's ``class`` column holds)."""
    model = meta["model"]
    classes = [str(name) for name in model.get("classes") or []]
    given = np.asarray(np.ma.filled(table["class"], "")).astype(str)
    counts = {name: int(np.count_nonzero(given == name)) for name in classes}
    unclassified = int(np.count_nonzero(~np.isin(given, classes)))
    if unclassified:
        counts["no class"] = unclassified
    summary = {"path": str(path), "kind": "predictions", "n_rows": len(table), "columns": table.colnames,
               "model": model.get("name"), "task": model.get("task"), "predicted_classes": counts}
    if "inputs_used" in table.colnames:
        used, number = np.unique(np.asarray(np.ma.filled(table["inputs_used"], "")).astype(str), return_counts=True)
        summary["inputs_used"] = {str(u) or "none": int(c) for u, c in zip(used, number)}
    if "flags" in table.colnames:
        from .data.flags import flag_counts
        from .inference.predictor import MISSING_INPUT_FLAG

        counts = flag_counts(np.ma.filled(table["flags"], 0), {"MISSING_INPUT": MISSING_INPUT_FLAG})
        summary["flags"] = {name: count for name, count in counts.items() if count}
    provenance = meta.get("provenance")
    if isinstance(provenance, dict) and provenance.get("created"):
        summary["created"] = provenance["created"]
    return summary


@app.command("info")
def info_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Stamp set (.h5), model (.pt), FITS image, catalogue, or prediction file or folder (a run's progress too).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    mosaic: Annotated[Optional[Path], typer.Option("--mosaic", help="For a stamp set: write a PNG mosaic of stamps.")] = None,
    n: Annotated[int, typer.Option("--n", help="Stamps in the mosaic.")] = 48,
    weight_hdu: Annotated[Optional[str], typer.Option("--weight-hdu", help=_WEIGHT_HDU_HELP + " For a FITS image.")] = None,
) -> None:
    """Summarise a stamp set, catalogue, prediction file, image or model."""
    _refuse_options_outside(ctx, "mosaic" if mosaic else "summary", {"n": ("mosaic",)}, {"mosaic": "--mosaic"},
                            "no mosaic is asked for")
    if mosaic:
        check_output_path(mosaic, option="--mosaic", inputs=[file], suffixes=(".png",))
        if n < 1:
            raise InputError("--n", f"must be at least 1, got {n}")
    summary = _describe_file(file, weight_hdu=weight_hdu)
    if weight_hdu is not None and summary["kind"] != "image":
        raise InputError("--weight-hdu", f"applies to a FITS image; this is a {summary['kind']}")
    if mosaic and summary["kind"] != "stampset":
        raise InputError(file, f"--mosaic needs a stamp set; this is a {summary['kind']}")
    if as_json:
        console.print_json(json.dumps(summary, default=str))
    elif summary["kind"] == "stampset":
        _print_stampset_summary(summary)
    else:
        grid = RichTable(title=f"{summary['kind']} {summary['path']}", show_header=False, title_justify="left")
        grid.add_column(style="bold")
        grid.add_column()
        for key, value in summary.items():
            if key in ("path", "kind"):
                continue
            grid.add_row(key, json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value))
        console.print(grid)
    if mosaic:
        from .data.stampset import StampSet

        console.print(f"mosaic: {_write_mosaic(StampSet.open(file), mosaic, n)}")


def _command_line_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """The exit, abort and usage-error classes of the click that typer runs on: its own copy
    (``typer._click``, typer >= 0.2x) or the click package (older typer)."""
    try:
        from typer._click import exceptions as click_exceptions
    except ImportError:
        from click import exceptions as click_exceptions
    exits = {typer.Exit, getattr(click_exceptions, "Exit", typer.Exit)}
    aborts = {typer.Abort, getattr(click_exceptions, "Abort", typer.Abort)}
    return tuple(exits), tuple(aborts), (click_exceptions.ClickException,)


_MAIN_PID: int | None = None


def _on_terminate(signum, frame) -> None:
    """SIGTERM (a batch system's time limit, ``kill``): remove this run's temporary outputs and
    exit with status 143. Done here rather than by raising into the running code, because an
    exception raised in a signal handler is lost when it lands in a finaliser or callback and
    the command would then run on."""
    from ._io import discard_temporaries

    if os.getpid() != _MAIN_PID:
        # A forked worker inherits the handler; it dies as workers do when terminated.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    children = multiprocessing.active_children()
    for child in children:  # worker pools would outlive us
        child.terminate()
    for child in children:
        child.join(timeout=2.0)
    discard_temporaries()
    os.write(2, b"skysort: terminated\n")
    os._exit(143)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``skysort`` command; returns the exit code.

    Bad input of any kind (a file, an option value, an unknown option) ends in one line
    ``skysort: error: ...`` on standard error and exit status 2; ``--debug`` shows the traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    exits, aborts, usage_errors = _command_line_exceptions()
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        global _MAIN_PID
        _MAIN_PID = os.getpid()
        previous_handler = signal.signal(signal.SIGTERM, _on_terminate)
    try:
        return _run_command(command, args, debug, exits, aborts, usage_errors)
    finally:
        if previous_handler is not None:  # main() called from Python: leave the caller's handler as it was
            signal.signal(signal.SIGTERM, previous_handler)


def _refuse_blank_values(args: list[str]) -> None:
    """Refuse a blank option value (``--prior ''``, ``--keep=``) or blank argument.

    No option of skysort gives a blank value a meaning, and several would read it as the option
    not given (no prior, no columns kept, no magnitude offsets) without a word.
    """
    for i, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if arg.startswith("--") and equals and not value.strip():
            raise InputError(name, "empty value")
        if not arg.strip():
            previous = args[i - 1] if i else ""
            option = previous if previous.startswith("-") and "=" not in previous else "argument"
            raise InputError(option, "empty value")


def _run_command(command, args: list[str], debug: bool, exits, aborts, usage_errors) -> int:
    """Run the click command; every anticipated failure becomes its one line and exit code."""
    try:
        _refuse_blank_values(args)
        result = command.main(args=args, prog_name="skysort", standalone_mode=False)
        code = int(result or 0) if isinstance(result, int) else 0
        if code == 130:  # how the command line library returns a Ctrl-C (our commands return nothing)
            err_console.print("skysort: interrupted")
        return code
    except exits as exc:
        return int(getattr(exc, "exit_code", 0))
    except aborts:
        err_console.print("skysort: aborted")
        return 130
    except usage_errors as exc:
        if debug:
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare ``skysort``: its help is already printed
            return 0
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        message = " ".join(exc.format_message().split())
        err_console.print(f"skysort: error: {message}{hint}", highlight=False, soft_wrap=True, markup=False)
        return 2
    except InputError as exc:
        if debug:
            raise
        err_console.print(f"skysort: error: {exc}", highlight=False, soft_wrap=True, markup=False)
        return 2
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        # An output that cannot be written where it was asked for (checked up front where the
        # command knows its outputs; this catches the rest) is a problem with the input.
        if debug:
            raise
        where = exc.filename or "output"
        err_console.print(f"skysort: error: {where}: {exc.strerror or type(exc).__name__}", highlight=False,
                          soft_wrap=True, markup=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("skysort: interrupted")
        return 130


def _console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _console_main()
