"""Isolated and blended galaxy stamps following BlendHunter's definition (CFIS-like).

A stamp is 51 x 51 pixels at 0.187"/px in one band (CFHT/MegaCam r, as in CFIS), padded with
7 pixels of zeros on every side, hence 65 x 65:

* **isolated**: one galaxy at the stamp centre;
* **blended**: the same plus a second galaxy at a uniformly random position in the 51 x 51
  stamp (its light is cut at the stamp edge, like a cut-out of a survey image).

A blend is ``near`` when the two centres are less than 10 pixels apart. Two modes:

``"parametric"``
    COSMOS F814W < 23.5 Sersic / bulge+disc fits at their catalogue size, random rotation;
    magnitude = the catalogue F814W ``mag_auto``.
``"clumpy"``
    The parametric fits made more varied, for training: each galaxy takes the shape of a
    random catalogue fit, a magnitude drawn from the catalogue's distribution and the size
    that goes with it (as in ``"realistic"``), and its disc puts up to half of its light in
    3-30 star-forming knots (:func:`skysort.simulate.galaxies.add_knots`). Real discs are
    lumpy at CFIS resolution; smooth profiles alone teach a network that any lump is a companion.
``"realistic"``
    Real COSMOS HST galaxies (random rotation and flip). Their catalogue (F814W < 26) is mostly
    too faint for CFIS, so each gets a magnitude drawn from the parametric catalogue's
    distribution, and its size is scaled by ``r50(m_new) / r50(m_HSC_r)`` of
    :func:`skysort.simulate.galaxies.median_half_light_radius` (clipped to [0.5, 3]) so that
    brightened galaxies also grow.

Both use the CFIS-like PSF (Moffat beta=4.765 * Kolmogorov, 0.65" FWHM by default) and
Gaussian noise of one standard deviation per set (BlendHunter: 5, 10, ..., 35 counts; CFIS-like
default 14.5). Fluxes are ``10**(-0.4 * (mag - zero_point))`` counts with CFIS's zero point 30.

Every stamp depends only on ``(seed, index)``: its parameters and noise come from
``numpy.random.SeedSequence([seed, index])``, so any chunking of a set gives the same stamps.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from . import galaxies as _gal
from .render import render_scenes

STAMP_SIZE = 51
PAD = 7
PADDED_SIZE = STAMP_SIZE + 2 * PAD
PIXEL_SCALE = 0.187
NEAR_PX = 10.0
ZERO_POINT = 30.0
PSF_FWHM = 0.65
NOISE_SIGMA = 14.5
NOISE_SIGMAS = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0)


def _mag_to_flux(mag, zero_point):
    return 10.0 ** (-0.4 * (np.asarray(mag, float) - zero_point))


def make_blend_stamps(n: int, seed: int, start: int = 0, mode: str = "parametric",
                      noise_sigma: float = NOISE_SIGMA, blended_fraction: float = 0.5,
                      psf_fwhm: float = PSF_FWHM, zero_point: float = ZERO_POINT,
                      psf_g1: float = 0.0, psf_g2: float = 0.0, real_galaxies: str = "all",
                      near_fraction: float = 0.0, real_shear: float = 0.0) -> tuple[np.ndarray, Table]:
    """Make ``n`` isolated / blended stamps with global indices ``start .. start + n - 1``.

    Parameters
    ----------
    n : int
        Number of stamps.
    seed : int
        Seed of the whole set; stamp ``i`` depends only on ``(seed, i)``.
    start : int
        Global index of the first stamp (for chunked or parallel generation).
    mode : {"parametric", "clumpy", "realistic"}
        Galaxy morphologies (see the module docstring).
    noise_sigma : float
        Gaussian noise standard deviation per pixel, counts (0 for noiseless).
    blended_fraction : float
        Probability that a stamp is blended.
    psf_fwhm : float
        FWHM of the CFIS-like PSF, arcsec.
    zero_point : float
        Magnitude giving 1 count.
    psf_g1, psf_g2 : float
        PSF shear, shared by the set.
    real_galaxies : {"all", "train", "test"}
        Realistic mode: draw from this half of the real-galaxy library
        (:func:`skysort.simulate.galaxies.real_galaxy_rows`).
    near_fraction : float
        Probability that a blend's companion is drawn uniformly (in area) within
        ``NEAR_PX`` of the centre instead of anywhere in the stamp, to train on more near
        blends (in the stamp at large about 12% of companions are near). 0, the default,
        draws nothing more, so a set is the same as without the option.
    real_shear : float
        Realistic mode: each real galaxy is sheared by a reduced shear drawn uniformly within
        ``[-real_shear, real_shear]`` along a random axis (area kept), so that a training set
        holds more shapes than the library's galaxies. The shear is drawn after every other
        draw of its source: a set differs from the one without the option only in the
        galaxies' shapes. 0, the default, keeps the library's shapes.

    Returns
    -------
    images : ndarray of float32, shape (n, 1, 65, 65)
        Counts; the 7-pixel border is exactly zero.
    truth : astropy.table.Table
        One row per stamp: ``index``, ``blended`` (bool), ``n_sources``, ``separation_px``
        (companion distance from the centre, NaN if isolated), ``near`` (separation < 10 px),
        ``flux_ratio`` (companion / central flux, NaN if isolated), ``companion_dx``,
        ``companion_dy`` (pixels from the central galaxy, +x along columns), ``flux_central``,
        ``flux_companion`` (counts), ``mag_central``, ``mag_companion``, ``source_central``,
        ``source_companion`` (catalogue rows, -1 if none). Set-wide values (mode, seed,
        noise_sigma, psf_fwhm, pixel_scale, zero_point) are in ``truth.meta``.
    """
    if mode not in _gal.MORPHOLOGY_MODES:
        raise ValueError(f"unknown blend mode {mode!r}; expected one of {_gal.MORPHOLOGY_MODES}")
    if not 0.0 <= blended_fraction <= 1.0:
        raise ValueError("blended_fraction must be within [0, 1]")
    if not 0.0 <= near_fraction <= 1.0:
        raise ValueError("near_fraction must be within [0, 1]")
    if not 0.0 <= real_shear < 1.0 or (real_shear and mode != "realistic"):
        raise ValueError("real_shear must be within [0, 1) and is for the realistic mode")
    index = np.arange(start, start + n, dtype=np.int64)
    plib = _gal.load_parametric_library()
    rlib = _gal.load_real_library() if mode == "realistic" else None

    blended = np.zeros(n, bool)
    dxdy = np.full((n, 2), np.nan)
    src_rngs: list[np.random.Generator] = []
    src_stamp: list[int] = []
    noise_seeds = []
    for i, g in enumerate(index):
        # Independent children per role: adding a draw to one role never shifts another.
        c_set, c_cen, c_comp, c_noise = np.random.SeedSequence([seed, int(g)]).spawn(4)
        r = np.random.default_rng(c_set)
        blended[i] = r.random() < blended_fraction
        half = (STAMP_SIZE - 1) / 2.0
        dx, dy = r.uniform(-half, half, 2)
        if near_fraction and r.random() < near_fraction:
            radius, angle = NEAR_PX * np.sqrt(r.random()), r.uniform(0.0, 2.0 * np.pi)
            dx, dy = radius * np.cos(angle), radius * np.sin(angle)
        src_rngs.append(np.random.default_rng(c_cen))
        src_stamp.append(i)
        if blended[i]:
            dxdy[i] = dx, dy
            src_rngs.append(np.random.default_rng(c_comp))
            src_stamp.append(i)
        noise_seeds.append(c_noise)
    src_stamp_arr = np.asarray(src_stamp, np.int64)
    nsrc = len(src_rngs)
    is_comp = np.zeros(nsrc, bool)
    is_comp[1:] = src_stamp_arr[1:] == src_stamp_arr[:-1]

    if mode == "realistic":
        morph, rows = _gal.sample_real(src_rngs, rlib, split=real_galaxies)
        native = rlib.mag_r[rows]
    else:
        morph, rows = _gal.sample_parametric(src_rngs, plib)
        native = plib.mag[rows]
    if mode == "parametric":
        mags = native
    else:
        # Each source generator is used after the shape's draws, so magnitudes stay per-source.
        mags = plib.mag[[rng.integers(len(plib)) for rng in src_rngs]]
        scale = np.clip(_gal.median_half_light_radius(mags) / _gal.median_half_light_radius(native), 0.5, 3.0)
        if mode == "realistic":
            morph.real_scale[:] = scale
        else:
            morph.hlr *= scale[:, None]
            _gal.add_knots(morph, src_rngs)
    if real_shear:
        morph.real_shear[:] = [rng.uniform(-real_shear, real_shear) for rng in src_rngs]
    fluxes = _mag_to_flux(mags, zero_point)
    offsets = np.zeros((nsrc, 2))
    offsets[is_comp] = dxdy[src_stamp_arr[is_comp]]

    inner = render_scenes(src_stamp_arr, n, fluxes[:, None], [psf_fwhm], PIXEL_SCALE, STAMP_SIZE,
                          morphology=morph, offsets=offsets,
                          sky_sigma=noise_sigma if noise_sigma > 0 else None,
                          noise_seeds=noise_seeds, psf_kind="cfis", psf_g1=psf_g1, psf_g2=psf_g2)
    images = np.zeros((n, 1, PADDED_SIZE, PADDED_SIZE), np.float32)
    images[:, :, PAD:PAD + STAMP_SIZE, PAD:PAD + STAMP_SIZE] = inner

    cen = ~is_comp
    sep = np.hypot(dxdy[:, 0], dxdy[:, 1])
    flux_c = np.full(n, np.nan)
    mag_c = np.full(n, np.nan)
    row_c = np.full(n, -1, np.int64)
    flux_c[src_stamp_arr[is_comp]] = fluxes[is_comp]
    mag_c[src_stamp_arr[is_comp]] = mags[is_comp]
    row_c[src_stamp_arr[is_comp]] = rows[is_comp]
    truth = Table({
        "index": index,
        "blended": blended,
        "n_sources": 1 + blended.astype(np.int16),
        "separation_px": sep,
        "near": np.where(blended, sep < NEAR_PX, False),
        "flux_ratio": flux_c / fluxes[cen],
        "companion_dx": dxdy[:, 0],
        "companion_dy": dxdy[:, 1],
        "flux_central": fluxes[cen],
        "flux_companion": flux_c,
        "mag_central": mags[cen],
        "mag_companion": mag_c,
        "source_central": rows[cen],
        "source_companion": row_c,
    })
    truth.meta.update(mode=mode, seed=int(seed), noise_sigma=float(noise_sigma),
                      psf_fwhm=float(psf_fwhm), pixel_scale=PIXEL_SCALE, zero_point=float(zero_point),
                      stamp_size=STAMP_SIZE, pad=PAD, near_px=NEAR_PX, near_fraction=float(near_fraction),
                      real_shear=float(real_shear))
    return images, truth
