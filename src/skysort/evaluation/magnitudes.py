"""Magnitudes of stamps for binning results by brightness: catalogue columns, or an aperture."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.stampset import StampSet


def aperture_fluxes(images: np.ndarray, pixel_scale: float, diameter_arcsec: float) -> np.ndarray:
    """Flux in a circular aperture at the stamp centre, in the stamps' flux unit.

    Whole pixels whose centre lies within the aperture; NaN pixels count as zero.

    Parameters
    ----------
    images : ndarray (N, H, W)
        One band's stamps, sky-subtracted.
    pixel_scale : float
        Arcsec per pixel.
    diameter_arcsec : float
        Aperture diameter [arcsec].

    Returns
    -------
    ndarray (N,)
    """
    images = np.asarray(images, np.float64)
    h, w = images.shape[-2:]
    yy, xx = np.mgrid[:h, :w]
    inside = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) <= 0.5 * diameter_arcsec / pixel_scale
    return np.nansum(images[:, inside], axis=1)


def aperture_magnitudes(images: np.ndarray, zero_point: float, pixel_scale: float, diameter_arcsec: float = 6.0) -> np.ndarray:
    """AB magnitudes in a circular aperture at the stamp centre (for binning by brightness
    when a stamp set has no catalogue magnitudes).

    Parameters
    ----------
    images : ndarray (N, H, W)
        One band's stamps, sky-subtracted, in flux units with AB zero point ``zero_point``.
    pixel_scale : float
        Arcsec per pixel.
    diameter_arcsec : float
        Aperture diameter (the default 6" holds nearly all of a point source's light in
        arcsecond seeing, and most of a faint galaxy's).

    Returns
    -------
    ndarray (N,)
        Magnitudes; NaN where the aperture flux is not positive.
    """
    flux = aperture_fluxes(images, pixel_scale, diameter_arcsec)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, zero_point - 2.5 * np.log10(flux), np.nan)


def binning_r_magnitudes(stamps: StampSet, columns: Sequence[str] = ("mag_r",)) -> tuple[np.ndarray | None, str | None]:
    """r magnitudes of a stamp set's objects to bin results by [AB mag], and where they come from.

    The first of ``columns`` with a finite value (stamps cut without catalogue photometry carry an
    all-NaN column), else measured in a 6" aperture on the r stamps (:func:`aperture_magnitudes`),
    so that real stamp sets are binned too; ``(None, None)`` without an r band of known zero point.
    """
    for column in columns:
        if column in stamps.columns:
            mags = np.asarray(stamps.column(column), float)
            if np.isfinite(mags).any():
                return mags, f"catalogue {column}" if not column.startswith("mag_true_") else f"simulated {column}"
    if "r" in stamps.meta.bands and np.isfinite(stamps.meta.zero_point("r")):
        band = list(stamps.meta.bands).index("r")
        mags = np.concatenate([aperture_magnitudes(images[:, band], stamps.meta.zero_point("r"), stamps.meta.pixel_scale)
                               for _, images in stamps.iter_batches(4096)]) if len(stamps) else np.zeros(0)
        return mags, "6 arcsec diameter aperture on the r stamps"
    return None, None
