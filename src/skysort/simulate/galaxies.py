"""Galaxy morphologies for the survey simulator: COSMOS parametric fits and real HST galaxies.

Two sources of shapes are offered:

* **parametric** (:func:`load_parametric_library`, :func:`sample_parametric`): the single-Sersic
  and bulge (n=4) + disc (n=1) fits of the COSMOS F814W < 23.5 example catalogue, given a random
  rotation and, optionally, a size rescaled to a target half-light radius drawn from a
  magnitude-dependent distribution (:func:`median_half_light_radius`);
* **realistic** (:func:`load_real_library`, :func:`sample_real`): real COSMOS HST/ACS images,
  cleaned of sky noise and neighbours (:func:`clean_hst_image`) and NOT deconvolved from the
  HST PSF (see :class:`RealGalaxyLibrary` for why), with random rotation, random flip and a
  size rescaling.

Colour gradients are ignored: a source has ONE morphology, used in every band, and only its
flux changes from band to band. A bulge+disc galaxy therefore has the same bulge-to-total ratio
in u as in Ks. This is what lets the renderer draw one profile per distinct PSF and scale it.

A morphology is described by a :class:`Morphology` of plain arrays (one row per source), which
:mod:`skysort.simulate.render` turns into pixels. Angles are radians, sizes arcseconds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import special

from ..errors import InputError
from .presets import shared_data_dir

#: Source kinds stored in :attr:`Morphology.kind`.
POINT, PARAMETRIC, REAL = 0, 1, 2

#: Galaxy morphologies a simulation can draw: the parametric fits, the same with knots
#: (:func:`add_knots`), or real HST images.
MORPHOLOGY_MODES = ("parametric", "clumpy", "realistic")

#: Sersic indices are rounded to this grid so that the radial Fourier tables (ours and
#: GalSim's own ``SersicInfo`` cache) are reused instead of recomputed for every galaxy.
SERSIC_STEP = 0.05
SERSIC_MIN, SERSIC_MAX = 0.3, 6.2

#: Pixel scale of the COSMOS HST/ACS reductions, arcsec / pixel (``flux_radius`` is in these).
COSMOS_PIXEL_SCALE = 0.03

_PARAMETRIC_FILE = "real_galaxy_catalog_23.5_example.fits"
_REAL_FILE = "real_galaxy_catalog_26_extension_example.fits"


def round_sersic(n: np.ndarray | float, step: float = SERSIC_STEP) -> np.ndarray:
    """Clip Sersic indices to [0.3, 6.2] and round them to a grid of ``step``."""
    n = np.clip(np.asarray(n, dtype=float), SERSIC_MIN, SERSIC_MAX)
    return np.round(n / step) * step


@dataclass
class Morphology:
    """Shapes of ``N`` sources, as arrays (one row per source).

    Every source is either a point source (stars, quasars: drawn as the PSF), a parametric
    galaxy of up to two elliptical Sersic components sharing one centre, or a real COSMOS galaxy.

    Attributes
    ----------
    kind : ndarray of int8, shape (N,)
        :data:`POINT`, :data:`PARAMETRIC` or :data:`REAL`.
    n : ndarray, shape (N, 2)
        Sersic index of each component (rounded with :func:`round_sersic` when rendered).
    hlr : ndarray, shape (N, 2)
        Half-light radius of each component, arcsec, of the circularised profile
        (``sqrt(a * b)``; GalSim's area-preserving shear convention).
    q : ndarray, shape (N, 2)
        Minor-to-major axis ratio of each component, in (0, 1].
    beta : ndarray, shape (N, 2)
        Position angle of each component's major axis, radians counter-clockwise from +x.
    frac : ndarray, shape (N, 2)
        Fraction of the source's flux in each component (rows sum to 1; the second component
        has ``frac = 0`` for single-Sersic galaxies).
    real_index : ndarray of int, shape (N,)
        Row of the real-galaxy library for ``kind == REAL`` (ignored otherwise).
    real_scale : ndarray, shape (N,)
        Linear size scaling applied to a real galaxy (flux preserving dilation).
    real_rotation : ndarray, shape (N,)
        Rotation of a real galaxy, radians counter-clockwise.
    real_flip : ndarray of bool, shape (N,)
        Mirror a real galaxy in x before rotating it.
    real_shear : ndarray, shape (N,)
        Reduced shear g applied to a real galaxy along x after the mirror and before the
        rotation (area preserving: x stretched by ``(1 + g) / sqrt(1 - g**2)``, y by
        ``(1 - g) / sqrt(1 - g**2)``); 0, the default, keeps its shape.
    knot_frac : ndarray, shape (N,)
        Fraction of a parametric galaxy's flux in star-forming knots, taken from component 0
        (its disc), so at most ``frac[:, 0]``; 0 for a smooth galaxy.
    knot_count : ndarray of int, shape (N,)
        Number of knots (used where ``knot_frac > 0``).
    knot_seed : ndarray of int, shape (N,)
        Seed of the knot positions (:meth:`knot_offsets`).
    real_library : RealGalaxyLibrary or None
        The library that ``real_index`` refers to.

    Notes
    -----
    Knots are unresolved clumps of equal flux scattered over component 0 as
    ``galsim.RandomKnots`` scatters them over an exponential disc (radius drawn from
    ``r exp(-r / r_s)``, with the component's half-light radius, axis ratio and position angle).
    At ground-based resolution they make isolated galaxies lumpy, like the star-forming regions
    of real discs, which a network must learn not to take for companions.
    """

    kind: np.ndarray
    n: np.ndarray
    hlr: np.ndarray
    q: np.ndarray
    beta: np.ndarray
    frac: np.ndarray
    real_index: np.ndarray
    real_scale: np.ndarray
    real_rotation: np.ndarray
    real_flip: np.ndarray
    knot_frac: np.ndarray | None = None
    knot_count: np.ndarray | None = None
    knot_seed: np.ndarray | None = None
    real_shear: np.ndarray | None = None
    real_library: "RealGalaxyLibrary | None" = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.kind)
        if self.knot_frac is None:
            self.knot_frac = np.zeros(n)
        if self.knot_count is None:
            self.knot_count = np.zeros(n, np.int64)
        if self.knot_seed is None:
            self.knot_seed = np.zeros(n, np.int64)
        if self.real_shear is None:
            self.real_shear = np.zeros(n)

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def empty(cls, n: int) -> "Morphology":
        """``n`` point sources (every other field at a neutral value)."""
        two = np.zeros((n, 2))
        return cls(kind=np.zeros(n, np.int8), n=two + 1.0, hlr=two + 0.1, q=two + 1.0,
                   beta=two.copy(), frac=np.column_stack([np.ones(n), np.zeros(n)]),
                   real_index=np.zeros(n, np.int64), real_scale=np.ones(n),
                   real_rotation=np.zeros(n), real_flip=np.zeros(n, bool))

    @classmethod
    def point_sources(cls, n: int) -> "Morphology":
        """``n`` point sources (stars, quasars): rendered as the PSF alone."""
        return cls.empty(n)

    @classmethod
    def sersic(cls, n_sersic, hlr, q=1.0, beta=0.0) -> "Morphology":
        """Single elliptical Sersic galaxies.

        Parameters
        ----------
        n_sersic, hlr, q, beta : float or array_like, shape (N,)
            Sersic index, half-light radius (arcsec), axis ratio, position angle (rad).
        """
        n_sersic, hlr, q, beta = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, float))
                                                       for a in (n_sersic, hlr, q, beta)))
        m = cls.empty(len(n_sersic))
        m.kind[:] = PARAMETRIC
        m.n[:, 0], m.hlr[:, 0], m.q[:, 0], m.beta[:, 0] = n_sersic, hlr, q, beta
        return m

    def subset(self, idx) -> "Morphology":
        """Rows ``idx`` (anything that indexes a numpy array) as a new :class:`Morphology`."""
        return Morphology(**{name: getattr(self, name)[idx] for name in _ARRAY_FIELDS},
                          real_library=self.real_library)

    @staticmethod
    def concatenate(parts: "list[Morphology]") -> "Morphology":
        """Stack several morphologies (they must share one real-galaxy library, if any)."""
        libs = {id(p.real_library): p.real_library for p in parts if p.real_library is not None}
        if len(libs) > 1:
            raise ValueError("cannot concatenate morphologies from different real-galaxy libraries")
        return Morphology(**{name: np.concatenate([getattr(p, name) for p in parts])
                             for name in _ARRAY_FIELDS},
                          real_library=next(iter(libs.values()), None))

    def knot_offsets(self, i: int) -> np.ndarray:
        """Positions of source ``i``'s knots relative to its centre, arcsec, shape (K, 2) as (x, y).

        Radii follow an exponential disc of component 0's half-light radius (truncated at 6 scale
        lengths, inside the light radius the renderer pads for), then the component's
        area-preserving shear (axis ratio ``q``) and rotation ``beta`` are applied.
        """
        count = int(self.knot_count[i])
        if count <= 0 or self.knot_frac[i] <= 0:
            return np.zeros((0, 2))
        rng = np.random.default_rng(int(self.knot_seed[i]))
        scale_length = self.hlr[i, 0] / _EXPONENTIAL_HLR_OVER_SCALE
        radius = np.minimum(rng.gamma(2.0, 1.0, count), 6.0) * scale_length
        angle = rng.uniform(0.0, 2.0 * np.pi, count)
        q = self.q[i, 0]
        u = radius * np.cos(angle) / np.sqrt(q)
        v = radius * np.sin(angle) * np.sqrt(q)
        c, s = np.cos(self.beta[i, 0]), np.sin(self.beta[i, 0])
        return np.column_stack([c * u - s * v, s * u + c * v])

    def total_hlr(self) -> np.ndarray:
        """Half-light radius of each source, arcsec (0 for point sources).

        Exact for round components; for elliptical ones it is the radius of the flux-weighted
        circularised profile, which is what the rescaling to a target size needs.
        For real galaxies it is the catalogue ``flux_radius`` (measured on the HST image, so it
        includes the 0.1" HST PSF) times ``real_scale``.
        """
        out = np.zeros(len(self))
        par = self.kind == PARAMETRIC
        if par.any():
            out[par] = composite_hlr(self.n[par], self.hlr[par], self.frac[par])
        real = self.kind == REAL
        if real.any():
            out[real] = self.real_library.flux_radius[self.real_index[real]] * self.real_scale[real]
        return out


_ARRAY_FIELDS = ("kind", "n", "hlr", "q", "beta", "frac", "real_index", "real_scale",
                 "real_rotation", "real_flip", "knot_frac", "knot_count", "knot_seed", "real_shear")

#: Half-light radius of an exponential disc in units of its scale length.
_EXPONENTIAL_HLR_OVER_SCALE = 1.6783469900166608


def _sersic_b(n: np.ndarray) -> np.ndarray:
    # b_n makes r_e enclose half the light: gamma(2n, b_n) / Gamma(2n) = 1/2.
    return special.gammaincinv(2.0 * n, 0.5)


def composite_hlr(n: np.ndarray, hlr: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Half-light radius of a sum of round Sersic components, arcsec.

    Parameters
    ----------
    n, hlr, frac : ndarray, shape (N, K)
        Sersic index, half-light radius (arcsec) and flux fraction of each component.

    Returns
    -------
    ndarray, shape (N,)
        Radius enclosing half of the total flux.
    """
    n = np.atleast_2d(np.asarray(n, float))
    hlr = np.atleast_2d(np.asarray(hlr, float))
    frac = np.atleast_2d(np.asarray(frac, float))
    b = _sersic_b(n)
    active = frac > 0
    # Bisection in log r, vectorised over sources: the enclosed fraction is monotonic.
    lo = np.log(np.where(active, hlr, np.inf).min(axis=1))
    hi = np.log(np.where(active, hlr, -np.inf).max(axis=1))
    lo, hi = lo - 1e-9, hi + 1e-9
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        x = np.exp(mid)[:, None] / hlr
        enclosed = np.sum(np.where(active, frac * special.gammainc(2 * n, b * x ** (1.0 / n)), 0.0),
                          axis=1)
        below = enclosed < 0.5 * frac.sum(axis=1)
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return np.exp(0.5 * (lo + hi))


def median_half_light_radius(mag: np.ndarray | float, r0: float = 0.6, mag0: float = 20.0,
                             slope: float = 0.1) -> np.ndarray:
    """Median galaxy half-light radius at a given magnitude, arcsec.

    ``r50(m) = r0 * 10**(-slope * (m - mag0))``: an empirical size-magnitude relation roughly
    matching optical ground-based surveys (0.6" at m=20, 0.24" at m=24; the COSMOS 23.5
    sample has a median circularised radius of 0.42" at a median F814W of 21.8).

    Parameters
    ----------
    mag : float or ndarray
        Apparent magnitude (AB) in the band the sizes refer to.
    r0 : float
        Median half-light radius at ``mag0``, arcsec.
    mag0 : float
        Pivot magnitude.
    slope : float
        d log10(r50) / d(-m).
    """
    return r0 * 10.0 ** (-slope * (np.asarray(mag, float) - mag0))


def sample_half_light_radius(mag, rng: np.random.Generator, scatter_dex: float = 0.2,
                             rmin: float = 0.05, rmax: float = 3.0, **relation) -> np.ndarray:
    """Draw half-light radii (arcsec) log-normally around :func:`median_half_light_radius`.

    Parameters
    ----------
    mag : ndarray, shape (N,)
        Apparent magnitudes.
    rng : numpy.random.Generator
        Random source.
    scatter_dex : float
        Standard deviation of log10(r50) at fixed magnitude.
    rmin, rmax : float
        Radii are clipped to this range, arcsec.
    **relation
        Passed to :func:`median_half_light_radius`.
    """
    mag = np.atleast_1d(np.asarray(mag, float))
    r = median_half_light_radius(mag, **relation) * 10.0 ** (scatter_dex * rng.standard_normal(mag.shape))
    return np.clip(r, rmin, rmax)


@dataclass(frozen=True)
class ParametricLibrary:
    """The COSMOS parametric fits as arrays (one row per usable galaxy).

    Attributes
    ----------
    ident : ndarray of int
        COSMOS identifier.
    mag : ndarray
        F814W ``mag_auto`` (AB).
    n, hlr, q, beta, frac : ndarray, shape (M, 2)
        Component parameters as in :class:`Morphology` (hlr in arcsec, beta in radians).
        Bulge+disc galaxies have the disc (n=1) in column 0 and the bulge (n=4) in column 1;
        single-Sersic galaxies have ``frac[:, 1] == 0``.
    total_hlr : ndarray
        Half-light radius of the whole galaxy, arcsec (see :func:`composite_hlr`).
    """

    ident: np.ndarray
    mag: np.ndarray
    n: np.ndarray
    hlr: np.ndarray
    q: np.ndarray
    beta: np.ndarray
    frac: np.ndarray
    total_hlr: np.ndarray

    def __len__(self) -> int:
        return len(self.mag)


@functools.lru_cache(maxsize=4)
def load_parametric_library(directory: str | None = None) -> ParametricLibrary:
    """Read the COSMOS 23.5 parametric fits (GalSim's default quality cuts applied).

    Parameters
    ----------
    directory : str, optional
        Folder holding ``real_galaxy_catalog_23.5_example*.fits``; default
        ``<shared data>/galaxies/cosmos_parametric``.

    Returns
    -------
    ParametricLibrary
        Same component conventions as ``galsim.COSMOSCatalog.makeGalaxy(gal_type="parametric")``.
    """
    import galsim

    directory = Path(directory) if directory else shared_data_dir() / "galaxies" / "cosmos_parametric"
    if not (directory / _PARAMETRIC_FILE).is_file():
        raise InputError(directory / _PARAMETRIC_FILE, "COSMOS parametric catalogue not found")
    cat = galsim.COSMOSCatalog(_PARAMETRIC_FILE, dir=str(directory), use_real=False)
    rec = cat.param_cat[cat.orig_index]
    use_bulge = rec["use_bulgefit"].astype(bool)
    # Fits with neither a usable bulge+disc nor a viable Sersic cannot be drawn by GalSim either.
    keep = use_bulge | rec["viable_sersic"].astype(bool)
    rec, use_bulge = rec[keep], use_bulge[keep]
    m = len(rec)
    n = np.zeros((m, 2))
    hlr = np.zeros((m, 2))
    q = np.ones((m, 2))
    beta = np.zeros((m, 2))
    frac = np.zeros((m, 2))
    sfit, bfit = rec["sersicfit"], rec["bulgefit"]
    hlr_col, flux_col = np.asarray(rec["hlr"]), np.asarray(rec["flux"])
    # Single Sersic: record hlr[0], flux[0], sersicfit n, q, phi.
    s = ~use_bulge
    n[s, 0] = round_sersic(sfit[s, 2])
    hlr[s, 0] = hlr_col[s, 0]
    q[s, 0] = sfit[s, 3]
    beta[s, 0] = sfit[s, 7]
    frac[s, 0] = 1.0
    # Bulge+disc: disc parameters are bulgefit[0:8], bulge bulgefit[8:16]; hlr/flux [2] and [1].
    b = use_bulge
    tot = flux_col[b, 1] + flux_col[b, 2]
    n[b] = [1.0, 4.0]
    hlr[b, 0], hlr[b, 1] = hlr_col[b, 2], hlr_col[b, 1]
    q[b, 0], q[b, 1] = bfit[b, 3], bfit[b, 11]
    beta[b, 0], beta[b, 1] = bfit[b, 7], bfit[b, 15]
    frac[b, 0], frac[b, 1] = flux_col[b, 2] / tot, flux_col[b, 1] / tot
    q = np.clip(q, 0.05, 1.0)
    # An unused second component gets harmless finite values (it is weighted by frac = 0).
    n[s, 1] = 1.0
    hlr[s, 1] = hlr[s, 0]
    return ParametricLibrary(ident=np.asarray(rec["IDENT"]), mag=np.asarray(rec["mag_auto"], float),
                             n=n, hlr=hlr, q=q, beta=beta, frac=frac,
                             total_hlr=composite_hlr(n, hlr, frac))


def sample_parametric(rngs: list[np.random.Generator], library: ParametricLibrary | None = None,
                      target_hlr: np.ndarray | None = None) -> tuple[Morphology, np.ndarray]:
    """Draw parametric COSMOS galaxies, one per generator, with a random rotation.

    Parameters
    ----------
    rngs : list of numpy.random.Generator
        One generator per source, so that source ``i`` depends on its own generator only
        (reproducible whatever the batching).
    library : ParametricLibrary, optional
        Default :func:`load_parametric_library`.
    target_hlr : ndarray, shape (N,), optional
        Half-light radius (arcsec) each galaxy is rescaled to (all components scaled by one
        factor, so the profile shape is kept). Default: the catalogue sizes.
        Use :func:`sample_half_light_radius` to get sizes that follow a size-magnitude relation.

    Returns
    -------
    morphology : Morphology
    rows : ndarray of int, shape (N,)
        Library row of each source (e.g. for its ``mag``).
    """
    lib = library if library is not None else load_parametric_library()
    nsrc = len(rngs)
    rows = np.empty(nsrc, np.int64)
    angle = np.empty(nsrc)
    for i, rng in enumerate(rngs):
        rows[i] = rng.integers(len(lib))
        angle[i] = rng.uniform(0.0, np.pi)
    m = Morphology.empty(nsrc)
    m.kind[:] = PARAMETRIC
    m.n[:] = lib.n[rows]
    m.q[:] = lib.q[rows]
    m.frac[:] = lib.frac[rows]
    # Rotating the whole galaxy keeps the bulge-disc misalignment of the fit.
    m.beta[:] = lib.beta[rows] + angle[:, None]
    scale = np.ones(nsrc) if target_hlr is None else np.asarray(target_hlr, float) / lib.total_hlr[rows]
    m.hlr[:] = lib.hlr[rows] * scale[:, None]
    return m, rows


def add_knots(morphology: Morphology, rngs: list[np.random.Generator], max_disc_fraction: float = 0.5,
              count_range: tuple[int, int] = (3, 30), max_disc_sersic: float = 2.5) -> Morphology:
    """Give the discs of parametric galaxies star-forming knots, in place (see :class:`Morphology`).

    Each galaxy whose component 0 has a Sersic index of at most ``max_disc_sersic`` (a disc;
    bulge+disc fits keep their disc there) moves a fraction, uniform in
    ``[0, max_disc_fraction]``, of that component's light into ``count_range`` (inclusive,
    uniform) knots. Spheroids stay smooth. Drawn from each source's own generator, after any
    draws already made from it.

    Parameters
    ----------
    morphology : Morphology
        Sources to modify; only ``kind == PARAMETRIC`` rows are touched.
    rngs : list of numpy.random.Generator
        One generator per source.
    max_disc_fraction : float
        Largest fraction of the disc's light in knots.
    count_range : (int, int)
        Smallest and largest number of knots.
    max_disc_sersic : float
        Component 0 counts as a disc up to this Sersic index.

    Returns
    -------
    Morphology
        The same object.
    """
    if not 0.0 <= max_disc_fraction <= 1.0:
        raise ValueError("max_disc_fraction must be within [0, 1]")
    if not 1 <= count_range[0] <= count_range[1]:
        raise ValueError("count_range must be (low, high) with 1 <= low <= high")
    for i, rng in enumerate(rngs):
        fraction = rng.uniform(0.0, max_disc_fraction)
        count = rng.integers(count_range[0], count_range[1] + 1)
        seed = rng.integers(2 ** 62)
        if morphology.kind[i] != PARAMETRIC or morphology.n[i, 0] > max_disc_sersic:
            continue
        morphology.knot_frac[i] = fraction * morphology.frac[i, 0]
        morphology.knot_count[i] = count
        morphology.knot_seed[i] = seed
    return morphology


def clean_hst_image(image: np.ndarray, nsigma: float = 1.5, smooth_px: float = 1.5,
                    grow_px: int = 2, taper_px: float = 1.0, border_px: int = 3
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Keep only the central galaxy of an HST postage stamp: sky noise and neighbours set to zero.

    The realistic modes brighten these galaxies by up to ~1000 (their F814W < 26 magnitudes are
    replaced by ground-survey ones), which amplifies the HST sky noise of the whole stamp with
    them: left in, it becomes structured negative and positive patterns hundreds of counts deep
    around bright galaxies. A segmentation removes it once, before any rescaling.

    The segmentation is the connected region of the smoothed image above ``nsigma`` times its
    noise that contains the brightest smoothed pixel near the centre (neighbours in the stamp
    are other, unrelated galaxies), dilated by ``grow_px`` to keep the faint outskirts that
    smoothing spreads below the threshold. The mask is then blurred by ``taper_px`` so that
    the cut is smooth: a hard edge on a 0.03" grid is harmless after a ground PSF, but a
    blurred one also keeps the k-space table free of high-frequency power from the edge.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        HST image, galaxy at the true centre ``((W - 1) / 2, (H - 1) / 2)``.
    nsigma : float
        Detection threshold in units of the smoothed image's noise.
    smooth_px : float
        Gaussian smoothing (standard deviation, HST pixels) of the detection image.
    grow_px : int
        Dilation of the detected region, HST pixels.
    taper_px : float
        Gaussian blur (standard deviation, HST pixels) of the mask edge; 0 for a hard cut.
    border_px : int
        Width of the frame where the noise is measured.

    Returns
    -------
    cleaned : ndarray, shape (H, W)
        ``image`` times ``weight``.
    weight : ndarray, shape (H, W)
        The tapered mask, in [0, 1] (exactly 0 far from the segmentation).

    Notes
    -----
    The noise is the MAD of the smoothed image in the stamp's outer frame rather than the
    catalogue's ``variance``: the drizzled noise is correlated, so what the threshold needs is
    the noise after smoothing, and that is what the frame measures. (The catalogue value also
    disagrees with the frame by up to 3x for some stamps.)
    """
    from scipy import ndimage

    image = np.asarray(image, float)
    smooth = ndimage.gaussian_filter(image, smooth_px)
    frame = np.ones(image.shape, bool)
    frame[border_px:-border_px, border_px:-border_px] = False
    vals = smooth[frame]
    sigma = 1.4826 * np.median(np.abs(vals - np.median(vals)))
    detected = smooth > nsigma * sigma
    labels, _ = ndimage.label(detected)
    cy, cx = (np.asarray(image.shape) - 1) / 2.0
    yy, xx = np.indices(image.shape)
    near = np.hypot(yy - cy, xx - cx) <= 4.0
    if not (near & detected).any():
        # Too faint to segment: keep a central disc so the galaxy is still drawn.
        mask = np.hypot(yy - cy, xx - cx) <= 4.0
    else:
        peak = np.unravel_index(np.argmax(np.where(near & detected, smooth, -np.inf)), image.shape)
        mask = labels == labels[peak]
    mask = ndimage.binary_dilation(mask, iterations=grow_px) if grow_px > 0 else mask
    weight = ndimage.gaussian_filter(mask.astype(float), taper_px) if taper_px > 0 else mask.astype(float)
    return image * weight, weight


class RealGalaxyLibrary:
    """Real COSMOS HST galaxies, cleaned of sky noise, served to the renderer as Fourier tables.

    Each galaxy's HST image is cleaned once (:func:`clean_hst_image`: pixels outside its
    segmentation set to zero), cropped symmetrically around its centre, normalised to flux 1 and
    tabulated on first use on a centred k grid (arcsec^-1) oversampled ``oversample`` times
    relative to the cropped stamp and truncated at ``kmax``; rotation, flip and rescaling are
    then a change of k coordinates and a bilinear look-up.

    The cleaned HST image is used as the intrinsic profile, WITHOUT deconvolving the HST PSF.
    Why: once the sky is masked, the HST PSF's extended halo around the galaxy is gone too (it
    is below the noise), so dividing by the PSF's transform removes a halo that is no longer
    there and digs a negative surround. Measured on 2000 CFIS-like realistic blends (noiseless),
    deconvolving where ``|PSF_hst(k)| > 0.3`` with a smooth taper to no deconvolution at 0.1
    left 86% of stamps with a minimum below -0.1% of their peak (worst -1.8%), against none
    (worst -0.02%) without deconvolution; deconvolving out to ``kmax`` as ``galsim.RealGalaxy``
    does also amplifies the noise left inside the galaxy (worst -39%). The price is that each
    galaxy keeps the HST PSF (0.117" FWHM, dilated with the galaxy by ``real_scale``):
    relative to the 0.65" CFIS PSF this widens the rendered galaxy by ~1.5% at scale 1 and ~6%
    at scale 2 in quadrature (the partially deconvolved version, itself biased small by its
    negative surround, is 6.6% / 9.7% smaller in median half-light radius). It also keeps the
    profiles consistent with the catalogue ``flux_radius``, which is measured on the HST image
    with its PSF (the cleaned images have a median half-light radius 0.98 times it).

    Parameters
    ----------
    directory : str, optional
        Folder of ``real_galaxy_catalog_26_extension_example*.fits``; default
        ``<shared data>/galaxies/cosmos_real``.
    kmax : float
        Largest wavenumber tabulated, arcsec^-1. 40 arcsec^-1 is where a 0.5" PSF's transform has
        fallen below 1e-6; rendering with a narrower PSF would need more.
    oversample : float
        k-grid spacing is ``2 pi / (oversample * L)`` for a postage stamp of side ``L``: the
        real-space period of the table. Bilinear interpolation in k multiplies the image by
        sinc^2(x / period), which the table pre-compensates; what is left is faint ghosts of
        the periodic copies, carrying ``table(k=0) - 1`` of the flux: measured at most 0.4% with
        10 (1.1% with 6, since the cleaned stamps are cropped close to the galaxy). The 100
        tables then take 32 MB and 1 s to build.
    """

    def __init__(self, directory: str | None = None, kmax: float = 40.0, oversample: float = 10.0):
        import galsim
        from astropy.table import Table

        directory = Path(directory) if directory else shared_data_dir() / "galaxies" / "cosmos_real"
        if not (directory / _REAL_FILE).is_file():
            raise InputError(directory / _REAL_FILE, "COSMOS real-galaxy catalogue not found")
        self.catalog = galsim.RealGalaxyCatalog(_REAL_FILE, dir=str(directory))
        fits = Table.read(directory / _REAL_FILE.replace(".fits", "_fits.fits"))
        #: HST-measured half-light radius (SExtractor flux_radius), arcsec.
        self.flux_radius = np.asarray(fits["flux_radius"], float) * COSMOS_PIXEL_SCALE
        #: HSC r-band magnitude (AB) of each galaxy.
        self.mag_r = np.asarray(fits["HSC_r"], float)
        self.kmax = kmax
        self.oversample = oversample
        self._tables: dict[int, tuple[np.ndarray, float, float]] = {}
        self._clean: dict[int, tuple[np.ndarray, float]] = {}

    def __len__(self) -> int:
        return self.catalog.nobjects

    def clean_image(self, index: int) -> tuple[np.ndarray, float]:
        """Cleaned, cropped HST image of galaxy ``index`` with unit sum, and its light radius.

        Returns
        -------
        image : ndarray, shape (S, T)
            :func:`clean_hst_image` of the HST stamp with the same number of empty rows and
            columns removed from all four sides (so the true centre does not move), divided by
            its sum.
        radius : float
            Distance from the centre to the farthest non-zero pixel corner, arcsec: all the
            light lies within it.
        """
        index = int(index)
        if index not in self._clean:
            raw = self.catalog.getGalImage(index).array
            cleaned, weight = clean_hst_image(raw)
            # The taper's far tail is below 1e-6: not worth a larger table. Selecting on the
            # weight, not the pixel value, keeps the negative noise pixels inside the galaxy
            # (dropping them would bias the outskirts, hence the size, upwards).
            keep = weight > 1e-6
            rows, cols = np.nonzero(keep)
            h, w = raw.shape
            # Trimming the same width from all four sides keeps the true centre in place.
            trim = min(rows.min(), h - 1 - rows.max(), cols.min(), w - 1 - cols.max())
            img = np.where(keep, cleaned, 0.0)[trim:h - trim, trim:w - trim]
            img = img / img.sum()
            cy, cx = (np.asarray(img.shape) - 1) / 2.0
            ry, rx = np.nonzero(img)
            radius = (np.hypot(ry - cy, rx - cx).max() + 1.0) * COSMOS_PIXEL_SCALE
            self._clean[index] = (img, radius)
        return self._clean[index]

    def galsim_object(self, index: int):
        """The unit-flux ``galsim.InterpolatedImage`` of the cleaned galaxy ``index``.

        This is the profile the fast renderer tabulates (for reference rendering).
        """
        import galsim

        img, _ = self.clean_image(index)
        return galsim.InterpolatedImage(galsim.Image(img, scale=COSMOS_PIXEL_SCALE), flux=1.0)

    def stamp_extent(self, index: int) -> float:
        """Side of galaxy ``index``'s cropped, cleaned postage stamp, arcsec (before rescaling)."""
        return max(self.clean_image(index)[0].shape) * COSMOS_PIXEL_SCALE

    def light_radius(self, index: int) -> float:
        """Radius holding all of galaxy ``index``'s light, arcsec (before rescaling)."""
        return self.clean_image(index)[1]

    def ktable(self, index: int) -> tuple[np.ndarray, float, float]:
        """Fourier table of galaxy ``index``: (complex64 array (M, M), dk, kcut), k in arcsec^-1.

        Entry ``[M//2 + j, M//2 + i]`` is the transform at ``(kx, ky) = (i dk, j dk)``;
        beyond ``kcut`` the table is zero. The cleaned image still carries the HST PSF and
        pixel, whose transform is ~0.1 at 40 arcsec^-1, so the cut is soft already.
        """
        index = int(index)
        if index not in self._tables:
            gal = self.galsim_object(index)
            extent = self.stamp_extent(index)
            dk = 2.0 * np.pi / (self.oversample * extent)
            kcut = min(gal.maxk, self.kmax)
            half = int(np.ceil(kcut / dk)) + 2
            kim = gal.drawKImage(nx=2 * half, ny=2 * half, scale=dk).array
            ky, kx = np.mgrid[-half:half, -half:half] * dk
            kim = np.where(kx ** 2 + ky ** 2 <= kcut ** 2, kim, 0.0)
            # Bilinear interpolation in k multiplies the image by sinc^2(x / period) in each
            # axis; dividing the periodic image by that envelope first cancels it.
            img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kim)))
            frac = np.fft.fftshift(np.fft.fftfreq(2 * half))
            env = np.sinc(frac)[:, None] ** 2 * np.sinc(frac)[None, :] ** 2
            kim = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img / env))).astype(np.complex64)
            self._tables[index] = (kim, dk, kcut)
        return self._tables[index]


@functools.lru_cache(maxsize=4)
def load_real_library(directory: str | None = None) -> RealGalaxyLibrary:
    """Shared (cached) :class:`RealGalaxyLibrary` for ``directory``."""
    return RealGalaxyLibrary(directory)


#: Library halves for honest tests: a model trained on ``"train"`` galaxies is tested on
#: ``"test"`` ones (even / odd library rows), never seeing a test galaxy's morphology.
REAL_GALAXY_SPLITS = ("all", "train", "test", "train-fit", "train-check")


def real_galaxy_rows(n_library: int, split: str = "all") -> np.ndarray:
    """Library rows of a real-galaxy split: ``all``, ``train`` (even rows) or ``test`` (odd
    rows); ``train-fit`` and ``train-check`` halve the training rows (rows 0, 4, 8, ... and 2, 6,
    10, ...), so that a choice made on galaxies unseen in fitting (a decision threshold) never
    looks at the test galaxies."""
    if split not in REAL_GALAXY_SPLITS:
        raise ValueError(f"unknown real-galaxy split {split!r}; expected one of {REAL_GALAXY_SPLITS}")
    rows = np.arange(n_library)
    if split == "all":
        return rows
    if split in ("train-fit", "train-check"):
        return rows[(rows % 4) == (0 if split == "train-fit" else 2)]
    return rows[(rows % 2) == (0 if split == "train" else 1)]


def sample_real(rngs: list[np.random.Generator], library: RealGalaxyLibrary | None = None,
                target_hlr: np.ndarray | None = None, scale: np.ndarray | None = None,
                split: str = "all") -> tuple[Morphology, np.ndarray]:
    """Draw real COSMOS galaxies, one per generator, with random rotation and flip.

    Parameters
    ----------
    rngs : list of numpy.random.Generator
        One generator per source.
    library : RealGalaxyLibrary, optional
        Default :func:`load_real_library`.
    target_hlr : ndarray, shape (N,), optional
        Rescale each galaxy so its catalogue ``flux_radius`` becomes this (arcsec).
    scale : ndarray, shape (N,), optional
        Explicit linear size factors (used when ``target_hlr`` is not given; default 1).
    split : {"all", "train", "test"}
        Draw only from this half of the library (:func:`real_galaxy_rows`).

    Returns
    -------
    morphology : Morphology
    rows : ndarray of int, shape (N,)
        Library row of each source.
    """
    lib = library if library is not None else load_real_library()
    nsrc = len(rngs)
    m = Morphology.empty(nsrc)
    m.kind[:] = REAL
    m.real_library = lib
    allowed = real_galaxy_rows(len(lib), split)
    for i, rng in enumerate(rngs):
        m.real_index[i] = allowed[rng.integers(len(allowed))]
        m.real_rotation[i] = rng.uniform(0.0, 2.0 * np.pi)
        m.real_flip[i] = rng.random() < 0.5
    if target_hlr is not None:
        m.real_scale[:] = np.asarray(target_hlr, float) / lib.flux_radius[m.real_index]
    elif scale is not None:
        m.real_scale[:] = scale
    return m, m.real_index.copy()
