"""Prediction throughput of a blend model (default: the shipped ``blend-cfis``), stamps per second.

Times the model's :class:`~skysort.inference.predictor.Predictor` (what ``skysort predict``
runs: the network with its batch normalisations folded, channels-last on the CPU, and the
probabilities, companion counts and offsets it returns) on in-memory 65x65 stamps in batches of
``--batch`` (default 256): on the CPU with all threads and with one, and on the GPU when one is
present. Run ``python benchmarks/blend_predict_throughput.py [--model blend-cfis] [--n 20000]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from predictor_timing import predictor_rate  # beside this script


def main() -> None:
    from skysort.inference.predictor import load_predictor
    from skysort.simulate.blends import make_blend_stamps

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="blend-cfis")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU timings (a GPU host's CPU is not the one users have)")
    args = parser.parse_args()
    predictor = load_predictor(args.model, device="cpu")
    images, _ = make_blend_stamps(min(args.n, 4096), seed=5, mode="realistic", noise_sigma=14.5)
    images = np.resize(images, (args.n,) + images.shape[1:]).astype(np.float32)
    threads = torch.get_num_threads()
    print(f"model {args.model}: {sum(p.numel() for p in predictor.network.parameters()):,} parameters, batches of {args.batch}")
    if not args.gpu_only:
        print(f"cpu_{threads}threads_stamps_per_s={predictor_rate(predictor, images, args.batch):,.0f}")
        torch.set_num_threads(1)
        print(f"cpu_1thread_stamps_per_s={predictor_rate(predictor, images, args.batch):,.0f}")
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        predictor.to("cuda")
        print(f"gpu_{torch.cuda.get_device_name(0).replace(' ', '_')}_stamps_per_s={predictor_rate(predictor, images, 4096):,.0f}")
    else:
        print("gpu: none on this machine")


if __name__ == "__main__":
    main()
