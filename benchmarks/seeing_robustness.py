"""How an sgq model's agreement with the SDSS star / galaxy type depends on the seeing.

The labelled SDSS field (``003918-3-0213``, r seeing about 1.2") is blurred to worse seeing and
classified again, so the same objects are compared at each seeing:

1. each band is read with its sky background removed, as ``skysort cutout`` does, and its seeing
   measured (:func:`skysort.data.seeing.measure_seeing`);
2. for each target r-band FWHM, every band is convolved with a Gaussian that scales its seeing
   by the same factor as r's, and white noise is added back so that the background rms is
   that of the original frame (blurring alone would smooth the noise away); the seeing is then
   measured again and that measured value is reported;
3. stamps are cut around the catalogue objects (``cutout_to_stampset``) and each model is
   evaluated (``evaluate_sgq_model``, as ``skysort evaluate``).

Prints one row per seeing: the measured r FWHM and, per model, the point / extended agreement
for r < 21 (n) and for all objects. The blurring only makes the seeing worse; it cannot test
seeing better than the field's own. Then, for stamps that carry no seeing (cut elsewhere), one
row per seeing with the seeing measured from the stamps alone (``predict_sgq(images=...)``,
:func:`skysort.data.seeing.images_seeing`; the value measured is printed), and a last row with
the field as it is and the seeing hidden from the models (``psf_fwhm=nan``).

Run ``python benchmarks/seeing_robustness.py [--models sgq-sdss,other.pt] [--seeing 1.3,1.6,1.9]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FIELD = SHARED / "surveys" / "sdss_frames" / "003918-3-0213"


def blurred(images, target_r: float, seed: int):
    """The band images blurred so that r's seeing becomes ``target_r`` [arcsec], noise restored."""
    import sep
    from scipy.ndimage import gaussian_filter

    from skysort.data.seeing import measure_seeing

    rng = np.random.default_rng(seed)
    reference = next(image for image in images if image.band == "r")
    scale = target_r / measure_seeing(reference.data, reference.pixel_scale).fwhm
    out = []
    for image in images:
        fwhm = measure_seeing(image.data, image.pixel_scale).fwhm
        # Gaussian FWHMs add in quadrature; the profile is not Gaussian, so the result is measured again.
        sigma_px = np.sqrt(max((scale * fwhm) ** 2 - fwhm ** 2, 0.0)) / 2.3548 / image.pixel_scale
        data = np.nan_to_num(image.data).astype(np.float32)
        rms_before = sep.Background(data).globalrms
        smooth = gaussian_filter(data, sigma_px).astype(np.float32)
        rms_after = sep.Background(smooth).globalrms
        smooth += rng.normal(0.0, np.sqrt(max(rms_before ** 2 - rms_after ** 2, 0.0)), smooth.shape).astype(np.float32)
        smooth[~np.isfinite(image.data)] = np.nan
        out.append(dataclasses.replace(image, data=smooth))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--field", type=Path, default=FIELD, help="folder with frame-[ugriz]-*.fits.bz2 and objects.csv")
    parser.add_argument("--models", default="sgq-sdss", help="comma-separated model names or files")
    parser.add_argument("--seeing", default="1.3,1.6,1.9", help="target r-band FWHMs [arcsec] beside the field's own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep stamps and evaluations here (default: a temporary folder)")
    args = parser.parse_args()

    from skysort.data.catalog import read_catalog
    from skysort.data.images import expand_image_paths, read_band_images
    from skysort.data.ingest import cutout_to_stampset
    from skysort.tasks.sgq import evaluate_sgq_model

    warnings.filterwarnings("ignore")
    if not args.field.exists():
        sys.exit(f"seeing_robustness: {args.field}: no such folder (set SKYSORT_DATA)")
    models = [m for m in args.models.split(",") if m]
    catalog_path = args.field / "objects.csv"
    catalog = read_catalog(catalog_path)
    original = read_band_images(expand_image_paths(str(args.field / "frame-*-*.fits*")), background="sep")
    targets = [None] + [float(t) for t in args.seeing.split(",") if t]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="skysort-seeing-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        header = "| r seeing (measured) | " + " | ".join(f"{m}: r < 21 (n) | {m}: all" for m in models) + " |"
        print(header)
        print("|" + "---|" * (1 + 2 * len(models)))
        levels = []
        for k, target in enumerate(targets):
            images = original if target is None else blurred(original, target, args.seed + k)
            name = "native" if target is None else f"{target:.2f}"
            stamps = cutout_to_stampset(images, catalog, workdir / f"field_{name}.h5", size=64, catalog_path=catalog_path,
                                        warn=lambda *_: None)
            cells = []
            for m, model in enumerate(models):
                # The model's position in the list keeps two models of the same file name apart.
                cells.append(_cells(evaluate_sgq_model(model, stamps.path, workdir / f"eval_{m}_{Path(model).stem}_{name}")))
            print(f"| {stamps.meta.psf_fwhm['r']:.2f}\"{' (field)' if target is None else ''} | " + " | ".join(cells) + " |", flush=True)
            levels.append((name, stamps))
        for name, stamps in levels + [("native", None)]:
            rows = [array_metrics(model, stamps or levels[0][1], workdir / f"eval_{m}_{Path(model).stem}_{name}" / "predictions.parquet",
                                  psf_fwhm=None if stamps is not None else np.nan)
                    for m, model in enumerate(models)]
            if stamps is None:
                label = "hidden (field)"
            else:
                measured = rows[0][1].get("fwhm_median_arcsec")
                label = f"{stamps.meta.psf_fwhm['r']:.2f}\", from the stamps: " + (f"{measured:.2f}\"" if measured else "unknown")
            print(f"| {label} | " + " | ".join(_cells(metrics) for metrics, _ in rows) + " |", flush=True)
    finally:
        if args.workdir is None:  # a folder of our own: hundreds of MB of stamp sets
            shutil.rmtree(workdir, ignore_errors=True)


def _cells(metrics: dict) -> str:
    """Table cells of one model: point / extended agreement for r < 21 (n) and for all objects."""
    bright = metrics["bright"]
    return f"{bright['point_extended_agreement']:.1%} ({bright['n']}) | {metrics['point_extended_agreement']:.1%}"


def array_metrics(model: str, stamps, predictions: Path, psf_fwhm: float | None) -> tuple[dict, dict]:
    """:func:`skysort.tasks.sgq.sgq_metrics` of ``stamps`` classified from their images as
    arrays, with the seeing ``psf_fwhm`` (None: measured from the stamps, NaN: hidden), and the
    seeing record; labels and r magnitudes come from the evaluation ``predictions`` of the same
    stamps."""
    import pyarrow.parquet as pq

    from skysort.tasks.sgq import CLASSES, class_indices, predict_sgq, sgq_metrics

    reference = pq.read_table(predictions, columns=["id", "true_label", "r_mag"]).to_pandas()
    out = predict_sgq(model, images=stamps.images(), ids=np.asarray(stamps.column("id")), psf_fwhm=psf_fwhm)
    assert np.array_equal(np.asarray(out["id"]), reference["id"].to_numpy()), "predictions are not in stamp order"
    probabilities = np.stack([np.asarray(out[f"p_{c}"]) for c in CLASSES], axis=1)
    metrics = sgq_metrics(class_indices(reference["true_label"], allow_unknown=True), probabilities, r_mag=reference["r_mag"].to_numpy())
    return metrics, out.meta.get("seeing", {})


if __name__ == "__main__":
    main()
