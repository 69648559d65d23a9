"""What the real SDSS spectroscopic table's ugriz photometry supports (issue goal 5a; issue 6's F1).

:func:`skysort.tasks.sgq.evaluate_sgq_specphot` fine-tunes the photometry branch of an sgq model
on one half of the real SDSS DR17 spectroscopic objects and tests it on the other half. This
script trains an unrelated, well-tuned learner (scikit-learn ``HistGradientBoostingClassifier``)
on the real table itself, with the same inputs (r magnitude and the ugriz colours, read with the
same ``sdss-specphot`` preset) and

1. the same split (``split_indices(n, [0.5, 0.5], seed)``): trained on the tuning half, scored
   on the held-out half, so its accuracy compares directly with the fine-tuned network's;
2. 5-fold stratified cross-validation on the whole table (80% of it for training each time).

It is a reference, not a ceiling proof: where a learner trained on real labels lands below a goal,
the goal asks more than these five magnitudes hold (the table has no errors, no morphology).

Prints ``same_split_accuracy=<a> cv5_accuracy=<mean> (+- <std>)``.

With ``--point-sources`` it asks issue 6's question instead: stars against quasars only, r <= 22
(the point-source test's range), scored as the point-source models are, by the quasar F1 and the
accuracy of 5-fold cross-validated predictions, overall and per r magnitude. The spectroscopic
stars are targets of SDSS's selections (many were quasar candidates), so they are not a fair
sample of the sky's stars; the figure says what ugriz catalogue photometry of such objects holds.

Run ``python benchmarks/specphot_reference_classifier.py [--seed 0] [--point-sources]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = ("dr17_first9999.csv", "dr17_random10pct.csv")


def features(mags: np.ndarray) -> np.ndarray:
    """r magnitude, the adjacent-band colours and u - r, g - i [mag] from ugriz magnitudes."""
    return np.column_stack([mags[:, 2], np.diff(mags, axis=1), mags[:, 0] - mags[:, 2], mags[:, 1] - mags[:, 3]])


def point_sources(mags: np.ndarray, labels: np.ndarray, seed: int, mag_max: float = 22.0) -> None:
    """Quasar F1 and accuracy of 5-fold cross-validated star / quasar predictions, r <= ``mag_max``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from skysort.tasks.sgq import CLASSES

    star, qso = CLASSES.index("star"), CLASSES.index("qso")
    keep = np.isin(labels, [star, qso]) & np.isfinite(mags).all(axis=1) & (mags[:, 2] <= mag_max)
    x, is_qso, r = features(mags[keep]), labels[keep] == qso, mags[keep, 2]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    predicted = cross_val_predict(HistGradientBoostingClassifier(max_iter=300, random_state=seed), x, is_qso, cv=folds)
    print(f"point sources r <= {mag_max:g}: stars={int(np.sum(~is_qso))} quasars={int(np.sum(is_qso))}")
    print(f"cv5_f1_qso={f1_score(is_qso, predicted):.4f} cv5_accuracy={accuracy_score(is_qso, predicted):.4f}")
    for low in range(int(np.floor(r.min())), int(np.ceil(mag_max))):
        rows = (r >= low) & (r < low + 1)
        if rows.sum() >= 50:
            print(f"r {low}-{low + 1}: n={int(rows.sum())} qso_fraction={is_qso[rows].mean():.2f} "
                  f"f1_qso={f1_score(is_qso[rows], predicted[rows]):.4f} accuracy={accuracy_score(is_qso[rows], predicted[rows]):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="split seed, as evaluate_sgq_specphot's")
    parser.add_argument("--point-sources", action="store_true", help="stars against quasars at r <= 22 (issue 6)")
    args = parser.parse_args()

    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from skysort.data.catalog import photometry_arrays, read_unique_catalogs
    from skysort.tasks.sgq import class_indices
    from skysort.training.data import split_indices

    paths = [SHARED / "catalogs" / "sdss_dr17_specphot" / name for name in FILES]
    if not all(p.exists() for p in paths):
        sys.exit(f"specphot_reference_classifier: {paths[0].parent}: the SDSS DR17 tables are missing (set SKYSORT_DATA)")
    table = read_unique_catalogs(paths, mapping="sdss-specphot")
    labels = class_indices(np.asarray(np.ma.filled(table["label"], "")).astype(str), "label", allow_unknown=True)
    table, labels = table[labels >= 0], labels[labels >= 0]
    mags, _, _ = photometry_arrays(table, list("ugriz"))
    if args.point_sources:
        point_sources(mags, labels, args.seed)
        return
    x = features(mags)
    tune, test = split_indices(len(table), [0.5, 0.5], seed=args.seed)
    learner = HistGradientBoostingClassifier(random_state=args.seed)
    same_split = float(np.mean(learner.fit(x[tune], labels[tune]).predict(x[test]) == labels[test]))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=args.seed)
    scores = cross_val_score(HistGradientBoostingClassifier(random_state=args.seed), x, labels, cv=folds)
    print(f"objects={len(table)} tune={len(tune)} test={len(test)}")
    print(f"same_split_accuracy={same_split:.4f} cv5_accuracy={scores.mean():.4f} (+- {scores.std():.4f})")


if __name__ == "__main__":
    main()
