"""Training batches held and augmented on another device than the CPU.

CI has no GPU, so the device here is torch's ``meta`` device (shapes without values): a batch
cut or augmented there proves that no step mixes a CPU tensor into a batch on a GPU. The
values themselves are checked on the CPU.
"""

import numpy as np
import pytest
import torch

from skysort.data.dataset import random_dihedral_batch
from skysort.tasks.blend import BlendAugmentation
from skysort.tasks.pointsource import SpectrumAugmentation
from skysort.tasks.sgq import SGQAugmentation
from skysort.training.data import InMemoryBatches, batch_loader
from skysort.training.module import OptimConfig, TaskModule, _batches_on_gpu


def _sgq_arrays(n=12):
    rng = np.random.default_rng(0)
    return {"image": rng.normal(size=(n, 1, 8, 8)).astype("f4"), "mag": rng.normal(21, 1, (n, 9)).astype("f4"),
            "psf_fwhm": rng.uniform(0.6, 0.8, n).astype("f4"), "label": rng.integers(0, 3, n)}


def test_resident_batches_are_served_on_the_device_and_released_after():
    arrays = _sgq_arrays()
    dataset = InMemoryBatches(arrays, transform=SGQAugmentation(0.2, seed=1, mag_jitter=[0.1] * 9))
    assert dataset.nbytes == sum(np.asarray(v).nbytes for v in arrays.values())
    with dataset.resident_on("meta"):
        assert dataset.device.type == "meta"
        batch = next(iter(batch_loader(dataset, 5, shuffle=True)))
        assert {name: value.device.type for name, value in batch.items()} == dict.fromkeys(batch, "meta")
        assert batch["image"].shape == (5, 1, 8, 8) and batch["mag"].shape == (5, 9)
    assert dataset.device.type == "cpu"
    np.testing.assert_array_equal(dataset[3]["label"].numpy(), arrays["label"][3])


@pytest.mark.parametrize("augmentation, batch", [
    (BlendAugmentation((5.0, 10.0), padding=2, seed=3),
     {"image": torch.ones(6, 1, 12, 12), "noise_sigma": torch.ones(6), "offset": torch.zeros(6, 2)}),
    (SpectrumAugmentation(seed=3), {"spectrum": torch.ones(6, 40), "spectrum_valid": torch.ones(6, 40, dtype=torch.bool)}),
    (SGQAugmentation(0.3, seed=3, mag_jitter=[0.05] * 9),
     {"image": torch.ones(6, 1, 8, 8), "mag": torch.ones(6, 9), "psf_fwhm": torch.ones(6)}),
])
def test_augmentations_keep_a_batch_on_its_device(augmentation, batch):
    out = augmentation({name: value.to("meta") for name, value in batch.items()})
    for name, value in batch.items():
        assert out[name].device.type == "meta", name
        assert out[name].shape == value.shape, name


def test_augmentation_draws_do_not_depend_on_the_device():
    # The random numbers come from the CPU generator whatever holds the batch: the same seed
    # draws the same numbers, so the generator's state after a batch on another device equals
    # its state after the same batch on the CPU.
    batch = {name: torch.as_tensor(value) for name, value in _sgq_arrays(8).items()}
    on_cpu, elsewhere = SGQAugmentation(0.2, seed=5, mag_jitter=[0.1] * 9), SGQAugmentation(0.2, seed=5, mag_jitter=[0.1] * 9)
    on_cpu(batch)
    elsewhere({name: value.to("meta") for name, value in batch.items()})
    assert torch.equal(on_cpu.generator.get_state(), elsewhere.generator.get_state())


@pytest.mark.parametrize("shape", [(10, 2, 6, 6), (10, 1, 4, 7)])
def test_dihedral_batch_matches_each_image_turned_and_mirrored(shape):
    images = torch.arange(np.prod(shape), dtype=torch.float32).reshape(shape)
    out, k, flip = random_dihedral_batch(images, torch.Generator().manual_seed(2))
    assert out.shape == images.shape
    for image, result, turns, flipped in zip(images, out, k.tolist(), flip.tolist()):
        expected = torch.rot90(image, turns, dims=(-2, -1))
        expected = torch.flip(expected, dims=(-1,)) if flipped else expected
        assert torch.equal(result, expected)


def test_without_a_gpu_the_batches_stay_in_host_memory():
    dataset = InMemoryBatches(_sgq_arrays())
    loader = batch_loader(dataset, 4, shuffle=False)
    with _batches_on_gpu((loader, loader), "cpu", 1):
        assert dataset.device.type == "cpu"
    if not torch.cuda.is_available():
        with _batches_on_gpu((loader,), "gpu", 1):
            assert dataset.device.type == "cpu"


def test_the_cpu_optimiser_is_not_the_fused_gpu_kernel():
    module = TaskModule(torch.nn.Linear(3, 2), lambda outputs, batch: (outputs.sum(), {}), OptimConfig())
    optimizer = module.configure_optimizers()["optimizer"]
    assert not optimizer.defaults.get("fused")
