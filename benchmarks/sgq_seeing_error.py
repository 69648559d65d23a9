"""How an sgq model that reads the seeing depends on the seeing value it is given.

A model trained with ``--seeing-input`` takes each object's PSF FWHM beside its stamp. At
prediction that value is recorded by ``skysort cutout``, measured on the tiles, measured from the
stamps' own point sources (one value per stamp set), or unknown. This benchmark classifies a
labelled simulated stamp set, whose per-object seeing is known exactly (``psf_fwhm_arcsec``),
with the seeing given to the model:

1. as recorded (the truth);
2. multiplied by each of ``--scales`` (a measurement that is off by that factor);
3. one value for every object, the set's median (a set mixing tiles of different seeing whose
   seeing is measured once);
4. hidden (NaN: unknown).

Prints one line per case, ``case=<name> accuracy=<a>``.

Run ``python benchmarks/sgq_seeing_error.py --model sgq-kids --data kids_test.h5
[--scales 0.9,0.95,1.05,1.1]``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sgq-kids", help="sgq model name or path (trained with --seeing-input)")
    parser.add_argument("--data", type=Path, required=True, help="labelled simulated stamp set with psf_fwhm_arcsec")
    parser.add_argument("--scales", default="0.9,0.95,1.05,1.1", help="factors applied to the true seeing")
    args = parser.parse_args()

    from skysort.data.stampset import StampSet
    from skysort.errors import InputError
    from skysort.tasks.sgq import predict_sgq

    try:
        stamps = StampSet.open(args.data)
        for column in ("label", "psf_fwhm_arcsec"):
            if column not in stamps.columns:
                raise InputError(args.data, f"no {column} column: needs a labelled simulated set")
        scales = [float(value) for value in args.scales.split(",")]
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    labels = np.asarray(stamps.column("label"))
    truth = np.asarray(stamps.column("psf_fwhm_arcsec"), float)
    cases = {"recorded": truth}
    cases.update({f"scaled_{scale:g}": truth * scale for scale in scales})
    cases["one_value_median"] = np.full_like(truth, np.median(truth))
    cases["hidden"] = np.full_like(truth, np.nan)
    print(f"n={len(labels)} seeing_range={truth.min():.3f}-{truth.max():.3f} arcsec median={np.median(truth):.3f}")
    # The cases deliberately give seeing values the model may warn about; the figures are the point.
    warnings.filterwarnings("ignore")
    for name, seeing in cases.items():
        table = predict_sgq(args.model, stamps, psf_fwhm=seeing)
        print(f"case={name} accuracy={np.mean(np.asarray(table['class']) == labels):.4f}", flush=True)


if __name__ == "__main__":
    main()
