"""Does averaging a blend model over the stamp's eight rotations and flips find more near blends?

A BlendNet is trained with random flips and 90-degree rotations, so each of the eight dihedral
images of a stamp is an equally valid input. This script classifies every stamp of a blend set
eight times (rotations by 0, 90, 180, 270 degrees, each with and without a flip of the columns),
averages the blend probabilities, and prints for the single pass and for the average

1. accuracy, near / far blend completeness and the isolated false-positive rate at ``--threshold``;
2. near-blend completeness and accuracy at the thresholds that give false-positive rates of
   ``--fp`` (so that the comparison is of the ROC, not of a shifted operating point).

It costs eight forward passes per stamp, which is why prediction does not do it.

Run ``python benchmarks/blend_test_time_augmentation.py --model blend-cfis S.h5`` with a set from
``skysort simulate --survey cfis --kind blends --mode realistic --real-galaxies test
--noise-sigma 14.5 --n 20000 --seed 7``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="labelled blend stamp set")
    parser.add_argument("--model", default="blend-cfis")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--fp", default="0.042,0.05", help="false-positive rates of the matched thresholds")
    args = parser.parse_args()

    from skysort.data.stampset import StampSet
    from skysort.tasks.blend import load_blend_model, predict_probabilities

    network, _ = load_blend_model(args.model)
    stamps = StampSet.open(args.data)
    blended = np.asarray(stamps.column("blended"), bool)
    near = np.asarray(stamps.column("near"), bool) & blended
    far = blended & ~near
    single, averaged = [], []
    for _, images in stamps.iter_batches(batch_size=4096):
        views = [np.rot90(images, k, axes=(2, 3)) for k in range(4)]
        views += [view[..., ::-1] for view in views]
        passes = [predict_probabilities(network, np.ascontiguousarray(view)) for view in views]
        single.append(passes[0])
        averaged.append(np.mean(passes, axis=0))
    results = {"single pass": np.concatenate(single), "mean of 8 views": np.concatenate(averaged)}

    print(f"{args.data.name}: {len(stamps)} stamps, {near.sum()} near and {far.sum()} far blends, {(~blended).sum()} isolated")
    print("| prediction | threshold | accuracy | near | far | isolated FP |")
    print("|---|---|---|---|---|---|")
    for name, probability in results.items():
        thresholds = [(f"{args.threshold:g}", args.threshold)]
        thresholds += [(f"FP {float(rate):.1%}", float(np.quantile(probability[~blended], 1 - float(rate))))
                       for rate in args.fp.split(",")]
        for label, threshold in thresholds:
            called = probability > threshold
            print(f"| {name} | {label} | {np.mean(called == blended):.2%} | {called[near].mean():.2%} | "
                  f"{called[far].mean():.2%} | {called[~blended].mean():.2%} |")


if __name__ == "__main__":
    main()
