"""Real 1-D spectra: reading the layouts archives hand out, and resampling onto a model's grid.

Spectra enter skysort in two places: simulated ones are written by
:mod:`skysort.simulate.spectra` on a log-lambda grid, and real ones are read here so that a
model trained on that grid can classify them (``skysort predict --spectra``,
:func:`skysort.tasks.pointsource.classify_real_spectra`).

Conventions: wavelengths are vacuum Angstrom in increasing order (air wavelengths are
converted with :func:`air_to_vacuum`, other length units with the file's ``TUNIT`` /
``CUNIT1``), fluxes are f_lambda in the file's unit (the encoder normalises each spectrum, so
only shapes matter; f_nu and photon fluxes that say so in ``TUNIT`` / ``BUNIT`` are converted
to erg/s/cm2/A), and every reader returns a mask of usable pixels (positive inverse variance
or error, finite flux, no archive quality flag) rather than filling bad pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .units import parse_unit

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


def _wavelengths_in_angstrom(path: Path, values: np.ndarray, unit_text: str | None, what: str) -> np.ndarray:
    """Wavelengths [A] of ``values`` given in ``unit_text`` (Angstrom when no unit is given).

    Raises
    ------
    InputError
        A unit astropy does not understand, or one that is no wavelength, frequency or energy.
    """
    import astropy.units as u

    if unit_text is None or not str(unit_text).strip():
        return values
    unit = parse_unit(unit_text)
    if unit is None:
        raise InputError(path, f"{what}: unknown wavelength unit {str(unit_text).strip()!r}")
    if unit == u.AA:
        return values
    try:
        return (values * unit).to_value(u.AA, equivalencies=u.spectral())
    except u.UnitConversionError as exc:
        raise InputError(path, f"{what}: unit {str(unit_text).strip()!r} is not a wavelength") from exc


def _as_f_lambda(flux: np.ndarray, wave: np.ndarray, unit_text: str | None) -> np.ndarray:
    """f_lambda [erg/s/cm2/A] of fluxes in ``unit_text`` at wavelengths ``wave`` [A] when the unit
    is an f_nu (Jy, erg/s/cm2/Hz) or a photon flux, whose spectral shape differs from f_lambda's;
    otherwise ``flux`` unchanged (f_lambda in any scale, counts, relative or unknown units)."""
    import astropy.units as u

    unit = parse_unit(unit_text)
    f_lambda = u.erg / u.s / u.cm**2 / u.AA
    if unit is None or unit.is_equivalent(f_lambda):
        return flux
    try:
        return (flux * unit).to_value(f_lambda, equivalencies=u.spectral_density(wave * u.AA))
    except u.UnitConversionError:
        return flux


def _table_spectrum(path: Path, hdu, primary_header) -> dict[str, Any] | None:
    """A spectrum held in a binary table: a flux column and a wavelength (or log-wavelength)
    column, one value per row or one array in a single row (LAMOST DR8+, ESO Phase 3), with an
    inverse variance or error column marking the usable pixels, and LAMOST's ``ANDMASK`` (bad in
    every exposure) or ESO's ``QUAL`` (0 = good) flagging bad ones. Wavelengths are converted
    from the column's ``TUNIT`` and f_nu fluxes to f_lambda. None when the table has no such
    columns."""
    columns = {name.lower(): name for name in hdu.columns.names}
    flux_name = columns.get("flux")
    wave_name = next((columns[c] for c in ("wavelength", "wave", "lambda") if c in columns), None)
    loglam_name = columns.get("loglam")
    if flux_name is None or (wave_name is None and loglam_name is None):
        return None
    data = hdu.data
    table = f"table {hdu.name}" if hdu.name else "the table"
    if np.ndim(data[flux_name]) == 2 and len(data) > 1:
        raise InputError(path, f"{table} holds {len(data)} spectra (one per row); give a file of one spectrum")

    def values(name: str) -> np.ndarray:
        column = np.asarray(data[name])
        if column.dtype.kind not in "biuf":
            raise InputError(path, f"{table}: column {name} is not numeric ({column.dtype})")
        return column.astype(float).ravel()

    def unit(name: str) -> str | None:
        return hdu.columns[name].unit

    flux = values(flux_name)
    if wave_name is not None:
        wave = _wavelengths_in_angstrom(path, values(wave_name), unit(wave_name), f"{table}, column {wave_name}")
    else:
        wave = 10.0 ** values(loglam_name)
    if wave.shape != flux.shape:
        raise InputError(path, f"{table}: {flux.size} flux values but {wave.size} wavelengths")
    # The unit conversion is linear per pixel, so the inverse variance scales by its square.
    to_f_lambda = _as_f_lambda(np.ones_like(flux), wave, unit(flux_name))
    flux = flux * to_f_lambda
    valid = np.isfinite(flux) & np.isfinite(wave)
    weight_name = next((columns[c] for c in ("ivar", "invvar", "inverse_variance") if c in columns), None)
    error_name = next((columns[c] for c in ("error", "err", "sigma", "flux_err") if c in columns), None)
    weight = None
    if weight_name is not None:
        weight = values(weight_name)
    elif error_name is not None:
        error = values(error_name)
        weight = np.where(error > 0, 1.0 / np.where(error > 0, error, 1.0) ** 2, 0.0)
    if weight is not None:
        valid &= weight > 0
        weight = weight / to_f_lambda**2
    for flag in ("andmask", "qual"):
        if flag in columns:
            valid &= values(columns[flag]) == 0
    if _header_says_air(hdu.header, default=_header_says_air(primary_header, default=False)):
        wave = air_to_vacuum(wave)
    return {"wave": wave, "flux": flux, "valid": valid, "source": "table", "weight": weight}


def _desi_spectrum(path: Path, hdul) -> dict[str, Any] | None:
    """A DESI ``coadd`` / ``spectra`` file of one spectrum: per camera (``B``, ``R``, ``Z``, or
    ``BRZ`` when combined) ``{C}_WAVELENGTH`` (vacuum, A), ``{C}_FLUX`` and ``{C}_IVAR`` images of
    shape (n_spectra, n_wave) and an optional ``{C}_MASK`` (0 = good). The cameras overlap in
    wavelength on a shared grid; the overlapping samples are combined by inverse variance. None
    when the file has no such images."""
    names = [hdu.name for hdu in hdul]
    cameras = [name.removesuffix("_WAVELENGTH") for name in names
               if name.endswith("_WAVELENGTH") and name.removesuffix("_WAVELENGTH") + "_FLUX" in names]
    if not cameras:
        return None
    waves, fluxes, weights, valids = [], [], [], []
    for camera in cameras:
        if camera + "_IVAR" not in names:
            raise InputError(path, f"DESI spectra without {camera}_IVAR: cannot tell usable pixels")
        wave = np.asarray(hdul[camera + "_WAVELENGTH"].data, float).ravel()
        flux = np.atleast_2d(np.asarray(hdul[camera + "_FLUX"].data, float))
        ivar = np.atleast_2d(np.asarray(hdul[camera + "_IVAR"].data, float))
        if flux.shape[0] > 1:
            raise InputError(path, f"a DESI file of {flux.shape[0]} spectra (one per FIBERMAP row); give a file of one "
                                   "spectrum (e.g. select one TARGETID with desispec)")
        if flux.shape != ivar.shape or flux.shape[1] != wave.size:
            raise InputError(path, f"DESI camera {camera}: {wave.size} wavelengths, flux {flux.shape}, ivar {ivar.shape}")
        valid = (ivar[0] > 0) & np.isfinite(flux[0])
        if camera + "_MASK" in names:
            valid &= np.asarray(hdul[camera + "_MASK"].data).reshape(flux.shape)[0] == 0
        waves.append(wave)
        fluxes.append(flux[0])
        weights.append(ivar[0])
        valids.append(valid)
    return {"wave": np.concatenate(waves), "flux": np.concatenate(fluxes), "valid": np.concatenate(valids),
            "source": "desi", "weight": np.concatenate(weights)}


def _in_wavelength_order(path: Path, spectrum: dict[str, Any]) -> dict[str, Any]:
    """``spectrum`` with its samples in increasing wavelength: decreasing wavelengths reversed,
    overlapping ones (spectrograph arms, echelle orders) interleaved, samples at the same
    wavelength averaged over their usable values (weighted by inverse variance where the file
    gives one), and samples without a finite wavelength dropped (nothing places them). The
    file's inverse variance (``weight``, derived from an error where that is what it holds) is
    returned as ``ivar``, None when the file gives none."""
    given = spectrum.pop("weight", None)
    wave, flux, valid = spectrum["wave"], spectrum["flux"], spectrum["valid"]
    ivar = None if given is None else np.where(np.isfinite(given), np.asarray(given, float), 0.0)
    placed = np.isfinite(wave)
    if placed.sum() < 2:
        raise InputError(path, "fewer than 2 pixels with a finite wavelength")
    if placed.all() and np.all(np.diff(wave) > 0):
        return {**spectrum, "ivar": ivar}
    weight = np.ones_like(flux) if ivar is None else ivar
    wave, flux, valid, weight = wave[placed], flux[placed], valid[placed], weight[placed]
    order = np.argsort(wave, kind="stable")
    wave, flux, valid, weight = wave[order], flux[order], valid[order], weight[order]
    unique, first, group = np.unique(wave, return_index=True, return_inverse=True)
    if unique.size < 2:
        raise InputError(path, f"all {wave.size} pixels have the same wavelength ({unique[0]:g} A)")
    if unique.size < wave.size:
        used = np.where(valid, weight, 0.0)
        total = np.bincount(group, weights=used)
        summed = np.bincount(group, weights=np.where(valid, flux, 0.0) * used)
        combined = total > 0
        flux = np.where(combined, summed / np.where(combined, total, 1.0), flux[first])
        wave, valid, weight = unique, combined, total
    return {**spectrum, "wave": wave, "flux": flux, "valid": valid, "ivar": None if ivar is None else weight}


def read_real_spectrum(path: str | os.PathLike) -> dict[str, Any]:
    """Read a real 1-D spectrum from a FITS file.

    Understood layouts:

    * SDSS ``spec-*.fits`` (DR8 and later, BOSS, eBOSS; lite and full files): the ``COADD``
      table (``loglam``, ``flux``, ``ivar``);
    * SDSS ``spSpec-*.fit`` (DR1-DR7): a 4-row image (flux, continuum-subtracted flux, error,
      mask) on the log-linear grid ``COEFF0``/``COEFF1``; pixels with error 0 are unusable;
    * LAMOST low-resolution spectra: the 5-row image of DR1-DR7 (flux, inverse variance,
      wavelength, and-mask, or-mask) or the one-row ``COADD`` table of later releases (``FLUX``,
      ``IVAR``, ``WAVELENGTH``, ``ANDMASK``, ...); pixels with a non-zero and-mask (bad in every
      exposure) are unusable;
    * DESI ``coadd`` / ``spectra`` files holding one spectrum (``B_``/``R_``/``Z_``
      ``WAVELENGTH``, ``FLUX``, ``IVAR``, ``MASK`` images; the overlapping cameras are combined);
      a file of several spectra is refused;
    * any binary table with ``flux`` and ``wavelength`` (or ``wave``, ``lambda``, ``loglam``)
      columns, and ``ivar`` or ``error`` (``err``) marking usable pixels, e.g. ESO Phase 3 1-D
      spectra (one row of ``WAVE``, ``FLUX``, ``ERR`` and ``QUAL`` arrays); the wavelength
      column's ``TUNIT`` (nm, micron, ...) is honoured;
    * a 1-D image on a linear (``CRVAL1``/``CDELT1``, e.g. the Indo-US library; ``CUNIT1``
      honoured) or log-linear (``CTYPE1 = 'LOG...'``, or ``COEFF0``/``COEFF1``) wavelength axis.

    Wavelengths are vacuum for SDSS, LAMOST and DESI; a linear 1-D image is taken as air unless
    its header says vacuum (``AIRORVAC = 'vac'``, or the FITS WCS type ``CTYPE1 = 'WAVE'``), other
    layouts as vacuum unless it says air (``AIRORVAC = 'air'``, ``VACUUM = F``). Air wavelengths
    are converted to vacuum. Samples are returned in increasing wavelength (see
    :func:`_in_wavelength_order`). Fluxes in f_nu or photon units (``TUNIT``, ``BUNIT``) are
    converted to f_lambda.

    Returns
    -------
    dict
        ``wave`` (vacuum, A, increasing), ``flux`` (f_lambda), ``valid`` (bool), ``ivar``
        (inverse variance of ``flux``, from the file's inverse variance or error; None when it
        gives neither), ``source`` (``"sdss"``, ``"sdss-spspec"``, ``"lamost"``, ``"desi"``,
        ``"table"`` or ``"linear"``).

    Raises
    ------
    InputError
        A file that is not FITS, is damaged or truncated, holds none of these layouts or several
        spectra, or has wavelengths in a unit that is not one.
    """
    from .images import open_fits

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    # Data shorter than its header says (an interrupted download) fails only when read, inside
    # the block: open_fits says so.
    with open_fits(path) as hdul:
        spectrum = _read_hdus(path, hdul)
    return _in_wavelength_order(path, spectrum)


def _read_hdus(path: Path, hdul) -> dict[str, Any]:
    """:func:`read_real_spectrum` of an open FITS file, in the file's wavelength order."""
    from astropy.io import fits

    if "COADD" in hdul and "loglam" in [name.lower() for name in hdul["COADD"].columns.names]:
        data = hdul["COADD"].data
        wave = 10.0 ** np.asarray(data["loglam"], float)
        flux = np.asarray(data["flux"], float)
        ivar = np.asarray(data["ivar"], float)
        return {"wave": wave, "flux": flux, "valid": (ivar > 0) & np.isfinite(flux), "source": "sdss", "weight": ivar}
    found = _desi_spectrum(path, hdul)
    if found is not None:
        return found
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
                               "columns, no DESI camera images and no 1-D image")
    if image.ndim != 1:
        raise InputError(path, f"not a 1-D spectrum (a {image.ndim}-D image)")
    flux = np.array(image, float)
    wave = _log_linear_wave(header, flux.size)
    if wave is not None:
        air = _header_says_air(header, default=False)
    elif "CRVAL1" in header:
        step = float(header.get("CDELT1", header.get("CD1_1", 0.0)))
        if step == 0:
            raise InputError(path, "a 1-D image without a wavelength step (CDELT1 or CD1_1 missing or 0)")
        pixel = np.arange(flux.size) + 1 - float(header.get("CRPIX1", 1.0))
        wave = float(header["CRVAL1"]) + step * pixel
        ctype = str(header.get("CTYPE1", "")).strip().upper()
        if ctype.startswith("LOG"):
            wave = 10.0 ** wave
        else:
            wave = _wavelengths_in_angstrom(path, wave, header.get("CUNIT1"), "CUNIT1")
        # FITS WCS (Greisen et al. 2006): 'WAVE' is a vacuum wavelength axis, 'AWAV' an air one.
        air = _header_says_air(header, default=not ctype.startswith("WAVE"))
    else:
        raise InputError(path, "a 1-D image without a wavelength axis (no CRVAL1/CDELT1 or COEFF0/COEFF1)")
    flux = _as_f_lambda(flux, wave, header.get("BUNIT"))
    if air:
        wave = air_to_vacuum(wave)
    return {"wave": wave, "flux": flux, "valid": np.isfinite(flux), "source": "linear"}


def _image_rows_spectrum(path: Path, header, image: np.ndarray) -> dict[str, Any]:
    """A spectrum stored as rows of a 2-D image: SDSS spSpec (4 rows) or LAMOST DR1-DR7 (5 rows)."""
    rows, n = image.shape
    wave = _log_linear_wave(header, n)
    if wave is None:
        raise InputError(path, f"a {rows}x{n} image without COEFF0/COEFF1: not an SDSS spSpec or LAMOST spectrum")
    if rows == 5 and np.allclose(image[2], wave, rtol=1e-3):
        # LAMOST: flux, inverse variance, wavelength, and-mask (bad in every exposure), or-mask.
        flux, usable, source = image[0], (image[1] > 0) & (image[3] == 0), "lamost"
        ivar = image[1]
        wave = image[2]
    elif rows == 4:
        # SDSS spSpec: flux, continuum-subtracted flux, error (0 where unusable), mask.
        flux, usable, source = image[0], image[2] > 0, "sdss-spspec"
        ivar = np.where(usable, 1.0 / np.where(usable, image[2], 1.0) ** 2, 0.0)
    else:
        raise InputError(path, f"a {rows}x{n} image: neither an SDSS spSpec (4 rows) nor a LAMOST spectrum (5 rows with "
                               "the wavelengths in the third)")
    if _header_says_air(header, default=False):
        wave = air_to_vacuum(wave)
    return {"wave": np.asarray(wave, float), "flux": flux, "valid": usable & np.isfinite(flux), "source": source, "weight": ivar}


def resample_spectrum(wave: np.ndarray, flux: np.ndarray, valid: np.ndarray | None = None, *, loglam_start: float,
                      loglam_step: float, n_pixels: int, ivar: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flux-conserving resampling of a spectrum onto a log-lambda grid.

    Each grid pixel gets the mean f_lambda over its extent (``loglam +- step / 2``), from the
    integral of the input's piecewise-constant pixels, so a finer input is averaged (no
    aliasing of narrow lines) and an input on the same grid is copied unchanged. With ``ivar``
    the mean is weighted by each input pixel's inverse variance times its overlap, so that a
    noisy pixel (a sky-line residual, a detector edge) sharing a grid pixel with clean ones
    counts for little; without it every usable input pixel counts by its overlap alone.

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
    ivar : ndarray, optional
        Inverse variance of ``flux`` [flux unit^-2]; pixels where it is 0 or not finite are
        unusable.

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
    if ivar is None:
        weight = np.ones_like(flux)
    else:
        weight = np.asarray(ivar, float)
        if weight.shape != flux.shape:
            raise InputError("spectrum", f"{weight.size} inverse variances for {flux.size} fluxes")
        good &= np.isfinite(weight) & (weight > 0)
    weight = np.where(good, weight, 0.0)
    # Geometric midpoints: exact pixel edges for log-lambda inputs (SDSS), and within 1e-5 A of
    # the arithmetic ones for linear inputs with sub-Angstrom pixels.
    middle = np.sqrt(wave[1:] * wave[:-1])
    edges = np.concatenate(([wave[0] ** 2 / middle[0]], middle, [wave[-1] ** 2 / middle[-1]]))
    width = np.diff(edges)
    weighted_flux = np.concatenate(([0.0], np.cumsum(np.where(good, flux, 0.0) * weight * width)))
    total_weight = np.concatenate(([0.0], np.cumsum(weight * width)))
    bad = np.concatenate(([0.0], np.cumsum(np.where(good, 0.0, width))))
    k = np.arange(n_pixels + 1) - 0.5
    grid_edges = 10.0 ** (loglam_start + loglam_step * k)
    lo, hi = grid_edges[:-1], grid_edges[1:]
    extent = hi - lo

    def integral(cumulative: np.ndarray) -> np.ndarray:
        return np.interp(hi, edges, cumulative) - np.interp(lo, edges, cumulative)

    # Bad input pixels and wavelengths outside the input both count as missing.
    outside = extent - np.clip(np.minimum(hi, edges[-1]) - np.maximum(lo, edges[0]), 0.0, None)
    bad_fraction = (integral(bad) + outside) / extent
    denominator = integral(total_weight)
    usable = (bad_fraction <= MAX_BAD_FRACTION) & (denominator > 0)
    # Partly missing pixels: the mean over their good part.
    mean = np.where(usable, integral(weighted_flux) / np.where(usable, denominator, 1.0), 0.0)
    return mean, usable
