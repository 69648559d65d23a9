"""How much of a simulated sgq test set any classifier can get right from the same inputs.

A gradient-boosted tree classifier (scikit-learn ``HistGradientBoostingClassifier``) is trained
on a training stamp set and scored on a test set, with

1. the catalogue photometry alone: every photometric band's magnitude and the adjacent-band
   colours, missing values left as NaN (the trees route them);
2. the same plus the morphology of an image-only model (``--morphology MODEL``, e.g. the
   ``--branches image`` ablation): the logit of its galaxy probability. That model was
   trained on the training set, where its outputs are therefore over-confident, so this run
   is fit and scored by two-fold cross-fitting on the test set alone (each half scored by
   trees fit on the other half);
3. the photometry plus a morphology that needs no training (``--concentration BAND``): the
   stamp's concentration index in that band (flux within 0.5" of the centre over flux within
   1.2"), with and without each object's seeing (PSF FWHM) beside it. A point source's
   concentration is set by the seeing alone, so the same index means "point-like" in good
   seeing and "extended" in bad; without the seeing, compact galaxies and quasars overlap.

It is a reference, not a ceiling proof: if a well-tuned, unrelated learner given the same
information lands where the network does, the network's remaining errors come from what the
inputs do not hold (faint photometry, point-like quasars on the stellar locus) rather than from
its training. The shipped sgq-kids card quotes it.

Prints ``photometry_accuracy=<a>``; with ``--morphology``,
``photometry_cross_fitted_accuracy=<a> photometry_morphology_cross_fitted_accuracy=<a>``; with
``--concentration``, ``photometry_concentration_accuracy=<a>
photometry_concentration_seeing_accuracy=<a>``; and the accuracy per r-magnitude bin.

Run ``python benchmarks/sgq_reference_classifier.py --train kids_train.h5 --test kids_test.h5
[--morphology sgq-kids-image.pt] [--concentration r]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def features(stamps, bands: list[str]) -> np.ndarray:
    """Magnitudes and adjacent-band colours [mag], NaN where a band is missing."""
    from skysort.tasks.sgq import stamp_magnitudes

    mags = stamp_magnitudes(stamps, bands)
    return np.concatenate([mags, np.diff(mags, axis=1)], axis=1)


def concentration(stamps, band: str, inner_arcsec: float = 0.5, outer_arcsec: float = 1.2,
                  batch: int = 20000) -> np.ndarray:
    """Flux within ``inner_arcsec`` of the stamp centre over flux within ``outer_arcsec``, one column.

    Summed over batches of ``batch`` stamps so that a large set is never held in memory at once.
    """
    from skysort.evaluation.magnitudes import aperture_fluxes

    channel = stamps.bands.index(band)
    out = np.empty(len(stamps))
    for rows, images in stamps.iter_batches(batch):
        inner, outer = (aperture_fluxes(images[:, channel], stamps.meta.pixel_scale, 2 * radius)
                        for radius in (inner_arcsec, outer_arcsec))
        # Faint objects can sum to about zero or below in the outer aperture; clip the ratio to
        # the range it has for real profiles rather than let noise send it to +-infinity.
        out[rows] = np.clip(inner / np.where(np.abs(outer) > 0, outer, np.nan), -1.0, 2.0)
    return out[:, None]


def shape_features(stamps, path: Path, band: str) -> np.ndarray:
    """The concentration index in ``band`` and each object's seeing there [arcsec], two columns."""
    from skysort.data.seeing import object_seeing
    from skysort.errors import InputError

    if band not in stamps.bands:
        raise InputError(path, f"--concentration: no {band} image (image bands: {', '.join(stamps.bands)})")
    seeing = object_seeing(stamps, band)
    if np.isnan(seeing).all():
        raise InputError(path, f"--concentration: no seeing recorded in {band}")
    return np.hstack([concentration(stamps, band), seeing[:, None]])


def galaxy_logit(model: Path, stamps) -> np.ndarray:
    """logit p_galaxy of an image-only sgq model, one column."""
    from skysort.tasks.sgq import predict_sgq

    p = np.clip(np.asarray(predict_sgq(str(model), stamps)["p_galaxy"], float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="training stamp set")
    parser.add_argument("--test", type=Path, required=True, help="test stamp set")
    parser.add_argument("--morphology", type=Path, help="image-only sgq model whose p_galaxy is added as a feature")
    parser.add_argument("--concentration", metavar="BAND",
                        help="add the stamps' concentration index in BAND, alone and with each object's seeing")
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from sklearn.ensemble import HistGradientBoostingClassifier

    from skysort.data.stampset import StampSet
    from skysort.errors import InputError
    from skysort.tasks.sgq import class_indices, default_photometry_bands

    try:
        train, test = StampSet.open(args.train), StampSet.open(args.test)
        bands = default_photometry_bands(train)
        y_train = class_indices(train.labels(), args.train)
        y_test = class_indices(test.labels(), args.test)
        x_train, x_test = features(train, bands), features(test, bands)
        r_test = np.asarray(test.column("mag_r"), float) if "mag_r" in test.columns else None
        morphology = galaxy_logit(args.morphology, test) if args.morphology else None
        if args.concentration:
            shape_train = shape_features(train, args.train, args.concentration)
            shape_test = shape_features(test, args.test, args.concentration)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

    def fit_predict(x_fit, y_fit, x_score):
        learner = HistGradientBoostingClassifier(max_iter=args.iterations, max_leaf_nodes=63, early_stopping=True,
                                                 random_state=args.seed)
        return learner.fit(x_fit, y_fit).predict(x_score)

    predictions = {"photometry": fit_predict(x_train, y_train, x_test)}
    if args.concentration:
        predictions["photometry_concentration"] = fit_predict(np.hstack([x_train, shape_train[:, :1]]), y_train,
                                                              np.hstack([x_test, shape_test[:, :1]]))
        predictions["photometry_concentration_seeing"] = fit_predict(np.hstack([x_train, shape_train]), y_train,
                                                                     np.hstack([x_test, shape_test]))
    if morphology is not None:
        half = np.random.default_rng(args.seed).permutation(len(y_test)) % 2 == 0

        def cross_fit(x):
            out = np.empty_like(y_test)
            for fit_rows in (half, ~half):
                out[~fit_rows] = fit_predict(x[fit_rows], y_test[fit_rows], x[~fit_rows])
            return out

        # Photometry alone with the same cross-fitting, so that the morphology's gain is like for like.
        predictions["photometry_cross_fitted"] = cross_fit(x_test)
        predictions["photometry_morphology_cross_fitted"] = cross_fit(np.hstack([x_test, morphology]))
    results = []
    for name, predicted in predictions.items():
        correct = predicted == y_test
        results.append(f"{name}_accuracy={correct.mean():.4f}")
        if r_test is not None:
            for low in range(14, 24):
                inside = (r_test >= low) & (r_test < low + 1)
                if inside.any():
                    print(f"{name} r {low}-{low + 1}: n={inside.sum()} accuracy={correct[inside].mean():.4f}")
    print(f"bands={','.join(bands)} n_train={len(y_train)} n_test={len(y_test)}")
    print(" ".join(results))


if __name__ == "__main__":
    main()
