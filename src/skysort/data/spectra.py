"""Real 1-D spectra: reading the layouts archives hand out, and resampling onto a model's grid.

Spectra enter skysort in two places: simulated ones are written by
:mod:`skysort.simulate.spectra` on a log-lambda grid, and real ones are read here so that a
model trained on that grid can classify them (``skysort predict --spectra``,
:func:`skysort.tasks.pointsource.classify_real_spectra`).

Conventions: wavelengths are vacuum Angstrom (air wavelengths are converted with
:func:`air_to_vacuum`), fluxes are f_lambda in the file's unit (the encoder normalises each
spectrum, so only shapes matter), and every reader returns a mask of usable pixels (positive
inverse variance or error, finite flux) rather than filling bad pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

#: A grid pixel is usable when at most this fraction of it is bad or uncovered.
MAX_BAD_FRACTION = 0.5


def air_to_vacuum(wave_air: np.ndarray) -> np.ndarray:
    """Vacuum wavelengths [A] of air wavelengths [A] (the IAU standard refractive index of air,
    Ciddor 1996, in the inverse form of Piskunov's VALD)."""
    wave_air = np.asarray(wave_air, dtype=float)
    s2 = (1e4 / wave_air) ** 2
    n = 1 + 0.00008336624212083 + 0.02408926869968 / (130.1065924522 - s2) + 0.0001599740894897 / (38.92568793293 - s2)
    return wave_air * n


def _header_says_air(header, default: bool) -> bool:
    """Whether a spectrum's wavelengths are in air: ``AIRORVAC`` (IRAF), ``VACUUM`` (LAMOST),
    else ``default``."""
    if "AIRORVAC" in header:
        return str(header["AIRORVAC"]).strip().lower().startswith("air")
    if "VACUUM" in header and isinstance(header["VACUUM"], bool):
        return not header["VACUUM"]
    return default


def _log_linear_wave(header, n: int) -> np.ndarray | None:
    """``10**(COEFF0 + COEFF1 i)`` [A] (SDSS's and LAMOST's log-linear grids), None without them."""
    if "COEFF0" not in header or "COEFF1" not in header:
        return None
    return 10.0 ** (float(header["COEFF0"]) + float(header["COEFF1"]) * np.arange(n))


def _table_spectrum(path: Path, hdu, primary_header) -> dict[str, Any] | None:
    """A spectrum held in a binary table: a flux column and a wavelength (or log-wavelength)
    column, one value per row or one array in a single row (LAMOST DR8+), with an inverse
    variance or error column marking the usable pixels. None when the table has no such columns."""
    columns = {name.lower(): name for name in hdu.columns.names}
    flux_name = columns.get("flux")
    wave_name = next((columns[c] for c in ("wavelength", "wave", "lambda") if c in columns), None)
    loglam_name = columns.get("loglam")
    if flux_name is None or (wave_name is None and loglam_name is None):
        return None
    data = hdu.data
    if np.ndim(data[flux_name]) == 2 and len(data) > 1:
        raise InputError(path, f"table {hdu.name} holds {len(data)} spectra (one per row); give a file of one spectrum")

    def values(name: str) -> np.ndarray:
        return np.asarray(data[name], float).ravel()

    flux = values(flux_name)
    wave = values(wave_name) if wave_name is not None else 10.0 ** values(loglam_name)
    if wave.shape != flux.shape:
        raise InputError(path, f"table {hdu.name}: {flux.size} flux values but {wave.size} wavelengths")
    valid = np.isfinite(flux) & np.isfinite(wave)
    weight = next((columns[c] for c in ("ivar", "invvar", "inverse_variance") if c in columns), None)
    error = next((columns[c] for c in ("error", "err", "sigma", "flux_err") if c in columns), None)
    if weight is not None:
        valid &= values(weight) > 0
    elif error is not None:
        valid &= values(error) > 0
    if _header_says_air(hdu.header, default=_header_says_air(primary_header, default=False)):
        wave = air_to_vacuum(wave)
    return {"wave": wave, "flux": flux, "valid": valid, "source": "table"}


def read_real_spectrum(path: str | os.PathLike) -> dict[str, Any]:
    """Read a real 1-D spectrum from a FITS file.

    Understood layouts:

    * SDSS ``spec-*.fits`` (DR8 and later, BOSS, eBOSS): the ``COADD`` table (``loglam``,
      ``flux``, ``ivar``);
    * SDSS ``spSpec-*.fit`` (DR1-DR7): a 4-row image (flux, continuum-subtracted flux, error,
      mask) on the log-linear grid ``COEFF0``/``COEFF1``; pixels with error 0 are unusable;
    * LAMOST low-resolution spectra: the 5-row image of DR1-DR7 (flux, inverse variance,
      wavelength, and/or masks) or the one-row table of later releases (``FLUX``, ``IVAR``,
      ``WAVELENGTH``);
    * any binary table with ``flux`` and ``wavelength`` (or ``wave``, ``lambda``, ``loglam``)
      columns, and ``ivar`` or ``error`` marking usable pixels;
    * a 1-D image on a linear (``CRVAL1``/``CDELT1``, e.g. the Indo-US library) or
      log-linear (``CTYPE1 = 'LOG...'``, or ``COEFF0``/``COEFF1``) wavelength axis.

    Wavelengths are vacuum for SDSS and LAMOST; a linear 1-D image is taken as air unless its
    header says vacuum (``AIRORVAC = 'vac'``), other layouts as vacuum unless it says air
    (``AIRORVAC = 'air'``, ``VACUUM = F``). Air wavelengths are converted to vacuum.

    Returns
    -------
    dict
        ``wave`` (vacuum, A), ``flux``, ``valid`` (bool), ``source`` (``"sdss"``, ``"sdss-spspec"``,
        ``"lamost"``, ``"table"`` or ``"linear"``).

    Raises
    ------
    InputError
        A file that is not FITS, or holds none of these layouts.
    """
    from astropy.io import fits

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    try:
        with fits.open(path) as hdul:
            if "COADD" in hdul:
                data = hdul["COADD"].data
                wave = 10.0 ** np.asarray(data["loglam"], float)
                flux = np.asarray(data["flux"], float)
                ivar = np.asarray(data["ivar"], float)
                return {"wave": wave, "flux": flux, "valid": (ivar > 0) & np.isfinite(flux), "source": "sdss"}
            header, image = hdul[0].header, hdul[0].data
            if image is not None and image.ndim == 2:
                return _image_rows_spectrum(path, header, np.asarray(image, float))
            if image is None or image.size == 0:
                for hdu in hdul[1:]:
                    if isinstance(hdu, fits.BinTableHDU):
                        found = _table_spectrum(path, hdu, header)
                        if found is not None:
                            if str(header.get("TELESCOP", "")).strip().upper() == "LAMOST":
                                found["source"] = "lamost"
                            return found
                raise InputError(path, "no spectrum found: no SDSS COADD table, no table with flux and wavelength "
                                       "columns, and no 1-D image")
            if image.ndim != 1:
                raise InputError(path, f"not a 1-D spectrum (a {image.ndim}-D image)")
            flux = np.asarray(image, float)
            wave = _log_linear_wave(header, flux.size)
            if wave is not None:
                air = _header_says_air(header, default=False)
            elif "CRVAL1" in header:
                step = float(header.get("CDELT1", header.get("CD1_1", 0.0)))
                pixel = np.arange(flux.size) + 1 - float(header.get("CRPIX1", 1.0))
                wave = float(header["CRVAL1"]) + step * pixel
                if str(header.get("CTYPE1", "")).upper().startswith("LOG"):
                    wave = 10.0 ** wave
                air = _header_says_air(header, default=True)
            else:
                raise InputError(path, "a 1-D image without a wavelength axis (no CRVAL1/CDELT1 or COEFF0/COEFF1)")
            if air:
                wave = air_to_vacuum(wave)
            return {"wave": wave, "flux": flux, "valid": np.isfinite(flux), "source": "linear"}
    except OSError as exc:
        raise InputError(path, f"not a readable FITS file ({exc})") from exc


def _image_rows_spectrum(path: Path, header, image: np.ndarray) -> dict[str, Any]:
    """A spectrum stored as rows of a 2-D image: SDSS spSpec (4 rows) or LAMOST DR1-DR7 (5 rows)."""
    rows, n = image.shape
    wave = _log_linear_wave(header, n)
    if wave is None:
        raise InputError(path, f"a {rows}x{n} image without COEFF0/COEFF1: not an SDSS spSpec or LAMOST spectrum")
    if rows == 5 and np.allclose(image[2], wave, rtol=1e-3):
        # LAMOST: flux, inverse variance, wavelength, and-mask, or-mask.
        flux, usable, source = image[0], image[1] > 0, "lamost"
        wave = image[2]
    elif rows == 4:
        # SDSS spSpec: flux, continuum-subtracted flux, error (0 where unusable), mask.
        flux, usable, source = image[0], image[2] > 0, "sdss-spspec"
    else:
        raise InputError(path, f"a {rows}x{n} image: neither an SDSS spSpec (4 rows) nor a LAMOST spectrum (5 rows with "
                               "the wavelengths in the third)")
    if _header_says_air(header, default=False):
        wave = air_to_vacuum(wave)
    return {"wave": np.asarray(wave, float), "flux": flux, "valid": usable & np.isfinite(flux), "source": source}


def resample_spectrum(wave: np.ndarray, flux: np.ndarray, valid: np.ndarray | None = None, *, loglam_start: float,
                      loglam_step: float, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Flux-conserving resampling of a spectrum onto a log-lambda grid.

    Each grid pixel gets the mean f_lambda over its extent (``loglam +- step / 2``), from the
    integral of the input's piecewise-constant pixels, so a finer input is averaged (no
    aliasing of narrow lines) and an input on the same grid is copied unchanged.

    Parameters
    ----------
    wave : ndarray
        Input pixel centres [A] (vacuum, increasing).
    flux : ndarray
        Input f_lambda (any unit).
    valid : ndarray of bool, optional
        Usable input pixels (default: finite flux).
    loglam_start, loglam_step, n_pixels : float, float, int
        The grid: ``log10(lambda) = loglam_start + loglam_step k``.

    Returns
    -------
    flux : ndarray, shape (n_pixels,)
        Resampled f_lambda, 0 where not valid.
    valid : ndarray of bool, shape (n_pixels,)
        Pixels with at most :data:`MAX_BAD_FRACTION` of their extent bad or outside the input.
    """
    wave = np.asarray(wave, float)
    flux = np.asarray(flux, float)
    good = np.isfinite(flux) if valid is None else (np.asarray(valid, bool) & np.isfinite(flux))
    if wave.ndim != 1 or wave.shape != flux.shape or wave.size < 2 or np.any(np.diff(wave) <= 0):
        raise InputError("spectrum", "wavelengths must be a 1-D increasing array matching the fluxes")
    # Geometric midpoints: exact pixel edges for log-lambda inputs (SDSS), and within 1e-5 A of
    # the arithmetic ones for linear inputs with sub-Angstrom pixels.
    middle = np.sqrt(wave[1:] * wave[:-1])
    edges = np.concatenate(([wave[0] ** 2 / middle[0]], middle, [wave[-1] ** 2 / middle[-1]]))
    width = np.diff(edges)
    cumulative = np.concatenate(([0.0], np.cumsum(np.where(good, flux, 0.0) * width)))
    bad = np.concatenate(([0.0], np.cumsum(np.where(good, 0.0, width))))
    k = np.arange(n_pixels + 1) - 0.5
    grid_edges = 10.0 ** (loglam_start + loglam_step * k)
    lo, hi = grid_edges[:-1], grid_edges[1:]
    extent = hi - lo
    mean = (np.interp(hi, edges, cumulative) - np.interp(lo, edges, cumulative)) / extent
    # Bad input pixels and wavelengths outside the input both count as missing.
    outside = extent - np.clip(np.minimum(hi, edges[-1]) - np.maximum(lo, edges[0]), 0.0, None)
    bad_fraction = (np.interp(hi, edges, bad) - np.interp(lo, edges, bad) + outside) / extent
    usable = bad_fraction <= MAX_BAD_FRACTION
    # Partly missing pixels: the mean over their good part.
    mean = np.where(usable, mean / np.maximum(1.0 - bad_fraction, 1e-12), 0.0)
    return mean, usable
