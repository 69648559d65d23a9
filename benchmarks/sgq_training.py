"""Training time of the sgq-kids model (r-band image + 9-band photometry) on this machine.

Steps:

1. a balanced KiDS source set of ``--n`` objects with r-band 32 px stamps and nine-band
   photometry (``--data`` to reuse one, else simulated into ``--workdir`` with the same options
   as the shipped model's training set);
2. ``train_sgq_model`` (the code behind ``skysort train --task sgq``) for ``--epochs`` epochs with
   the shipped model's settings (batch 512, lr 2e-3, the image branch reading each object's
   seeing), no early stop;
3. the rate: training sources processed per second (90% of the set, times the epochs, over the
   fit time, which includes the per-epoch validation pass) and the projected time of one epoch
   and of ``--project-epochs`` epochs on 200,000 sources.

On a GPU host Lightning trains in bf16 mixed precision; on a CPU, in fp32 with ``--threads``
torch threads (default: torch's own choice, one per core, as the shipped sgq-kids was trained).

Prints ``sources_per_second=<r> epoch_200k_seconds=<s> projected_200k_seconds=<s> device=<d>``.

Run ``python benchmarks/sgq_training.py [--n 20000] [--epochs 2] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="existing KiDS source stamp set (default: simulate one)")
    parser.add_argument("--n", type=int, default=20_000, help="sources to simulate and train on")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--project-epochs", type=int, default=10, help="epochs of the projected full training")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU (default: torch's own)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skysort-sgq-bench"))
    args = parser.parse_args()

    import torch

    from skysort.data.stampset import StampSet
    from skysort.tasks.sgq import train_sgq_model

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        from skysort.simulate.simulator import SimulationConfig, simulate

        data = args.workdir / f"kids-sources-n{args.n}-seed{args.seed}.h5"
        if not data.exists():
            start = time.perf_counter()
            config = SimulationConfig(survey="kids", kind="sources", seed=args.seed, balanced=True, image_bands=("r",), stamp_size=32)
            simulate(config, args.n, data)
            print(f"simulated {args.n} sources in {time.perf_counter() - start:.1f} s -> {data}", flush=True)
    n = min(len(StampSet.open(data)), args.n)
    record = train_sgq_model(data, args.workdir / "sgq-bench.pt", epochs=args.epochs, patience=args.epochs + 1,
                             batch_size=args.batch_size, max_objects=n, seed=0, seeing_input=True, progress=False,
                             command=" ".join(sys.argv))
    trained = record["n_train"] * record["epochs"]
    rate = trained / record["seconds"]
    epoch_200k = 0.9 * 200_000 / rate
    device = f"{record['accelerator']} ({record['precision']})"
    if record["accelerator"] == "cpu":
        device += f", {torch.get_num_threads()} thread(s)"
    else:
        device += f", {torch.cuda.get_device_name(0)}"
    print(f"sources_per_second={rate:.0f} epoch_200k_seconds={epoch_200k:.0f} "
          f"projected_200k_seconds={epoch_200k * args.project_epochs:.0f} ({args.project_epochs} epochs) device={device} "
          f"n_train={record['n_train']} epochs={record['epochs']} fit_seconds={record['seconds']} val_accuracy={record['accuracy']:.4f}")


if __name__ == "__main__":
    main()
