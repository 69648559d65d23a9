"""The point-source spectral encoder on quasar spectra it was not trained on, across redshift.

The simulator draws every quasar spectrum from one template, the SDSS composite of Vanden Berk
et al. (2001, LePhare's ``QSO_SDSS.sed``, split into a continuum and lines whose slope and
strength vary). Real quasars differ from it, so this script asks the shipped encoder (issue 6,
stage 1) about independent quasar spectra built from real ones (``../shared/data/seds/qso/``):

- ``dr16q-lowz`` / ``dr16q-highz``: the first basis vector of DESI redrock's QSO templates,
  computed from 103,196 SDSS DR16Q quasars at z < 1.7 and 138,217 at z > 1.3;
- ``speigen``: the first basis vector of SDSS's own quasar eigenspectra (``spEigenQSO``);
- ``brodzeller``: the first of Brodzeller et al.'s (2022) six vectors;
- ``yip``: the first of Yip et al.'s (2004) 50 global SDSS quasar eigenspectra (their mean);
- ``cristiani``: the Cristiani & Vio (1990) composite;
- ``vvds``: the VVDS type-1 AGN composite (Gavignaud et al. 2006), faint AGN with host light;
- ``red``: LePhare's red (dust-reddened) quasar template.

Each is redshifted onto the model's wavelength grid (vacuum, log-linear), dimmed by the mean
intergalactic transmission of Inoue et al. (2014) (:func:`skysort.simulate.seds.igm_transmission`;
a template that already holds forest absorption is dimmed twice blueward of Lyman-alpha, which
only makes it harder), given Gaussian noise at a median S/N per pixel, and encoded with
:func:`skysort.tasks.pointsource.encode_real_spectrum`. Redshifts where a template covers less
than 80% of the grid are skipped, whatever the model was trained on, so that models compare.

The real spectra of the encoder's test (31 Indo-US stars A0-K4, the SDSS quasar at z = 0.10), whose
own S/N is far higher, are degraded the same way, to say whether faint stars stay stars; the
real quasar is also degraded with noise shaped by its own error array (sky-line residuals and
the spectrograph's ends noisier), five draws per S/N.

Prints one table per S/N: p(qso) per template and redshift, the fraction called quasars, the
real spectra called correctly, and the draws of the noisy real quasar called quasars.
Run ``python benchmarks/pointsource_encoder_templates.py [--model pointsource-sdss] [--snr 10 5 3] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import warnings
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
#: Least grid coverage of a template at a redshift for it to be scored.
MIN_COVERAGE = 0.8
REDSHIFTS = (0.1, 0.3, 0.6, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5)
#: Template name -> (file in seds/qso/, reader). The readers return rest-frame vacuum wavelength [A] and f_lambda.
TEMPLATES = {
    "dr16q-lowz": "rrtemplate-QSO-LOZ-v1.1.fits",
    "dr16q-highz": "rrtemplate-QSO-HIZ-v1.1.fits",
    "speigen": "rrtemplate-QSO-None-v0.1.fits",
    "brodzeller": "rrtemplate-qso6vec_Brodzeller2022.fits",
    "yip": "qso_eigenspec_Yip2004_global.fits",
    "cristiani": "QSO_Cristiani.sed",
    "vvds": "QSO_VVDS.sed",
    "red": "Redqso_template_norm.sed",
}


def read_template(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rest-frame wavelength [A] and f_lambda (arbitrary scale, positive) of a quasar template.

    Reads a redrock basis (a log-lambda image, ``CRVAL1``/``CDELT1``; its first vector), Yip et
    al.'s eigenspectrum table (``WAVE``, ``PCA``; the first eigenspectrum) or a two-column text SED.
    """
    from astropy.io import fits

    if path.suffix == ".sed":
        table = np.loadtxt(path, comments="#")
        wave, flux = table[:, 0], table[:, 1]
    else:
        with fits.open(path) as hdul:
            if hdul[0].data is not None:
                header = hdul[0].header
                wave = 10.0 ** (header["CRVAL1"] + header["CDELT1"] * np.arange(header["NAXIS1"]))
                flux = np.asarray(hdul[0].data[0], float)
            else:
                row = hdul[1].data[0]
                wave = np.asarray(row["WAVE"], float)
                flux = np.asarray(row["PCA"], float).reshape(-1, wave.size)[0]
    # An eigenvector's sign is arbitrary.
    return wave, flux if np.median(flux) > 0 else -flux


def observed_spectrum(rest_wave: np.ndarray, rest_flux: np.ndarray, z: float, wave: np.ndarray, snr: float | None,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The template at redshift ``z`` on observed wavelengths ``wave`` [A], with IGM and noise.

    Returns f_lambda (0 where the template does not reach) and the covered pixels.
    """
    from skysort.simulate.seds import igm_transmission

    flux = np.interp(wave, rest_wave * (1.0 + z), rest_flux, left=np.nan, right=np.nan) * igm_transmission(wave, z)
    covered = np.isfinite(flux)
    if snr:
        flux = flux + rng.normal(0.0, np.nanmedian(np.abs(flux)) / snr, flux.size)
    return np.where(covered, flux, 0.0), covered


@functools.lru_cache(maxsize=4)
def _encoder(model: str):
    """``(encode, grid)``: the model's encoder on ``(wave, flux, valid)``, without the coverage
    warning (the scripts score coverage themselves), and its wavelength grid."""
    from skysort.tasks.pointsource import encode_real_spectrum, load_pointsource_model

    network, meta = load_pointsource_model(model)
    grid = meta["spectrum_grid"]

    def encode(wave: np.ndarray, flux: np.ndarray, valid: np.ndarray) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return encode_real_spectrum(network, wave, flux, valid, grid=grid)

    return encode, grid


def template_probabilities(model: str, snr: float | None, seed: int = 0,
                           redshifts=REDSHIFTS) -> dict[str, dict[float, float | None]]:
    """p(qso) of the encoder for every template and redshift (None where the grid is not covered)."""
    encode, grid = _encoder(model)
    wave = 10.0 ** (grid["loglam_start"] + grid["loglam_step"] * np.arange(int(grid["n_pixels"])))
    rng = np.random.default_rng(seed)
    result = {}
    for name, file in TEMPLATES.items():
        rest_wave, rest_flux = read_template(SHARED / "seds" / "qso" / file)
        result[name] = {}
        for z in redshifts:
            flux, covered = observed_spectrum(rest_wave, rest_flux, z, wave, snr, rng)
            if covered.mean() < MIN_COVERAGE:
                result[name][z] = None
                continue
            result[name][z] = encode(wave, flux, covered)["p_qso"]
    return result


def real_spectra_correct(model: str, snr: float | None, seed: int = 0) -> tuple[int, int, list[str]]:
    """Real spectra (Indo-US stars, the SDSS quasar) at median S/N ``snr`` per pixel: correct, total, wrong names."""
    from skysort.data.spectra import read_real_spectrum

    encode, _ = _encoder(model)
    files = [(p, "star") for p in sorted((SHARED / "seds" / "stars_indo_us").glob("*.fits"))]
    files.append((SHARED / "spectra" / "sdss_real" / "spec-0332-52367-0639.fits", "qso"))
    rng = np.random.default_rng(seed)
    wrong = []
    for path, truth in files:
        spectrum = read_real_spectrum(path)
        flux, valid = spectrum["flux"], spectrum["valid"]
        if snr:
            flux = flux + rng.normal(0.0, np.median(np.abs(flux[valid])) / snr, flux.size)
        if encode(spectrum["wave"], flux, valid)["class"] != truth:
            wrong.append(path.name)
    return len(files) - len(wrong), len(files), wrong


def quasar_with_its_own_noise(model: str, snr: float, draws: int = 5, seed: int = 0) -> int:
    """The real SDSS quasar degraded to median S/N ``snr`` with noise shaped by its own error
    array (sky-line residuals included): in how many of ``draws`` draws it is called a quasar."""
    from astropy.io import fits

    encode, _ = _encoder(model)
    coadd = fits.getdata(SHARED / "spectra" / "sdss_real" / "spec-0332-52367-0639.fits", "COADD")
    wave, flux, ivar = (np.asarray(coadd[c], float) for c in ("loglam", "flux", "ivar"))
    wave = 10.0 ** wave
    usable = ivar > 0
    sigma = np.where(usable, 1.0 / np.sqrt(np.where(usable, ivar, 1.0)), 0.0)
    scale = np.median(np.abs(flux[usable])) / snr / np.median(sigma[usable])
    rng = np.random.default_rng(seed)
    called = 0
    for _ in range(draws):
        noisy = flux + rng.normal(0.0, 1.0, flux.size) * sigma * scale
        called += encode(wave, noisy, usable)["class"] == "qso"
    return called


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pointsource-sdss")
    parser.add_argument("--snr", type=float, nargs="+", default=[10.0, 5.0, 3.0], help="median S/N per pixel (0: no noise)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for snr in args.snr:
        table = template_probabilities(args.model, snr or None, args.seed)
        print(f"\np(qso), S/N {snr:g} per pixel ('-': the template covers < 80% of the grid at that z)")
        print(f"{'template':12s}" + "".join(f"{z:>6.1f}" for z in REDSHIFTS))
        called, total = 0, 0
        for name, row in table.items():
            print(f"{name:12s}" + "".join("     -" if p is None else f"{p:6.2f}" for p in row.values()))
            values = [p for p in row.values() if p is not None]
            called += sum(p > 0.5 for p in values)
            total += len(values)
        print(f"snr={snr:g} called_qso={called}/{total}")
        correct, n, wrong = real_spectra_correct(args.model, snr or None, args.seed)
        print(f"snr={snr:g} real_spectra_correct={correct}/{n}" + (f" wrong: {', '.join(wrong)}" if wrong else ""))
        if snr:
            print(f"snr={snr:g} real_quasar_own_noise_called_qso={quasar_with_its_own_noise(args.model, snr, seed=args.seed)}/5")


if __name__ == "__main__":
    main()
