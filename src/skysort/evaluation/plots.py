"""Plots written by skysort commands (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.visualization import make_lupton_rgb  # noqa: E402

from .._io import atomic_path  # noqa: E402


def _colour_bands(bands: Sequence[str]) -> list[int] | None:
    """Indices of three bands to show as red, green, blue (reddest to bluest), if available."""
    for triple in (("i", "r", "g"), ("z", "r", "g"), ("r", "g", "u"), ("Ks", "r", "g")):
        if all(b in bands for b in triple):
            return [list(bands).index(b) for b in triple]
    return None


def stamp_rgb(stamp: np.ndarray, bands: Sequence[str], softening: np.ndarray) -> np.ndarray:
    """A displayable image of one stamp ``(B, H, W)``: Lupton RGB with 3+ bands, else grey asinh.

    ``softening`` (per band, flux units) sets where the stretch turns logarithmic.
    """
    stamp = np.nan_to_num(stamp, nan=0.0)
    colours = _colour_bands(bands)
    if colours is not None:
        # One common scale keeps colours proportional to flux (per-band scales would tint by noise).
        common = float(np.median([softening[i] for i in colours]))
        red, green, blue = (stamp[i] / common for i in colours)
        return make_lupton_rgb(red, green, blue, minimum=-1.0, stretch=5.0, Q=8)
    reference = len(bands) // 2
    grey = np.arcsinh(stamp[reference] / softening[reference])
    low, high = np.percentile(grey, [1, 99.8])
    return np.clip((grey - low) / max(high - low, 1e-12), 0, 1)


def save_mosaic(images: np.ndarray, bands: Sequence[str], path: str | os.PathLike, *, titles: Sequence[str] | None = None,
                columns: int = 8, title: str | None = None) -> Path:
    """Save a grid of stamps ``(n, B, H, W)`` as a PNG, one panel per stamp, with optional titles."""
    from ..data.dataset import background_sigma

    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    rows = max(1, int(np.ceil(n / columns)))
    softening = background_sigma(images) if n else np.ones(len(bands))
    softening = np.where(np.isfinite(softening) & (softening > 0), softening, 1.0)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.imshow(stamp_rgb(images[k], bands, softening), origin="lower", cmap="gray", interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[k], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, Path(path))


_CLASS_COLOURS = {"star": "tab:red", "galaxy": "tab:blue", "qso": "tab:green", "isolated": "tab:blue", "blended": "tab:orange"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def colour_colour_plot(table, pairs: Sequence[tuple[str, str, str, str]], path: str | os.PathLike, *, max_points: int = 20000) -> Path:
    """Colour-colour diagrams per class, one panel per band quadruple ``(a, b, c, d)``.

    Each panel plots ``mag_c - mag_d`` (y) against ``mag_a - mag_b`` (x) for every class in
    the ``label`` column, from the table's (observed) magnitudes.
    """
    labels = np.asarray(table["label"]).astype(str)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (a, b, c, d) in zip(axes[0], pairs):
        x = np.ma.filled(np.ma.asarray(table[f"mag_{a}"], float) - np.ma.asarray(table[f"mag_{b}"], float), np.nan)
        y = np.ma.filled(np.ma.asarray(table[f"mag_{c}"], float) - np.ma.asarray(table[f"mag_{d}"], float), np.nan)
        for label in sorted(set(labels) - {""}):
            chosen = np.flatnonzero((labels == label) & np.isfinite(x) & np.isfinite(y))
            if len(chosen) > max_points:
                chosen = rng.choice(chosen, max_points, replace=False)
            ax.scatter(x[chosen], y[chosen], s=2, alpha=0.4, color=_CLASS_COLOURS.get(label), label=f"{label} ({len(chosen)})")
        ax.set_xlabel(f"{a} - {b} [mag]")
        ax.set_ylabel(f"{c} - {d} [mag]")
        ax.set_xlim(np.nanpercentile(x, [0.5, 99.5]) + np.array([-0.2, 0.2]) if np.isfinite(x).any() else None)
        ax.set_ylim(np.nanpercentile(y, [0.5, 99.5]) + np.array([-0.2, 0.2]) if np.isfinite(y).any() else None)
        ax.legend(markerscale=4, fontsize=8)
    return _save(fig, Path(path))


def magnitude_histograms(table, bands: Sequence[str], path: str | os.PathLike) -> Path:
    """Histograms of the observed magnitude in each band, per class."""
    labels = np.asarray(table["label"]).astype(str)
    columns = min(len(bands), 5)
    rows = int(np.ceil(len(bands) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.8 * rows), squeeze=False)
    for ax, band in zip(axes.ravel(), bands):
        mags = np.ma.filled(np.ma.asarray(table[f"mag_{band}"], float), np.nan)
        finite = mags[np.isfinite(mags)]
        edges = np.linspace(np.floor(finite.min()), np.ceil(finite.max()), 40) if finite.size else 10
        for label in sorted(set(labels) - {""}):
            ax.hist(mags[(labels == label) & np.isfinite(mags)], bins=edges, histtype="step", color=_CLASS_COLOURS.get(label), label=label)
        ax.set_xlabel(f"{band} [AB mag]")
        ax.set_yscale("log")
    for ax in axes.ravel()[len(bands):]:
        ax.set_axis_off()
    axes[0, 0].legend(fontsize=8)
    return _save(fig, Path(path))


def plot_stampset_overview(stamps, directory: str | os.PathLike, *, per_class: int = 16) -> list[Path]:
    """Validation plots of a (simulated) stamp set: colour-colour diagrams, magnitude
    histograms and one stamp mosaic per class. Returns the written paths."""
    directory = Path(directory)
    table = stamps.table
    bands = list(stamps.meta.bands)
    written = []
    pairs = [p for p in (("u", "g", "g", "r"), ("g", "r", "r", "i"), ("r", "i", "i", "z"), ("J", "Ks", "g", "i")) if all(f"mag_{b}" in table.colnames for b in p)]
    if pairs:
        written.append(colour_colour_plot(table, pairs, directory / "colour_colour.png"))
    with_mags = [b for b in bands if f"mag_{b}" in table.colnames and np.isfinite(np.ma.filled(np.ma.asarray(table[f"mag_{b}"], float), np.nan)).any()]
    if with_mags:
        written.append(magnitude_histograms(table, with_mags, directory / "magnitudes.png"))
    labels = np.asarray(table["label"]).astype(str)
    for label in sorted(set(labels) - {""}):
        chosen = np.flatnonzero(labels == label)[:per_class]
        titles = [f"{i} {label}" for i in np.asarray(table["id"])[chosen]]
        written.append(save_mosaic(stamps.read_images(chosen), bands, directory / f"mosaic_{label}.png", titles=titles,
                                   title=f"{label}: {len(chosen)} of {np.count_nonzero(labels == label)}"))
    return written
