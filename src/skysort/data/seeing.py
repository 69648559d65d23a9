"""The seeing of a survey image, measured from its point sources.

Why it matters: a classifier learns what a point source looks like at the seeing of its
training stamps. ``benchmarks/seeing_robustness.py`` blurs the labelled SDSS field
``003918-3-0213`` (r seeing 0.97") to worse seeing: the earlier ``sgq-sdss``, trained at
1.2-1.6" and not told the seeing, agreed with the SDSS star / galaxy type for 95% of the
objects at r < 21 on the field as it is and for 58% at 1.98", because stars then look extended;
the model trained at 0.8-2.0" that reads the seeing keeps 91-97% (with PSF wings drawn from
those of real frames to the atmosphere's alone; 87-97% with the real frames' wings only). So
:func:`~skysort.data.ingest.cutout_to_stampset` records the seeing of each band when the FITS
header does not, models may read it as an input, and the seeing range a model was trained on
is recorded so that a prediction outside it is reported.

Method
------
SEP (SExtractor) detections at ``threshold`` times the global background rms that are
unflagged, at least ``3 * aperture`` from the image edge, with no other detection within 1.5
apertures, and fainter in peak than half the brightest (saturated cores reach a common ceiling)
give the radii enclosing 50% and 90% of their flux within ``aperture`` = 3 x the expected FWHM
(``sep.flux_radius``). Stars form the tight locus of the smallest half-light radii: its
position is the half-sample mode (Bickel & Fruehwirth 2006) of the smaller half of the radii.
A pixel-integrated Moffat profile is fitted to two numbers, that half-light radius and the
median concentration ``r90 / r50`` of the locus stars: the concentration fixes the Moffat
index ``beta`` (the wings), the radius then fixes the FWHM. The FWHM so found is the profile's
true FWHM whatever its wings, which is also what the simulator's ``psf_fwhm`` means, so
measured and simulated seeing can be compared. Real ground-based PSFs have broader wings than
the atmosphere alone gives (beta about 2.5 on SDSS frames against 4.8 for pure Kolmogorov
turbulence).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np


@dataclasses.dataclass(frozen=True)
class SeeingEstimate:
    """The PSF size of one image.

    Attributes
    ----------
    fwhm : float
        FWHM of the fitted Moffat profile [arcsec]; NaN when too few stars were found.
    half_light_radius : float
        Half-light radius of the stellar locus within the aperture [arcsec].
    beta : float
        Moffat index of the fitted profile (its wings: lower is broader).
    n_stars : int
        Detections in the stellar locus (within 10% of its radius).
    n_sources : int
        Detections that passed the cuts.
    """

    fwhm: float
    half_light_radius: float
    beta: float
    n_stars: int
    n_sources: int


def _unknown_estimate(n_sources: int = 0) -> SeeingEstimate:
    """The estimate of an image or stamp set whose seeing could not be measured."""
    return SeeingEstimate(float("nan"), float("nan"), float("nan"), 0, int(n_sources))


def half_sample_mode(values: np.ndarray) -> float:
    """The half-sample mode of a sample: the densest point, found by halving the sample into
    its shortest half-range repeatedly (Bickel & Fruehwirth 2006). Robust where a histogram's
    bin choice is not, for a few tens of values."""
    x = np.sort(np.asarray(values, float))
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan")
    while len(x) > 3:
        half = (len(x) + 1) // 2
        widths = x[half - 1:] - x[:len(x) - half + 1]
        start = int(np.argmin(widths))
        x = x[start:start + half]
    if len(x) == 3:
        x = x[:2] if x[1] - x[0] < x[2] - x[1] else (x[1:] if x[2] - x[1] < x[1] - x[0] else x[1:2])
    return float(np.mean(x))


#: Moffat indices the fit may return: below 1.5 the profile's flux diverges within reach; above
#: 50 it is a Gaussian for this purpose.
BETA_LIMITS = (1.5, 50.0)


#: The smallest FWHM the fit returns [px]: a stellar locus smaller than such a profile's (a
#: few tenths of a pixel: cosmic rays, hot pixels) has no meaningful seeing, and the pixel
#: integral of a smaller profile would need ever more quadrature points.
MIN_FIT_FWHM_PX = 0.3

#: Sub-pixel offsets of the profile's centre the radii are averaged over [px].
_CENTRE_OFFSETS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5), (0.25, 0.25))


def pixel_integrated_moffat(beta: float, fwhm_px: float, size: int, offset: tuple[float, float] = (0.0, 0.0),
                            nodes: int | None = None) -> np.ndarray:
    """A Moffat profile integrated over square pixels, on a ``size`` x ``size`` grid.

    The profile is I(r) = (1 + (r / alpha)^2)^-beta with ``fwhm_px`` = 2 alpha sqrt(2^(1/beta) - 1)
    [px], untruncated and unnormalised, centred ``offset`` (dx, dy) [px] from
    the grid's centre pixel (at index ``(size - 1) / 2`` on each axis, the same convention as
    GalSim's ``drawImage(offset=...)``). Each pixel's integral is a Gauss-Legendre sum over
    ``nodes`` x ``nodes`` points (default: 4; 6 below a FWHM of 1.5 px, more below 1 px, at most 24).

    Written here rather than drawn with GalSim because the seeing fit draws some 40 profiles of
    different ``beta`` per image, each at five sub-pixel centres: GalSim draws a Moffat by FFT and
    rebuilds its Fourier table for every new ``beta`` (about 16 ms a profile), while this sum takes
    about 0.1 ms on 31 x 31 pixels and agrees with GalSim drawn at tight accuracy settings to a few
    parts in a million in the radii the fit reads (GalSim at its default settings: a few parts in
    1e5).
    """
    if nodes is None:
        nodes = 4 if fwhm_px >= 1.5 else min(24, max(6, int(np.ceil(6.0 / fwhm_px))))
    alpha = fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    points, weights = _pixel_quadrature(nodes)
    pixel = np.arange(size) - (size - 1) / 2.0
    dx, dy = offset
    x = ((pixel[:, None] + points[None, :] - dx) / alpha).ravel()
    y = ((pixel[:, None] + points[None, :] - dy) / alpha).ravel()
    samples = (1.0 + y[:, None] ** 2 + x[None, :] ** 2) ** (-beta)
    # (row, row node, column, column node): sum the column nodes, then the row nodes.
    by_row_node = samples.reshape(size, nodes, size, nodes) @ weights
    return by_row_node.transpose(0, 2, 1) @ weights


@functools.lru_cache(maxsize=16)
def _pixel_quadrature(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre points [px from the pixel centre] and weights (summing to 1) over one pixel."""
    points, weights = np.polynomial.legendre.leggauss(nodes)
    return points / 2.0, weights / 2.0


@functools.lru_cache(maxsize=512)
def _moffat_radii(beta: float, fwhm_px: float, aperture_px: float) -> tuple[float, float]:
    """Radii enclosing 50% and 90% of the flux within the aperture of a pixel-integrated Moffat,
    in pixels, measured as the images are (``sep.flux_radius``) and averaged over sub-pixel
    positions of the centre: an undersampled star's radii depend on where it falls in its pixel."""
    import sep

    size = int(2 * np.ceil(aperture_px) + 9)
    centre = (size - 1) / 2.0
    radii = []
    for dx, dy in _CENTRE_OFFSETS:
        image = pixel_integrated_moffat(beta, fwhm_px, size, (dx, dy))
        radius, _ = sep.flux_radius(image, np.array([centre + dx]), np.array([centre + dy]), np.array([aperture_px]), [0.5, 0.9], subpix=5)
        radii.append(radius[0])
    r50, r90 = np.mean(radii, axis=0)
    return float(r50), float(r90)


def _moffat_from_radii(hlr_px: float, concentration: float, aperture_px: float) -> tuple[float, float]:
    """(FWHM in pixels, beta) of the pixel-integrated Moffat with the given half-light radius and
    ``r90 / r50`` within the aperture: a root in log beta of the concentration (which falls as
    beta rises), with the FWHM refitted to the half-light radius at each step: beta to 1e-5 and
    the FWHM to 1e-7 relative, with no grid of allowed values (a smooth function of its inputs)."""
    from scipy.optimize import brentq

    fwhm_of_beta: dict[float, float] = {}
    last_fwhm = [hlr_px / 0.6]

    def fwhm_for(beta: float) -> float:
        # Secant steps in log FWHM against log half-light radius (nearly proportional: pixels
        # blur a small profile more), from the FWHM found for the previous beta.
        if beta in fwhm_of_beta:
            return fwhm_of_beta[beta]
        fwhm, slope = last_fwhm[0], 1.0
        log_radius = np.log(_moffat_radii(beta, fwhm, aperture_px)[0])
        for _ in range(30):
            miss = np.log(hlr_px) - log_radius
            if abs(miss) < 1e-7:
                break
            next_fwhm = max(fwhm * float(np.exp(miss / slope)), MIN_FIT_FWHM_PX)
            if next_fwhm == fwhm:
                break  # at the floor: no profile this small is measured
            next_log_radius = np.log(_moffat_radii(beta, next_fwhm, aperture_px)[0])
            measured_slope = (next_log_radius - log_radius) / np.log(next_fwhm / fwhm)
            slope = measured_slope if np.isfinite(measured_slope) and measured_slope > 0.2 else 1.0
            fwhm, log_radius = next_fwhm, next_log_radius
        fwhm_of_beta[beta] = last_fwhm[0] = fwhm
        return fwhm

    def excess_concentration(log_beta: float) -> float:
        beta = float(np.exp(log_beta))
        r50, r90 = _moffat_radii(beta, fwhm_for(beta), aperture_px)
        return r90 / r50 - concentration

    low, high = np.log(BETA_LIMITS[0]), np.log(BETA_LIMITS[1])
    if not np.isfinite(concentration) or excess_concentration(low) <= 0:
        beta = BETA_LIMITS[0]
    elif excess_concentration(high) >= 0:
        beta = BETA_LIMITS[1]
    else:
        beta = float(np.exp(brentq(excess_concentration, low, high, xtol=1e-5)))
    return float(fwhm_for(beta)), beta


#: The most pixels a seeing measurement reads: a larger image (a coadd tile of a square degree
#: holds 10^8 pixels or more) is measured on :data:`SEEING_WINDOW`-pixel windows spread over
#: it, whose stars fix the stellar locus as the whole image's do in a fraction of the time and
#: memory (SEP's detection costs about 70 ms per million pixels).
MAX_SEEING_PIXELS = 2048 * 2048
#: Side of the windows a large image's seeing is measured on [px].
SEEING_WINDOW = 1024


def measurement_windows(shape: tuple[int, int], max_pixels: int = MAX_SEEING_PIXELS,
                        window: int = SEEING_WINDOW) -> list[tuple[slice, slice]]:
    """The parts of an image of ``shape`` (ny, nx) its seeing is measured on: the whole image
    when it has at most ``max_pixels`` pixels, else a grid of ``window``-pixel windows spread
    evenly over it (first and last at the edges), as many as ``max_pixels`` allows."""
    ny, nx = (int(v) for v in shape)
    if ny * nx <= max_pixels:
        return [(slice(0, ny), slice(0, nx))]
    wy, wx = min(window, ny), min(window, nx)
    count = max(1, max_pixels // (wy * wx))
    ky = max(1, min(int(np.sqrt(count)), ny // wy))
    kx = max(1, min(count // ky, nx // wx))

    def starts(n: int, w: int, k: int) -> list[int]:
        return [(n - w) // 2] if k == 1 else [int(v) for v in np.linspace(0, n - w, k).round()]

    return [(slice(y, y + wy), slice(x, x + wx)) for y in starts(ny, wy, ky) for x in starts(nx, wx, kx)]


def measure_seeing(data: np.ndarray, pixel_scale: float, *, guess_fwhm: float = 1.0, threshold: float = 10.0,
                   min_stars: int = 5, refine: bool = True, max_pixels: int = MAX_SEEING_PIXELS,
                   window: int = SEEING_WINDOW) -> SeeingEstimate:
    """Measure the PSF FWHM of an image from its point sources (see the module notes).

    Parameters
    ----------
    data : ndarray (ny, nx)
        Image, any flux unit; NaN pixels are masked. A sky background is removed first. An
        image of more than :data:`MAX_SEEING_PIXELS` pixels is measured on windows spread
        over it (:func:`measurement_windows`), whose stars are pooled.
    pixel_scale : float
        Arcsec per pixel.
    guess_fwhm : float
        Rough FWHM [arcsec] that sets the aperture (3 x guess). With ``refine``, a result
        outside 0.67-1.5 times the guess is measured again with itself as the guess.
    threshold : float
        Detection threshold in units of the global background rms.
    min_stars : int
        Fewer detections in the stellar locus give a NaN FWHM.
    refine : bool
        Measure a second time when the guess was far off.
    max_pixels, window : int
        The most pixels measured, and the side of the windows a larger image is measured on [px].

    Returns
    -------
    SeeingEstimate
    """
    aperture = max(3.0, 3.0 * guess_fwhm / pixel_scale)
    windows = measurement_windows(np.shape(data), max_pixels, window)
    radii = [_star_radii(data[rows, columns], aperture, threshold) for rows, columns in windows]
    r50 = np.concatenate([r[0] for r in radii])
    r90 = np.concatenate([r[1] for r in radii])
    if len(r50) == 0:
        return _unknown_estimate()
    estimate = _seeing_from_radii(r50, r90, aperture, pixel_scale, min_stars)
    if refine and np.isfinite(estimate.fwhm) and not 0.67 < estimate.fwhm / guess_fwhm < 1.5:
        # The aperture and isolation radius scale with the guess: measure again with a better one.
        return measure_seeing(data, pixel_scale, guess_fwhm=estimate.fwhm, threshold=threshold, min_stars=min_stars,
                              refine=False, max_pixels=max_pixels, window=window)
    return estimate


def _star_radii(data: np.ndarray, aperture: float, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Radii enclosing 50% and 90% of the flux within ``aperture`` [px] of the isolated,
    unflagged, unsaturated detections of an image (see the module notes); empty arrays when
    SEP finds none or fails."""
    import sep

    none = (np.zeros(0), np.zeros(0))
    image = np.asarray(data, np.float32)
    mask = ~np.isfinite(image)
    image = np.ascontiguousarray(np.where(mask, np.float32(0), image))
    background = sep.Background(image, mask=mask if mask.any() else None)
    image = image - background.back()
    try:
        objects = sep.extract(image, threshold, err=background.globalrms, mask=mask if mask.any() else None, minarea=5)
    except Exception:  # noqa: BLE001 - SEP raises bare Exceptions (e.g. too many objects); seeing stays unknown
        return none
    if len(objects) == 0:
        return none
    ny, nx = image.shape
    margin = 3 * aperture
    keep = ((objects["flag"] == 0) & (objects["x"] > margin) & (objects["x"] < nx - 1 - margin)
            & (objects["y"] > margin) & (objects["y"] < ny - 1 - margin)
            & (objects["peak"] < 0.5 * objects["peak"].max()))
    # A neighbour inside the aperture inflates the radius (in a crowded field most of them do):
    # only detections with no other within 1.5 apertures are measured.
    from scipy.spatial import cKDTree

    positions = np.column_stack([objects["x"], objects["y"]])
    neighbours = cKDTree(positions).query_ball_point(positions[keep], r=1.5 * aperture, return_length=True)
    keep[np.flatnonzero(keep)[neighbours > 1]] = False
    objects = objects[keep]
    if len(objects) == 0:
        return none
    radii, flag = sep.flux_radius(image, objects["x"], objects["y"], np.full(len(objects), aperture), [0.5, 0.9],
                                  subpix=5, mask=mask if mask.any() else None)
    good = (flag == 0) & (radii[:, 0] > 0)
    return radii[good, 0], radii[good, 1]


def _seeing_from_radii(r50: np.ndarray, r90: np.ndarray, aperture: float, pixel_scale: float,
                       min_stars: int) -> SeeingEstimate:
    """The Moffat fit to the stellar locus of measured radii (pixels, within ``aperture``):
    the locus is the half-sample mode of the smaller half of the half-light radii, its stars
    those within 10% of it (see the module notes)."""
    radius, concentration = np.asarray(r50, float), np.asarray(r90, float) / np.asarray(r50, float)
    if len(radius) < min_stars:
        return _unknown_estimate(len(radius))
    smaller = np.sort(radius)[: max(min_stars, (len(radius) + 1) // 2)]
    locus = half_sample_mode(smaller)
    stars = np.abs(radius - locus) < 0.1 * locus
    n_stars = int(np.count_nonzero(stars))
    if n_stars < min_stars:
        return SeeingEstimate(float("nan"), float(locus * pixel_scale), float("nan"), n_stars, int(len(radius)))
    fwhm_px, beta = _moffat_from_radii(locus, float(np.median(concentration[stars])), aperture)
    return SeeingEstimate(float(fwhm_px * pixel_scale), float(locus * pixel_scale), float(beta), n_stars, int(len(radius)))


def measure_stamp_seeing(images: np.ndarray, pixel_scale: float, *, guess_fwhm: float = 1.0, snr: float = 50.0,
                         min_stars: int = 10, refine: bool = True) -> SeeingEstimate:
    """Measure the PSF FWHM of a set of stamps of one seeing from the point sources among them.

    For stamps without their images' headers or frames (a stamp set cut elsewhere), the same
    fit as :func:`measure_seeing` made on the central objects: each stamp's sky is the median
    of its outer two-pixel ring and its noise that ring's scaled MAD; the central source's
    position is refined with ``sep.winpos`` (a stamp whose centroid moves by more than 2 px
    has no central source and is skipped); stamps with another source within 1.5 apertures of
    it, an aperture signal-to-noise below ``snr``, or a peak above half the brightest are
    skipped. Point sources then form the locus of the smallest half-light radii.

    Parameters
    ----------
    images : ndarray (N, H, W)
        Stamps of one band centred on their objects, any flux unit; NaN pixels are set to the sky.
    pixel_scale : float
        Arcsec per pixel.
    guess_fwhm : float
        Rough FWHM [arcsec] setting the aperture (3 x guess, within the stamp); with ``refine``,
        a result outside 0.67-1.5 times the guess is measured again with itself as the guess.
    snr : float
        Least signal-to-noise ratio of a measured source within the aperture.
    min_stars : int
        Fewer stamps in the stellar locus give a NaN FWHM.

    Returns
    -------
    SeeingEstimate
        ``n_sources`` counts the stamps measured, ``n_stars`` those in the stellar locus.
    """
    import sep

    stack = np.asarray(images, np.float64)
    if stack.ndim != 3 or len(stack) == 0:
        return _unknown_estimate()
    _, height, width = stack.shape
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    # The aperture must lie inside the stamp around a centre up to 2 px off (SEP flags a
    # truncated one); the Moffat fit is made within the same aperture.
    aperture = float(min(max(3.0, 3.0 * guess_fwhm / pixel_scale), min(height, width) / 2.0 - 3.0))
    if aperture < 2.0:
        return _unknown_estimate()
    ring = np.zeros((height, width), bool)
    ring[:2], ring[-2:], ring[:, :2], ring[:, -2:] = True, True, True, True
    sigma_px = max(0.5, guess_fwhm / pixel_scale / 2.3548)
    measured, peaks = [], []
    for stamp in stack:
        border = stamp[ring][np.isfinite(stamp[ring])]
        if len(border) < 8:
            continue
        sky = float(np.median(border))
        noise = 1.4826 * float(np.median(np.abs(border - sky)))
        if not noise > 0:
            continue
        image = np.ascontiguousarray(np.where(np.isfinite(stamp), stamp - sky, 0.0))
        x, y, _ = sep.winpos(image, np.array([centre_x]), np.array([centre_y]), np.array([sigma_px]))
        if np.hypot(x[0] - centre_x, y[0] - centre_y) > 2.0:
            continue
        flux, flux_err, _ = sep.sum_circle(image, x, y, aperture, err=noise, subpix=5)
        if not flux[0] > snr * flux_err[0]:
            continue
        try:
            objects = sep.extract(image, 5.0, err=noise, minarea=5)
        except Exception:  # noqa: BLE001 - SEP raises bare Exceptions; the stamp is skipped
            continue
        distance = np.hypot(objects["x"] - x[0], objects["y"] - y[0])
        if np.count_nonzero(distance < 1.5 * aperture) > 1:
            continue
        radii, flag = sep.flux_radius(image, x, y, np.array([aperture]), [0.5, 0.9], subpix=5)
        if flag[0] == 0 and radii[0, 0] > 0:
            measured.append(radii[0])
            peaks.append(float(image[int(round(y[0])), int(round(x[0]))]))
    if not measured:
        return _unknown_estimate()
    radii = np.array(measured)
    peaks = np.array(peaks)
    # Saturated cores reach a common ceiling and flatten the profile, as in measure_seeing.
    radii = radii[peaks < 0.5 * peaks.max()] if len(peaks) > min_stars else radii
    estimate = _seeing_from_radii(radii[:, 0], radii[:, 1], aperture, pixel_scale, min_stars)
    if refine and np.isfinite(estimate.fwhm) and not 0.67 < estimate.fwhm / guess_fwhm < 1.5:
        return measure_stamp_seeing(stack, pixel_scale, guess_fwhm=estimate.fwhm, snr=snr, min_stars=min_stars, refine=False)
    return estimate


# ------------------------------------------------------------------------------------------
# Seeing ranges of stamp sets and models
# ------------------------------------------------------------------------------------------

#: A stamp set's seeing may exceed a model's training range by this fraction before it is reported:
#: the measurement's own precision is a few per cent.
SEEING_TOLERANCE = 0.1


def stamp_seeing_range(meta) -> dict[str, list[float]]:
    """PSF FWHM range [arcsec] per band of a stamp set: the range recorded by a concatenation
    (``extra["psf_fwhm_range"]``), else over the simulated PSF variants, else the recorded
    (header or measured) FWHM; bands of unknown seeing are left out.

    Parameters
    ----------
    meta : StampMeta
    """
    variants = meta.extra.get("psf_variants") or []
    ranges: dict[str, list[float]] = {}
    # A concatenation of sets of different seeing records the range of its per-object values.
    recorded = meta.extra.get("psf_fwhm_range") or {}
    for band in meta.bands:
        if band in recorded:
            ranges[band] = [round(float(recorded[band][0]), 4), round(float(recorded[band][1]), 4)]
            continue
        values = [float(v["fwhm"][band]) for v in variants if band in v.get("fwhm", {})]
        if not values and np.isfinite(meta.psf_fwhm.get(band, float("nan"))):
            values = [float(meta.psf_fwhm[band])]
        if values:
            ranges[band] = [round(min(values), 4), round(max(values), 4)]
    return ranges


def merge_seeing_ranges(*ranges: dict[str, list[float]] | None) -> dict[str, list[float]]:
    """The union, band by band, of seeing ranges (e.g. of a fine-tuned model and its start)."""
    merged: dict[str, list[float]] = {}
    for item in ranges:
        for band, (low, high) in (item or {}).items():
            old = merged.get(band)
            merged[band] = [min(low, old[0]), max(high, old[1])] if old else [float(low), float(high)]
    return merged


def seeing_mismatch(model_range: dict[str, list[float]] | None, psf_fwhm: dict[str, float],
                    bands, tolerance: float = SEEING_TOLERANCE) -> str | None:
    """A sentence naming the bands whose seeing lies outside a model's training range (beyond
    ``tolerance`` as a fraction), or None when all known seeing is inside or nothing is known.

    Parameters
    ----------
    model_range : dict
        The model's ``psf_fwhm_range`` (band -> [min, max], arcsec).
    psf_fwhm : dict
        The data's FWHM per band [arcsec] (NaN where unknown).
    bands : sequence of str
        The image bands the model reads.
    """
    if not model_range:
        return None
    outside = []
    for band in bands:
        fwhm, limits = psf_fwhm.get(band, float("nan")), model_range.get(band)
        if limits is None or not np.isfinite(fwhm):
            continue
        if fwhm < limits[0] * (1 - tolerance) or fwhm > limits[1] * (1 + tolerance):
            outside.append(f"{band} {fwhm:.2f}\" (trained on {limits[0]:.2f}-{limits[1]:.2f}\")")
    if not outside:
        return None
    return ("seeing outside the model's training range: " + ", ".join(outside)
            + "; point sources and compact galaxies may be misclassified")


def object_seeing(stamps, band: str, indices=None) -> np.ndarray:
    """PSF FWHM [arcsec] in ``band`` of each object of a stamp set, NaN where unknown.

    In order of preference: a ``psf_fwhm_<band>`` column; for a simulated set, the per-object
    ``psf_fwhm_arcsec`` column (the PSF of the selection band), carried to ``band`` through the
    set's PSF variants; the set's recorded ``psf_fwhm`` (from the FITS header or measured at
    cutout), the same for every object.

    Parameters
    ----------
    stamps : StampSet
    band : str
    indices : array of int, optional
        Rows to return (default all).
    """
    n = len(stamps) if indices is None else len(np.arange(len(stamps))[indices])
    columns = stamps.columns
    if f"psf_fwhm_{band}" in columns:
        return np.asarray(stamps.column(f"psf_fwhm_{band}", indices), np.float32)
    variants = stamps.meta.extra.get("psf_variants") or []
    if "psf_fwhm_arcsec" in columns and variants:
        values = np.asarray(stamps.column("psf_fwhm_arcsec", indices), np.float32)
        # The column is the selection band's FWHM (recorded as ``psf_fwhm_band``); sets written
        # before that was recorded are matched against the band asked for first, since the
        # levels of different bands can coincide.
        recorded = stamps.meta.extra.get("psf_fwhm_band")
        candidates = [recorded] if recorded else [band] + [b for b in variants[0]["fwhm"] if b != band]
        for reference in candidates:
            if reference not in variants[0]["fwhm"]:
                continue
            table = np.array([v["fwhm"][reference] for v in variants], np.float32)
            target = np.array([v["fwhm"].get(band, np.nan) for v in variants], np.float32)
            nearest = np.abs(values[:, None] - table[None, :]).argmin(axis=1) if len(values) else np.zeros(0, int)
            if len(values) == 0 or np.allclose(table[nearest], values, atol=1e-3):
                return target[nearest].astype(np.float32)
    return np.full(n, stamps.meta.psf_fwhm.get(band, np.nan), np.float32)


#: Stamps read to measure the seeing of a stamp set that does not record it: enough for tens of
#: point sources in any field, few enough to cost about a second.
SEEING_SAMPLE = 2000


@dataclasses.dataclass(frozen=True)
class ObjectSeeing:
    """The seeing given to a model for each object of a stamp set, and where it came from.

    Attributes
    ----------
    band : str
        Band of the FWHM.
    values : ndarray (N,)
        PSF FWHM per object [arcsec], NaN where unknown.
    source : str
        ``recorded`` (in the stamp set: a header, measured at cutout, or simulated), ``measured``
        (from the stamps' own point sources, one value for the whole set:
        :func:`measure_stamp_seeing`), ``given`` (by the caller) or ``unknown``.
    estimate : SeeingEstimate or None
        The measurement, for ``measured`` and for an ``unknown`` that a measurement failed.
    """

    band: str
    values: np.ndarray
    source: str
    estimate: SeeingEstimate | None = None

    def record(self) -> dict:
        """Provenance for a prediction table's metadata (JSON-serialisable)."""
        finite = self.values[np.isfinite(self.values)]
        out = {"band": self.band, "source": self.source,
               "fwhm_median_arcsec": round(float(np.median(finite)), 4) if len(finite) else None}
        if self.estimate is not None:
            out.update({"n_stars": self.estimate.n_stars, "n_measured": self.estimate.n_sources,
                        "beta": None if not np.isfinite(self.estimate.beta) else round(self.estimate.beta, 3)})
        return out

    def describe(self) -> str:
        """One line for the user."""
        if self.source == "measured":
            return (f"seeing in {self.band} not recorded: measured from the stamps' point sources, FWHM "
                    f"{self.estimate.fwhm:.2f}\" ({self.estimate.n_stars} stars of {self.estimate.n_sources} stamps measured)")
        if self.source == "unknown":
            return (f"the seeing in {self.band} is unknown (not recorded, and too few isolated point sources among the "
                    "stamps to measure it): the model classifies without it, less accurately; give it with "
                    "'skysort import --psf-fwhm' or cut the stamps again")
        finite = self.values[np.isfinite(self.values)]
        median = f", median {np.median(finite):.2f}\"" if len(finite) else ""
        return f"seeing in {self.band}: {self.source}{median}"


def images_seeing(images: np.ndarray, pixel_scale: float, band: str, *, sample: int = SEEING_SAMPLE,
                  seed: int = 0) -> ObjectSeeing:
    """The seeing of stamps of one band measured from their own point sources (up to ``sample``
    of them, drawn at random), one value for all: ``measured``, or ``unknown`` if too few point
    sources were found. The stamps must share one seeing (one field or tile).

    Parameters
    ----------
    images : ndarray (N, H, W)
        Stamps in ``band``, centred on their objects.
    pixel_scale : float
        Arcsec per pixel.
    """
    images = np.asarray(images)
    rows = _sample_rows(len(images), sample, seed)
    estimate = measure_stamp_seeing(images[rows], pixel_scale)
    return _measured(band, len(images), estimate)


def stampset_seeing(stamps, band: str, *, sample: int = SEEING_SAMPLE, seed: int = 0) -> ObjectSeeing:
    """The seeing of each object of a stamp set in ``band``: as recorded
    (:func:`object_seeing`), else measured from the stamps' own point sources (up to ``sample``
    stamps drawn at random; one value for the whole set, which must then share one seeing).

    Parameters
    ----------
    stamps : StampSet
    band : str
    """
    recorded = object_seeing(stamps, band)
    if np.isfinite(recorded).any():
        return ObjectSeeing(band, recorded, "recorded")
    if band not in stamps.meta.bands or len(stamps) == 0 or not stamps.meta.pixel_scale:
        return ObjectSeeing(band, recorded, "unknown")
    key = _stampset_key(stamps, band, sample, seed)
    estimate = _MEASURED.get(key)
    if estimate is None:
        rows = _sample_rows(len(stamps), sample, seed)
        images = stamps.read_images(rows)[:, list(stamps.meta.bands).index(band)]
        estimate = measure_stamp_seeing(images, float(stamps.meta.pixel_scale))
        if len(_MEASURED) >= 32:
            _MEASURED.pop(next(iter(_MEASURED)))
        _MEASURED[key] = estimate
    return _measured(band, len(stamps), estimate)


#: Measurements of stamp sets by file identity, rows, band and sample: a command that checks the
#: seeing before predicting (``skysort predict``) measures each set once.
_MEASURED: dict[tuple, SeeingEstimate] = {}


def _stampset_key(stamps, band: str, sample: int, seed: int) -> tuple:
    import hashlib

    stat = stamps.path.stat()
    rows = hashlib.blake2b(np.ascontiguousarray(stamps.file_rows(), np.int64).tobytes(), digest_size=16).hexdigest()
    return (str(stamps.path.resolve()), stat.st_size, stat.st_mtime_ns, rows, band, sample, seed)


def given_seeing(band: str, psf_fwhm, n: int) -> ObjectSeeing:
    """Seeing given by a caller for ``n`` objects: one FWHM [arcsec] or one per object; NaN
    is unknown.

    Raises
    ------
    ValueError
        ``psf_fwhm`` is neither one value nor ``n`` values.
    """
    values = np.asarray(psf_fwhm, np.float32)
    if values.ndim > 1 or (values.ndim == 1 and len(values) != n):
        raise ValueError(f"psf_fwhm must be one value or one per stamp ({n}), got shape {values.shape}")
    values = np.broadcast_to(values, (n,)).copy()
    return ObjectSeeing(band, values, "given" if np.isfinite(values).any() else "unknown")


def _sample_rows(n: int, sample: int, seed: int) -> np.ndarray:
    if n <= sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))


def _measured(band: str, n: int, estimate: SeeingEstimate) -> ObjectSeeing:
    if not np.isfinite(estimate.fwhm):
        return ObjectSeeing(band, np.full(n, np.nan, np.float32), "unknown", estimate)
    return ObjectSeeing(band, np.full(n, estimate.fwhm, np.float32), "measured", estimate)
