"""Spectral side of the survey simulator: presets, SEDs, photometry, populations, spectra."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from skysort.data.flags import Flags
from skysort.errors import InputError
from skysort.simulate import seds
from skysort.simulate.filters import GRID_WAVE, ab_mag, band_matrix, load_filter
from skysort.simulate.population import (
    BLOCK,
    PopulationModel,
    colour_offsets_vs_real,
    draw_population,
    load_sdss_specphot,
)
from skysort.simulate.presets import available_surveys, load_survey, shared_data_dir
from skysort.simulate.spectra import sdss_wavelength_grid, simulate_spectra

SHARED_DATA = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(),
    reason="skysort reference data (../shared/data) not available",
)


@pytest.fixture(scope="module")
def sdss():
    return load_survey("sdss")


# ------------------------------------------------------------------------------ presets
def test_shipped_presets_load():
    assert {"kids", "sdss", "cfis"} <= set(available_surveys())
    kids = load_survey("kids")
    assert kids.band_names == ["u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"]
    assert kids.pixel_scale == 0.2 and kids.stamp_size == 64 and kids.zero_point == 30.0
    assert kids.depth("r") == 25.0
    cfis = load_survey("cfis")
    assert cfis.band_names == ["r"] and cfis.stamp_size == 51 and cfis.stamp_padding == 7
    assert cfis.noise.sigma_default == 14.5 and cfis.psf.beta == pytest.approx(4.765)
    for name in ("kids", "sdss", "cfis"):
        preset = load_survey(name)
        for b in preset.band_names:
            assert preset.filter_path(b).is_file()
            assert preset.sky_sigma(b) > 0


def test_sky_sigma_round_trip(sdss):
    # Depth -> sky sigma -> depth must be the identity for both depth definitions.
    for name in ("sdss", "kids"):
        preset = load_survey(name)
        for b in preset.band_names:
            band = preset.band(b).model_copy(update={"depth": None, "sky_sigma": preset.sky_sigma(b)})
            other = preset.model_copy(update={"bands": [band]})
            assert other.depth(b) == pytest.approx(preset.depth(b), abs=1e-9)
    # 5-sigma depth in counts, divided by 5, is the catalogue flux error.
    assert sdss.flux_sigma("r") == pytest.approx(10 ** (-0.4 * (sdss.depth("r") - 22.5)) / 5)


def test_user_preset_file_and_errors(tmp_path):
    text = (Path(load_survey("sdss").source_file)).read_text().replace("name: sdss", "name: mine")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    assert load_survey(path).name == "mine"
    with pytest.raises(InputError, match="no such survey preset"):
        load_survey("no-such-survey")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npixel_scale: -1\n")
    with pytest.raises(InputError, match="bad.yaml"):
        load_survey(bad)


def test_shared_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SKYSORT_DATA", str(tmp_path / "missing"))
    with pytest.raises(InputError, match="missing"):
        shared_data_dir()
    monkeypatch.setenv("SKYSORT_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path


# ----------------------------------------------------------------------------- SEDs
def test_g2v_colour(sdss):
    lib = seds.load_star_library()
    flam = lib.flam[lib.index("g2v")]
    g = ab_mag(GRID_WAVE, flam, load_filter(sdss.filter_path("g"), "g"))
    r = ab_mag(GRID_WAVE, flam, load_filter(sdss.filter_path("r"), "r"))
    assert g - r == pytest.approx(0.44, abs=0.05)


def test_ab_zero_point():
    # A flat f_nu source of 3631 Jy has AB magnitude 0 in any band.
    filt = load_filter(shared_data_dir() / "filters/sdss/rp.pb", "r")
    flam = 3631e-23 * 2.99792458e18 / GRID_WAVE**2
    assert ab_mag(GRID_WAVE, flam, filt) == pytest.approx(0.0, abs=1e-3)  # 48.60 vs 3631 Jy


def test_igm_transmission_limits():
    wave = np.array([1000.0, 3000.0, 4000.0, 6000.0])
    t = seds.igm_transmission(wave, 3.0)
    assert np.all((t >= 0) & (t <= 1))
    assert t[-1] == 1.0  # redward of Lyman-alpha at z = 3 (4863 A)
    assert t[1] < t[2] < 1.0  # Lyman continuum absorbs more than the forest


def test_quasar_lyman_forest_reddens_u_minus_g(sdss):
    # Mean IGM plus sightline Lyman-limit systems: a z = 3 quasar is about 1 mag redder in
    # u - g than one at z = 1 (the bluer-than-real value reflects SDSS's selection of
    # z ~ 3 quasars with Lyman-limit systems, Worseck & Prochaska 2011).
    t = draw_population(sdss, 12000, 11, class_fractions={"qso": 1})
    ug = np.asarray(t["mag_true_u"] - t["mag_true_g"])
    z = np.asarray(t["redshift"])
    low = np.median(ug[(z > 0.9) & (z < 1.1)])
    high = np.median(ug[(z > 2.9) & (z < 3.1)])
    assert high - low > 0.8
    # The mean-IGM SED alone also puts the forest in u at z = 3.
    comp = seds.load_qso_components()
    mags = {}
    for zq in (1.0, 3.0):
        obs = np.interp(GRID_WAVE / (1 + zq), GRID_WAVE, comp.sed()) * seds.igm_transmission(GRID_WAVE, zq)
        mags[zq] = [ab_mag(GRID_WAVE, obs, load_filter(sdss.filter_path(b), b)) for b in "ug"]
    assert (mags[3.0][0] - mags[3.0][1]) - (mags[1.0][0] - mags[1.0][1]) > 0.6


# ------------------------------------------------------------------------ populations
def test_reproducible_whatever_the_chunking(sdss):
    full = draw_population(sdss, 100, seed=7)
    part = draw_population(sdss, 10, seed=7, start=5)
    for name in full.colnames:
        a, b = np.asarray(full[name][5:15]), np.asarray(part[name])
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            np.testing.assert_array_equal(a[~np.isnan(a)], b[~np.isnan(b)])
        else:
            np.testing.assert_array_equal(a, b)
    # Across a block boundary too.
    across = draw_population(sdss, 2 * BLOCK + 10, seed=7)
    tail = draw_population(sdss, 20, seed=7, start=BLOCK - 10)
    np.testing.assert_array_equal(np.asarray(across["mag_true_r"][BLOCK - 10 : BLOCK + 10]), tail["mag_true_r"])
    other = draw_population(sdss, 100, seed=8)
    assert not np.array_equal(np.asarray(other["mag_true_r"]), np.asarray(full["mag_true_r"]))


def test_population_columns_and_units(sdss):
    t = draw_population(sdss, 3000, seed=1)
    assert set(t["label"]) == {"star", "galaxy", "qso"}
    for b in sdss.band_names:
        for col in ("mag_true_", "mag_", "magerr_", "flux_", "detected_"):
            assert f"{col}{b}" in t.colnames
        flux = sdss.zero_point - 2.5 * np.log10(np.asarray(t[f"flux_{b}"]))
        np.testing.assert_allclose(flux, t[f"mag_true_{b}"], atol=1e-9)
    r = np.asarray(t["mag_true_r"])
    assert r.min() >= sdss.selection.mag_min - 1e-9 and r.max() <= sdss.selection.mag_max + 1e-9
    gal = t[t["label"] == "galaxy"]
    assert 0.02 <= gal["redshift"].min() and gal["redshift"].max() <= 1.5
    assert 0.25 < np.median(gal["redshift"]) < 0.8
    assert np.all((gal["ebv"] >= 0) & (gal["ebv"] <= 0.5))
    qso = t[t["label"] == "qso"]
    assert np.all((qso["redshift"] >= 0.1) & (qso["redshift"] <= 4.5))
    star = t[t["label"] == "star"]
    # No supergiants or bright giants (classes I, II), no O/B stars.
    assert not any(re.fullmatch(r"[rw]?[a-z][\d.]+(i|ii)", n) for n in star["sed_name"])
    assert not any(n.startswith(("o", "b")) for n in star["sed_name"])
    frac = np.mean(t["label"] == "galaxy")
    assert 0.8 < frac < 0.92


def test_nondetections_are_nan_and_flagged():
    # KiDS catalogues use Pogson magnitudes: no magnitude where a band is not detected.
    kids = load_survey("kids")
    assert kids.catalogue_magnitudes == "pogson"
    depth = kids.depth("r")
    t = draw_population(kids, 4000, seed=3, mag_range=(depth - 0.7, depth + 0.3))
    undetected = ~np.asarray(t["detected_u"])
    assert undetected.any()
    assert np.all(np.isnan(t["mag_u"][undetected])) and np.all(np.isnan(t["magerr_u"][undetected]))
    assert np.all((t["flags"][undetected] & Flags.MISSING_PHOTOMETRY) != 0)
    snr = np.asarray(t["flux_obs_u"] / t["flux_err_u"])
    assert np.all(snr[~undetected] >= 1.0) and np.all(snr[undetected] < 1.0)
    for b in kids.band_names:
        assert np.nanmin(t[f"mag_{b}"]) > 5 and np.nanmax(t[f"mag_{b}"]) < 40  # no sentinels
    # Errors follow the depth: S/N ~ 5 at the depth.
    det = np.asarray(t["detected_r"]) & (np.abs(t["mag_true_r"] - depth) < 0.05)
    assert np.median(t["magerr_r"][det]) == pytest.approx(1.0857 / 5, rel=0.2)


def test_sdss_asinh_magnitudes(sdss, tmp_path):
    # SDSS catalogues give asinh magnitudes (Lupton et al. 1999): finite for every flux.
    from skysort.simulate.photometry import asinh_magnitudes

    assert sdss.catalogue_magnitudes == "asinh"
    softening = np.array([sdss.band(b).asinh_softening for b in sdss.band_names])
    np.testing.assert_allclose(softening, [1.4e-10, 0.9e-10, 1.2e-10, 1.8e-10, 7.4e-10])
    t = draw_population(sdss, 4000, seed=3, mag_range=(21.5, 22.5))
    mags = np.stack([np.asarray(t[f"mag_{b}"], float) for b in sdss.band_names], axis=1)
    errs = np.stack([np.asarray(t[f"magerr_{b}"], float) for b in sdss.band_names], axis=1)
    flux = np.stack([np.asarray(t[f"flux_obs_{b}"], float) for b in sdss.band_names], axis=1)
    assert np.all(np.isfinite(mags)) and np.all(errs > 0)
    assert (flux <= 0).any() and not np.any(np.asarray(t["flags"]) & Flags.MISSING_PHOTOMETRY)
    # Non-detections keep their flag column, and their magnitudes lie within a few magnitudes of the zero-flux value (b is about one noise sigma).
    undetected = ~np.asarray(t["detected_z"])
    assert undetected.any()
    zero_flux = -2.5 / np.log(10) * np.log(7.4e-10)  # 22.83 for z
    assert np.all(np.abs(np.asarray(t["mag_z"])[undetected] - zero_flux) < 3.0)
    # Fainter for lower flux, also through zero; equal to Pogson magnitudes at high S/N.
    f = np.array([[-1.0, 0.0, 1.0, 1e3, 1e5]]).T * np.ones((1, 5))
    m, e = asinh_magnitudes(sdss, f, np.ones_like(f))
    assert np.all(np.diff(m, axis=0) < 0)
    np.testing.assert_allclose(m[1], -2.5 / np.log(10) * np.log(softening))
    np.testing.assert_allclose(m[-1], sdss.zero_point - 2.5 * np.log10(1e5), atol=1e-6)
    np.testing.assert_allclose(e[-1], 1.0857 / 1e5, rtol=1e-3)
    # A preset that asks for asinh magnitudes without a softening is refused.
    text = Path(sdss.source_file).read_text().replace(", asinh_softening: 7.4e-10", "")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(InputError, match="asinh_softening"):
        load_survey(bad)


def test_class_options(sdss):
    bal = draw_population(sdss, 6000, seed=4, balanced=True)
    counts = {c: np.mean(bal["label"] == c) for c in ("star", "galaxy", "qso")}
    assert all(abs(v - 1 / 3) < 0.03 for v in counts.values())
    ps = draw_population(sdss, 2000, seed=4, kind="pointsources")
    assert set(ps["label"]) == {"star", "qso"}
    only = draw_population("kids", 500, seed=4, class_fractions={"galaxy": 1})
    assert set(only["label"]) == {"galaxy"} and "mag_Ks" in only.colnames
    with pytest.raises(InputError):
        draw_population(sdss, 10, seed=4, kind="pointsources", class_fractions={"galaxy": 1})
    with pytest.raises(InputError):
        draw_population(sdss, 10, seed=4, kind="everything")


def test_quasar_hosts(sdss):
    """Low-z quasars get a host: redder, fluxes split AGN + host, nothing else changes."""
    kwargs = dict(class_fractions={"qso": 1}, mag_range=(20.0, 22.0))
    t = draw_population(sdss, 4000, 21, **kwargs)
    bare = draw_population(sdss, 4000, 21, model=PopulationModel(qso_host=False), **kwargs)
    z = np.asarray(t["redshift"])
    low = z < 0.7
    assert low.sum() > 100 and (~low).sum() > 100
    frac = np.asarray(t["host_fraction_r"])
    # Hosts only below z = 0.7, and with plausible fractions for faint quasars.
    assert np.all(frac[~low] == 0) and np.all(np.asarray(t["host_sed_name"])[~low] == "")
    assert np.all((frac[low] > 0) & (frac[low] < 1))
    assert 0.1 < np.median(frac[low]) < 0.6
    assert set(np.asarray(t["host_sed_name"])[low]) <= set(PopulationModel().qso_host_templates)
    # The host stream is separate: redshifts, slopes, magnitudes in r are unchanged.
    for name in ("redshift", "qso_dalpha", "mag_true_r", "ebv_mw"):
        np.testing.assert_array_equal(np.asarray(t[name]), np.asarray(bare[name]))
    for b in sdss.band_names:
        host = np.asarray(t[f"host_flux_{b}"])
        total = np.asarray(t[f"flux_{b}"])
        assert np.all(host[~low] == 0) and np.all(np.asarray(bare[f"host_flux_{b}"]) == 0)
        # flux_b is AGN + host, and the AGN part is the host-less quasar scaled by 1 - f_r.
        agn = total - host
        np.testing.assert_allclose(agn[low], (1 - frac[low]) * np.asarray(bare[f"flux_{b}"])[low], rtol=1e-9)
        np.testing.assert_allclose(total, 10 ** (-0.4 * (np.asarray(t[f"mag_true_{b}"]) - sdss.zero_point)), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(t["host_flux_r"] / t["flux_r"]), frac, rtol=1e-12)
    # Hosts redden low-z quasars (at z = 0.3 in g-r especially); high-z ones are untouched.
    gr = np.asarray(t["mag_true_g"] - t["mag_true_r"])
    gr_bare = np.asarray(bare["mag_true_g"] - bare["mag_true_r"])
    near = np.abs(z - 0.3) < 0.1
    assert near.sum() > 10 and np.all(gr[near] > gr_bare[near]) and np.median(gr[near] - gr_bare[near]) > 0.1
    np.testing.assert_array_equal(gr[~low], gr_bare[~low])


def test_host_fraction_falls_with_luminosity(sdss):
    t = draw_population(sdss, 6000, 5, class_fractions={"qso": 1}, mag_range=(16.0, 22.5))
    low = np.asarray(t["redshift"]) < 0.7
    r = np.asarray(t["mag_true_r"])[low]
    frac = np.asarray(t["host_fraction_r"])[low]
    assert np.median(frac[r < 20]) < np.median(frac[r > 21])
    with pytest.raises(InputError, match="host templates"):
        draw_population(sdss, 10, 5, model=PopulationModel(qso_host_templates=("NoSuch",)))


def test_sdss_spectroscopic_target_galaxies(sdss, tmp_path):
    # The imaging presets keep the field population; a preset file can mix in the SDSS/BOSS/
    # eBOSS spectroscopic targets.
    field = PopulationModel()
    assert PopulationModel.from_preset(sdss) == field
    assert PopulationModel.from_preset(load_survey("kids")) == field
    text = Path(sdss.source_file).read_text()
    assert "galaxy_target_fraction: 0.0" in text
    spec_file = tmp_path / "sdss_spec.yaml"
    spec_file.write_text(text.replace("galaxy_target_fraction: 0.0", "galaxy_target_fraction: 0.5"))
    spec = load_survey(spec_file)
    assert PopulationModel.from_preset(spec).galaxy_target_fraction == 0.5
    mixed = draw_population(spec, 6000, 17, class_fractions={"galaxy": 1})
    plain = draw_population(sdss, 6000, 17, class_fractions={"galaxy": 1})

    def shares(t):
        r = np.asarray(t["mag_true_r"])
        z = np.asarray(t["redshift"])
        gr = np.asarray(t["mag_true_g"] - t["mag_true_r"])
        # Main sample (r < 17.77, mostly z < 0.2) and luminous red galaxies: z > 0.3 at
        # r < 20 with the g - r > 1.3 of an old population redshifted past 4000 A.
        return np.mean((r < 17.77) & (z < 0.2)), np.mean((z > 0.3) & (r < 20) & (gr > 1.3))

    main_mixed, lrg_mixed = shares(mixed)
    main_plain, lrg_plain = shares(plain)
    # Half the galaxies are targets, of which the main sample is ~90 of ~300 deg^-2
    # (Strauss et al. 2002; Reid et al. 2016; Prakash et al. 2016); in the field
    # population to r = 22.5 it is well under 1 %.
    assert main_plain < 0.01 and 0.05 < main_mixed < 0.25
    assert lrg_plain < 0.02 and lrg_mixed > 0.03 and lrg_mixed > 3 * lrg_plain
    # The target density implied by the luminosity functions and the published cuts is
    # that of the real surveys, a few hundred per square degree.
    from skysort.simulate.population import _tables

    tab = _tables(spec, PopulationModel.from_preset(spec))
    per_deg2 = tab.gal_target_counts.sum() * 0.05 * (np.pi / 180) ** 2
    assert 200 < per_deg2 < 600
    # Stars and quasars do not depend on the galaxy model; reproducible in chunks.
    a = draw_population(spec, 300, 3, balanced=True)
    b = draw_population(sdss, 300, 3, balanced=True)
    point = np.asarray(a["label"]) != "galaxy"
    np.testing.assert_array_equal(np.asarray(a["mag_r"])[point], np.asarray(b["mag_r"])[point])
    part = draw_population(spec, 100, 3, balanced=True, start=150)
    np.testing.assert_array_equal(np.asarray(part["mag_r"]), np.asarray(a["mag_r"])[150:250])
    np.testing.assert_array_equal(np.asarray(part["redshift"]), np.asarray(a["redshift"])[150:250])
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "  no_such_parameter: 1\n")
    with pytest.raises(InputError, match="no_such_parameter"):
        draw_population(load_survey(bad), 10, 1)


def test_colours_match_real_sdss(sdss):
    real = load_sdss_specphot()
    assert set(real["label"]) == {"star", "galaxy", "qso"}
    offsets = colour_offsets_vs_real(sdss, n_per_class=30000, seed=2024, real=real)
    assert len(offsets) == 12
    worst = offsets[np.argmax(np.abs(offsets["offset"]))]
    assert np.all(np.abs(offsets["offset"]) < 0.15), f"worst: {worst}"


# ---------------------------------------------------------------------------- spectra
def test_spectra_grid_and_noise(sdss):
    wave = sdss_wavelength_grid()
    assert 3700 <= wave.size <= 3900
    assert wave[0] == pytest.approx(3800, abs=1) and wave[-1] == pytest.approx(9200, abs=2)
    np.testing.assert_allclose(np.diff(np.log10(wave)), 1e-4, rtol=1e-6)
    t = draw_population(sdss, 40, seed=9, kind="pointsources", balanced=True)
    sp = simulate_spectra(t, sdss, seed=9, snr=20.0)
    assert sp["flux"].shape == (40, wave.size) and sp["ivar"].shape == (40, wave.size)
    resid = (sp["flux"] - sp["model"]) * np.sqrt(sp["ivar"])
    assert np.std(resid) == pytest.approx(1.0, rel=0.05)
    # The noiseless spectrum reproduces the object's r magnitude (1e-17 erg/s/cm2/A units).
    filt = load_filter(sdss.filter_path("r"), "r")
    for j in range(5):
        m = ab_mag(sp["wave"], sp["model"][j] * 1e-17, filt)
        assert m == pytest.approx(t["mag_true_r"][j], abs=0.03)
    # A subset gets the same noise as in the full set.
    sub = simulate_spectra(t[3:5], sdss, seed=9, snr=20.0)
    np.testing.assert_array_equal(sub["flux"], sp["flux"][3:5])


def test_hot_star_component(sdss):
    field = draw_population(sdss, 4000, 8, class_fractions={"star": 1})
    assert field["sed_name"].tolist() == draw_population(sdss, 4000, 8, class_fractions={"star": 1},
                                                         model=PopulationModel(hot_star_fraction=0.0))["sed_name"].tolist()
    mixed = draw_population(sdss, 4000, 8, class_fractions={"star": 1}, model=PopulationModel(hot_star_fraction=0.2))
    hot_types = set(PopulationModel().hot_star_mix)
    names = np.asarray(mixed["sed_name"]).astype(str)
    is_hot = np.isin(names, list(hot_types))
    field_names = np.asarray(field["sed_name"]).astype(str)
    assert abs(is_hot.mean() - 0.2) < 0.03 and np.isin(field_names, list(hot_types - {"a0v"})).sum() == 0
    # Only the drawn type changes: magnitudes in the selection band stay, the rest keep their SEDs.
    np.testing.assert_array_equal(np.asarray(mixed["mag_true_r"]), np.asarray(field["mag_true_r"]))
    np.testing.assert_array_equal(names[~is_hot], field_names[~is_hot])
    # White-dwarf / hot-subdwarf stand-ins are bluer than any field star in g - r.
    gr = np.asarray(mixed["mag_true_g"] - mixed["mag_true_r"])
    gr_field = np.asarray(field["mag_true_g"] - field["mag_true_r"])
    assert np.sum(gr < -0.4) > 100 and np.sum(gr_field < -0.4) == 0
    for bad in (-0.1, 1.5, "half"):
        with pytest.raises(InputError, match="hot_star_fraction must be a number in"):
            PopulationModel(hot_star_fraction=bad)


def test_spectroscopic_targets_of_a_survey_with_other_filters_are_cut_in_sdss_bands(sdss, tmp_path):
    # KiDS has no SDSS z and its g r i are OmegaCAM's: the targets in its footprint are those
    # SDSS photometry selected, so the cuts see SDSS g r i z magnitudes of the same SEDs.
    from skysort.simulate.population import _sdss_colour, _tables

    model = PopulationModel(galaxy_target_fraction=0.5)
    own = _tables(sdss, model)
    # The cross-survey colours, computed for the SDSS preset itself, are its own colours.
    gal = seds.load_galaxy_library()
    atten = 10 ** (-0.4 * np.outer(np.linspace(0.0, 0.5, 11), seds.calzetti_k(GRID_WAVE)))
    rest = (gal.flam[:, None, :] * atten[None, :, :]).reshape(-1, GRID_WAVE.size)
    shifts, zgrid = seds.redshift_shifts(model.galaxy_z_range[1] + 0.05)
    flux = seds.redshift_band_table(rest, band_matrix(sdss.load_filters()), shifts)
    lnf = np.log(np.clip(flux, 1e-300, None)).reshape(len(gal.names), 11, zgrid.size, -1)
    np.testing.assert_allclose(_sdss_colour(rest, shifts, lnf[..., own.sel], sdss, sdss.band_names), own.gal_colour, atol=1e-9)

    kids = load_survey("kids")
    tab = _tables(kids, model)
    assert tab.target_colour.shape[-1] == 4
    # SDSS r minus KiDS r of the same galaxy below z = 1 (where the targets are): at most
    # a few tenths of a magnitude.
    assert np.all(np.abs(tab.target_colour[:, :, tab.gal_z < 1.0, tab.band_idx["r"]]) < 0.3)
    per_deg2 = tab.gal_target_counts.sum() * 0.05 * (np.pi / 180) ** 2
    assert 200 < per_deg2 < 800
    mixed = draw_population(kids, 4000, 17, class_fractions={"galaxy": 1}, model=model)
    plain = draw_population(kids, 4000, 17, class_fractions={"galaxy": 1})
    r, z = np.asarray(mixed["mag_true_r"]), np.asarray(mixed["redshift"])
    r0, z0 = np.asarray(plain["mag_true_r"]), np.asarray(plain["redshift"])
    assert np.mean((r < 17.8) & (z < 0.2)) > 0.05 > np.mean((r0 < 17.8) & (z0 < 0.2))
    # Luminous red galaxies (z 0.3-0.8 at r < 20): the bulk of BOSS, rare in a field.
    lrg, lrg0 = np.mean((z > 0.3) & (r < 20)), np.mean((z0 > 0.3) & (r0 < 20))
    assert lrg > 0.03 and lrg > 3 * lrg0
    # A deeper survey on the SDSS filters holds the same targets: SDSS photometry chose them.
    text = Path(sdss.source_file).read_text()
    deep_file = tmp_path / "sdss_deep.yaml"
    deep_file.write_text(re.sub(r"sky_sigma: ([0-9.]+)", lambda m: f"sky_sigma: {float(m.group(1)) / 4}", text))
    deep = load_survey(deep_file)
    assert deep.flux_sigma("r") < sdss.flux_sigma("r")
    np.testing.assert_array_equal(_tables(deep, model).gal_target_counts, own.gal_target_counts)


def test_eboss_elg_cuts():
    from skysort.simulate.population import _target_pass

    idx = {"g": 0, "r": 1, "i": 2, "z": 3}

    def passes(g, r, i, z):
        mags = np.array([g, r, i, z], float)
        return bool(_target_pass(r, mags - r, idx, samples=("eboss_elg",)))

    # A star-forming galaxy at z ~ 0.8: g - r 0.6, r - z 1.0, g 22.3 (inside the Raichoor et al. box).
    assert passes(22.3, 21.7, 21.2, 20.7)
    assert not passes(23.0, 22.4, 21.9, 21.4)  # too faint in g
    assert not passes(22.3, 21.3, 20.6, 19.9)  # g - r 1.0: too red (LRG-like)
    assert not passes(22.3, 21.7, 21.5, 21.4)  # r - z 0.3: below the low-redshift boundary
    # Not among the default samples; chosen with galaxy_targets.
    assert "eboss_elg" not in PopulationModel().galaxy_targets


def test_galaxy_emission_lines(sdss):
    lib = seds.load_galaxy_library()
    names = list(lib.names)
    # Flux of a line over the local continuum: rest-frame equivalent width [A].
    def equivalent_width(template, centre):
        near = np.abs(np.log(GRID_WAVE / centre)) < 0.01
        side = (np.abs(GRID_WAVE - centre) > 40) & (np.abs(GRID_WAVE - centre) < 80)
        flux = np.sum(lib.lines[names.index(template)][near] * GRID_WAVE[near]) * seds.GRID_DLN
        return flux / lib.flam[names.index(template)][side].mean()

    # Passive templates get none; star formation raises them, to the [OII] and H-alpha
    # equivalent widths of star-forming and starburst galaxies (tens to hundreds of A).
    assert not lib.lines[names.index("Ell1_A_0")].any() and not lib.lines[names.index("S0_A_0")].any()
    assert 2 < equivalent_width("Sb_A_0", 3727.4) < equivalent_width("SB11_A_0", 3727.4) < 150
    assert 100 < equivalent_width("SB11_A_0", 6562.8) < 600
    # H-alpha / [OII] keeps the recipe's ratio.
    sb = lib.lines[names.index("SB5_A_0")]
    ha = np.abs(np.log(GRID_WAVE / 6562.8)) < 0.01
    oii = np.abs(np.log(GRID_WAVE / 3727.4)) < 0.01
    assert np.sum((sb * GRID_WAVE)[ha]) / np.sum((sb * GRID_WAVE)[oii]) == pytest.approx(1.77, rel=0.02)

    # In a population, lines move only the fluxes of galaxies (and of quasar hosts), most
    # where a line falls: at z ~ 0.02, H-alpha makes r brighter. Stars and bare quasars stay.
    plain = draw_population(sdss, 3000, 4, balanced=True)
    lined = draw_population(sdss, 3000, 4, balanced=True, model=PopulationModel(galaxy_emission_lines=1.0))
    assert lined.meta["galaxy_emission_lines"] == 1.0 and plain.meta["galaxy_emission_lines"] == 0.0
    point = (np.asarray(plain["label"]) == "star") | (np.asarray(plain["host_sed_name"]).astype(str) == "")
    point &= np.asarray(plain["label"]) != "galaxy"
    for b in "ugriz":
        np.testing.assert_array_equal(np.asarray(plain[f"mag_true_{b}"])[point], np.asarray(lined[f"mag_true_{b}"])[point])
    # Bright galaxies are nearby: at z < 0.03 H-alpha sits in r, and no line in i. The same
    # galaxy (template, redshift, dust) is redder in r - i without its lines, and the drawn
    # photometry is that of its spectrum with lines.
    from skysort.simulate.spectra import source_sed

    lined = draw_population(sdss, 1500, 4, class_fractions={"galaxy": 1}, mag_range=(14.0, 17.0),
                            model=PopulationModel(galaxy_emission_lines=1.0))
    nearby = np.nonzero(np.char.startswith(np.asarray(lined["sed_name"]).astype(str), "SB")
                        & (np.asarray(lined["redshift"]) < 0.03))[0]
    assert nearby.size > 10
    filters = {b: load_filter(sdss.filter_path(b), b) for b in "ri"}
    for row in nearby[:5]:
        colour = {}
        for strength in (0.0, 1.0):
            wave, flam = source_sed(lined[row], sdss, strength)
            colour[strength] = ab_mag(wave, flam, filters["r"]) - ab_mag(wave, flam, filters["i"])
        assert colour[1.0] < colour[0.0] - 0.03
        assert colour[1.0] == pytest.approx(lined["mag_true_r"][row] - lined["mag_true_i"][row], abs=0.03)
    spectra = simulate_spectra(lined[nearby[:1]], sdss, seed=1, snr=np.inf)
    assert ab_mag(spectra["wave"], spectra["model"][0] * 1e-17, filters["i"]) == pytest.approx(lined["mag_true_i"][nearby[0]], abs=0.03)
    for bad in (-1.0, 20.0, "yes", True):
        with pytest.raises(InputError, match="galaxy_emission_lines must be a number"):
            PopulationModel(galaxy_emission_lines=bad)


def test_star_metallicity_gives_halo_stars_their_ultraviolet_excess(sdss):
    from skysort.simulate.population import _ivezic_feh
    from skysort.simulate.spectra import source_sed

    plain = draw_population(sdss, 4000, 6, kind="pointsources", class_fractions={"star": 1})
    metal = draw_population(sdss, 4000, 6, kind="pointsources", class_fractions={"star": 1},
                            model=PopulationModel(star_uv_excess=1.0))
    assert metal.meta["star_uv_excess"] == 1.0 and "feh" not in plain.colnames
    # Same stars (templates, magnitudes in the selection band r); only the blue flux changes.
    np.testing.assert_array_equal(np.asarray(plain["sed_name"]), np.asarray(metal["sed_name"]))
    np.testing.assert_allclose(metal["mag_true_r"], plain["mag_true_r"], atol=1e-9)
    np.testing.assert_allclose(metal["mag_true_i"], plain["mag_true_i"], atol=1e-9)
    ug = np.asarray(metal["mag_true_u"] - metal["mag_true_g"])
    gr = np.asarray(metal["mag_true_g"] - metal["mag_true_r"])
    feh = np.asarray(metal["feh"])
    names = np.char.lower(np.asarray(metal["sed_name"]).astype(str))
    halo = np.char.startswith(names, "w") & np.isfinite(feh)
    disc = ~np.char.startswith(names, "w") & np.isfinite(feh)
    # Metallicities from the two components (Ivezic et al. 2008), on dwarfs of g - r 0.15-0.65 only.
    assert np.median(feh[halo]) == pytest.approx(-1.46, abs=0.1) and np.median(feh[disc]) == pytest.approx(-0.6, abs=0.1)
    assert not np.isfinite(feh[np.char.endswith(names, "iii")]).any()
    # The photometric-metallicity relation gives back the drawn [Fe/H] from the final colours
    # (Milky-Way reddening aside), and halo stars at g - r 0.2-0.4 sit near u - g 0.9.
    clean = np.isfinite(feh) & (np.asarray(metal["ebv_mw"]) < 0.01) & (gr > 0.2) & (gr < 0.6)
    assert np.median(np.abs(_ivezic_feh(ug[clean], gr[clean]) - feh[clean])) < 0.1
    blue_halo = halo & (gr > 0.2) & (gr < 0.4)
    assert np.median(ug[blue_halo]) == pytest.approx(0.92, abs=0.06)
    # The spectrum carries the same change: its synthetic u - g is the table's.
    filters = {b: load_filter(sdss.filter_path(b), b) for b in "ug"}
    for row in np.flatnonzero(blue_halo)[:3]:
        wave, flam = source_sed(metal[row], sdss)
        synthetic = ab_mag(wave, flam, filters["u"]) - ab_mag(wave, flam, filters["g"])
        assert synthetic == pytest.approx(ug[row], abs=0.02)
    for bad in (-0.5, 2.0, "yes"):
        with pytest.raises(InputError, match="star_uv_excess must be a number"):
            PopulationModel(star_uv_excess=bad)


def test_halo_membership_from_galactic_structure(sdss):
    """With star_halo_latitude the halo share of turn-off stars follows the Juric et al. (2008)
    model with distance, whatever the template; every other draw is unchanged."""
    from skysort.simulate.population import halo_fraction

    # The model's halo share: rising with distance, from the discs' stars to the halo's.
    share = halo_fraction(np.array([15.0, 16.0, 18.0, 19.5, 21.0]), 50.0)
    assert np.all(np.diff(share) > 0) and share[0] < 0.1 and share[1] < 0.25 and 0.5 < share[2] < 0.8 and share[3] > 0.9
    assert halo_fraction(18.0, 80.0) > halo_fraction(18.0, 50.0) > halo_fraction(18.0, 30.0)
    template = draw_population(sdss, 6000, 6, kind="pointsources", class_fractions={"star": 1},
                               model=PopulationModel(star_uv_excess=1.0))
    galactic = draw_population(sdss, 6000, 6, kind="pointsources", class_fractions={"star": 1},
                               model=PopulationModel(star_uv_excess=1.0, star_halo_latitude=50.0))
    assert galactic.meta["star_halo_latitude"] == 50.0 and template.meta["star_halo_latitude"] == 0.0
    np.testing.assert_array_equal(np.asarray(template["sed_name"]), np.asarray(galactic["sed_name"]))
    np.testing.assert_allclose(galactic["mag_true_r"], template["mag_true_r"], atol=1e-9)
    feh_t, feh_g = np.asarray(template["feh"]), np.asarray(galactic["feh"])
    r = np.asarray(galactic["mag_true_r"])
    gr = np.asarray(galactic["mag_true_g"] - galactic["mag_true_r"])
    turnoff = np.isfinite(feh_g) & (gr > 0.2) & (gr < 0.4)
    # Metal-poor ([Fe/H] < -1, the halo's) share of faint and bright turn-off stars.
    faint, bright = turnoff & (r > 19.5), turnoff & (r < 16)
    assert np.mean(feh_g[faint] < -1.0) > 0.85 > np.mean(feh_t[faint] < -1.0)
    assert np.mean(feh_g[bright] < -1.0) < 0.25
    assert np.median(np.asarray(galactic["mag_true_u"] - galactic["mag_true_g"])[faint]) == pytest.approx(0.9, abs=0.06)
    with pytest.raises(InputError, match="star_halo_latitude must be 0"):
        PopulationModel(star_uv_excess=1.0, star_halo_latitude=10.0)
    with pytest.raises(InputError, match="needs star_uv_excess"):
        PopulationModel(star_halo_latitude=50.0)
