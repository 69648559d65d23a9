"""Image side of the survey simulator: PSFs, galaxy morphologies, fast renderer, blends."""

from __future__ import annotations

import numpy as np
import pytest

galsim = pytest.importorskip("galsim")

from skysort.simulate import blends, galaxies, psf, render  # noqa: E402


def _has_shared_data() -> bool:
    try:
        galaxies.shared_data_dir()
    except Exception:
        return False
    return True


needs_data = pytest.mark.skipif(not _has_shared_data(), reason="shared COSMOS data not found")


def _hlr(image: np.ndarray) -> float:
    """Radius (pixels) of the circle around the centroid enclosing half the image's flux."""
    yy, xx = np.indices(image.shape)
    tot = image.sum()
    cx, cy = (image * xx).sum() / tot, (image * yy).sum() / tot
    r = np.hypot(xx - cx, yy - cy).ravel()
    order = np.argsort(r)
    cum = np.cumsum(image.ravel()[order])
    return float(np.interp(0.5 * tot, cum, r[order]))


@pytest.mark.parametrize("kind", ["moffat", "kolmogorov", "cfis"])
@pytest.mark.parametrize("fwhm", [0.65, 1.1])
def test_psf_fwhm_matches_request(kind, fwhm):
    scale = fwhm / 25.0
    img = psf.make_psf(kind, fwhm).drawImage(nx=151, ny=151, scale=scale, method="no_pixel").array
    assert psf.measure_fwhm(img, scale) == pytest.approx(fwhm, rel=0.03)
    # The fast renderer's point source is the same PSF.
    stamp = render.render_stamps([[1.0]], [fwhm], scale, 151, psf_kind=kind)[0, 0]
    assert psf.measure_fwhm(stamp, scale) == pytest.approx(fwhm, rel=0.03)


def test_psf_shear_and_cache():
    round_img = psf.psf_image("moffat", 0.7, 0.05, 65)
    sheared = psf.psf_image("moffat", 0.7, 0.05, 65, g1=0.08)
    assert psf.psf_image("moffat", 0.7, 0.05, 65) is round_img
    assert psf.make_psf("cfis", 0.7) is psf.make_psf("cfis", 0.7 + 1e-9)
    yy, xx = np.indices(sheared.shape) - 32.0
    qxx = (sheared * xx**2).sum()
    qyy = (sheared * yy**2).sum()
    assert qxx > 1.1 * qyy  # g1 > 0 elongates along x
    g1, g2 = psf.random_psf_shear(np.random.default_rng(0), sigma=0.5, gmax=0.1)
    assert np.hypot(g1, g2) <= 0.1 + 1e-12
    assert psf.seeing_fwhm(2 * 6000.0, 0.8, 6000.0) == pytest.approx(0.8 * 2 ** -0.2)


def test_flux_in_large_aperture():
    morph = galaxies.Morphology.concatenate([
        galaxies.Morphology.point_sources(1),
        galaxies.Morphology.sersic([1.0, 2.5], [0.5, 0.4], q=[0.6, 0.8], beta=[0.3, 1.2]),
    ])
    flux = np.array([[1000.0, 50.0], [2000.0, 10.0], [300.0, 3000.0]])
    img = render.render_stamps(flux, [0.7, 1.0], 0.2, 128, morph, offsets=[[0.3, -0.2]] * 3)
    assert img.dtype == np.float32 and img.shape == (3, 2, 128, 128)
    yy, xx = np.indices((128, 128))
    aperture = np.hypot(xx - 63.8, yy - 63.3) < 55
    measured = img[:, :, aperture].sum(axis=-1)
    np.testing.assert_allclose(measured, flux, rtol=0.01)


def _compare_with_galsim(morph, pixel_scale, size, fwhm, kind):
    n = len(morph)
    flux = np.full((n, 1), 1000.0)
    offsets = np.random.default_rng(3).uniform(-0.5, 0.5, (n, 2))
    fast = render.render_stamps(flux, [fwhm], pixel_scale, size, morph, offsets, psf_kind=kind)
    ref = render.render_stamps_galsim(flux, [fwhm], pixel_scale, size, morph, offsets, psf_kind=kind)
    for a, b in zip(fast[:, 0], ref[:, 0]):
        assert a.sum() == pytest.approx(b.sum(), rel=0.01)
        assert _hlr(a) == pytest.approx(_hlr(b), rel=0.02)
        assert np.abs(a - b).max() < 0.01 * b.max()


def test_fast_renderer_matches_galsim_sersic():
    morph = galaxies.Morphology.sersic([0.5, 1.0, 1.55, 2.5, 4.0, 6.0],
                                       [0.3, 0.8, 0.5, 0.6, 0.4, 0.25],
                                       q=[1.0, 0.3, 0.7, 0.5, 0.8, 0.9],
                                       beta=[0.0, 0.4, 1.0, 2.0, 3.0, 5.0])
    bd = galaxies.Morphology.sersic([1.0], [0.7], q=[0.4], beta=[0.5])
    bd.n[0, 1], bd.hlr[0, 1], bd.q[0, 1], bd.beta[0, 1] = 4.0, 0.2, 0.8, 1.5
    bd.frac[0] = [0.6, 0.4]
    morph = galaxies.Morphology.concatenate([morph, bd, galaxies.Morphology.point_sources(1)])
    _compare_with_galsim(morph, 0.2, 64, 0.75, "moffat")


def test_fast_renderer_matches_galsim_knots():
    morph = galaxies.Morphology.sersic([1.0, 1.0, 0.8], [0.6, 0.9, 0.4], q=[0.5, 0.8, 0.3],
                                       beta=[0.3, 2.0, 4.0])
    morph.n[1, 1], morph.hlr[1, 1], morph.frac[1] = 4.0, 0.2, [0.7, 0.3]
    morph.knot_frac[:] = [0.3, 0.5, 0.0]
    morph.knot_count[:] = [5, 20, 10]
    morph.knot_seed[:] = [1, 2, 3]
    knots = morph.knot_offsets(0)
    assert knots.shape == (5, 2) and morph.knot_offsets(2).shape == (0, 2)
    # Knots lie along the disc: spread more along its major axis (beta = 0.3) than across it.
    many = galaxies.Morphology.sersic([1.0], [0.6], q=[0.3], beta=[0.3])
    many.knot_frac[:], many.knot_count[:], many.knot_seed[:] = 0.2, 4000, 9
    xy = many.knot_offsets(0)
    major = xy @ [np.cos(0.3), np.sin(0.3)]
    minor = xy @ [-np.sin(0.3), np.cos(0.3)]
    assert major.std() / minor.std() == pytest.approx(1 / 0.3, rel=0.1)
    assert np.median(np.hypot(major * np.sqrt(0.3), minor / np.sqrt(0.3))) == pytest.approx(0.6, rel=0.1)
    _compare_with_galsim(morph, 0.2, 64, 0.75, "moffat")
    # The knots make the image lumpier than the smooth galaxy of the same flux.
    smooth = morph.subset([0, 1])
    smooth.knot_frac[:] = 0.0
    lumpy = render.render_stamps(np.full((2, 1), 1000.0), [0.75], 0.2, 64, morph.subset(slice(0, 2)))
    flat = render.render_stamps(np.full((2, 1), 1000.0), [0.75], 0.2, 64, smooth)
    np.testing.assert_allclose(lumpy.sum(axis=(2, 3)), flat.sum(axis=(2, 3)), rtol=1e-3)
    assert np.all(np.abs(lumpy - flat).max(axis=(1, 2, 3)) > 0.05 * flat.max(axis=(1, 2, 3)))


@needs_data
def test_fast_renderer_matches_galsim_cosmos():
    rngs = [np.random.default_rng(i) for i in range(4)]
    par, rows = galaxies.sample_parametric(rngs)
    assert np.all(rows < len(galaxies.load_parametric_library()))
    real, _ = galaxies.sample_real(rngs[:3], scale=[0.8, 1.0, 1.5])
    # Parametric fits include bright galaxies with extended bulges: a 96-px stamp holds their
    # light, so the comparison tests the profiles rather than how each renderer truncates.
    _compare_with_galsim(par, 0.187, 96, 0.65, "cfis")
    _compare_with_galsim(real, 0.187, 51, 0.65, "cfis")


@needs_data
def test_parametric_library_and_size_rescaling():
    lib = galaxies.load_parametric_library()
    assert len(lib) >= 90
    np.testing.assert_allclose(lib.frac.sum(axis=1), 1.0)
    assert np.all((lib.n >= galaxies.SERSIC_MIN) & (lib.n <= galaxies.SERSIC_MAX))
    rng = np.random.default_rng(1)
    mag = np.array([18.0, 21.0, 24.0])
    target = galaxies.sample_half_light_radius(mag, rng, scatter_dex=0.0)
    np.testing.assert_allclose(target, galaxies.median_half_light_radius(mag))
    morph, _ = galaxies.sample_parametric([np.random.default_rng(i) for i in range(3)],
                                          target_hlr=target)
    np.testing.assert_allclose(morph.total_hlr(), target, rtol=1e-6)


def test_composite_hlr_single_component():
    hlr = galaxies.composite_hlr([[4.0, 1.0]], [[0.5, 2.0]], [[1.0, 0.0]])
    assert hlr[0] == pytest.approx(0.5, rel=1e-6)
    # Components with equal shape and size have that size whatever the flux split.
    both = galaxies.composite_hlr([[1.0, 1.0]], [[0.5, 0.5]], [[0.3, 0.7]])
    assert both[0] == pytest.approx(0.5, rel=1e-6)


def test_noise_reproducible_and_chunk_independent():
    rng = np.random.default_rng(5)
    n = 40
    morph = galaxies.Morphology.sersic(rng.uniform(0.5, 4, n), rng.uniform(0.2, 1.0, n),
                                       q=rng.uniform(0.3, 1, n), beta=rng.uniform(0, 3, n))
    flux = rng.uniform(100, 1000, (n, 3))
    offsets = rng.uniform(-0.5, 0.5, (n, 2))
    seeds = [np.random.SeedSequence([7, i]) for i in range(n)]
    kw = dict(psf_fwhm=[0.7, 0.7, 0.9], pixel_scale=0.2, stamp_size=32, sky_sigma=[1.0, 2.0, 3.0])
    full = render.render_stamps(flux, morphology=morph, offsets=offsets, noise_seeds=seeds, **kw)
    part = render.render_stamps(flux[5:15], morphology=morph.subset(slice(5, 15)),
                                offsets=offsets[5:15], noise_seeds=seeds[5:15], chunk_size=3, **kw)
    np.testing.assert_allclose(part, full[5:15], rtol=0, atol=1e-5 * np.abs(full).max())
    noise = full - render.render_stamps(flux, morphology=morph, offsets=offsets,
                                        **{**kw, "sky_sigma": None})
    np.testing.assert_allclose(noise.std(axis=(0, 2, 3)), [1.0, 2.0, 3.0], rtol=0.03)


@needs_data
@pytest.mark.parametrize("mode", ["parametric", "clumpy", "realistic"])
def test_blends_reproducible_across_chunking(mode):
    n_full = 30 if mode == "realistic" else 100
    full, truth = blends.make_blend_stamps(n_full, seed=11, mode=mode)
    part, tpart = blends.make_blend_stamps(10, seed=11, start=5, mode=mode)
    assert full.shape == (n_full, 1, 65, 65) and full.dtype == np.float32
    np.testing.assert_array_equal(tpart["index"], np.arange(5, 15))
    for col in ("blended", "separation_px", "flux_central", "flux_companion", "source_central"):
        np.testing.assert_array_equal(np.asarray(tpart[col]), np.asarray(truth[col][5:15]))
    np.testing.assert_allclose(part, full[5:15], rtol=0, atol=1e-4)


@needs_data
def test_blend_truth_consistent():
    images, truth = blends.make_blend_stamps(200, seed=2, noise_sigma=10.0)
    b = np.asarray(truth["blended"])
    assert 0.35 < b.mean() < 0.65
    np.testing.assert_array_equal(truth["n_sources"], 1 + b)
    sep = np.hypot(truth["companion_dx"], truth["companion_dy"])
    np.testing.assert_allclose(truth["separation_px"][b], sep[b])
    np.testing.assert_array_equal(truth["near"], b & (np.nan_to_num(sep, nan=99.0) < 10.0))
    assert np.all(np.abs(truth["companion_dx"][b]) <= 25) and np.all(np.abs(truth["companion_dy"][b]) <= 25)
    np.testing.assert_allclose(truth["flux_ratio"][b],
                               truth["flux_companion"][b] / truth["flux_central"][b])
    assert np.all(np.isnan(truth["separation_px"][~b])) and not truth["near"][~b].any()
    # Border of zeros, noise of the requested level inside.
    border = np.ones((65, 65), bool)
    border[7:58, 7:58] = False
    assert np.all(images[:, 0, border] == 0)
    assert np.median(np.abs(images[:, 0, 7:12, 7:12])) / 0.6745 == pytest.approx(10.0, rel=0.15)


@needs_data
def test_blend_sources_detected_where_truth_says():
    sep_mod = pytest.importorskip("sep")
    images, truth = blends.make_blend_stamps(120, seed=4, noise_sigma=0.0)
    ones = 0
    checked = 0
    for img, row in zip(images[:, 0], truth):
        data = np.ascontiguousarray(img, dtype=np.float64)
        # Noiseless but with an assumed 1-count noise: a high-S/N detection problem.
        objs = sep_mod.extract(data, thresh=5.0, err=1.0, deblend_cont=0.005, minarea=5)
        if not row["blended"]:
            ones += len(objs) == 1
            continue
        # Comparable fluxes, well apart, companion not cut by the stamp edge: sep must split them.
        inside = max(abs(row["companion_dx"]), abs(row["companion_dy"])) < 21
        if row["separation_px"] > 12 and 0.3 < row["flux_ratio"] < 3 and inside:
            x, y = 32 + row["companion_dx"], 32 + row["companion_dy"]
            d = np.hypot(objs["x"] - x, objs["y"] - y)
            assert len(objs) >= 2 and d.min() < 3.0
            checked += 1
    n_iso = int((~np.asarray(truth["blended"])).sum())
    assert ones == n_iso
    assert checked >= 8


def test_bad_inputs():
    with pytest.raises(ValueError):
        render.render_stamps([[1.0, 2.0]], [0.7], 0.2, 16)
    with pytest.raises(ValueError):
        render.render_stamps([[1.0]], [0.7], 0.2, 16, sky_sigma=1.0)
    with pytest.raises(ValueError):
        psf.make_psf("gaussian", 0.7)
    with pytest.raises(ValueError):
        blends.make_blend_stamps(2, seed=0, mode="fancy")


def test_clean_hst_image_removes_sky_and_neighbours():
    rng = np.random.default_rng(0)
    yy, xx = np.indices((80, 80))
    galaxy = 2.0 * np.exp(-0.5 * np.hypot(xx - 39.5, yy - 39.5) ** 2 / 4.0 ** 2)
    neighbour = 2.0 * np.exp(-0.5 * np.hypot(xx - 70, yy - 10) ** 2 / 2.0 ** 2)
    noisy = galaxy + neighbour + 0.01 * rng.standard_normal(galaxy.shape)
    cleaned, weight = galaxies.clean_hst_image(noisy)
    assert np.all(cleaned[np.hypot(xx - 70, yy - 10) < 4] == 0)  # the neighbour is not connected
    assert np.mean(weight == 0) > 0.6  # most of the sky is gone
    assert cleaned.sum() == pytest.approx(galaxy.sum(), rel=0.02)
    assert _hlr(cleaned) == pytest.approx(_hlr(galaxy), rel=0.03)


@needs_data
def test_real_galaxies_clean_and_flux_conserving():
    lib = galaxies.load_real_library()
    n = len(lib)
    # Cleaned images keep the catalogue sizes (flux_radius is measured on the HST image too).
    ratio = np.array([_hlr(lib.clean_image(i)[0]) for i in range(n)]) * galaxies.COSMOS_PIXEL_SCALE
    assert np.median(ratio / lib.flux_radius) == pytest.approx(1.0, abs=0.05)
    rng = np.random.default_rng(2)
    morph = galaxies.Morphology.empty(n)
    morph.kind[:] = galaxies.REAL
    morph.real_library = lib
    morph.real_index[:] = np.arange(n)
    morph.real_scale[:] = rng.uniform(0.5, 3.0, n)  # the range blends use
    morph.real_rotation[:] = rng.uniform(0, 2 * np.pi, n)
    morph.real_flip[:] = rng.random(n) < 0.5
    img = render.render_stamps(np.ones((n, 1)), [0.65], 0.187, 192, morph, psf_kind="cfis")[:, 0]
    # No ringing or amplified HST noise: nothing below -1% of the peak.
    assert np.all(img.min(axis=(1, 2)) > -0.01 * img.max(axis=(1, 2)))
    np.testing.assert_allclose(img.sum(axis=(1, 2)), 1.0, rtol=0.01)


@needs_data
def test_realistic_blends_have_no_negative_artefacts():
    images, truth = blends.make_blend_stamps(300, seed=7, mode="realistic", noise_sigma=0.0)
    inner = images[:, 0]
    assert np.all(inner.min(axis=(1, 2)) > -0.01 * inner.max(axis=(1, 2)))
    # Noisy: pixels below -5 sigma only at the Gaussian rate (~3e-7 per pixel).
    noisy, _ = blends.make_blend_stamps(300, seed=7, mode="realistic", noise_sigma=14.5)
    assert (noisy[:, 0] < -5 * 14.5).sum() <= 3
    # The galaxies' light is in the stamp at the requested flux (companions may be cut at
    # the edge, so isolated stamps only).
    iso = ~np.asarray(truth["blended"])
    big = iso & (np.asarray(truth["mag_central"]) < 22)
    frac = inner[big].sum(axis=(1, 2)) / np.asarray(truth["flux_central"])[big]
    assert np.median(frac) == pytest.approx(1.0, abs=0.02)


@needs_data
def test_clumpy_blends_vary_parametric_shapes_and_add_knots():
    lib = galaxies.load_parametric_library()
    _, plain = blends.make_blend_stamps(300, seed=9, mode="parametric", noise_sigma=0.0)
    images, clumpy = blends.make_blend_stamps(300, seed=9, mode="clumpy", noise_sigma=0.0)
    # Magnitudes drawn apart from the shapes: the catalogue's values, not each row's own.
    assert np.all(np.isin(np.round(clumpy["mag_central"], 6), np.round(lib.mag, 6)))
    assert np.mean(clumpy["mag_central"] != lib.mag[clumpy["source_central"]]) > 0.8
    np.testing.assert_array_equal(plain["mag_central"], lib.mag[plain["source_central"]])
    rngs = [np.random.default_rng(i) for i in range(400)]
    morph, _ = galaxies.sample_parametric(rngs, lib)
    galaxies.add_knots(morph, rngs)
    disc = morph.n[:, 0] <= 2.5
    assert np.all(morph.knot_frac[~disc] == 0) and np.all(morph.knot_frac <= 0.5 * morph.frac[:, 0] + 1e-12)
    assert np.mean(morph.knot_frac[disc] > 0) > 0.99 and morph.knot_frac[disc].max() > 0.3
    assert set(morph.knot_count[disc]) <= set(range(3, 31))
    # Knots move light, they do not add any: isolated faint (small) galaxies keep their flux in the
    # stamp; larger ones can only lose some beyond its edge.
    isolated = ~np.asarray(clumpy["blended"])
    ratio = images[isolated, 0].sum(axis=(1, 2)) / np.asarray(clumpy["flux_central"])[isolated]
    faint = np.asarray(clumpy["mag_central"])[isolated] > 21
    assert np.median(ratio[faint]) == pytest.approx(1.0, abs=0.01) and ratio.max() < 1.01
    with pytest.raises(ValueError):
        galaxies.add_knots(morph, rngs, max_disc_fraction=1.5)


@needs_data
def test_sheared_real_galaxies_match_galsim_and_keep_their_flux():
    """A real galaxy sheared along x before its rotation: the fast renderer agrees with GalSim's
    shear of the same profile, and the light is stretched along the sheared axis."""
    rngs = [np.random.default_rng(i) for i in range(3)]
    real, _ = galaxies.sample_real(rngs, scale=[0.8, 1.0, 1.2])
    real.real_shear[:] = [0.3, -0.25, 0.15]
    _compare_with_galsim(real, 0.187, 51, 0.65, "cfis")
    # Stretch along x with no rotation or mirror: the second moment along x grows by (1+g)/(1-g).
    plain = real.subset([0])
    plain.real_rotation[:], plain.real_flip[:], plain.real_shear[:] = 0.0, False, 0.0
    stretched = real.subset([0])
    stretched.real_rotation[:], stretched.real_flip[:], stretched.real_shear[:] = 0.0, False, 0.3
    images = [render.render_stamps(np.full((1, 1), 1000.0), [0.1], 0.05, 151, m, psf_kind="moffat")[0, 0]
              for m in (plain, stretched)]
    yy, xx = np.mgrid[:151, :151] - 75.0

    def moments(image):
        weight = np.clip(image, 0, None)
        return (weight * xx**2).sum() / weight.sum(), (weight * yy**2).sum() / weight.sum()

    (x0, y0), (x1, y1) = moments(images[0]), moments(images[1])
    assert images[1].sum() == pytest.approx(images[0].sum(), rel=1e-3)
    assert x1 / x0 > 1.3 and y1 / y0 < 0.8


@needs_data
def test_realistic_blends_with_sheared_galaxies_differ_only_in_shapes():
    from skysort.simulate.blends import make_blend_stamps

    plain_images, plain = make_blend_stamps(40, 5, mode="realistic", noise_sigma=0)
    same_images, _ = make_blend_stamps(40, 5, mode="realistic", noise_sigma=0, real_shear=0.0)
    sheared_images, sheared = make_blend_stamps(40, 5, mode="realistic", noise_sigma=0, real_shear=0.3)
    assert np.array_equal(plain_images, same_images)
    for name in ("blended", "separation_px", "flux_central", "flux_companion", "source_central", "source_companion"):
        assert np.array_equal(np.asarray(plain[name]), np.asarray(sheared[name]), equal_nan=True), name
    assert sheared.meta["real_shear"] == 0.3 and not np.allclose(plain_images, sheared_images)
    with pytest.raises(ValueError, match="real_shear"):
        make_blend_stamps(2, 5, mode="parametric", real_shear=0.2)
