"""Batches for training: stamps and table columns held in memory, served as dicts of tensors.

Training reads every stamp many times, so the working set is loaded once (a 100,000-stamp
single-band 65x65 set is 1.7 GB) and batches are cut from memory by index. Datasets return
whole batches (``__getitems__``), so a DataLoader needs no per-item collation.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.stampset import StampSet

BatchTransform = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


class InMemoryStamps(Dataset):
    """Stamps (``image``) plus named per-object arrays, indexable by batches.

    Parameters
    ----------
    images : ndarray (N, B, H, W) float32
    columns : mapping of str to ndarray (N, ...)
        Targets and other per-object values (converted to tensors once).
    transform : callable, optional
        Applied to every batch dict (augmentation); gets and returns a dict of tensors.
    """

    def __init__(self, images: np.ndarray, columns: Mapping[str, np.ndarray], transform: BatchTransform | None = None):
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        self.columns = {name: torch.as_tensor(np.asarray(values)) for name, values in columns.items()}
        for name, values in self.columns.items():
            if len(values) != len(self.images):
                raise ValueError(f"column {name!r} has {len(values)} rows for {len(self.images)} images")
        self.transform = transform

    @classmethod
    def from_stampset(cls, stamps: StampSet, columns: Mapping[str, np.ndarray], indices: Sequence[int] | None = None,
                      transform: BatchTransform | None = None) -> "InMemoryStamps":
        indices = np.arange(len(stamps)) if indices is None else np.asarray(indices)
        images = stamps.read_images(indices) if len(indices) else np.zeros((0,) + stamps.shape[1:], np.float32)
        return cls(images, {k: np.asarray(v)[indices] for k, v in columns.items()}, transform)

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        batch = {"image": self.images[index], "index": index}
        batch.update({name: values[index] for name, values in self.columns.items()})
        return self.transform(batch) if self.transform else batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}


def _identity(batch):
    return batch


def batch_loader(dataset: InMemoryStamps, batch_size: int, *, shuffle: bool, seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A DataLoader yielding whole batch dicts from an :class:`InMemoryStamps`."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last,
                      collate_fn=_identity, num_workers=0)


def split_indices(n: int, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Shuffle ``range(n)`` and cut it into consecutive parts of the given fractions."""
    order = np.random.default_rng(seed).permutation(n)
    edges = np.round(np.cumsum([0.0, *fractions]) / sum(fractions) * n).astype(int)
    return [np.sort(order[a:b]) for a, b in zip(edges[:-1], edges[1:])]
