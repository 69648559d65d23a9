"""Point-spread functions for the survey simulator (GalSim objects; sizes in arcsec).

Three PSF families are available through :func:`make_psf`:

``"moffat"``
    ``galsim.Moffat(beta, fwhm)``; ``beta`` defaults to 3.5, typical of ground-based seeing
    with some optics.
``"kolmogorov"``
    ``galsim.Kolmogorov(fwhm)``, pure atmospheric turbulence.
``"cfis"``
    A Moffat with ``beta = 4.765`` convolved with a Kolmogorov, the CFIS-like PSF used for
    BlendHunter's simulations. Both components get the same FWHM, chosen so that the
    *convolved* profile has the requested total FWHM.

Every PSF can carry a small shear ``(g1, g2)`` (reduced shear, GalSim convention) standing for
optical and tracking ellipticity; :func:`random_psf_shear` draws one. PSF objects and their
images are cached (:func:`make_psf` and :func:`psf_image` are memoised on rounded parameters),
because GalSim's first draw of a profile builds interpolation tables that cost far more than
later draws.
"""

from __future__ import annotations

import functools

import numpy as np

#: Moffat slope of the CFIS-like PSF (BlendHunter).
CFIS_MOFFAT_BETA = 4.765

PSF_KINDS = ("moffat", "kolmogorov", "cfis")


def _gsparams():
    import galsim

    # Defaults except a looser folding threshold: PSF images are at most a few hundred
    # pixels and the default 5e-3 already bounds aliasing far below the noise.
    return galsim.GSParams(folding_threshold=5e-3, maxk_threshold=1e-3)


@functools.lru_cache(maxsize=None)
def _component_ratio(beta: float) -> float:
    """FWHM of each Moffat(beta) and Kolmogorov component relative to their convolution's FWHM."""
    import galsim
    from scipy.optimize import brentq

    def total_fwhm(c: float) -> float:
        prof = galsim.Convolve(galsim.Moffat(beta=beta, fwhm=c), galsim.Kolmogorov(fwhm=c))
        img = prof.drawImage(nx=161, ny=161, scale=0.0125, method="no_pixel").array
        return measure_fwhm(img, 0.0125)

    # Both components scale together, so one ratio serves every target FWHM.
    return brentq(lambda c: total_fwhm(c) - 1.0, 0.4, 1.0, xtol=1e-4)


def _key(x: float) -> float:
    # Cache keys are rounded so that float noise does not defeat the cache.
    return round(float(x), 6)


def make_psf(kind: str = "moffat", fwhm: float = 0.7, g1: float = 0.0, g2: float = 0.0,
             beta: float | None = None):
    """A PSF as a ``galsim.GSObject`` with unit flux.

    Parameters
    ----------
    kind : {"moffat", "kolmogorov", "cfis"}
        PSF family (see the module docstring).
    fwhm : float
        Full width at half maximum of the (round) PSF, arcsec. For ``"cfis"`` this is the FWHM
        of the Moffat * Kolmogorov convolution.
    g1, g2 : float
        Reduced shear applied to the PSF (ellipticity ``|g| = (a - b) / (a + b)``); area
        preserving, so the FWHM of the round profile is the geometric-mean FWHM.
    beta : float, optional
        Moffat slope; default 3.5 for ``"moffat"`` and 4.765 for ``"cfis"``.

    Returns
    -------
    galsim.GSObject
        Cached: equal arguments return the same object.
    """
    return _make_psf(kind, _key(fwhm), _key(g1), _key(g2), None if beta is None else _key(beta))


@functools.lru_cache(maxsize=256)
def _make_psf(kind, fwhm, g1, g2, beta):
    import galsim

    if not fwhm > 0:
        raise ValueError(f"PSF FWHM must be positive, got {fwhm}")
    gsp = _gsparams()
    if kind == "moffat":
        psf = galsim.Moffat(beta=3.5 if beta is None else beta, fwhm=fwhm, gsparams=gsp)
    elif kind == "kolmogorov":
        psf = galsim.Kolmogorov(fwhm=fwhm, gsparams=gsp)
    elif kind == "cfis":
        beta = CFIS_MOFFAT_BETA if beta is None else beta
        c = _component_ratio(beta)
        psf = galsim.Convolve(galsim.Moffat(beta=beta, fwhm=c * fwhm, gsparams=gsp),
                              galsim.Kolmogorov(fwhm=c * fwhm, gsparams=gsp), gsparams=gsp)
    else:
        raise ValueError(f"unknown PSF kind {kind!r}; expected one of {PSF_KINDS}")
    if g1 or g2:
        psf = psf.shear(g1=g1, g2=g2)
    return psf


def psf_image(kind: str, fwhm: float, pixel_scale: float, size: int, g1: float = 0.0,
              g2: float = 0.0, beta: float | None = None) -> np.ndarray:
    """Pixel-integrated image of a PSF, normalised to unit sum over an infinite plane.

    Parameters
    ----------
    kind, fwhm, g1, g2, beta
        As :func:`make_psf` (fwhm in arcsec).
    pixel_scale : float
        Arcsec per pixel.
    size : int
        Image side, pixels; the PSF centre is at the image's true centre.

    Returns
    -------
    ndarray of float32, shape (size, size)
        Read-only (cached; copy before modifying).
    """
    return _psf_image(kind, _key(fwhm), _key(pixel_scale), int(size), _key(g1), _key(g2),
                      None if beta is None else _key(beta))


@functools.lru_cache(maxsize=256)
def _psf_image(kind, fwhm, pixel_scale, size, g1, g2, beta):
    img = make_psf(kind, fwhm, g1, g2, beta).drawImage(nx=size, ny=size, scale=pixel_scale).array
    img = img.astype(np.float32)
    img.setflags(write=False)
    return img


def random_psf_shear(rng: np.random.Generator, sigma: float = 0.02, gmax: float = 0.1
                     ) -> tuple[float, float]:
    """Draw a small PSF shear ``(g1, g2)``: Gaussian components of width ``sigma``, |g| <= gmax."""
    g1, g2 = rng.normal(0.0, sigma, 2)
    g = np.hypot(g1, g2)
    if g > gmax:
        g1, g2 = g1 * gmax / g, g2 * gmax / g
    return float(g1), float(g2)


def seeing_fwhm(wavelength: np.ndarray | float, fwhm_ref: float, wavelength_ref: float,
                exponent: float = -0.2) -> np.ndarray:
    """Seeing FWHM at other wavelengths, arcsec, from a reference band.

    Kolmogorov turbulence gives ``FWHM ∝ λ^(-1/5)``; pass measured per-band values instead when
    a survey publishes them (the renderer takes one FWHM per band either way).

    Parameters
    ----------
    wavelength : float or ndarray
        Effective wavelengths, any unit (same as ``wavelength_ref``).
    fwhm_ref : float
        FWHM at ``wavelength_ref``, arcsec.
    wavelength_ref : float
        Reference wavelength.
    exponent : float
        Power-law index of FWHM with wavelength.
    """
    return fwhm_ref * (np.asarray(wavelength, float) / wavelength_ref) ** exponent


def measure_fwhm(image: np.ndarray, pixel_scale: float) -> float:
    """FWHM of a single-peaked profile in an image, arcsec.

    Counts the pixels above half the maximum pixel and returns the diameter of a disc of that
    area, i.e. the geometric-mean FWHM of an elliptical profile. Accurate to ~1% when the FWHM
    spans at least ~8 pixels; use a finely sampled drawing to measure a PSF.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Background-free image.
    pixel_scale : float
        Arcsec per pixel.
    """
    img = np.asarray(image, float)
    peak = img.max()
    if not peak > 0:
        raise ValueError("image has no positive pixel")
    # Linear interpolation of each pixel's fractional coverage would refine this; at >= 8 px per
    # FWHM the boundary pixels' half-in/half-out errors already average out below 1%.
    area = np.count_nonzero(img >= 0.5 * peak)
    return float(2.0 * np.sqrt(area / np.pi) * pixel_scale)
