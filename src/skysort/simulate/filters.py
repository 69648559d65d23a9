"""Filter curves and synthetic AB photometry.

Convention
----------
Throughputs are photon responses (fraction of photons counted), so the mean flux density a
photon-counting detector measures through a filter T is

.. math::

    \\langle f_\\nu \\rangle = \\frac{\\int f_\\lambda(\\lambda)\\,T(\\lambda)\\,\\lambda\\,d\\lambda}
                                 {\\int T(\\lambda)\\,(c/\\lambda)\\,d\\lambda},
    \\qquad m_{AB} = -2.5 \\log_{10} \\langle f_\\nu \\rangle - 48.60,

with :math:`f_\\lambda` in erg s-1 cm-2 A-1, wavelengths in Angstrom and
:math:`\\langle f_\\nu \\rangle` in erg s-1 cm-2 Hz-1 (Fukugita et al. 1996; Bessell & Murphy
2012). The factor :math:`\\lambda` in the numerator is the photon-counting weight.

Every spectrum skysort integrates lives on one logarithmic wavelength grid
(:data:`GRID_LOGLAM`), so a filter becomes a weight vector and a set of band fluxes is a
matrix product (:func:`band_matrix`), which is what makes the template tables cheap.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = [
    "C_ANGSTROM_PER_S",
    "Filter",
    "GRID_DLN",
    "GRID_WAVE",
    "ab_mag",
    "band_matrix",
    "load_filter",
    "mean_fnu",
]

#: Speed of light [Angstrom / s].
C_ANGSTROM_PER_S = 2.99792458e18

#: Step of the internal wavelength grid in natural log of wavelength; 0.002 (R ~ 500) is far
#: finer than any broad band and lets redshifts be exact pixel shifts (see seds.py).
GRID_DLN = 0.002
_GRID_MIN = 300.0  # Angstrom: below the Lyman limit of the bluest rest frame we need
_GRID_MAX = 60000.0  # Angstrom: beyond Ks
GRID_LOGLAM = np.log(_GRID_MIN) + GRID_DLN * np.arange(
    int(np.ceil(np.log(_GRID_MAX / _GRID_MIN) / GRID_DLN)) + 1
)
#: The internal wavelength grid [Angstrom], uniform in ln(lambda).
GRID_WAVE = np.exp(GRID_LOGLAM)


@dataclass(frozen=True)
class Filter:
    """A band's throughput curve.

    Attributes
    ----------
    name : str
        Band name.
    wave : numpy.ndarray
        Wavelength [Angstrom], increasing.
    throughput : numpy.ndarray
        Photon response (any normalisation).
    path : str
        File it was read from ("" if built in memory).
    """

    name: str
    wave: np.ndarray
    throughput: np.ndarray
    path: str = ""

    @property
    def pivot_wavelength(self) -> float:
        """Pivot wavelength [Angstrom]: sqrt(int T lambda dl / int T / lambda dl)."""
        num = np.trapezoid(self.throughput * self.wave, self.wave)
        den = np.trapezoid(self.throughput / self.wave, self.wave)
        return float(np.sqrt(num / den))

    def on_grid(self) -> np.ndarray:
        """Throughput resampled onto :data:`GRID_WAVE` (zero outside the curve)."""
        return np.interp(GRID_WAVE, self.wave, self.throughput, left=0.0, right=0.0)


@functools.lru_cache(maxsize=64)
def _read_curve(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.loadtxt(path, comments="#", usecols=(0, 1), ndmin=2)
    except OSError:
        raise InputError(path, "filter curve not found") from None
    except ValueError as exc:
        raise InputError(path, f"filter curve is not two numeric columns ({exc})") from None
    wave, thr = data[:, 0], data[:, 1]
    order = np.argsort(wave, kind="stable")
    wave, thr = wave[order], np.clip(thr[order], 0.0, None)
    if wave.size < 3 or not np.any(thr > 0):
        raise InputError(path, "filter curve has no positive throughput")
    return wave, thr


def load_filter(path: str | os.PathLike, name: str | None = None) -> Filter:
    """Read a two-column filter curve (wavelength [Angstrom], throughput).

    Parameters
    ----------
    path : str or os.PathLike
        Text file; ``#`` starts a comment.
    name : str, optional
        Band name; defaults to the file stem.

    Returns
    -------
    Filter
    """
    path = os.fspath(path)
    wave, thr = _read_curve(path)
    return Filter(name or Path(path).stem, wave.copy(), thr.copy(), path)


def band_matrix(filters: list[Filter]) -> np.ndarray:
    """Weights turning spectra on :data:`GRID_WAVE` into mean f_nu per band.

    Parameters
    ----------
    filters : list of Filter

    Returns
    -------
    numpy.ndarray, shape (n_bands, n_grid)
        ``W`` such that ``W @ flam`` is <f_nu> [erg s-1 cm-2 Hz-1] for ``flam`` in
        erg s-1 cm-2 A-1 sampled on :data:`GRID_WAVE` (photon-counting convention; the grid
        step d(lambda) = lambda * GRID_DLN).
    """
    dlam = GRID_WAVE * GRID_DLN
    rows = []
    for f in filters:
        t = f.on_grid()
        num = t * GRID_WAVE * dlam
        den = np.sum(t * C_ANGSTROM_PER_S / GRID_WAVE * dlam)
        rows.append(num / den)
    return np.array(rows)


def mean_fnu(wave: np.ndarray, flam: np.ndarray, filt: Filter) -> float:
    """Photon-weighted mean f_nu of a spectrum through a filter.

    Parameters
    ----------
    wave : numpy.ndarray
        Wavelength [Angstrom], increasing.
    flam : numpy.ndarray
        Flux density [erg s-1 cm-2 A-1].
    filt : Filter

    Returns
    -------
    float
        <f_nu> [erg s-1 cm-2 Hz-1]; the filter must lie inside ``wave``.
    """
    thr = np.interp(wave, filt.wave, filt.throughput, left=0.0, right=0.0)
    num = np.trapezoid(flam * thr * wave, wave)
    den = np.trapezoid(thr * C_ANGSTROM_PER_S / wave, wave)
    return float(num / den)


def ab_mag(wave: np.ndarray, flam: np.ndarray, filt: Filter) -> float:
    """AB magnitude of a spectrum through a filter (photon-counting convention).

    Parameters
    ----------
    wave : numpy.ndarray
        Wavelength [Angstrom].
    flam : numpy.ndarray
        Flux density [erg s-1 cm-2 A-1].
    filt : Filter

    Returns
    -------
    float
        ``-2.5 log10 <f_nu> - 48.60``; NaN if the mean flux is not positive.
    """
    f = mean_fnu(wave, flam, filt)
    return float(-2.5 * np.log10(f) - 48.60) if f > 0 else float("nan")
