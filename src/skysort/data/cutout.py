"""Cutting aligned multi-band stamps around catalogue positions.

Alignment method
----------------
The stamps of every band share the pixel grid of the *reference band* (``r`` by default):

* In the reference band the stamp is a plain integer-pixel cut (no interpolation, so no
  correlated noise): the object's pixel ``(x, y)`` is rounded to the nearest pixel, which
  becomes stamp pixel ``(size // 2, size // 2)``. The residual sub-pixel offset is recorded in
  ``offset_x`` / ``offset_y`` (``x - round(x)``, in [-0.5, 0.5]).
* A band on exactly the reference band's pixel grid (:func:`same_pixel_grid`: same shape and
  same pixel-to-sky mapping) is cut in the same way, so its stamp holds its own pixels, NaN
  and image edges exactly where the reference band's stamp would hold them.
* Every other band is resampled onto that grid: the exact WCS maps the object's position from
  the reference image to the band image, and a local affine map (the Jacobian of
  reference-pixel -> sky -> band-pixel, by finite differences at the object) maps each stamp
  pixel. Pixel values are interpolated with a cubic B-spline (``scipy.ndimage``) and multiplied
  by the pixel-area ratio ``|det J|`` so that fluxes are conserved when pixel scales differ.
  The spline's prefilter is computed once for a whole band image of up to 2048 x 2048 pixels
  and serves all its stamps (:func:`resample_stamps`); a larger image, or stamps averaged
  over a box first (below), are resampled stamp by stamp from a window around each.
  Across a 64-pixel stamp the affine approximation departs from the full WCS by far less than
  0.01 px for survey-sized pixels.

Stamps may be asked at a pixel scale other than the reference band's (``pixel_scale``: a model
trained at another scale). Every band is then resampled as above onto a grid of that scale
centred on the object. Interpolation onto finer pixels than a band's own spreads each pixel's
noise over several output pixels: their noise is correlated and its rms per pixel falls as the
pixel area, whereas an image taken on the finer pixels would have independent noise whose rms
falls only as the square root of the area. White Gaussian noise is added to make up the
difference (rms ``sigma sqrt(a - a**2)`` for an area ratio ``a < 1`` and the band's noise rms
``sigma``: :func:`band_noise_rms`), drawn from a generator seeded by the object's position and
the band, so that a stamp stays the same whichever way and with whatever other objects it is
cut. Onto coarser pixels the band is first averaged over a box the size of a stamp pixel
(:func:`resample_stamp`), so that each stamp pixel holds the sum of the band pixels it covers,
as a coarser detector would: sampling alone would keep a band pixel's noise times their number.
A box whose edges cut through band pixels averages more of them, with partial weights, than
the area it covers, so there too white noise makes up the rms a detector pixel would hold.

An object whose stamp area holds a pixel at or above a band image's saturation level (header
``SATURATE`` or ``SATLEVEL``) is flagged ``SATURATED``; in a resampled band the area is the
stamp's square scaled to that band's pixels.

Objects near an edge are never shifted or dropped: stamp pixels outside a band's image are NaN,
and the object is flagged ``EDGE`` (and ``NAN_PIXELS``); an object entirely outside a band's
image gets ``MISSING_BAND``. NaN pixels inside an image stay NaN in the stamp (the spline never
spreads them beyond the pixels whose interpolation footprint touches them); pixels a weight map
marks as without data are NaN already in the image as read (:mod:`skysort.data.images`), so
they are cut and flagged as NaN pixels are.

:func:`cut_stamps` is the one cutting function: ``skysort cutout`` and the tiles streamed by
``skysort predict --tiles`` both call it, so an object gets the same stamp, pixel for pixel and
flag for flag, whichever way it is cut. Each object's stamp depends only on its own position,
never on the other objects cut with it.
"""

from __future__ import annotations

import zlib
from typing import Any, Iterator, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .flags import Flags
from .images import BandImage, pixel_to_world, world_to_pixel

#: Pixels of context around a stamp used by the cubic spline so that its prefilter is
#: unaffected by the cut.
_SPLINE_MARGIN = 6


def sky_to_pixel(image: BandImage, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel coordinates ``(x, y)`` of ICRS sky positions (degrees) in ``image``, whatever
    the frame and axis order of its WCS; NaN for positions with no pixel (see
    :func:`skysort.data.images.world_to_pixel`)."""
    return world_to_pixel(image.wcs, ra, dec)


def pixel_to_sky(image: BandImage, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS sky positions ``(ra, dec)`` in degrees of 0-based pixel coordinates of ``image``."""
    return pixel_to_world(image.wcs, x, y)


def off_image_safe(position: np.ndarray, extent: int, size: int) -> np.ndarray:
    """``position`` (0-based pixels along an axis of ``extent`` pixels) with non-finite values
    and values more than a stamp beyond the image replaced by a point just past the edge
    (``-size - 1`` or ``extent + size + 1``), so that a ``size``-pixel stamp there misses the image."""
    position = np.asarray(position, dtype=np.float64)
    return np.where(np.isfinite(position), np.clip(position, -size - 1, extent + size + 1), -size - 1)


def stamps_touch_image(x_pix: np.ndarray, y_pix: np.ndarray, shape: tuple[int, int], size: int) -> np.ndarray:
    """Whether the ``size``-pixel stamps centred on the nearest pixels to ``(x_pix, y_pix)``
    (0-based) share at least one pixel with an image of ``shape`` ``(ny, nx)``; False for
    non-finite positions."""
    ny, nx = shape
    x0 = np.rint(off_image_safe(x_pix, nx, size)) - size // 2
    y0 = np.rint(off_image_safe(y_pix, ny, size)) - size // 2
    return (x0 + size > 0) & (y0 + size > 0) & (x0 < nx) & (y0 < ny)


def same_pixel_grid(a, b) -> bool:
    """Whether two band images share one pixel grid exactly (then no resampling is needed).

    Their shapes and projection types must be equal and their WCSs must map the same pixels to
    the same sky positions (within 1e-6 px) at the corners, edges and centre: comparing the
    keywords alone misses the polynomial distortions that astropy folds into the projection
    (SCAMP's TPV terms on DECam and MegaCam images), which differ between bands.

    Parameters
    ----------
    a, b : BandImage or object with ``shape`` and ``wcs``
        The images (or tiles: only their shapes and WCSs are read).

    Returns
    -------
    bool
    """
    if a.shape != b.shape:
        return False
    wa, wb = a.wcs.wcs, b.wcs.wcs
    if list(wa.ctype) != list(wb.ctype):
        return False
    if not (np.allclose(wa.crpix, wb.crpix, rtol=0, atol=1e-6) and np.allclose(wa.crval, wb.crval, rtol=0, atol=1e-10)
            and np.allclose(a.wcs.pixel_scale_matrix, b.wcs.pixel_scale_matrix, rtol=1e-9, atol=0)):
        return False
    ny, nx = a.shape[-2:]
    x, y = np.meshgrid(np.linspace(0, nx - 1, 5), np.linspace(0, ny - 1, 5))
    ra, dec = a.wcs.all_pix2world(x.ravel(), y.ravel(), 0)
    bx, by = b.wcs.all_world2pix(ra, dec, 0)
    return bool(np.all(np.hypot(bx - x.ravel(), by - y.ravel()) < 1e-6))


def aligned_bands(images: Sequence, reference: int) -> list[bool]:
    """Per band, whether it lies on the pixel grid of ``images[reference]``
    (:func:`same_pixel_grid`; the reference band always does): those bands are cut pixel for
    pixel by :func:`cut_stamps`, the others resampled."""
    return [b == reference or same_pixel_grid(images[reference], image) for b, image in enumerate(images)]


def cut_integer(data: np.ndarray, x_pix: np.ndarray, y_pix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer-pixel stamps of ``data`` centred on the nearest pixels to ``(x_pix, y_pix)``.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        Image.
    x_pix, y_pix : ndarray, shape (n,)
        0-based column and row positions.
    size : int
        Stamp side in pixels; the object's pixel lands on stamp pixel ``size // 2``.

    Returns
    -------
    stamps : ndarray, shape (n, size, size), float32
        NaN where the stamp extends beyond the image.
    edge : ndarray of bool, shape (n,)
        Whether the stamp extends beyond the image.
    """
    ny, nx = data.shape
    # Positions far off the image (or not finite: beyond the projection's hemisphere) are moved
    # to just beyond its edge, where the stamp is still wholly off it, so the integer casts and
    # slice arithmetic below stay in range.
    x_pix = off_image_safe(x_pix, nx, size)
    y_pix = off_image_safe(y_pix, ny, size)
    x0 = np.rint(x_pix).astype(np.int64) - size // 2
    y0 = np.rint(y_pix).astype(np.int64) - size // 2
    edge = (x0 < 0) | (y0 < 0) | (x0 + size > nx) | (y0 + size > ny)
    stamps = np.full((len(x0), size, size), np.nan, dtype=np.float32)
    # Row-by-row slice copies (memcpy) beat a vectorised fancy-index gather by about 2x here.
    for k in np.flatnonzero(~edge):
        stamps[k] = data[y0[k] : y0[k] + size, x0[k] : x0[k] + size]
    for k in np.flatnonzero(edge):
        ys, xs = slice(max(y0[k], 0), min(y0[k] + size, ny)), slice(max(x0[k], 0), min(x0[k] + size, nx))
        if ys.start < ys.stop and xs.start < xs.stop:
            stamps[k, ys.start - y0[k] : ys.stop - y0[k], xs.start - x0[k] : xs.stop - x0[k]] = data[ys, xs]
    return stamps, edge


def local_jacobians(reference: BandImage, band: BandImage, x: np.ndarray, y: np.ndarray, step: float = 1.0) -> np.ndarray:
    """d(band pixel)/d(reference pixel) at reference pixels ``(x, y)``, by central differences.

    Returns an array of shape (n, 2, 2): ``[[dbx/dx, dbx/dy], [dby/dx, dby/dy]]`` per object,
    evaluated through the full WCS (distortions included) at each object.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xs = np.concatenate([x - step, x + step, x, x])
    ys = np.concatenate([y, y, y - step, y + step])
    ra, dec = pixel_to_sky(reference, xs, ys)
    bx, by = sky_to_pixel(band, ra, dec)
    bx, by = bx.reshape(4, -1), by.reshape(4, -1)
    jac = np.empty((len(x), 2, 2))
    jac[:, 0, 0] = (bx[1] - bx[0]) / (2 * step)
    jac[:, 1, 0] = (by[1] - by[0]) / (2 * step)
    jac[:, 0, 1] = (bx[3] - bx[2]) / (2 * step)
    jac[:, 1, 1] = (by[3] - by[2]) / (2 * step)
    return jac


def stamp_footprint(size: int, pixel_scale: float | None, image_scale: float) -> tuple[float, int]:
    """Stamp pixels at ``pixel_scale`` [arcsec/px] per pixel of an image at ``image_scale``, and
    the stamp's side in the image's pixels: ``(1.0, size)`` when the stamps keep the image's
    pixels (``pixel_scale`` None or within 1e-6 of ``image_scale``), which are then cut, not
    resampled."""
    scale = 1.0 if pixel_scale is None else float(pixel_scale) / image_scale
    if abs(scale - 1.0) <= 1e-6:
        return 1.0, size
    return scale, int(np.ceil(size * scale))


def band_noise_rms(image: BandImage) -> float:
    """Per-pixel noise rms of a band image [its flux unit]: the global rms of the sky background
    estimate when one was made (``sep``, skysort's default), else 1.4826 times the median
    absolute deviation of up to about 250,000 of its finite pixels taken at a fixed stride
    (sources make it slightly high); NaN when too few pixels are finite."""
    rms = (image.background or {}).get("global_rms")
    if rms is not None and np.isfinite(rms) and rms > 0:
        return float(rms)
    values = image.data.ravel()
    sample = values[:: max(1, values.size // 250_000)]
    sample = sample[np.isfinite(sample)]
    if sample.size < 100:
        return float("nan")
    return float(1.4826 * np.median(np.abs(sample - np.median(sample))))


def _added_noise(stamp: np.ndarray, rms: float, area: float, x: float, y: float, band: int) -> None:
    """Add to ``stamp`` (in place) the white noise that makes up for the noise a band loses when
    resampled onto pixels of ``area`` of its own (see the module notes): a detector pixel of
    that area would hold noise of variance ``rms**2 * area``; the resampled one keeps
    ``rms**2 * area**2`` times the box's (:func:`resample_stamp`) variance factor, or less where
    the spline interpolates between pixels. The generator is seeded by the object's
    reference-band position ``(x, y)`` [px] and the band's index."""
    if not (np.isfinite(rms) and rms > 0 and area > 0):
        return
    kept = area**2 * (np.sum(_box_kernel(np.sqrt(area)) ** 2) ** 2 if area > 1 else 1.0)
    if kept >= area:
        return
    seed = [int(np.floor(x * 1024)) & 0xFFFFFFFF, int(np.floor(y * 1024)) & 0xFFFFFFFF, int(band)]
    stamp += (rms * np.sqrt(area - kept) * np.random.default_rng(seed).standard_normal(stamp.shape)).astype(stamp.dtype)


def _box_kernel(side: float) -> np.ndarray:
    """A centred 1-D box of width ``side`` >= 1 [pixels], its end pixels weighted by the fraction
    of them it covers, normalised to sum to 1."""
    half = int(np.ceil((side - 1.0) / 2.0))
    kernel = np.ones(2 * half + 1)
    if half:
        kernel[0] = kernel[-1] = (side - (2 * half - 1)) / 2.0
    return kernel / kernel.sum()


def resample_stamp(data: np.ndarray, centre: tuple[float, float], jacobian: np.ndarray, grid: np.ndarray,
                   box: float = 1.0) -> tuple[np.ndarray, bool]:
    """Sample ``data`` at ``centre + jacobian @ grid`` with a NaN-aware cubic spline.

    Parameters
    ----------
    data : ndarray (ny, nx)
        Band image.
    centre : (float, float)
        Band pixel ``(x, y)`` corresponding to grid offset (0, 0).
    jacobian : ndarray (2, 2)
        d(band x, band y) / d(stamp column, stamp row).
    grid : ndarray (2, size, size)
        Offsets ``(dx, dy)`` of each stamp pixel from the object in stamp pixels (reference
        pixels when the stamps keep the reference grid's scale).
    box : float
        Side [band pixels] of a square box the band is averaged over before it is sampled, when
        more than 1: a stamp pixel covering that many band pixels then holds their sum, as a
        coarser detector pixel would, rather than a sample of them (whose noise would be as
        large as one band pixel's times their number, and whose fine structure would alias).

    Returns
    -------
    stamp : ndarray (size, size) float32
        Interpolated values times the pixel-area ratio; NaN outside the image or next to NaN.
    edge : bool
        Whether part of the stamp lies outside the image.
    """
    ny, nx = data.shape
    kernel = _box_kernel(box) if box > 1.0 else None
    reach = 0 if kernel is None else len(kernel) // 2  # band pixels a box adds on each side
    margin = _SPLINE_MARGIN + reach
    bx = centre[0] + jacobian[0, 0] * grid[0] + jacobian[0, 1] * grid[1]
    by = centre[1] + jacobian[1, 0] * grid[0] + jacobian[1, 1] * grid[1]
    x_lo = int(np.floor(bx.min())) - margin
    y_lo = int(np.floor(by.min())) - margin
    x_hi = int(np.ceil(bx.max())) + margin + 1
    y_hi = int(np.ceil(by.max())) + margin + 1
    window = np.full((y_hi - y_lo, x_hi - x_lo), np.nan, dtype=np.float32)
    ys, xs = slice(max(y_lo, 0), min(y_hi, ny)), slice(max(x_lo, 0), min(x_hi, nx))
    if ys.start < ys.stop and xs.start < xs.stop:
        window[ys.start - y_lo : ys.stop - y_lo, xs.start - x_lo : xs.stop - x_lo] = data[ys, xs]
    coords = np.stack([by - y_lo, bx - x_lo])
    off_image = np.ones(window.shape, dtype=bool)
    off_image[ys.start - y_lo : ys.stop - y_lo, xs.start - x_lo : xs.stop - x_lo] = False
    bad = ~np.isfinite(window)
    if bad.all():
        return np.full(grid.shape[1:], np.nan, dtype=np.float32), True

    def averaged(values: np.ndarray) -> np.ndarray:
        if kernel is None:
            return values
        return ndimage.convolve1d(ndimage.convolve1d(values, kernel, axis=0, mode="nearest"), kernel, axis=1, mode="nearest")

    if not bad.any():
        return (ndimage.map_coordinates(averaged(window), coords, order=3, mode="nearest")
                * abs(np.linalg.det(jacobian))).astype(np.float32), False
    # The spline prefilter is global, so NaN would poison the whole stamp: interpolate with bad
    # pixels at 0, then blank every output pixel whose cubic footprint (4x4), widened by the
    # box, touches one.
    values = ndimage.map_coordinates(averaged(np.where(bad, 0.0, window)), coords, order=3, mode="nearest")

    beyond_edge = _touches(off_image, coords, reach)
    values[beyond_edge | _touches(bad & ~off_image, coords, reach)] = np.nan
    return (values * abs(np.linalg.det(jacobian))).astype(np.float32), bool(beyond_edge.any())


#: Band images up to this many pixels are prefiltered whole for :func:`resample_stamps`
#: (16 MB of coefficients at this size); larger ones are resampled stamp by stamp.
WHOLE_PREFILTER_PIXELS = 2048 * 2048
#: Zero pixels around the image in its whole prefilter, as beyond the edge of a one-stamp window.
_PREFILTER_PAD = 8
# Whole-image prefilters of the band images being cut, by the id of their pixel array, with a
# weak reference that tells when the array is gone (a tile evicted from a reader's cache) and
# a checksum of its pixels.
_PREFILTERS: dict[int, tuple[Any, int, tuple[np.ndarray, np.ndarray | None]]] = {}


def _whole_prefilter(data: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The cubic-spline coefficients of ``data`` padded with :data:`_PREFILTER_PAD` zero pixels
    (its NaN pixels 0 too), and its NaN mask on the padded grid grown as :func:`_touches` grows
    it (None: no NaN pixel); computed once per array."""
    import weakref

    for key in [key for key, (ref, _, _) in _PREFILTERS.items() if ref() is None]:
        del _PREFILTERS[key]
    # A checksum of the pixels (3 ms for an SDSS frame) so that pixels changed in place since
    # (by a caller of the Python API) are prefiltered again rather than served stale.
    checksum = zlib.adler32(np.ascontiguousarray(data).view(np.uint8))
    cached = _PREFILTERS.get(id(data))
    if cached is not None and cached[0]() is data and cached[1] == checksum:
        return cached[2]
    pad = _PREFILTER_PAD
    padded = np.zeros((data.shape[0] + 2 * pad, data.shape[1] + 2 * pad), dtype=np.float64)
    padded[pad:-pad, pad:-pad] = data
    bad = ~np.isfinite(padded)
    grown_bad = None
    if bad.any():
        padded[bad] = 0.0
        grown_bad = ndimage.binary_dilation(bad).astype(np.float32)
    # float32 coefficients, as the pixels are: the cache then holds as many bytes as the image.
    result = (ndimage.spline_filter(padded, order=3, mode="nearest", output=np.float32), grown_bad)
    _PREFILTERS[id(data)] = (weakref.ref(data), checksum, result)
    return result


def resample_stamps(data: np.ndarray, centres: np.ndarray, jacobians: np.ndarray,
                    grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resample_stamp` (no box average) for many stamps of one band at once.

    A band image of up to :data:`WHOLE_PREFILTER_PIXELS` pixels is prefiltered for the cubic
    spline once, whole, and every stamp is sampled from it, where one call per stamp spent
    most of its time on its own window's prefilter and the per-call work (about 0.2 ms a 24-px
    stamp). Pixels beyond the image's edge and NaN pixels count as 0 in the prefilter and
    blank the samples whose footprint touches them, as in :func:`resample_stamp`. A stamp does
    not depend on which other objects are cut with it. The whole-image prefilter has no window
    edge a few pixels from the stamp, so values differ from :func:`resample_stamp`'s by parts in
    1e5 of the band's pixel spread (up to a few parts in 1e3 beside bright stars). A larger
    image is resampled stamp by stamp.

    Parameters
    ----------
    data : ndarray (ny, nx)
        Band image.
    centres : ndarray (n, 2)
        Band pixel ``(x, y)`` of each stamp's grid offset (0, 0).
    jacobians : ndarray (n, 2, 2)
        d(band x, band y) / d(stamp column, stamp row) of each stamp.
    grids : ndarray (n, 2, size, size)
        Offsets ``(dx, dy)`` of each stamp's pixels from its object, in stamp pixels.

    Returns
    -------
    stamps : ndarray (n, size, size) float32
        As :func:`resample_stamp`'s.
    edge : ndarray (n,) bool
        Whether part of each stamp lies outside the image.
    """
    n = len(centres)
    if data.size > WHOLE_PREFILTER_PIXELS or n == 0:
        results = [resample_stamp(data, tuple(centres[k]), jacobians[k], grids[k]) for k in range(n)]
        return (np.stack([r[0] for r in results]) if n else np.zeros((0, *grids.shape[2:]), np.float32),
                np.array([r[1] for r in results], dtype=bool))
    coefficients, grown_bad = _whole_prefilter(data)
    ny, nx = data.shape
    pad = _PREFILTER_PAD
    stamps = np.empty((n, *grids.shape[2:]), dtype=np.float32)
    edge = np.zeros(n, dtype=bool)
    area = np.abs(np.linalg.det(jacobians))
    for part in iter_chunks(n, 256):  # bounds the memory of the sample coordinates
        j, g, c = jacobians[part], grids[part], centres[part]
        bx = c[:, 0, None, None] + j[:, 0, 0, None, None] * g[:, 0] + j[:, 0, 1, None, None] * g[:, 1] + pad
        by = c[:, 1, None, None] + j[:, 1, 0, None, None] * g[:, 0] + j[:, 1, 1, None, None] * g[:, 1] + pad
        coords = np.stack([by.ravel(), bx.ravel()])
        values = ndimage.map_coordinates(coefficients, coords, order=3, mode="nearest", prefilter=False).reshape(bx.shape)
        # What _touches gives for the pixels beyond the edge, without a mask: the footprint of a
        # sample (its linear neighbours in the mask grown by one pixel) touches them within one
        # pixel of the image's first or last row or column.
        beyond_edge = (bx < pad + 1) | (bx > pad + nx - 2) | (by < pad + 1) | (by > pad + ny - 2)
        blank = beyond_edge
        if grown_bad is not None:
            blank = blank | (ndimage.map_coordinates(grown_bad, coords, order=1, mode="nearest") > 0).reshape(bx.shape)
        values[blank] = np.nan
        stamps[part] = values * area[part, None, None]
        edge[part] = beyond_edge.any(axis=(1, 2))
    return stamps, edge


def _touches(mask: np.ndarray, coords: np.ndarray, reach: int = 0) -> np.ndarray:
    """Whether the cubic footprint (4 x 4 pixels, widened by ``reach``) of each point of
    ``coords`` (row, column) touches a pixel of ``mask``."""
    if not mask.any():
        return np.zeros(coords.shape[1:], dtype=bool)
    grown = ndimage.binary_dilation(mask, iterations=1 + reach).astype(np.float32)
    return ndimage.map_coordinates(grown, coords, order=1, mode="nearest") > 0


def saturated_in_stamps(image: BandImage, x: np.ndarray, y: np.ndarray, half_width: float) -> np.ndarray:
    """Whether each square of half-side ``half_width`` [pixels of ``image``] centred on
    ``(x, y)`` [0-based pixels of ``image``] holds one of ``image.saturated_pixels``."""
    x, y = np.atleast_1d(x), np.atleast_1d(y)
    found = np.zeros(len(x), bool)
    if not len(image.saturated_pixels) or not len(x):
        return found
    from scipy.spatial import cKDTree

    ok = np.isfinite(x) & np.isfinite(y)
    # Chebyshev distance (p = inf): the stamp is a square, not a disc.
    counts = cKDTree(image.saturated_pixels).query_ball_point(np.c_[x[ok], y[ok]], r=half_width, p=np.inf,
                                                               return_length=True)
    found[ok] = np.asarray(counts) > 0
    return found


def cut_stamps(
    images: Sequence[BandImage],
    x_ref: np.ndarray,
    y_ref: np.ndarray,
    size: int = 64,
    reference: int = 0,
    aligned: Sequence[bool] | None = None,
    pixel_scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned multi-band stamps around reference-band pixel positions.

    Parameters
    ----------
    images : sequence of BandImage
        The tile's bands, in output order.
    x_ref, y_ref : ndarray (n,)
        0-based object positions in the reference band's pixels.
    size : int
        Stamp side in pixels (reference-band pixels).
    reference : int
        Index in ``images`` of the reference band.
    aligned : sequence of bool, optional
        Per band, whether it lies on the reference band's pixel grid (:func:`same_pixel_grid`),
        which is then cut pixel for pixel rather than resampled; the reference band always is.
        Found from the images when not given; a caller cutting one tile chunk by chunk passes
        what it found once.
    pixel_scale : float, optional
        Pixel scale of the stamps [arcsec/px] when it should differ from the reference band's
        (a model trained at another scale): then every band, the reference one too, is
        resampled through its WCS onto a grid of this scale centred on each object, and
        ``size`` counts pixels of that grid. None (or within 1e-6 of the reference band's
        scale): the reference band's own pixels.

    Returns
    -------
    stamps : ndarray (n, bands, size, size) float32
        In each band's flux unit per stamp pixel (per reference pixel without ``pixel_scale``).
    flags : ndarray (n,) uint32
        :class:`~skysort.data.flags.Flags` bits (EDGE, NAN_PIXELS, MISSING_BAND, SATURATED).

    Raises
    ------
    InputError
        Naming the reference band's file, when stamps at ``pixel_scale`` would span more than
        twice the image's side.
    """
    ref = images[reference]
    if aligned is None:
        aligned = aligned_bands(images, reference)
    if len(aligned) != len(images):
        raise ValueError(f"aligned gives {len(aligned)} bands for {len(images)} images")
    # Stamp pixels per reference pixel (1: the reference grid is cut as it is), and the stamp's
    # side on that grid, which decides whether it touches the image.
    scale, footprint = stamp_footprint(size, pixel_scale, ref.pixel_scale)
    rescaled = scale != 1.0
    aligned = [not rescaled and (bool(a) or b == reference) for b, a in enumerate(aligned)]
    if rescaled and footprint > 2 * max(ref.data.shape):
        # Each stamp would be mostly padding, and its resampling window would not fit in memory.
        raise InputError(ref.path, f"stamps of {size} px at {pixel_scale:g}\"/px would span {footprint} of its pixels "
                                   f"({ref.pixel_scale:.4g}\"/px), more than twice its side: its pixel scale is too far "
                                   "from the stamps'")
    x_ref = off_image_safe(np.atleast_1d(x_ref), ref.data.shape[1], footprint)
    y_ref = off_image_safe(np.atleast_1d(y_ref), ref.data.shape[0], footprint)
    n = len(x_ref)
    stamps = np.empty((n, len(images), size, size), dtype=np.float32)
    flags = np.zeros(n, dtype=np.uint32)
    for b in np.flatnonzero(aligned):
        stamps[:, b], edge = cut_integer(images[b].data, x_ref, y_ref, size)
        flags[edge] |= np.uint32(Flags.EDGE)
        flags[saturated_in_stamps(images[b], x_ref, y_ref, size / 2)] |= np.uint32(Flags.SATURATED)
    # Offsets of every stamp pixel from the object, in stamp pixels (x = column, y = row): on
    # the reference grid the object's nearest pixel is the stamp's pixel size // 2, as for the
    # integer cut; on a grid of another scale the object is that pixel's centre.
    centre_x = np.rint(x_ref) - size // 2 if not rescaled else x_ref - size // 2
    centre_y = np.rint(y_ref) - size // 2 if not rescaled else y_ref - size // 2
    # A stamp wholly off the reference image stays NaN in every band: its sky position may lie
    # outside the other bands' projections too.
    wholly_off = ~stamps_touch_image(x_ref, y_ref, ref.data.shape, footprint)
    pixel_index = np.arange(size, dtype=np.float64)
    other_bands = [b for b in range(len(images)) if not aligned[b]]
    if other_bands and n:
        ra, dec = pixel_to_sky(ref, x_ref, y_ref)
    for b in other_bands:
        band = images[b]
        if b == reference:
            bx, by, jacobians = x_ref, y_ref, np.broadcast_to(np.eye(2), (n, 2, 2))
        else:
            bx, by = sky_to_pixel(band, ra, dec)
            jacobians = local_jacobians(ref, band, x_ref, y_ref)
        # d(band pixel) / d(stamp pixel); its determinant makes the flux per stamp pixel.
        jacobians = jacobians * scale
        noise_rms = band_noise_rms(band) if rescaled else float("nan")
        flags[saturated_in_stamps(band, bx, by, footprint / 2 * ref.pixel_scale / band.pixel_scale)] |= np.uint32(Flags.SATURATED)
        stamps[wholly_off, b] = np.nan
        areas = np.abs(np.linalg.det(jacobians))  # band pixels per stamp pixel
        # Stamps onto pixels no coarser than the band's are sampled together; a box average
        # (coarser stamp pixels) has a kernel of each stamp's own width.
        together = ~wholly_off & ~(rescaled & (areas > 1.0))
        if together.any():
            k = np.flatnonzero(together)
            grids = np.stack([np.broadcast_to((centre_x[k] - x_ref[k])[:, None, None] + pixel_index[None, None, :], (len(k), size, size)),
                              np.broadcast_to((centre_y[k] - y_ref[k])[:, None, None] + pixel_index[None, :, None], (len(k), size, size))],
                             axis=1)
            stamps[k, b], outside = resample_stamps(band.data, np.c_[bx[k], by[k]], np.asarray(jacobians[k]), grids)
            flags[k[outside]] |= np.uint32(Flags.EDGE)
        for k in np.flatnonzero(~wholly_off & ~together):
            grid = np.stack(np.meshgrid(centre_x[k] + pixel_index - x_ref[k], centre_y[k] + pixel_index - y_ref[k]))
            stamp, outside = resample_stamp(band.data, (bx[k], by[k]), jacobians[k], grid, box=np.sqrt(areas[k]))
            stamps[k, b] = stamp
            if outside:
                flags[k] |= np.uint32(Flags.EDGE)
        if rescaled:
            for k in np.flatnonzero(~wholly_off):
                _added_noise(stamps[k, b], noise_rms, areas[k], x_ref[k], y_ref[k], b)
    nan_any = np.isnan(stamps).any(axis=(2, 3))
    flags[nan_any.any(axis=1)] |= np.uint32(Flags.NAN_PIXELS)
    flags[np.isnan(stamps).all(axis=(2, 3)).any(axis=1)] |= np.uint32(Flags.MISSING_BAND)
    return stamps, flags


def centre_crop(images, size: int | tuple[int, int]):
    """The central pixels of stamps ``(..., H, W)`` (NumPy arrays or torch tensors): ``size`` x
    ``size`` (or ``(height, width)``).

    Stamps put the object on pixel ``H // 2``; the crop keeps it on pixel ``size // 2`` when
    ``H - size`` is even (odd differences shift it by half a pixel, as any centred crop must).
    A view, not a copy.
    """
    height, width = (size, size) if np.isscalar(size) else tuple(size)
    h, w = images.shape[-2:]
    top, left = (h - height) // 2, (w - width) // 2
    return images[..., top : top + height, left : left + width]


def iter_chunks(n: int, chunk: int) -> Iterator[slice]:
    """Consecutive slices of at most ``chunk`` items covering ``range(n)``."""
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))
