"""Prediction throughput of a blend model (default: the shipped ``blend-cfis``), stamps per second.

Times the network alone on in-memory 65x65 stamps (batches of 1024) on the CPU with all
threads and with one, and on the GPU when one is present (bf16 autocast). Run
``python benchmarks/blend_predict_throughput.py [--model blend-cfis] [--n 20000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def measure(network, images: torch.Tensor, device: str, batch: int = 1024) -> float:
    network = network.to(device)
    with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        network({"image": images[:batch].to(device)})  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for first in range(0, len(images), batch):
            network({"image": images[first : first + batch].to(device, non_blocking=True)})
        if device == "cuda":
            torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    from skysort.simulate.blends import make_blend_stamps
    from skysort.tasks.blend import load_blend_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="blend-cfis")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU timings (a GPU host's CPU is not the one users have)")
    args = parser.parse_args()
    network, meta = load_blend_model(args.model)
    images, _ = make_blend_stamps(min(args.n, 4096), seed=5, mode="realistic", noise_sigma=14.5)
    images = torch.from_numpy(np.resize(images, (args.n,) + images.shape[1:]).astype(np.float32))
    threads = torch.get_num_threads()
    print(f"model {args.model}: {sum(p.numel() for p in network.parameters()):,} parameters")
    if not args.gpu_only:
        print(f"cpu_{threads}threads_stamps_per_s={measure(network, images, 'cpu'):,.0f}")
        torch.set_num_threads(1)
        print(f"cpu_1thread_stamps_per_s={measure(network, images, 'cpu'):,.0f}")
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        print(f"gpu_{torch.cuda.get_device_name(0).replace(' ', '_')}_stamps_per_s={measure(network, images, 'cuda'):,.0f}")
    else:
        print("gpu: none on this machine")


if __name__ == "__main__":
    main()
