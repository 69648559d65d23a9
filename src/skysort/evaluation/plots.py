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
        red, green, blue = (stamp[i] / softening[i] for i in colours)
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
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
