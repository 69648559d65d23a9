"""Reading survey images: one FITS file per band, with its WCS, flux unit and zero point.

Files may be plain (``.fits``), gzip or bzip2 compressed (``.fits.gz``, ``.fits.bz2``) or
tile compressed (``.fits.fz``); astropy reads them all. The first HDU holding a 2-D image is used
(an image with further axes of length 1, ``NAXIS3 = 1``, is one).

Pixels without data are NaN in the image as read, so that cutting, flags, the background
estimate and the streamed tiles all treat them as missing. Besides NaN and infinite pixels these
are the pixels a weight map marks as without data (:data:`WEIGHT_MAPS`): an extension of the
same file with a recognised name (DES ``WGT``, HSC and LSST ``VARIANCE``, HST ``WHT``, ...) and
the image's shape, or a separate file given explicitly (SWarp's and KiDS's ``.weight.fits``).
Mask planes (``MSK``, ``MASK``) are not read: the meanings of their bits differ per pipeline.

Sky positions in and out of this package are ICRS degrees: :func:`world_to_pixel` and
:func:`pixel_to_world` convert them to and from the frame an image's WCS is written in
(Galactic, ecliptic, FK4 B1950) and its axis order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import io
import math
import os
import re
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning, NoConvergence
from astropy.wcs.utils import proj_plane_pixel_scales, wcs_to_celestial_frame

from ..errors import InputError
from .fits_headers import card_values, header_stream, read_header_cards, skip_data, whole_file_decompressor

#: Canonical order of common band names, bluest first; bands are sorted by it when the user
#: gives no order.
BAND_ORDER = ("FUV", "NUV", "u", "g", "r", "i", "z", "Z", "y", "Y", "J", "H", "K", "Ks", "W1", "W2")

#: Zero points (AB mag of one flux unit) of flux units whose calibration is fixed.
UNIT_ZERO_POINTS = {"nanomaggy": 22.5, "nanomaggies": 22.5, "nmgy": 22.5, "ujy": 23.9, "microjy": 23.9, "njy": 31.4}

_ZERO_POINT_KEYS = ("MAGZP", "MAGZERO", "ZEROPT", "ZEROPNT", "ZP", "PHOTZP", "MAGZPT")
_SEEING_KEYS = ("PSF_FWHM", "SEEING", "FWHM", "PSFFWHM")
#: Header keywords giving the saturation level in the image's units (SExtractor's SATUR_KEY).
_SATURATION_KEYS = ("SATURATE", "SATLEVEL")
_FILTER_KEYS = ("FILTER", "FILTNAM", "FILTER1", "BAND")


@dataclasses.dataclass
class BandImage:
    """One band of a survey tile.

    Attributes
    ----------
    band : str
        Band name (``"r"``, ``"Ks"``, ...).
    path : Path
        File it was read from.
    data : ndarray, shape (ny, nx), float32
        Pixel values in ``flux_unit``; row index ``y``, column index ``x`` (0-based).
    wcs : astropy.wcs.WCS
        Celestial WCS of ``data``.
    flux_unit : str
        ``BUNIT`` of the header, or ``"unknown"``.
    zero_point : float
        AB magnitude of one ``flux_unit`` (NaN if neither the unit nor the header fixes it).
    psf_fwhm : float
        PSF FWHM in arcsec from the header (NaN if absent).
    n_nan : int
        Number of NaN pixels in ``data``.
    survey : str
        Survey or observatory named by the header (``ORIGIN`` or ``TELESCOP``), or ``""``.
    background : dict
        How the sky background was removed from ``data`` (see
        :func:`skysort.data.background.subtract_background`); empty when nothing was done.
    saturation : float
        Saturation level in ``flux_unit`` from the header (``SATURATE`` or ``SATLEVEL``), NaN
        when it gives none.
    saturated_pixels : ndarray, shape (m, 2)
        ``(x, y)`` of the pixels at or above ``saturation`` as read (before any background
        subtraction); a list rather than a mask, since saturated pixels are few.
    weight_map : dict or None
        The weight map whose no-data pixels were made NaN in ``data``: ``file``, ``hdu``
        (extension name, else index), ``kind`` (see :data:`WEIGHT_MAPS`) and
        ``no_data_pixels`` (how many pixels it marks as without data); None when none was read.
    zero_point_note : str
        Why ``zero_point`` read from the header is likely not that of one pixel unit (see
        :func:`zero_point_note`), or ``""``.
    """

    band: str
    path: Path
    data: np.ndarray
    wcs: WCS
    flux_unit: str = "unknown"
    zero_point: float = float("nan")
    psf_fwhm: float = float("nan")
    n_nan: int = 0
    survey: str = ""
    background: dict = dataclasses.field(default_factory=dict)
    saturation: float = float("nan")
    saturated_pixels: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, 2), np.float32), repr=False)
    weight_map: dict | None = None
    zero_point_note: str = ""

    @property
    def pixel_scale(self) -> float:
        """Mean pixel scale in arcsec per pixel, from the WCS."""
        return float(np.mean(proj_plane_pixel_scales(self.wcs)) * 3600.0)

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape  # type: ignore[return-value]


def _header_number(header: fits.Header, keys: Sequence[str], default: float = float("nan"), *,
                   positive: bool = False) -> float:
    """The value of the first of ``keys`` the header gives as a number (not a logical; finite
    and above 0 with ``positive``), else ``default``."""
    for key in keys:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                not positive or (np.isfinite(value) and value > 0)):
            return float(value)
    return default


#: AB magnitudes of one data unit a zero-point keyword may give [mag]: from a Jansky (8.9) to
#: a count of a deep stack (about 35), with room either side; outside it is a placeholder.
_ZERO_POINT_RANGE = (5.0, 45.0)


def _per_pixel_removed(unit: str) -> str:
    """``unit`` without a trailing "per pixel" (``nJy/pix``): fluxes are per pixel anyway."""
    return re.sub(r"\s*(/|per)\s*(pix|pixel|px)$", "", unit.strip(), flags=re.IGNORECASE)


def _jansky_zero_point(unit: str) -> float:
    """AB magnitude of one ``unit`` when it is a spectral flux density (``Jy``, ``mJy``,
    ``uJy``, ``nJy``, optionally per pixel); NaN for any other unit."""
    from astropy import units as u

    from .units import parse_unit

    parsed = parse_unit(_per_pixel_removed(unit))
    if parsed is None or not parsed.is_equivalent(u.Jy):
        return float("nan")
    return round(float((1.0 * parsed).to(u.ABmag).value), 6)


def unit_zero_point(unit: str) -> float:
    """AB magnitude of one ``unit`` [mag] when the unit alone fixes it: nanomaggy 22.5, and any
    Jansky multiple (nJy 31.4, uJy 23.9, mJy 16.4), optionally per pixel; NaN otherwise (counts,
    ADU, electrons need a zero-point keyword)."""
    zero_point = UNIT_ZERO_POINTS.get(_per_pixel_removed(unit).lower(), float("nan"))
    return zero_point if np.isfinite(zero_point) else _jansky_zero_point(unit)


#: Text values that say "no value" rather than give a wrong one: blank, IRAF's INDEF, NaN.
_UNDEFINED_TEXT = {"", "INDEF", "NAN", "N/A", "NONE"}


def _zero_point_keyword(header: fits.Header, key: str, where: str | Path) -> float:
    """The number a zero-point keyword gives, written as a number or as text (``'30.0 '``,
    Fortran's ``'3.0D1'``); NaN when the keyword is absent, a logical, or text meaning
    undefined (:data:`_UNDEFINED_TEXT`).

    Raises
    ------
    InputError
        Naming ``where`` and the keyword, when its text is not a number: read as unknown, it
        would leave the stamps' magnitudes unknown without a word.
    """
    value = header.get(key)
    if isinstance(value, str):
        text = value.strip()
        if text.upper() in _UNDEFINED_TEXT:
            return float("nan")
        try:
            number = float(text.upper().replace("D", "E"))
        except ValueError:
            raise InputError(where, f"header keyword {key} = {value!r} is not a number (a zero point, AB mag)") from None
        return number if np.isfinite(number) else float("nan")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    return float("nan")


def header_zero_point(header: fits.Header, where: str | Path = "FITS header") -> float:
    """AB magnitude of one data unit a header's keywords give [mag]: the first zero-point keyword
    (``MAGZP``, ``MAGZERO``, ``ZEROPT``, ``ZEROPNT``, ``ZP``, ``PHOTZP``, ``MAGZPT``) within 5-45
    mag, else HSC's ``FLUXMAG0`` (the flux of magnitude 0), else NaN. Values may be written as
    numbers or as text; one outside 5-45 mag (0, -99, 99) is a placeholder and is skipped.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The image's header.
    where : str or path-like
        The file the header is from, named by an error.

    Raises
    ------
    InputError
        A keyword consulted holds text that is not a number.
    """
    return _zero_point_and_keyword(header, where)[0]


def _zero_point_and_keyword(header: fits.Header, where: str | Path) -> tuple[float, str]:
    """:func:`header_zero_point` and the keyword that gave it (``""`` for none)."""
    # Pipelines write 0, -99 or 99 for "not calibrated": such a value is no zero point, and
    # another keyword may still give one.
    for key in _ZERO_POINT_KEYS:
        value = _zero_point_keyword(header, key, where)
        if _ZERO_POINT_RANGE[0] < value < _ZERO_POINT_RANGE[1]:
            return value, key
    # HSC's pipeline gives the flux of magnitude 0 instead (FLUXMAG0 = 10**(0.4 * 27) on coadds).
    flux_of_zero = _zero_point_keyword(header, "FLUXMAG0", where)
    return (2.5 * math.log10(flux_of_zero), "FLUXMAG0") if flux_of_zero > 0 else (float("nan"), "")


#: Keywords that CASU's pipelines (VISTA, WFCAM, INT WFC, OmegaCAM through VST-CASU) write beside
#: MAGZPT: with one of them MAGZPT follows CASU's convention.
_CASU_CALIBRATION_KEYS = ("EXTINCT", "MAGZRR", "NUMZPT")


def zero_point_note(header: fits.Header, where: str | Path = "FITS header") -> str:
    """Why the header's zero point (:func:`header_flux_unit`) is likely not the AB magnitude of
    one pixel unit, or ``""``.

    CASU's pipelines give ``MAGZPT`` as the magnitude of one count per second at airmass 1,
    beside the extinction coefficient ``EXTINCT`` (and ``MAGZRR``, ``NUMZPT``); for VISTA and
    WFCAM it is on the Vega system. Taken as the zero point of one pixel unit, fluxes are off by
    2.5 log10(EXPTIME) mag and more. The convention is not converted here: the Vega-to-AB
    offsets of the instrument's filters are not in the header, so the user gives the AB zero
    point (``--zero-points``).
    """
    unit = str(header.get("BUNIT", "unknown")).strip() or "unknown"
    if np.isfinite(unit_zero_point(unit)) or not any(key in header for key in _CASU_CALIBRATION_KEYS):
        return ""
    value, key = _zero_point_and_keyword(header, where)
    if key != "MAGZPT":
        return ""
    per_pixel = ""
    exposure = _header_number(header, ("EXPTIME", "TEXPTIME"), positive=True)
    if np.isfinite(exposure):
        airmass = _header_number(header, ("AIRMASS",))
        extinction = _header_number(header, ("EXTINCT",))
        correction = (airmass - 1.0) * extinction if np.isfinite(airmass) and np.isfinite(extinction) else 0.0
        per_pixel = (f" (with EXPTIME = {exposure:g} s here: MAGZPT + 2.5 log10(EXPTIME) - (AIRMASS - 1) EXTINCT = "
                     f"{value + 2.5 * math.log10(exposure) - correction:.3f}, before any Vega-to-AB offset)")
    return (f"its zero point MAGZPT = {value:g} follows CASU's convention (EXTINCT or MAGZRR beside it): the magnitude of "
            f"one count per second at airmass 1, on the Vega system for VISTA and WFCAM, not the AB magnitude of one pixel "
            f"unit{per_pixel}; give that with --zero-points, or fluxes are scaled wrongly")


def header_flux_unit(header: fits.Header, where: str | Path = "FITS header") -> tuple[str, float]:
    """``(flux_unit, zero_point)`` of an image header: ``BUNIT`` (or ``"unknown"``) and the AB
    magnitude of one unit, fixed by the unit (nanomaggy 22.5, and any Jansky multiple per pixel:
    nJy 31.4, uJy 23.9, mJy 16.4) or given by a zero-point keyword (:func:`header_zero_point`);
    NaN when none fixes it.

    Raises
    ------
    InputError
        Naming ``where`` (the header's file), when a zero-point keyword holds text that is not
        a number.
    """
    unit = str(header.get("BUNIT", "unknown")).strip() or "unknown"
    zero_point = unit_zero_point(unit)
    if not np.isfinite(zero_point):
        zero_point = header_zero_point(header, where)
    return unit, zero_point


#: Pan-STARRS's asinh scale, 2.5 log10(e): its stacks store alpha * asinh((L - BOFFSET) / (2 BSOFTEN)).
_PS1_ALPHA = 2.5 * math.log10(math.e)


def linear_pixels(data: np.ndarray, header: fits.Header) -> np.ndarray:
    """Pixel values proportional to flux: Pan-STARRS's stack images (header ``BSOFTEN`` and
    ``BOFFSET``) hold asinh-compressed values, turned back into linear ones by
    ``BOFFSET + 2 BSOFTEN sinh(value / alpha)``; any other image is returned as it is."""
    soften = _header_number(header, ("BSOFTEN",), positive=True)
    offset = _header_number(header, ("BOFFSET",))
    if not (np.isfinite(soften) and np.isfinite(offset)):
        return data
    with np.errstate(over="ignore", invalid="ignore"):
        return (offset + 2.0 * soften * np.sinh(data / _PS1_ALPHA)).astype(np.float32)


def header_seeing(header: fits.Header, wcs: WCS) -> float:
    """The seeing FWHM a header gives (``PSF_FWHM``, ``SEEING``, ``FWHM``, ``PSFFWHM``), in
    arcsec: a keyword whose comment says pixels (ZTF's ``SEEING``, DES's and IRAF's ``FWHM``)
    is converted with the image's pixel scale; NaN when no keyword gives it."""
    for key in _SEEING_KEYS:
        value = _header_number(header, (key,), positive=True)
        if np.isfinite(value):
            comment = str(header.comments[key])
            in_pixels = re.search(r"pix|\bpx\b", comment, re.IGNORECASE) and not re.search(r"arcsec|asec|\"", comment,
                                                                                            re.IGNORECASE)
            return float(value * np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0) if in_pixels else value
    return float("nan")


#: HSC's filter names (FILTER = 'HSC-I', 'HSC-R2'): the SDSS-like bands in lower case.
_HSC_FILTER = re.compile(r"^HSC-([GRIZY])2?$", re.IGNORECASE)


def band_from_filter(value: str) -> str | None:
    """The band a header's filter name means: the first band of :data:`BAND_ORDER` among its
    words and their parts, as instruments write them (KiDS ``OCAM_r_SDSS``, DECam
    ``r DECam SDSS c0002 6415.0 1480.0``, MegaCam ``r.MP9602``, Pan-STARRS ``r.00000``,
    ZTF ``ZTF_r``, HSC ``HSC-I`` -> ``i``); otherwise the name's first word (a band of the
    user's own, as ``VIS`` or ``NB816``), None for an empty name."""
    words = value.split()
    if not words:
        return None
    hsc = _HSC_FILTER.match(words[0])
    if hsc:
        return hsc.group(1).lower()
    for word in words:
        for part in re.split(r"[_\-/.]", word):
            if part in BAND_ORDER:
                return part
    return words[0]


def _band_from_header(header: fits.Header) -> str | None:
    for key in _FILTER_KEYS:
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            return band_from_filter(value)
    return None


def _band_from_name(path: Path, candidates: Iterable[str]) -> str | None:
    tokens = re.split(r"[-_.]", path.name)
    for band in sorted(set(candidates), key=len, reverse=True):
        if band in tokens:
            return band
    return None


def celestial_wcs(header, path: str | Path) -> WCS:
    """The 2-D celestial WCS of an image header.

    Raises
    ------
    InputError
        Malformed WCS keywords; no celestial WCS; a celestial WCS that lacks its reference
        point (``CRVAL``, ``CRPIX``) or pixel scale (``CD`` or ``CDELT``), which wcslib would
        fill with 0 and 1 degree per pixel; a sky frame astropy does not know (naming ``path``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        warnings.simplefilter("ignore", AstropyWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception as exc:  # astropy raises many types for malformed WCS keywords
            raise InputError(path, f"has an invalid WCS ({exc})") from exc
    if not wcs.has_celestial or not wcs.is_celestial:
        raise InputError(path, "has no celestial WCS (CTYPE1/2, CRVAL, CRPIX and CD or CDELT keywords)")
    if isinstance(header, fits.Header):
        axes = (wcs.wcs.lng + 1, wcs.wcs.lat + 1)
        missing = [f"{key}{i}" for key in ("CRVAL", "CRPIX") for i in axes if f"{key}{i}" not in header]
        has_cd = any(f"CD{i}_{j}" in header for i in axes for j in (1, 2))
        if not has_cd:
            missing += [f"CDELT{i}" for i in axes if f"CDELT{i}" not in header]
        if missing:
            raise InputError(path, f"has an incomplete celestial WCS: no {', '.join(missing)} (a position or pixel "
                                   "scale would be guessed)")
    try:
        wcs_to_celestial_frame(wcs)
    except ValueError as exc:
        raise InputError(path, f"has a celestial WCS in a sky frame that cannot be converted to ICRS ({exc})") from exc
    return wcs


def _frame_if_not_icrs(wcs: WCS):
    """The WCS's sky frame, or None when it is ICRS or FK5 J2000 (the same to 0.02")."""
    from astropy.coordinates import FK5, ICRS
    from astropy.time import Time

    frame = wcs_to_celestial_frame(wcs)
    if isinstance(frame, ICRS) or (isinstance(frame, FK5) and frame.equinox == Time("J2000")):
        return None
    return frame


def world_to_pixel(wcs: WCS, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel coordinates ``(x, y)`` of ICRS positions in a 2-D celestial WCS.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        From :func:`celestial_wcs`; any sky frame and axis order, distortions included.
    ra, dec : array_like
        ICRS right ascension and declination [deg].

    Returns
    -------
    x, y : ndarray
        Column and row [pixels]; NaN where the position has no pixel (beyond the projection, or
        so far off the image that the inverse of its distortion polynomial diverges).
    """
    ra = np.atleast_1d(np.asarray(ra, float))
    dec = np.atleast_1d(np.asarray(dec, float))
    frame = _frame_if_not_icrs(wcs)
    if frame is not None and ra.size:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        valid = np.abs(dec) <= 90.0  # SkyCoord refuses the rest; they have no pixel either
        native = SkyCoord(np.where(valid, ra, 0.0) * u.deg, np.where(valid, dec, 0.0) * u.deg,
                          frame="icrs").transform_to(frame).spherical
        ra, dec = np.where(valid, native.lon.deg, np.nan), np.where(valid, native.lat.deg, np.nan)
    world = np.empty((ra.size, 2))
    world[:, wcs.wcs.lng], world[:, wcs.wcs.lat] = ra.ravel(), dec.ravel()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # Inverting a distortion polynomial is iterative. Without ``adaptive`` every
            # position is iterated until the slowest of those converted with it converges, so
            # its last digits depend on the others (a catalogue chunk, a work unit), and at a
            # half-pixel position so does the nearest pixel, hence the stamp.
            pixels = wcs.all_world2pix(world, 0, adaptive=True)
    except NoConvergence as exc:
        # A SIP or TPV polynomial fitted to one chip diverges far from it: such positions are
        # off the image, not a reason to stop.
        pixels = np.array(exc.best_solution, float)
        for failed in (exc.divergent, exc.slow_conv):
            if failed is not None:
                pixels[np.asarray(failed, int)] = np.nan
    return pixels[:, 0].reshape(ra.shape), pixels[:, 1].reshape(ra.shape)


def pixel_to_world(wcs: WCS, x, y) -> tuple[np.ndarray, np.ndarray]:
    """ICRS positions ``(ra, dec)`` [deg] of 0-based pixel coordinates ``(x, y)`` of a 2-D
    celestial WCS (any sky frame and axis order); NaN beyond the projection."""
    x = np.atleast_1d(np.asarray(x, float))
    y = np.atleast_1d(np.asarray(y, float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        world = wcs.all_pix2world(np.column_stack([x.ravel(), y.ravel()]), 0)
    lon, lat = world[:, wcs.wcs.lng], world[:, wcs.wcs.lat]
    frame = _frame_if_not_icrs(wcs)
    if frame is not None and lon.size:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        icrs = SkyCoord(lon * u.deg, lat * u.deg, frame=frame).icrs
        lon, lat = icrs.ra.deg, icrs.dec.deg
    return np.asarray(lon).reshape(x.shape), np.asarray(lat).reshape(x.shape)


#: Files compressed as a whole (gzip, bzip2) up to this size [bytes] are decompressed into
#: memory once by :func:`open_fits`; a larger one is left to astropy, which decompresses it
#: twice but holds no second copy of it.
IN_MEMORY_DECOMPRESSION_BYTES = 128 * 2**20


@contextlib.contextmanager
def open_fits(path: str | Path, **options) -> Iterator[fits.HDUList]:
    """``astropy.io.fits.open`` for reading inside the block, with one error for a bad file.

    Raises
    ------
    InputError
        The file, or the data read from it in the block, is truncated or corrupt. astropy's
        own warnings are silenced: they would be a second line before that error.
    """
    decompress = whole_file_decompressor(path)
    if decompress is not None and os.path.getsize(path) > IN_MEMORY_DECOMPRESSION_BYTES:
        decompress = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            if decompress is None:
                source = path
            else:
                # Decompressed once, here: astropy reads through a gzip or bzip2 stream to list
                # the HDUs, then seeks back for the pixels, which decompresses the file again
                # from its start (twice the time for an SDSS frame). The price is the file's
                # decompressed bytes held while it is read, hence the size limit.
                with decompress(path, "rb") as stream:
                    source = io.BytesIO(stream.read())
                options = {key: value for key, value in options.items() if key != "memmap"}
            with fits.open(source, **options) as hdul:
                yield hdul
    except (OSError, ValueError, EOFError, TypeError, IndexError, zlib.error) as exc:
        raise InputError(path, f"not a readable FITS file (truncated or corrupt: {exc})") from exc


#: FITS block size [bytes]: whatever follows the last HDU read, if at least one block, is an HDU
#: astropy could not read.
_BLOCK = 2880
_TRUNCATED = ("not a readable FITS file: {tail:,} bytes after the last readable HDU could not be read as one "
              "(truncated or corrupt)")


def _is_2d_image(hdu) -> bool:
    """Whether ``hdu`` holds an image of two axes, or more of which all but the first two have
    length 1 (``NAXIS3 = 1``, as some pipelines write a single plane)."""
    header = hdu.header
    naxis = header.get("NAXIS")
    if not hdu.is_image or not isinstance(naxis, int) or naxis < 2:
        return False
    return all(header.get(f"NAXIS{k}") == 1 for k in range(3, naxis + 1))


def _unparsed_tail(hdul: fits.HDUList, path: str | Path) -> int:
    """Bytes of a file beyond its last HDU that astropy could read: astropy drops an HDU whose
    header is cut short (a truncated download) with only a warning. 0 for a gzip or bzip2 file,
    whose decompression fails on its own when it is cut short."""
    if str(path).lower().endswith((".gz", ".bz2")):
        return 0
    info = hdul.fileinfo(len(hdul) - 1) if len(hdul) else None
    end = info["datLoc"] + info["datSpan"] if info else 0
    try:
        return max(0, Path(path).stat().st_size - end)
    except OSError:
        return 0


def check_one_sky_area(hdul: fits.HDUList, first: int, path: str | Path) -> None:
    """Refuse a file whose 2-D image HDUs after the first (index ``first``) cover other sky: a
    multi-CCD mosaic (DECam, MegaCam, HSC raw exposures), of which only the first image would be
    read, so objects on the other CCDs would silently get no stamp. Extensions on the first
    image's footprint (mask, variance, weight) and images without a celestial WCS (a PSF model)
    are fine. Only headers are read.

    Raises
    ------
    InputError
        Another image's centre lies outside the first image.
    """
    images = [i for i in range(first + 1, len(hdul)) if _is_2d_image(hdul[i])]
    if not images:
        return
    reference = celestial_wcs(hdul[first].header, path)
    ny, nx = int(hdul[first].header["NAXIS2"]), int(hdul[first].header["NAXIS1"])
    elsewhere = 0
    for i in images:
        header = hdul[i].header
        try:
            wcs = celestial_wcs(header, path)
        except InputError:
            continue
        ra, dec = pixel_to_world(wcs, (header["NAXIS1"] - 1) / 2, (header["NAXIS2"] - 1) / 2)
        x, y = (float(v[0]) for v in world_to_pixel(reference, ra, dec))
        if not (np.isfinite(x) and np.isfinite(y) and -0.5 <= x <= nx - 0.5 and -0.5 <= y <= ny - 0.5):
            elsewhere += 1
    if elsewhere:
        raise InputError(path, f"holds {elsewhere + 1} images of different sky areas (a multi-CCD mosaic): only single-"
                               "image files are read; write each image extension to its own file")


def first_image_header(path: str | Path) -> fits.Header | None:
    """Header of the first HDU of ``path`` holding a 2-D image, read from the headers only
    (no pixel data); None when no HDU does. A multi-CCD mosaic is refused
    (:func:`check_one_sky_area`) unless the file is gzip- or bzip2-compressed as a whole, where
    reaching the later headers means decompressing the images: :func:`read_band_image`, which
    reads them anyway, checks those.

    Raises
    ------
    InputError
        The file is not a readable FITS file (truncated or corrupt), or a mosaic.
    """
    if str(path).lower().endswith((".gz", ".bz2")):
        header = _streamed_first_image_header(path)
        if header is not _ASK_ASTROPY:
            return header
    with open_fits(path, memmap=True, lazy_load_hdus=True) as hdul:
        for index, hdu in enumerate(hdul):
            if _is_2d_image(hdu):
                if not str(path).lower().endswith((".gz", ".bz2")):
                    check_one_sky_area(hdul, index, path)
                return hdu.header.copy()
        tail = _unparsed_tail(hdul, path)
    if tail >= _BLOCK:
        raise InputError(path, _TRUNCATED.format(tail=tail))
    return None


#: What :func:`_streamed_first_image_header` returns for a file it leaves to astropy.
_ASK_ASTROPY = object()


def _streamed_first_image_header(path: str | Path):
    """:func:`first_image_header` of a gzip- or bzip2-compressed FITS file, decompressing only
    as far as that header (:mod:`skysort.data.fits_headers`: astropy would decompress the whole
    file first). Returns :data:`_ASK_ASTROPY` for a file this reader leaves to astropy: one not
    compressed after all, or holding a tile-compressed image or a header without a usable data
    size."""
    if whole_file_decompressor(path) is None:
        return _ASK_ASTROPY  # named as compressed but not: astropy goes by the content too
    try:
        with header_stream(path) as (stream, _):
            first = True
            while (cards := read_header_cards(stream, path, first)) is not None:
                values = card_values(cards)
                if values.get(b"ZIMAGE") == b"T":
                    return _ASK_ASTROPY
                naxis = int(values.get(b"NAXIS", b"0"))
                is_image = values.get(b"XTENSION") == b"'IMAGE'" or (first and values.get(b"GROUPS") != b"T")
                if is_image and naxis >= 2 and all(values.get(b"NAXIS%d" % k) == b"1" for k in range(3, naxis + 1)):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", AstropyWarning)
                        return fits.Header.fromstring(b"".join(cards).decode("ascii", "replace"))
                if not skip_data(stream, values):
                    return _ASK_ASTROPY
                first = False
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise InputError(path, f"not a readable FITS file (truncated or corrupt: {exc or type(exc).__name__})") from exc
    return None


#: Extension names (``EXTNAME``, compared without regard to case) of the weight maps read from
#: an image's own file, and the kind of values each holds. Whatever the kind, a pixel has data
#: only where the map is finite and above 0 (:func:`no_data_pixels`):
#:
#: ``weight`` (a weight or inverse variance)
#:     0 = no data. DES coadds ``WGT``; SWarp-style files ``WEIGHT``; HST and JWST drizzled
#:     images ``WHT``; Legacy Surveys and SDSS ``IVAR``, ``INVVAR``.
#: ``variance``
#:     infinite, NaN or <= 0 = no data. HSC and LSST ``VARIANCE`` (``variance``), ``VAR``.
#: ``rms`` (an rms or sigma)
#:     infinite, NaN or <= 0 = no data. ``RMS``, ``ERR`` (HST, JWST), ``SIGMA``.
#:
#: Mask planes (``MSK``, ``MASK``, ``DQ``) are not read: their bits mean different things in
#: each pipeline.
WEIGHT_MAPS = {"WGT": "weight", "WEIGHT": "weight", "WHT": "weight", "IVAR": "weight", "INVVAR": "weight",
               "VARIANCE": "variance", "VAR": "variance", "RMS": "rms", "ERR": "rms", "SIGMA": "rms"}

#: Tokens of a file name that mark a science image or a weight map (``tile_r_sci.fits`` and
#: ``tile_r_wei.fits``, ``coadd.fits`` and ``coadd.weight.fits``, Legacy Surveys'
#: ``...-image-r.fits.fz`` and ``...-invvar-r.fits.fz``): the names of an image and of its
#: weight file agree once these are removed.
_SCIENCE_TOKENS = {"sci", "science", "image", "img", "drz", "drc", "i2d"}
_WEIGHT_TOKENS = {"weight", "weights", "wei", "wgt", "wht", "ivar", "invvar", "var", "variance", "rms", "err", "sigma",
                  "noise"}
_FITS_NAME_SUFFIX = re.compile(r"\.(fits?|fts)(\.(gz|bz2|fz))?$", re.IGNORECASE)


def no_data_pixels(values: np.ndarray) -> np.ndarray:
    """Where a weight, inverse-variance, variance or rms map marks pixels as without data.

    Parameters
    ----------
    values : ndarray
        The map, in any unit (weights are in inverse image units squared, variances in image
        units squared, rms in image units): only whether a value is finite and above 0 counts.

    Returns
    -------
    ndarray of bool
        True where the value is 0, negative, NaN or infinite: a weight of 0, or a variance or
        rms that is infinite, NaN or not positive.
    """
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(values) & (values > 0))


def _extname(hdu) -> str:
    return str(hdu.header.get("EXTNAME", "") or "").strip()


def _image_shape(header: fits.Header) -> tuple[int, int]:
    return int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0))


def find_weight_hdu(hdul: fits.HDUList, index: int, path: str | Path, weight_hdu: str | None = None) -> int | None:
    """Index of the HDU holding the weight map of the image in HDU ``index``, from the headers.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        The open file.
    index : int
        The science image's HDU.
    path : path-like
        The file, named by errors.
    weight_hdu : str, optional
        None: the one HDU, other than the image's, whose ``EXTNAME`` is a key of
        :data:`WEIGHT_MAPS` and whose image has the science image's shape (HDUs of other shapes
        are not weight maps of these pixels). An extension name: that HDU, whatever its name
        (it must have the image's shape). ``"none"``: no weight map.

    Returns
    -------
    int or None
        The HDU index, or None when the file holds no weight map (or ``"none"`` was asked).

    Raises
    ------
    InputError
        Several recognised weight maps of the image's shape (JWST's ``ERR`` and ``WHT``): which
        one to read is not guessed. A ``weight_hdu`` the file lacks or that is not an image of
        the science image's shape.
    """
    if weight_hdu is not None and str(weight_hdu).strip().lower() == "none":
        return None
    shape = _image_shape(hdul[index].header)
    if weight_hdu:
        wanted = str(weight_hdu).strip().upper()
        named = [j for j, hdu in enumerate(hdul) if j != index and _extname(hdu).upper() == wanted]
        if not named:
            names = [_extname(hdu) for hdu in hdul if _extname(hdu)]
            raise InputError(path, f"has no HDU named {weight_hdu!r} (the weight map asked for); its named HDUs are "
                                   f"{', '.join(names) or 'none'}")
        if len(named) > 1:
            raise InputError(path, f"has {len(named)} HDUs named {wanted}: which is the weight map is not guessed")
        j = named[0]
        if not _is_2d_image(hdul[j]) or _image_shape(hdul[j].header) != shape:
            raise InputError(path, f"its HDU {wanted} is not an image of the science image's {shape[1]}x{shape[0]} pixels, "
                                   "so it cannot be its weight map")
        return j
    found = [j for j, hdu in enumerate(hdul) if j != index and _extname(hdu).upper() in WEIGHT_MAPS
             and _is_2d_image(hdu) and _image_shape(hdu.header) == shape]
    if len(found) > 1:
        names = ", ".join(_extname(hdul[j]) for j in found)
        raise InputError(path, f"holds several weight-like HDUs of the image's shape ({names}): which one marks the pixels "
                               "without data is not guessed; choose one with --weight-hdu NAME (weight_hdu= in Python), "
                               "or read none with --weight-hdu none")
    return found[0] if found else None


def _weight_kind(name: str, path: Path | None = None, default: str = "weight") -> str:
    """Kind of values (:data:`WEIGHT_MAPS`) of a weight map, for the record: by its extension
    name or a word of it (JWST's ``VAR_POISSON``), else by a word of its file name
    (``.rms.fits``, ``-invvar-``), else ``default`` (``weight``: SWarp's default map type)."""
    for text in (name, _FITS_NAME_SUFFIX.sub("", path.name) if path is not None else ""):
        words = [text.upper(), *(t.upper() for t in re.split(r"[-_.]", text))]
        kinds = [WEIGHT_MAPS[w] for w in words if w in WEIGHT_MAPS]
        if kinds:
            return kinds[0]
    return default


def check_weight_header(header: fits.Header, shape: tuple[int, int], wcs: WCS | None, path: str | Path,
                        image: str | Path) -> None:
    """Refuse a separate weight map that is not on its image's pixels, from its header.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Header of the weight map's image HDU.
    shape : (int, int)
        The science image's ``(ny, nx)`` [pixels].
    wcs : astropy.wcs.WCS or None
        The science image's celestial WCS; None skips the sky check.
    path, image : path-like
        The weight file and its image, named by errors.

    Raises
    ------
    InputError
        Naming the weight file: another shape; or a celestial WCS putting the image's corners
        or centre more than half a pixel away from where the image's own WCS puts them (the
        weight map of another tile). A weight map without a celestial WCS is judged by its
        shape alone.
    """
    weight_shape = _image_shape(header)
    if weight_shape != tuple(shape):
        raise InputError(path, f"weight map of {weight_shape[1]}x{weight_shape[0]} pixels for the image {Path(image).name} "
                               f"of {shape[1]}x{shape[0]} pixels: a weight map must have its image's shape")
    if wcs is None or not any(str(header.get(f"CTYPE{i}", "")).strip() for i in (1, 2)):
        return
    try:
        weight_wcs = celestial_wcs(header, path)
    except InputError:
        return  # no usable sky coordinates: the shape is all there is to compare
    ny, nx = shape
    x = np.array([0.0, nx - 1.0, 0.0, nx - 1.0, (nx - 1) / 2])
    y = np.array([0.0, 0.0, ny - 1.0, ny - 1.0, (ny - 1) / 2])
    wx, wy = world_to_pixel(weight_wcs, *pixel_to_world(wcs, x, y))
    offset = float(np.nanmax(np.hypot(wx - x, wy - y))) if np.isfinite(wx).any() else float("inf")
    if not offset <= 0.5:
        raise InputError(path, f"weight map lies on other pixels than its image {Path(image).name} (its WCS is {offset:.1f} "
                               "px away): the weight map of another tile?")


@contextlib.contextmanager
def _open_weight_file(path: Path, image: str | Path, **options) -> Iterator[tuple[fits.HDUList, int]]:
    """The open weight file (:func:`open_fits` with ``options``) and the index of its first 2-D
    image, the weight map; errors name the weight file and its image."""
    if not path.exists():
        raise InputError(path, f"no such file (the weight map of {Path(image).name})")
    with open_fits(path, **options) as hdul:
        index = next((i for i, h in enumerate(hdul) if _is_2d_image(h)), None)
        if index is None:
            raise InputError(path, f"no 2-D image in any HDU (the weight map of {Path(image).name})")
        yield hdul, index


def weight_file_header(path: str | Path, image: str | Path = "the image") -> fits.Header:
    """Header of the weight map in a separate weight file (its first 2-D image), read without
    its pixels, so that a run refuses a bad weight file before it writes anything.

    Raises
    ------
    InputError
        Naming the weight file: missing; not a readable FITS file; no 2-D image; pixel data
        cut short (a truncated download; not told for gzip or bzip2 files without reading them).
    """
    path = Path(path)
    with _open_weight_file(path, image, memmap=True, lazy_load_hdus=True) as (hdul, index):
        info = hdul.fileinfo(index)
        header = hdul[index].header.copy()
    if info and not str(path).lower().endswith((".gz", ".bz2")):
        missing = info["datLoc"] + info["datSpan"] - path.stat().st_size
        if missing > 0:
            raise InputError(path, f"not a readable FITS file: its weight map lacks its last {missing:,} bytes (truncated)")
    return header


def read_weight_map(path: str | Path, shape: tuple[int, int], wcs: WCS | None = None, *,
                    image: str | Path = "the image") -> tuple[np.ndarray, dict]:
    """The pixels without data according to a separate weight file.

    Parameters
    ----------
    path : path-like
        FITS file (optionally compressed) whose first 2-D image is the weight, inverse-variance,
        variance or rms map of ``image`` (SWarp's and KiDS's ``.weight.fits``).
    shape : (int, int)
        The science image's ``(ny, nx)`` [pixels].
    wcs : astropy.wcs.WCS, optional
        The science image's celestial WCS, compared with the weight map's (see
        :func:`check_weight_header`).
    image : path-like
        The science image, named by errors.

    Returns
    -------
    no_data : ndarray of bool, shape ``shape``
        :func:`no_data_pixels` of the map.
    record : dict
        ``file``, ``hdu`` (extension name, else index) and ``kind`` (:func:`_weight_kind`).

    Raises
    ------
    InputError
        Naming the weight file: missing, unreadable (truncated or corrupt), no 2-D image,
        another shape or other pixels than the image's.
    """
    path = Path(path)
    with _open_weight_file(path, image, memmap=False) as (hdul, index):
        hdu = hdul[index]
        check_weight_header(hdu.header, shape, wcs, path, image)
        no_data = no_data_pixels(np.asarray(hdu.data).reshape(shape))
        name = _extname(hdu)
    return no_data, {"file": str(path), "hdu": name or index, "kind": _weight_kind(name, path)}


def separate_weight_files(images: Sequence[Path], weights: str | os.PathLike | Sequence[str | os.PathLike] | None,
                          weight_hdu: str | None, where: str) -> tuple[list[Path], list[Path]]:
    """The image files and the separate weight files (``--weights``) of a command.

    Parameters
    ----------
    images : sequence of Path
        The files the image patterns matched.
    weights : str or sequence of path-like, optional
        Glob patterns or files of the separate weight maps.
    weight_hdu : str, optional
        The ``--weight-hdu`` given, which ``weights`` replaces.
    where : str
        The image patterns, named by the error when they match weight files only.

    Returns
    -------
    images, weight_files : list of Path
        ``images`` without the files given as weight maps (an image pattern such as
        ``tile-r*.fits`` that also matches them means the science images), and the weight files
        (empty without ``weights``).

    Raises
    ------
    InputError
        Both ``weights`` and ``weight_hdu`` given; a weight pattern matching nothing; image
        patterns matching weight files only.
    """
    if weights is None:
        return list(images), []
    if weight_hdu is not None:
        raise InputError("--weight-hdu", "names an extension of the images' own files, which --weights replaces: give one "
                                         "of them")
    weight_files = expand_paths(weights, what="weight file", option="--weights")
    given_as_weights = set(weight_files)
    remaining = [p for p in images if p not in given_as_weights]
    if not remaining:
        raise InputError(where, "matches only files given as weight maps (--weights)")
    return remaining, weight_files


def _name_key(path: Path, marks: set[str]) -> tuple[str, ...]:
    """A file name without its FITS suffix and without the tokens in ``marks``."""
    tokens = re.split(r"[-_.]", _FITS_NAME_SUFFIX.sub("", path.name))
    return tuple(t for t in tokens if t.lower() not in marks)


def match_weight_files(images: Sequence[str | Path], weights: Sequence[str | Path]) -> list[Path]:
    """The weight file of each image, matched by name.

    An image and its weight file match when their names agree once the FITS suffix, the
    tokens marking a science image (``sci``, ``image``, ...) and those marking a weight map
    (``weight``, ``wei``, ``wht``, ``ivar``, ``var``, ``rms``, ...) are removed: KiDS
    ``X_r_SDSS.fits`` and ``X_r_SDSS.weight.fits``, ``X_r_sci.fits`` and ``X_r_wei.fits``,
    SWarp ``coadd.fits`` and ``coadd.weight.fits``, Legacy Surveys ``...-image-r.fits.fz``
    and ``...-invvar-r.fits.fz``; a weight file in another folder may keep the image's own name.
    Among several candidates the one in the image's folder is taken. One image and one weight
    file are paired whatever their names. Weight files matching no image are not used.

    Parameters
    ----------
    images, weights : sequence of path-like
        Image files and weight files (an image among ``weights`` is not its own weight map).

    Returns
    -------
    list of Path
        The weight file of each image, in the order of ``images``.

    Raises
    ------
    InputError
        An image with no weight file, or with several equally good ones.
    """
    images = [Path(p) for p in images]
    weights = [Path(p) for p in weights]
    if len(images) == 1 and len(weights) == 1 and images[0] != weights[0]:
        return weights
    marks = _SCIENCE_TOKENS | _WEIGHT_TOKENS
    by_key: dict[tuple[str, ...], list[Path]] = {}
    for weight in weights:
        by_key.setdefault(_name_key(weight, marks), []).append(weight)
    # Tiles in folders of their own share their names (DIR/*/tile-r.fits): a weight file beside
    # an image of its name is that image's, never another folder's.
    beside = {(image.parent, _name_key(image, marks)) for image in images}
    matched = []
    for image in images:
        key = _name_key(image, marks)
        candidates = [w for w in by_key.get(key, []) if w != image and (w.parent == image.parent or (w.parent, key) not in beside)]
        if len(candidates) > 1:
            candidates = [w for w in candidates if w.parent == image.parent] or candidates
        if not candidates:
            raise InputError(image, f"no weight file among the {len(weights)} given matches this image's name (looked for "
                                    f"names such as {_FITS_NAME_SUFFIX.sub('', image.name)}.weight.fits); give every image "
                                    "its weight map, or leave out --weights")
        if len(candidates) > 1:
            raise InputError(image, f"several weight files match this image ({', '.join(str(w) for w in candidates)}); "
                                    "which one is its weight map is not guessed")
        matched.append(candidates[0])
    return matched


def read_band_image(path: str | Path, band: str | None = None, *, known_bands: Sequence[str] = BAND_ORDER,
                    weights: str | Path | None = None, weight_hdu: str | None = None) -> BandImage:
    """Read one band image with its WCS; pixels without data are NaN.

    Pixels without data are those that are NaN or infinite in the file, and those its weight
    map marks as without data (:func:`no_data_pixels`: weight 0, variance or rms infinite, NaN
    or not positive). The weight map is ``weights`` when given, else the file's own weight HDU
    (:func:`find_weight_hdu`); ``weight_map`` of the result records which one was read.

    Parameters
    ----------
    path : path-like
        FITS file (optionally .gz / .bz2 / .fz compressed).
    band : str, optional
        Band name; read from the header (``FILTER``) or the file name if not given.
    known_bands : sequence of str
        Names looked for in the file name when the header has no filter.
    weights : path-like, optional
        A separate weight file of this image (:func:`read_weight_map`); it takes the place of
        any weight HDU in the image's own file.
    weight_hdu : str, optional
        Without ``weights``: the extension of the image's file holding its weight map, or
        ``"none"`` to read none; default, the one HDU whose name is in :data:`WEIGHT_MAPS`.

    Raises
    ------
    InputError
        Missing, truncated or corrupt file; no 2-D image; no celestial WCS; no band name;
        no finite pixel. Weight maps (naming the weight file): missing or unreadable; another
        shape or other pixels than the image's; several candidates in the file; every pixel
        marked as without data.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    with open_fits(path, memmap=False) as hdul:
        index = next((i for i, h in enumerate(hdul) if _is_2d_image(h)), None)
        if index is None:
            tail = _unparsed_tail(hdul, path)
            raise InputError(path, _TRUNCATED.format(tail=tail) if tail >= _BLOCK else "no 2-D image in any HDU")
        hdu = hdul[index]
        if hdu.data is None or hdu.data.size == 0:
            raise InputError(path, f"its image (HDU {index}) has no pixels (NAXIS1 = {hdu.header.get('NAXIS1')}, "
                                   f"NAXIS2 = {hdu.header.get('NAXIS2')})")
        # Axes of length 1 beyond the first two (NAXIS3 = 1) carry no pixels of their own.
        data = np.asarray(hdu.data, dtype=np.float32).reshape(hdu.data.shape[-2:])
        header = hdu.header.copy()
        check_one_sky_area(hdul, index, path)
        no_data, weight_map = None, None
        if weights is None:
            found = find_weight_hdu(hdul, index, path, weight_hdu)
            if found is not None:
                no_data = no_data_pixels(np.asarray(hdul[found].data).reshape(data.shape))
                name = _extname(hdul[found])
                weight_map = {"file": str(path), "hdu": name or found, "kind": _weight_kind(name, default="unknown")}
    wcs = celestial_wcs(header, path)
    if weights is not None:
        no_data, weight_map = read_weight_map(weights, data.shape, wcs, image=path)
    band = band or _band_from_header(header) or _band_from_name(path, known_bands)
    if band is None:
        raise InputError(path, "band name not found in the header (FILTER) or file name; give it explicitly")
    data = linear_pixels(data, header)
    if no_data is not None:
        if no_data.all():
            where = weights if weights is not None else path
            what = "" if weights is not None else f"its weight map (HDU {weight_map['hdu']}) "
            raise InputError(where, f"{what}marks every pixel of {Path(path).name} as without data (weight 0, or variance "
                                    "or rms infinite or 0): no pixel to cut")
        weight_map["no_data_pixels"] = int(np.count_nonzero(no_data))
        # Pipelines fill pixels without data with 0 or with garbage: as NaN they are missing for
        # the cut, the flags and the background estimate alike.
        data[no_data] = np.nan
        del no_data
    finite = np.isfinite(data)
    n_nan = int(data.size - np.count_nonzero(finite))
    if n_nan == data.size:
        raise InputError(path, "every pixel is NaN")
    if n_nan:
        data[~finite] = np.nan  # infinite pixels are no measurement either: flagged as NaN ones are
    unit, zero_point = header_flux_unit(header, path)
    psf_fwhm = header_seeing(header, wcs)
    saturation = _header_number(header, _SATURATION_KEYS, positive=True)
    saturated = np.empty((0, 2), np.float32)
    if np.isfinite(saturation):
        with np.errstate(invalid="ignore"):
            saturated = np.argwhere(data >= saturation)[:, ::-1].astype(np.float32)
    return BandImage(band=band, path=path, data=data, wcs=wcs, flux_unit=unit, zero_point=zero_point,
                     psf_fwhm=psf_fwhm, n_nan=n_nan,
                     survey=str(header.get("ORIGIN") or header.get("TELESCOP") or "").strip(),
                     saturation=saturation, saturated_pixels=saturated, weight_map=weight_map,
                     zero_point_note=zero_point_note(header, path))


def _as_list(patterns: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str | os.PathLike]:
    """The texts of an option given once or several times."""
    return [patterns] if isinstance(patterns, (str, os.PathLike)) else list(patterns)


def patterns_text(patterns: str | os.PathLike | Sequence[str | os.PathLike] | None) -> str:
    """The glob patterns of an option as one comma-separated text, for messages and records."""
    return "" if patterns is None else ",".join(str(p) for p in _as_list(patterns))


def expand_paths(patterns: str | os.PathLike | Sequence[str | os.PathLike], what: str = "file",
                 option: str | None = None) -> list[Path]:
    """Expand glob patterns into existing files, in pattern order, each pattern's matches sorted.

    ``patterns`` is one string or a sequence of them (an option given several times); each
    string may hold several patterns separated by commas.

    Raises
    ------
    InputError
        If a pattern matches nothing, or no pattern is given (blank text): the message names
        ``what`` was looked for, and ``option`` (the command-line option) where no pattern names it.
    """
    paths: list[Path] = []
    given = False
    for item in _as_list(patterns):
        text = str(item)
        # A path object, or a text naming files as it stands (a file name with a comma), is one
        # pattern; any other text is split at its commas. One glob per pattern.
        matches = sorted(glob.glob(text)) if text.strip() else []
        parts = [text] if matches or isinstance(item, os.PathLike) else [p.strip() for p in text.split(",") if p.strip()]
        for pattern in parts:
            given = True
            found = matches or sorted(glob.glob(pattern))
            if not found:
                raise InputError(pattern, f"no {what} matches this path or pattern")
            paths.extend(Path(m) for m in found)
    if not given:
        # Blank text would otherwise give no file at all, and a run without its inputs.
        raise InputError(option or f"{what} patterns", f"no pattern given: name the {what}s (glob patterns)")
    return paths


def expand_image_paths(patterns: str | Sequence[str], option: str | None = None) -> list[Path]:
    """:func:`expand_paths` of band images."""
    return expand_paths(patterns, what="image file", option=option)


def band_sort_key(band: str) -> tuple[int, str]:
    return (BAND_ORDER.index(band) if band in BAND_ORDER else len(BAND_ORDER), band)


def read_band_images(paths: Sequence[str | Path], bands: Sequence[str] | None = None, *, threads: int = 4,
                     background: str = "none", weights: Sequence[str | Path | None] | None = None,
                     weight_hdu: str | None = None, zero_points: float | Mapping[str, float] | None = None) -> list[BandImage]:
    """Read the band images of one tile, ordered by ``bands`` or by wavelength.

    Parameters
    ----------
    paths : sequence of path-like
        One file per band.
    bands : sequence of str, optional
        Wanted bands in output order. Each must be found among the files (a missing band is an
        error naming it); with ``len(bands) == len(paths)`` and no band names in the files, the
        names are assigned to the files in order.
    threads : int
        Files decompress in parallel threads (bz2 and zlib release the GIL).
    background : {"none", "sep"}
        Sky background removed from each image as it is read (see
        :func:`skysort.data.background.subtract_background`); ``none`` keeps the pixels as
        they are in the files.
    weights : sequence of path-like or None, optional
        The separate weight file of each of ``paths``, in the same order (None for a file
        without one; :func:`match_weight_files` pairs them by name). Files without one use
        their own weight HDU, if any (see :func:`read_band_image`).
    weight_hdu : str, optional
        The extension holding each file's weight map, or ``"none"`` (see :func:`read_band_image`).
    zero_points : float or mapping of str to float, optional
        AB magnitude of one pixel unit given by the user, replacing what the headers say: one
        value for every band, or per band (bands not named keep the header's). A band named
        that no file has is an :class:`InputError` on ``--zero-points``.
    """
    from .background import subtract_background

    paths = [Path(p) for p in paths]
    weights = list(weights) if weights is not None else [None] * len(paths)
    if len(weights) != len(paths):
        raise ValueError(f"{len(weights)} weight files for {len(paths)} images")
    weight_of = dict(zip(paths, weights))
    known = tuple(bands) if bands else BAND_ORDER
    repeated = sorted({b for b in known if known.count(b) > 1})
    if repeated:
        raise InputError("--bands", f"each band may appear once, got {', '.join(repeated)} more than once")

    def load(path: Path) -> BandImage:
        image = read_band_image(path, known_bands=known, weights=weight_of[path], weight_hdu=weight_hdu)
        return subtract_background(image, background, copy=False)

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(paths)))) as pool:
        images = list(pool.map(load, paths))
    by_band: dict[str, BandImage] = {}
    for image in images:
        if image.band in by_band:
            raise InputError(image.path, f"band {image.band!r} also comes from {by_band[image.band].path}")
        by_band[image.band] = image
    if bands:
        missing = [b for b in bands if b not in by_band]
        if missing:
            where = paths[0].parent if paths else Path(".")
            raise InputError(where, f"no image file for band(s) {missing} among {[p.name for p in paths]}")
    chosen = [by_band[b] for b in bands] if bands else [by_band[b] for b in sorted(by_band, key=band_sort_key)]
    given = given_zero_points(zero_points, [image.band for image in chosen])
    for image in chosen:
        if image.band in given:
            image.zero_point, image.zero_point_note = given[image.band], ""
    return chosen


def given_zero_points(zero_points: float | Mapping[str, float] | None, bands: Sequence[str]) -> dict[str, float]:
    """The user's ``--zero-points`` for ``bands``: one value for all, or per band.

    Raises
    ------
    InputError
        On ``--zero-points``: a band that is not among ``bands``, or a value that is not a
        finite number.
    """
    if zero_points is None:
        return {}
    values = {band: zero_points for band in bands} if isinstance(zero_points, (int, float)) else dict(zero_points)
    unknown = sorted(set(values) - set(bands))
    if unknown:
        raise InputError("--zero-points", f"band(s) {', '.join(unknown)} not among the images' bands ({', '.join(bands)})")
    for band, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError("--zero-points", f"{band}: expected a finite AB magnitude, got {value!r}")
    return {band: float(value) for band, value in values.items()}
