"""Multi-band postage stamps of point sources and galaxies, in counts.

:func:`render_stamps` (one source per stamp) and :func:`render_scenes` (any number of sources
per stamp, e.g. blends) draw sources in Fourier space, in vectorised numpy batches:

* each source's profile transform is computed ONCE on the stamp's k grid and reused in every
  band: colour gradients are ignored (see :mod:`skysort.simulate.galaxies`), so a band differs
  only by its flux and its PSF. Bands sharing a PSF (same kind, FWHM, shear) share one inverse
  FFT, scaled per band;
* Sersic components are looked up in radial transform tables (one per Sersic index on a
  0.05 grid, computed once from ``galsim.Sersic.kValue``), so an elliptical, rotated Sersic of
  any size costs one table look-up per k sample;
* star-forming knots (:class:`~skysort.simulate.galaxies.Morphology` ``knot_*``) are point
  sources, a sum of phase ramps added to their galaxy's transform;
* real COSMOS galaxies are looked up (bilinearly) in the tabulated transform of their cleaned
  HST image (:meth:`RealGalaxyLibrary.ktable`), rotated, flipped and rescaled by a change of k
  coordinates;
* the PSF transform (GalSim ``drawKImage``) times the pixel response (sinc) is cached per
  (PSF, pixel scale, grid size); sub-pixel centring is a phase ramp.

The stamp is the corner of a periodic image at least ``pad_factor`` (default 1.2) times larger;
light that falls beyond the periodic image wraps around. Each source gets the smallest size from
1.2 to 8 stamp sizes that holds its 99%-light radius (the radius of its cleaned HST image for
real galaxies) plus 3 PSF FWHM away from the stamp, so only the rare very extended galaxies pay for a larger transform.
Aliasing beyond the
Nyquist frequency is ignored, which is exact for PSFs sampled by at least ~2 pixels per FWHM.

:func:`render_stamps_galsim` draws the same inputs with ``galsim.drawImage`` (slow, ~5 ms per
profile and band); the tests check the fast renderer against it.

Coordinates follow GalSim: a source with offset (0, 0) sits at the true centre of the stamp,
pixel ``((W - 1) / 2, (H - 1) / 2)`` in 0-based (column, row) coordinates; offsets are in
pixels, x along columns.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft

from . import psf as _psf
from .galaxies import PARAMETRIC, POINT, REAL, SERSIC_MAX, SERSIC_MIN, SERSIC_STEP, Morphology

# Radial Sersic transform tables: f_n(x) with x = k * hlr (rad / arcsec * arcsec), sampled in
# log x. 200 points per decade keeps linear-interpolation error below 1e-5.
_LOGX0, _LOGX1, _NLOG = np.log(1e-4), np.log(1e4), 1601
_DLOGX = (_LOGX1 - _LOGX0) / (_NLOG - 1)
_N_GRID = np.round(np.arange(SERSIC_MIN, SERSIC_MAX + SERSIC_STEP / 2, SERSIC_STEP), 6)
_sersic_tables = np.full((len(_N_GRID), _NLOG + 1), np.nan, dtype=np.float32)


def _sersic_rows(n: np.ndarray) -> np.ndarray:
    """Table rows for Sersic indices (rounded to the grid), filling missing rows on demand."""
    import galsim

    rows = np.clip(np.round((np.asarray(n, float) - SERSIC_MIN) / SERSIC_STEP).astype(np.int64),
                   0, len(_N_GRID) - 1)
    for r in np.unique(rows):
        if np.isnan(_sersic_tables[r, 0]):
            prof = galsim.Sersic(float(_N_GRID[r]), half_light_radius=1.0)
            x = np.exp(_LOGX0 + _DLOGX * np.arange(_NLOG))
            vals = np.array([prof.kValue(galsim.PositionD(float(xi), 0.0)).real for xi in x])
            # Below x0 the transform is 1 (total flux); the extra last column of zeros makes
            # the look-up of k beyond the table return 0 without a branch.
            vals[0] = 1.0
            _sersic_tables[r, :_NLOG] = vals
            _sersic_tables[r, _NLOG] = 0.0
    return rows


def _sersic_k(rows, hlr, q, beta, kx, ky):
    """Transforms of elliptical unit-flux Sersic components on a k grid.

    Parameters
    ----------
    rows : ndarray of int, shape (S,)
        Table rows (from :func:`_sersic_rows`).
    hlr, q, beta : ndarray, shape (S,)
        Half-light radius (arcsec), axis ratio, position angle (rad).
    kx : ndarray, shape (Kx,)
        Wavenumbers along x, rad / arcsec.
    ky : ndarray, shape (Ky,)
        Wavenumbers along y, rad / arcsec.

    Returns
    -------
    ndarray of float32, shape (S, Ky, Kx)
    """
    c, s = np.cos(beta), np.sin(beta)
    # |A k|^2 for GalSim's area-preserving shear: k along the major axis is divided by sqrt(q).
    h2 = hlr * hlr
    a = (h2 * (c * c / q + q * s * s))[:, None, None]
    b = (h2 * (s * s / q + q * c * c))[:, None, None]
    cc = (h2 * 2.0 * c * s * (1.0 / q - q))[:, None, None]
    kx = kx[None, None, :]
    ky = ky[None, :, None]
    k2 = a * (kx * kx) + b * (ky * ky) + cc * (kx * ky)
    with np.errstate(divide="ignore"):
        t = (0.5 * np.log(k2) - _LOGX0) / _DLOGX
    t = np.clip(t, 0.0, _NLOG)
    i = np.minimum(t.astype(np.int64), _NLOG - 1)
    w = (t - i).astype(np.float32)
    base = (rows * (_NLOG + 1))[:, None, None]
    flat = _sersic_tables.ravel()
    lo = flat[base + i]
    hi = flat[base + i + 1]
    return lo + w * (hi - lo)


def _real_k(lib, index, scale, rotation, flip, kx, ky, shear=0.0):
    """Transform of one rotated / flipped / sheared / rescaled real galaxy on a k grid, complex64 (Ky, Kx)."""
    table, dk, _ = lib.ktable(index)
    half = table.shape[0] // 2
    c, s = np.cos(rotation), np.sin(rotation)
    # F(k) = F0(J^T k) with J = scale * R(rotation) * S(shear) * flip (the shear acts along x
    # before the rotation, S = diag(1 + g, 1 - g) / sqrt(1 - g^2), symmetric with det 1): rotate
    # k by -rotation, scale, shear, flip.
    u = scale * (c * kx[None, :] + s * ky[:, None])
    v = scale * (-s * kx[None, :] + c * ky[:, None])
    if shear:
        norm = np.sqrt(1.0 - shear * shear)
        u = u * ((1.0 + shear) / norm)
        v = v * ((1.0 - shear) / norm)
    if flip:
        u = -u
    fu = u / dk + half
    fv = v / dk + half
    i0 = np.floor(fu).astype(np.int64)
    j0 = np.floor(fv).astype(np.int64)
    wu = (fu - i0).astype(np.float32)
    wv = (fv - j0).astype(np.float32)
    m = table.shape[0]
    inside = (i0 >= 0) & (j0 >= 0) & (i0 < m - 1) & (j0 < m - 1)
    i0 = np.where(inside, i0, 0)
    j0 = np.where(inside, j0, 0)
    flat = table.ravel()
    p = j0 * m + i0
    val = ((1 - wv) * ((1 - wu) * flat[p] + wu * flat[p + 1])
           + wv * ((1 - wu) * flat[p + m] + wu * flat[p + m + 1]))
    return np.where(inside, val, 0).astype(np.complex64)


def _knots_k(positions, kx, ky):
    """Transform of equal point sources at ``positions`` (K, 2) arcsec, unit total flux, complex64 (Ky, Kx)."""
    # A sum of phase ramps, as one (Ky, K) x (K, Kx) product.
    ey = np.exp(-1j * np.outer(ky, positions[:, 1])).astype(np.complex64)
    ex = np.exp(-1j * np.outer(positions[:, 0], kx)).astype(np.complex64)
    return (ey @ ex) / len(positions)


# A set holds 5 PSF variants x up to 9 band FWHMs x a few FFT sizes: 64 entries thrashed.
@functools.lru_cache(maxsize=512)
def _psf_k(kind, fwhm, g1, g2, beta, pixel_scale, npad):
    """PSF transform times pixel response on the rfft grid of an npad x npad image, complex64."""
    dk = 2.0 * np.pi / (npad * pixel_scale)
    kim = _psf.make_psf(kind, fwhm, g1, g2, beta).drawKImage(nx=npad, ny=npad, scale=dk).array
    kim = np.fft.ifftshift(kim)[:, : npad // 2 + 1]
    fx = np.fft.rfftfreq(npad)
    fy = np.fft.fftfreq(npad)
    pix = np.sinc(fy)[:, None] * np.sinc(fx)[None, :]
    out = (kim * pix).astype(np.complex64)
    out.setflags(write=False)
    return out


def _pad_size(stamp_hw: tuple[int, int], pad_factor: float) -> int:
    n = int(np.ceil(max(stamp_hw) * pad_factor))
    n = scipy.fft.next_fast_len(n, real=True)
    while n % 2:
        n = scipy.fft.next_fast_len(n + 1, real=True)
    return n


def _as_hw(stamp_size) -> tuple[int, int]:
    if np.ndim(stamp_size) == 0:
        return int(stamp_size), int(stamp_size)
    h, w = stamp_size
    return int(h), int(w)


def _psf_groups(psf_fwhm, psf_kind, psf_g1, psf_g2, psf_beta):
    """Group bands with identical PSFs: list of (psf key, band indices)."""
    nb = len(psf_fwhm)
    g1 = np.broadcast_to(np.asarray(psf_g1, float), (nb,))
    g2 = np.broadcast_to(np.asarray(psf_g2, float), (nb,))
    kinds = [psf_kind] * nb if isinstance(psf_kind, str) else list(psf_kind)
    betas = [psf_beta] * nb if psf_beta is None or np.ndim(psf_beta) == 0 else list(psf_beta)
    groups: dict[tuple, list[int]] = {}
    for b in range(nb):
        key = (kinds[b], _psf._key(psf_fwhm[b]), _psf._key(g1[b]), _psf._key(g2[b]),
               None if betas[b] is None else _psf._key(betas[b]))
        groups.setdefault(key, []).append(b)
    return [(k, np.array(v)) for k, v in groups.items()]


def _check_inputs(fluxes, psf_fwhm, offsets, nsrc):
    fluxes = np.asarray(fluxes, float)
    if fluxes.ndim == 1:
        fluxes = fluxes[:, None]
    psf_fwhm = np.atleast_1d(np.asarray(psf_fwhm, float))
    if fluxes.shape[1] != len(psf_fwhm):
        raise ValueError(f"fluxes have {fluxes.shape[1]} bands but psf_fwhm has {len(psf_fwhm)}")
    if nsrc is not None and len(fluxes) != nsrc:
        raise ValueError(f"{len(fluxes)} flux rows for {nsrc} sources")
    offsets = np.zeros((len(fluxes), 2)) if offsets is None else np.asarray(offsets, float)
    if offsets.shape != (len(fluxes), 2):
        raise ValueError(f"offsets must have shape ({len(fluxes)}, 2), got {offsets.shape}")
    return fluxes, psf_fwhm, offsets


def add_noise(stamps: np.ndarray, sky_sigma, noise_seeds) -> np.ndarray:
    """Add Gaussian sky noise in place, one independent stream per stamp.

    Parameters
    ----------
    stamps : ndarray of float32, shape (N, B, H, W)
        Noiseless stamps, counts.
    sky_sigma : float or array_like, shape (B,) or (N, B)
        Noise standard deviation per pixel, counts.
    noise_seeds : sequence of length N
        Seed of each stamp's noise (anything ``numpy.random.default_rng`` accepts, e.g. an int
        or a ``SeedSequence``), so a stamp's noise does not depend on the batch it is drawn in.

    Returns
    -------
    ndarray
        ``stamps`` itself.
    """
    n, nb = stamps.shape[:2]
    sigma = np.broadcast_to(np.asarray(sky_sigma, np.float32), (n, nb))
    if noise_seeds is None or len(noise_seeds) != n:
        raise ValueError(f"add_noise needs one noise seed per stamp ({n})")
    shape = stamps.shape[1:]
    for i in range(n):
        rng = np.random.default_rng(noise_seeds[i])
        stamps[i] += rng.standard_normal(shape, dtype=np.float32) * sigma[i][:, None, None]
    return stamps


#: Periodic-image sizes (in stamp sizes) tried, smallest first, for sources of growing extent.
_PAD_FACTORS = (1.2, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def _extent_arcsec(morphology: Morphology) -> np.ndarray:
    """Radius beyond which a source has < 1% of its light, arcsec (0 for point sources).

    Parametric components use the 99% radius of their Sersic profile along the major axis;
    real galaxies the rescaled radius beyond which their cleaned HST image is zero.
    """
    from scipy import special

    ext = np.zeros(len(morphology))
    par = morphology.kind == PARAMETRIC
    if par.any():
        n = np.clip(morphology.n[par], SERSIC_MIN, SERSIC_MAX)
        b = special.gammaincinv(2 * n, 0.5)
        r99 = (special.gammaincinv(2 * n, 0.99) / b) ** n * morphology.hlr[par] / np.sqrt(morphology.q[par])
        ext[par] = np.where(morphology.frac[par] > 0, r99, 0.0).max(axis=1)
    real = np.nonzero(morphology.kind == REAL)[0]
    if len(real):
        lib = morphology.real_library
        radii = np.array([lib.light_radius(i) for i in morphology.real_index[real]])
        shear = np.abs(morphology.real_shear[real])
        ext[real] = radii * morphology.real_scale[real] * (1.0 + shear) / np.sqrt(1.0 - shear**2)
    return ext


def _render_chunk(out, idx, npad, psf_ks, groups, h, w, pixel_scale, morphology, sersic_rows,
                  fluxes, offsets, source_stamp):
    """Add sources ``idx`` (all drawn on an npad x npad periodic image) to ``out``."""
    # k grids: per pixel (for the phase ramp) and per arcsec (for the profiles).
    kx_pix = 2.0 * np.pi * np.fft.rfftfreq(npad)
    ky_pix = 2.0 * np.pi * np.fft.fftfreq(npad)
    kx = kx_pix / pixel_scale
    ky = ky_pix / pixel_scale
    cnt = len(idx)
    gal = np.ones((cnt, npad, npad // 2 + 1), np.complex64)
    ck = morphology.kind[idx]
    par = np.nonzero(ck == PARAMETRIC)[0]
    if len(par):
        acc = np.zeros((len(par), npad, npad // 2 + 1), np.float32)
        knot_frac = morphology.knot_frac[idx[par]]
        for comp in range(morphology.n.shape[1]):
            frac = morphology.frac[idx[par], comp]
            if comp == 0:
                # Knots take their light from the disc (component 0).
                frac = frac - knot_frac
            use = frac > 0
            if not use.any():
                continue
            sub = idx[par][use]
            acc[use] += frac[use, None, None].astype(np.float32) * _sersic_k(
                sersic_rows[sub, comp], morphology.hlr[sub, comp], morphology.q[sub, comp],
                morphology.beta[sub, comp], kx, ky)
        gal[par] = acc
        for p in np.nonzero(knot_frac > 0)[0]:
            gal[par[p]] += knot_frac[p] * _knots_k(morphology.knot_offsets(idx[par[p]]), kx, ky)
    for j in np.nonzero(ck == REAL)[0]:
        i = idx[j]
        gal[j] = _real_k(morphology.real_library, morphology.real_index[i],
                         morphology.real_scale[i], morphology.real_rotation[i],
                         morphology.real_flip[i], kx, ky, float(morphology.real_shear[i]))
    # Phase ramp putting the source at (W-1)/2 + dx, (H-1)/2 + dy of the cropped corner.
    sx = (w - 1) / 2.0 + offsets[idx, 0]
    sy = (h - 1) / 2.0 + offsets[idx, 1]
    gal *= np.exp(-1j * sy[:, None] * ky_pix[None, :]).astype(np.complex64)[:, :, None]
    gal *= np.exp(-1j * sx[:, None] * kx_pix[None, :]).astype(np.complex64)[:, None, :]
    stamp_ids = source_stamp[idx]
    single = len(np.unique(stamp_ids)) == cnt
    for (_, bands), pk in zip(groups, psf_ks):
        # Only the first h rows and w columns of the periodic image are kept, so the
        # inverse transform along y is cropped before the (real) one along x.
        rows = scipy.fft.ifft(gal * pk, axis=-2, overwrite_x=True)[:, :h]
        img = scipy.fft.irfft(rows, n=npad, axis=-1)[:, :, :w]
        f = fluxes[idx][:, bands].astype(np.float32)
        if single:
            out[stamp_ids[:, None], bands[None, :]] += f[:, :, None, None] * img[:, None]
        else:
            for r in range(cnt):
                out[stamp_ids[r], bands] += f[r][:, None, None] * img[r]



def render_scenes(source_stamp, n_stamps: int, fluxes, psf_fwhm, pixel_scale: float, stamp_size,
                  morphology: Morphology | None = None, offsets=None, sky_sigma=None,
                  noise_seeds=None, psf_kind="moffat", psf_g1=0.0, psf_g2=0.0, psf_beta=None,
                  pad_factor: float = 1.2, chunk_size: int = 256) -> np.ndarray:
    """Render stamps holding any number of sources each (blends, crowded fields).

    Parameters
    ----------
    source_stamp : array_like of int, shape (M,)
        Stamp each source belongs to, in ``[0, n_stamps)``.
    n_stamps : int
        Number of stamps ``N``.
    fluxes : array_like, shape (M, B)
        Total flux of each source in each band, counts (the light is not clipped to the stamp:
        a large or off-centre source loses what falls outside).
    psf_fwhm : array_like, shape (B,)
        PSF FWHM of each band, arcsec.
    pixel_scale : float
        Arcsec per pixel.
    stamp_size : int or (int, int)
        Stamp side ``H = W``, or ``(H, W)``, pixels.
    morphology : Morphology, optional
        Shapes of the M sources; default all point sources (stars, quasars).
    offsets : array_like, shape (M, 2), optional
        Source centre minus stamp true centre, pixels, as (dx along columns, dy along rows).
    sky_sigma : float or array_like, shape (B,) or (N, B), optional
        Gaussian sky noise standard deviation per pixel, counts; default noiseless.
    noise_seeds : sequence of length N, optional
        One noise seed per stamp (required with ``sky_sigma``); see :func:`add_noise`.
    psf_kind : str or sequence of str
        PSF family per band (or one for all): "moffat", "kolmogorov" or "cfis".
    psf_g1, psf_g2 : float or array_like, shape (B,)
        PSF reduced shear per band.
    psf_beta : float or sequence, optional
        Moffat slope per band (default per :func:`skysort.simulate.psf.make_psf`).
    pad_factor : float
        Smallest size of the periodic FFT image relative to the stamp (>= 1.2); extended
        sources get more (see the module docstring).
    chunk_size : int
        Sources transformed together; bounds memory (~``chunk_size * 60 kB`` per PSF for
        64x64 stamps) without changing the result.

    Returns
    -------
    ndarray of float32, shape (N, B, H, W)
        Stamps in counts.
    """
    h, w = _as_hw(stamp_size)
    source_stamp = np.asarray(source_stamp, np.int64)
    nsrc = len(source_stamp)
    fluxes, psf_fwhm, offsets = _check_inputs(fluxes, psf_fwhm, offsets, nsrc)
    if morphology is None:
        morphology = Morphology.point_sources(nsrc)
    if len(morphology) != nsrc:
        raise ValueError(f"morphology has {len(morphology)} rows for {nsrc} sources")
    if nsrc and (source_stamp.min() < 0 or source_stamp.max() >= n_stamps):
        raise ValueError("source_stamp out of range")
    if pad_factor < 1.2:
        raise ValueError("pad_factor must be >= 1.2")
    nb = len(psf_fwhm)
    groups = _psf_groups(psf_fwhm, psf_kind, psf_g1, psf_g2, psf_beta)
    out = np.zeros((n_stamps, nb, h, w), np.float32)
    sersic_rows = _sersic_rows(morphology.n.ravel()).reshape(morphology.n.shape)
    # Extended sources get a larger periodic image, so their tails do not wrap into the stamp.
    need = (max(h, w) / 2.0 + np.abs(offsets).max(axis=1)
            + (_extent_arcsec(morphology) + 3.0 * psf_fwhm.max()) / pixel_scale) / max(h, w)
    factors = np.array([f for f in _PAD_FACTORS if f >= pad_factor] or [pad_factor])
    cls = np.minimum(np.searchsorted(factors, np.maximum(need, pad_factor)), len(factors) - 1)
    for c in np.unique(cls):
        members = np.nonzero(cls == c)[0]
        npad = _pad_size((h, w), factors[c])
        psf_ks = [_psf_k(*key, _psf._key(pixel_scale), npad) for key, _ in groups]
        for start in range(0, len(members), chunk_size):
            _render_chunk(out, members[start:start + chunk_size], npad, psf_ks, groups, h, w,
                          pixel_scale, morphology, sersic_rows, fluxes, offsets, source_stamp)
    if sky_sigma is not None:
        add_noise(out, sky_sigma, noise_seeds)
    return out


def render_stamps(fluxes, psf_fwhm, pixel_scale: float, stamp_size, morphology: Morphology | None = None,
                  offsets=None, sky_sigma=None, noise_seeds=None, psf_kind="moffat", psf_g1=0.0,
                  psf_g2=0.0, psf_beta=None, pad_factor: float = 1.2, chunk_size: int = 256
                  ) -> np.ndarray:
    """Render one source per stamp in every band.

    Parameters
    ----------
    fluxes : array_like, shape (N, B)
        Total flux of each source in each band, counts.
    psf_fwhm : array_like, shape (B,)
        PSF FWHM of each band, arcsec.
    pixel_scale : float
        Arcsec per pixel.
    stamp_size : int or (int, int)
        Stamp side, or (H, W), pixels.
    morphology : Morphology, optional
        Shapes; default all point sources (stars and quasars are drawn as the PSF).
    offsets : array_like, shape (N, 2), optional
        Sub-pixel (or larger) centre offsets (dx, dy) from the stamp's true centre, pixels.
    sky_sigma : float or array_like, shape (B,) or (N, B), optional
        Gaussian sky noise per pixel, counts; default noiseless.
    noise_seeds : sequence of length N, optional
        Per-stamp noise seeds (required with ``sky_sigma``).
    psf_kind, psf_g1, psf_g2, psf_beta, pad_factor, chunk_size
        As :func:`render_scenes`.

    Returns
    -------
    ndarray of float32, shape (N, B, H, W)
        Stamps in counts.
    """
    n = len(np.atleast_1d(np.asarray(fluxes, float)))
    return render_scenes(np.arange(n), n, fluxes, psf_fwhm, pixel_scale, stamp_size,
                         morphology=morphology, offsets=offsets, sky_sigma=sky_sigma,
                         noise_seeds=noise_seeds, psf_kind=psf_kind, psf_g1=psf_g1,
                         psf_g2=psf_g2, psf_beta=psf_beta, pad_factor=pad_factor,
                         chunk_size=chunk_size)


def galsim_profile(morphology: Morphology, i: int):
    """Unit-flux ``galsim.GSObject`` of source ``i`` (before PSF), for reference rendering."""
    import galsim

    k = morphology.kind[i]
    if k == POINT:
        return galsim.DeltaFunction(flux=1.0)
    if k == PARAMETRIC:
        comps = []
        for c in range(morphology.n.shape[1]):
            frac = morphology.frac[i, c]
            if frac <= 0:
                continue
            n = float(np.clip(np.round(morphology.n[i, c] / SERSIC_STEP) * SERSIC_STEP,
                              SERSIC_MIN, SERSIC_MAX))
            if c == 0:
                frac -= morphology.knot_frac[i]
            prof = galsim.Sersic(n, half_light_radius=float(morphology.hlr[i, c]), flux=float(frac))
            if morphology.q[i, c] < 1:
                prof = prof.shear(q=float(morphology.q[i, c]),
                                  beta=float(morphology.beta[i, c]) * galsim.radians)
            comps.append(prof)
        knots = morphology.knot_offsets(i)
        comps += [galsim.DeltaFunction(flux=float(morphology.knot_frac[i]) / len(knots)).shift(x, y)
                  for x, y in knots]
        return galsim.Add(comps) if len(comps) > 1 else comps[0]
    if k == REAL:
        prof = morphology.real_library.galsim_object(morphology.real_index[i])
        if morphology.real_flip[i]:
            prof = prof.transform(-1.0, 0.0, 0.0, 1.0)
        if morphology.real_shear[i]:
            prof = prof.shear(g1=float(morphology.real_shear[i]), g2=0.0)
        return prof.rotate(float(morphology.real_rotation[i]) * galsim.radians).dilate(
            float(morphology.real_scale[i]))
    raise ValueError(f"unknown source kind {k}")


def render_stamps_galsim(fluxes, psf_fwhm, pixel_scale: float, stamp_size,
                         morphology: Morphology | None = None, offsets=None, sky_sigma=None,
                         noise_seeds=None, psf_kind="moffat", psf_g1=0.0, psf_g2=0.0,
                         psf_beta=None, source_stamp=None, n_stamps: int | None = None
                         ) -> np.ndarray:
    """Reference renderer: same inputs and output as :func:`render_scenes` / :func:`render_stamps`,
    drawn with ``galsim.drawImage`` (one draw per source and distinct PSF, scaled per band).

    ``source_stamp`` and ``n_stamps`` default to one source per stamp. Slow (milliseconds per
    draw); meant for validation and for profiles the fast renderer does not cover.
    """
    import galsim

    h, w = _as_hw(stamp_size)
    fluxes, psf_fwhm, offsets = _check_inputs(fluxes, psf_fwhm, offsets, None)
    nsrc = len(fluxes)
    if morphology is None:
        morphology = Morphology.point_sources(nsrc)
    source_stamp = np.arange(nsrc) if source_stamp is None else np.asarray(source_stamp, np.int64)
    n_stamps = nsrc if n_stamps is None else n_stamps
    out = np.zeros((n_stamps, len(psf_fwhm), h, w), np.float32)
    groups = _psf_groups(psf_fwhm, psf_kind, psf_g1, psf_g2, psf_beta)
    for i in range(nsrc):
        prof = galsim_profile(morphology, i)
        for key, bands in groups:
            img = galsim.ImageF(w, h, scale=pixel_scale)
            galsim.Convolve(prof, _psf.make_psf(*key)).drawImage(
                image=img, offset=(float(offsets[i, 0]), float(offsets[i, 1])))
            out[source_stamp[i], bands] += fluxes[i, bands, None, None].astype(np.float32) * img.array
    if sky_sigma is not None:
        add_noise(out, sky_sigma, noise_seeds)
    return out
