"""Prediction throughput of a point-source model (default: the shipped ``pointsource-sdss``), stamps per second.

Times the model's :class:`~skysort.inference.predictor.Predictor` (asinh stretch, generator and
fusion classifier; images only) on in-memory simulated SDSS ugriz point-source stamps of the
model's size, in batches of 4096: on the CPU with all threads and with one, and on the GPU when
one is present. Run
``python benchmarks/pointsource_predict_throughput.py [--model pointsource-sdss] [--n 20000]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from predictor_timing import predictor_rate  # beside this script


def main() -> None:
    from skysort.inference.predictor import load_predictor
    from skysort.simulate.simulator import SimulationConfig, simulate_block

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pointsource-sdss")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU timings (a GPU host's CPU is not the one users have)")
    args = parser.parse_args()
    predictor = load_predictor(args.model, device="cpu")
    size = int(predictor.spec.stamp_size_to_cut[0])
    config = SimulationConfig(survey="sdss", kind="pointsources", seed=7, balanced=True, stamp_size=size, mag_max=22.0,
                              image_bands=tuple(predictor.spec.image_bands))
    images, _, _ = simulate_block(config, 0, min(args.n, 1024))
    images = np.resize(images, (args.n,) + images.shape[1:]).astype(np.float32)
    threads = torch.get_num_threads()
    n_parameters = sum(p.numel() for p in predictor.network.parameters())
    print(f"model {args.model}: {n_parameters:,} parameters (inference uses the generator and fusion CNNs), "
          f"{size}x{size} px {','.join(predictor.spec.image_bands)} stamps, n={args.n}")
    if not args.gpu_only:
        print(f"cpu_{threads}threads_stamps_per_s={predictor_rate(predictor, images, 4096):,.0f}")
        torch.set_num_threads(1)
        print(f"cpu_1thread_stamps_per_s={predictor_rate(predictor, images, 4096):,.0f}")
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        predictor.to("cuda")
        print(f"gpu_{torch.cuda.get_device_name(0).replace(' ', '_')}_stamps_per_s={predictor_rate(predictor, images, 4096):,.0f}")
    else:
        print("gpu: none on this machine")


if __name__ == "__main__":
    main()
