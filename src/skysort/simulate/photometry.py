"""Catalogue photometry of simulated sources: true and observed AB magnitudes with errors.

Noise model
-----------
Sky-limited: in each band the 1-sigma error of a total flux is ``sigma_f = f5 / 5`` where
``f5`` is the flux of the band's 5-sigma depth (:meth:`SurveyPreset.flux_sigma`), so a
source at the depth is detected at exactly S/N = 5. A calibration floor
``survey.mag_error_floor`` [mag] is added in quadrature, as a flux error
``floor * f_true / 1.0857``. The observed flux is the true flux plus Gaussian noise of that
sigma; fluxes are in image counts (the preset's AB zero point).

Magnitude conventions
---------------------
The observed magnitudes follow the survey catalogue's convention
(``SurveyPreset.catalogue_magnitudes``):

``pogson``
    ``m = ZP - 2.5 log10 f``. A band whose observed flux is not positive, or has
    S/N = f_obs / sigma below 1, has its magnitude and error set to NaN; the object's
    ``flags`` gets :attr:`skysort.data.flags.Flags.MISSING_PHOTOMETRY`. No sentinel values
    (99, -9999) are ever written.
``asinh``
    Lupton, Gunn & Szalay (1999), as in SDSS catalogues:
    ``m = -(2.5 / ln 10) [asinh(x / 2b) + ln b]`` with ``x`` the flux in units of the AB
    zero-point flux and ``b`` the band's ``asinh_softening``. It equals the Pogson magnitude
    for S/N >> 1, tends to ``-(2.5 / ln 10) ln b`` at zero flux and stays finite for negative
    fluxes, so a faint or undetected band carries a (noisy) magnitude rather than a gap; the
    error is ``(2.5 / ln 10) sigma / sqrt(f^2 + (2 b f0)^2)``.

In both, ``detected_<band>`` is False where S/N < 1 or the flux is not positive.
"""

from __future__ import annotations

import numpy as np

from ..data.flags import Flags
from .presets import SurveyPreset

__all__ = ["DETECTION_SNR", "MAG_ERR_FACTOR", "asinh_magnitudes", "observe"]

#: 2.5 / ln(10): d(mag) = MAG_ERR_FACTOR * d(flux) / flux.
MAG_ERR_FACTOR = 2.5 / np.log(10.0)
#: Minimum S/N for a band to count as detected.
DETECTION_SNR = 1.0


def observe(
    survey: SurveyPreset, mag_true: np.ndarray, normals: np.ndarray
) -> dict[str, np.ndarray]:
    """Add photometric noise to true magnitudes.

    Parameters
    ----------
    survey : SurveyPreset
        Gives depths, zero point and error floor.
    mag_true : numpy.ndarray, shape (n, n_bands)
        True AB magnitudes in the preset's band order.
    normals : numpy.ndarray, shape (n, n_bands)
        Standard normal deviates (the caller owns the random stream, for reproducibility).

    Returns
    -------
    dict of numpy.ndarray
        ``flux_true`` and ``flux_obs`` [counts], ``flux_err`` [counts], ``mag`` and
        ``magerr`` [AB mag; NaN where not detected], ``detected`` (bool) -- all of shape
        (n, n_bands) -- and ``flags`` (uint32, shape (n,)).
    """
    mag_true = np.asarray(mag_true, dtype=float)
    flux_true = survey.flux_from_mag(mag_true)
    sky = np.array([survey.flux_sigma(b) for b in survey.band_names])
    floor = survey.mag_error_floor / MAG_ERR_FACTOR
    sigma = np.sqrt(sky[None, :] ** 2 + (floor * flux_true) ** 2)
    flux_obs = flux_true + sigma * normals
    snr = flux_obs / sigma
    detected = (flux_obs > 0) & (snr >= DETECTION_SNR)
    if survey.catalogue_magnitudes == "asinh":
        mag, magerr = asinh_magnitudes(survey, flux_obs, sigma)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = np.where(detected, survey.zero_point - 2.5 * np.log10(flux_obs), np.nan)
            magerr = np.where(detected, MAG_ERR_FACTOR / snr, np.nan)
    flags = np.where(np.all(np.isfinite(mag), axis=1), 0, int(Flags.MISSING_PHOTOMETRY)).astype(np.uint32)
    return {
        "flux_true": flux_true,
        "flux_obs": flux_obs,
        "flux_err": sigma,
        "mag": mag,
        "magerr": magerr,
        "detected": detected,
        "flags": flags,
    }


def asinh_magnitudes(survey: SurveyPreset, flux: np.ndarray, flux_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Asinh magnitudes (Lupton, Gunn & Szalay 1999) and their errors.

    Parameters
    ----------
    survey : SurveyPreset
        Gives the zero point and each band's ``asinh_softening`` ``b``.
    flux, flux_err : numpy.ndarray, shape (n, n_bands)
        Flux and its 1-sigma error [counts], in the preset's band order; any sign.

    Returns
    -------
    mag, magerr : numpy.ndarray, shape (n, n_bands)
        [asinh AB mag], finite for every finite flux.
    """
    softening = np.array([survey.band(b).asinh_softening or np.nan for b in survey.band_names])
    if not np.all(np.isfinite(softening)):
        raise ValueError(f"survey {survey.name}: asinh magnitudes need asinh_softening in every band")
    # Flux of an AB magnitude 0 source in image counts: flux / f0 is in "maggies".
    f0 = survey.flux_from_mag(0.0)
    flux = np.asarray(flux, float)
    mag = -MAG_ERR_FACTOR * (np.arcsinh(flux / (2.0 * softening * f0)) + np.log(softening))
    magerr = MAG_ERR_FACTOR * np.asarray(flux_err, float) / np.hypot(flux, 2.0 * softening * f0)
    return mag, magerr
