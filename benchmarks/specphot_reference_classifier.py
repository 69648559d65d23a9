"""What the real SDSS spectroscopic table's ugriz photometry supports, for issue goal 5a.

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

Run ``python benchmarks/specphot_reference_classifier.py [--seed 0]``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="split seed, as evaluate_sgq_specphot's")
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
