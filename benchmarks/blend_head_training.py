"""BlendHunter head training time on a CPU, with the backbone feature extraction rate.

Steps:

1. a parametric CFIS-like blend stamp set (80,000 stamps at one noise level; ``--data`` to
   reuse one, else simulated into ``--workdir``);
2. backbone features computed once and cached (:mod:`skysort.training.features`); the rate is
   printed (a cache hit prints the rate recorded when the entry was made);
3. the paper head trained alone on the cached features: 36,000 / 36,000 / 8,000 split, batch
   250, Adam 1e-3, plateau halving after 5 epochs, early stop after 10, up to 500 epochs.
   Target: under 630 s on a 2-core CPU.

Prints ``feature_rate=<stamps/s> ...`` and
``head_training_seconds=<x> epochs=<n> test_accuracy=<a>``.

``--vgg-subset N`` also times VGG-16 features on the first N stamps (random weights unless
``--vgg-weights``; the cost does not depend on the weights) and extrapolates to the whole set,
labelled as an extrapolation.

Run ``python benchmarks/blend_head_training.py [--data FILE] [--n 80000] [--sigma 14.5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="existing blend stamp set (default: simulate one)")
    parser.add_argument("--n", type=int, default=80_000, help="stamps to simulate")
    parser.add_argument("--sigma", type=float, default=14.5, help="noise standard deviation, counts")
    parser.add_argument("--mode", default="parametric", choices=("parametric", "realistic"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skysort-blend-bench"))
    parser.add_argument("--backbone", default="efficientnet-lite0", choices=("efficientnet-lite0", "vgg16"))
    parser.add_argument("--backbone-weights", type=Path)
    parser.add_argument("--input-mode", default="paper8bit", choices=("paper8bit", "float"))
    parser.add_argument("--max-epochs", type=int, default=500)
    parser.add_argument("--vgg-subset", type=int, default=0, help="time VGG-16 features on this many stamps")
    parser.add_argument("--vgg-weights", type=Path)
    parser.add_argument("--test-data", type=Path, help="also report accuracy on this stamp set (e.g. realistic)")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    from skysort.data.stampset import StampSet
    from skysort.models.backbones import load_backbone
    from skysort.tasks.blend_paper import predict_paper_model, train_paper_model
    from skysort.training.features import compute_features

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        from skysort.simulate.simulator import SimulationConfig, simulate

        data = args.workdir / f"blends-{args.mode}-n{args.n}-sigma{args.sigma:g}-seed{args.seed}.h5"
        if not data.exists():
            start = time.perf_counter()
            config = SimulationConfig(survey="cfis", kind="blends", seed=args.seed, mode=args.mode, noise_sigma=args.sigma)
            simulate(config, args.n, data, workers=os.cpu_count() or 1)
            print(f"simulated {args.n} stamps in {time.perf_counter() - start:.1f} s -> {data}", flush=True)
    n_stamps = len(StampSet.open(data))
    cache = args.workdir / "features"
    model_path = args.workdir / f"paper-{args.backbone}-{args.input_mode}.pt"

    metrics = train_paper_model(data, model_path, backbone=args.backbone, backbone_weights=args.backbone_weights,
                                input_mode=args.input_mode, max_epochs=args.max_epochs, cache_dir=cache,
                                progress=not args.quiet, threads=args.threads, command=" ".join(sys.argv))
    if metrics["feature_cache_hit"]:
        recorded = sorted(cache.glob(f"{args.backbone}-{args.input_mode}-*.json"), key=lambda p: p.stat().st_mtime)
        rate = json.loads(recorded[-1].read_text()).get("stamps_per_second") if recorded else None
        print(f"feature_rate={rate} stamps/s backbone={args.backbone} (recorded when the cache entry was made; "
              f"cache hit now)", flush=True)
    else:
        print(f"feature_rate={metrics['features_per_second']} stamps/s backbone={args.backbone} "
              f"n={n_stamps} seconds={metrics['feature_seconds']}", flush=True)
    print(f"head_training_seconds={metrics['head_training_seconds']} epochs={metrics['epochs']} "
          f"test_accuracy={metrics['test_accuracy']:.4f}", flush=True)
    detail = {k: v for k, v in metrics.items() if k.startswith("test_accuracy_")}
    print("test accuracies by class:", json.dumps({k: round(v, 4) for k, v in detail.items()}), flush=True)

    if args.test_data:
        import numpy as np

        other = StampSet.open(args.test_data)
        prob = predict_paper_model(model_path, other, cache_dir=cache, use_cache=True, progress=not args.quiet)
        truth = np.asarray([str(x) == "blended" for x in other.labels()])
        print(f"transfer_accuracy={np.mean((prob > 0.5) == truth):.4f} on {args.test_data} ({len(other)} stamps)", flush=True)

    if args.vgg_subset:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vgg = load_backbone("vgg16", weights=args.vgg_weights)
        subset = StampSet.open(data)[:args.vgg_subset]
        compute_features(subset[:32], vgg, args.input_mode, progress=False, threads=args.threads)  # warm-up
        start = time.perf_counter()
        compute_features(subset, vgg, args.input_mode, progress=not args.quiet, threads=args.threads)
        seconds = time.perf_counter() - start
        rate = args.vgg_subset / seconds
        print(f"vgg16_feature_rate={rate:.1f} stamps/s measured on {args.vgg_subset} stamps; "
              f"EXTRAPOLATED time for {n_stamps} stamps: {n_stamps / rate:.0f} s", flush=True)


if __name__ == "__main__":
    main()
