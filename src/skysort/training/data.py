"""Batches for training: stamps and table columns held in memory, served as dicts of tensors.

Training reads every stamp many times, so the working set is loaded once (a 100,000-stamp
single-band 65x65 set is 1.7 GB) and batches are cut from memory by index. Datasets return
whole batches (``__getitems__``), so a DataLoader needs no per-item collation.

On a GPU the whole working set can be held in the GPU's memory for a training
(:meth:`InMemoryBatches.resident_on`): batches are then cut and augmented there, and the
host's processor, which otherwise spends most of each step cutting and copying batches, only
launches the work. Augmentations draw their random numbers from a generator on the CPU and
move them to the batch's device, so one seed gives the same training data on every device.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.stampset import StampSet, stamps_without_pixels
from ..errors import InputError

BatchTransform = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def open_training_set(path) -> StampSet:
    """Open a training or validation stamp set.

    Raises
    ------
    InputError
        The file is not a stamp set, or it holds no objects.
    """
    stamps = StampSet.open(path)
    if len(stamps) == 0:
        raise InputError(path, "the stamp set holds no objects")
    return stamps


def training_data_meta(stamps: StampSet) -> dict:
    """What a model records of its training set: survey, seed, simulation settings and, for a
    simulated set, the whole survey preset that drew it (its seeing is in the model's own
    ``psf_fwhm_range``, :func:`model_seeing_range`)."""
    return {"survey": stamps.meta.survey, "seed": stamps.meta.seed, "simulation": stamps.meta.extra.get("simulation"),
            "survey_preset": stamps.meta.extra.get("survey_preset")}


def model_seeing_range(stamps: StampSet, image_bands: Sequence[str], init_meta: Mapping | None = None) -> dict:
    """The seeing range per image band [arcsec] a model has been trained on: its training set's,
    joined with that of the model it was fine-tuned from. Predictions on images of other
    seeing are reported (:func:`skysort.data.seeing.seeing_mismatch`)."""
    from ..data.seeing import merge_seeing_ranges, stamp_seeing_range

    own = {b: r for b, r in stamp_seeing_range(stamps.meta).items() if b in image_bands}
    return merge_seeing_ranges((init_meta or {}).get("psf_fwhm_range"), own)


def require_finite_images(images: np.ndarray, source, what: str = "training") -> None:
    """Refuse stamps none of whose pixels is finite: there is nothing in them to learn from.

    Stamps with some NaN pixels (a tile edge, a masked defect) are accepted: the networks read
    non-finite pixels as zero after their stretch, in training as in prediction.

    Raises
    ------
    InputError
        Naming ``source`` and how many stamps are empty.
    """
    images = np.asarray(images)
    if images.size == 0:
        return
    empty = stamps_without_pixels(images)
    if empty.any():
        raise InputError(source, f"{int(empty.sum()):,} of {len(images):,} {what} stamps have no finite pixel "
                                 "(flagged NAN_PIXELS): select the others first, e.g. stamps[stamps.column('flags') == 0]")


def require_same_imaging(train: StampSet, val: StampSet, bands: Sequence[str], source, *, same_size: bool = True) -> None:
    """Refuse a validation set whose stamps are not on the training set's scale: another pixel
    scale, flux unit, zero point or stamp size. The network and the stretch fitted on the
    training stamps would read them as other objects, and early stopping would follow a
    meaningless validation loss without any sign of it.

    Parameters
    ----------
    train, val : StampSet
        The training and the validation stamp sets.
    bands : sequence of str
        The image bands the model reads.
    source : str or path-like
        The validation file, named in the error.
    same_size : bool
        Whether the stamps must have the same size (False for a task that centre-crops both).

    Raises
    ------
    InputError
        Naming ``source`` and each difference.
    """
    problems = train.meta.compatible_with(val.meta, bands=bands)
    if same_size and tuple(train.shape[-2:]) != tuple(val.shape[-2:]):
        problems.append(f"stamp sizes differ ({train.shape[-2]}x{train.shape[-1]} vs {val.shape[-2]}x{val.shape[-1]} px)")
    if problems:
        raise InputError(source, f"the validation stamps differ from the training set {train.path}: {'; '.join(problems)}")


def require_magnitudes(mags: np.ndarray, bands: Sequence[str], source) -> None:
    """Refuse photometry with a band that holds no finite magnitude at all: a photometry branch
    would learn nothing from it (leave the band out, e.g. ``--photometry-bands``).

    Raises
    ------
    InputError
        Naming ``source`` and the empty bands.
    """
    mags = np.asarray(mags, float)
    if len(mags) == 0:
        return
    empty = [band for band, column in zip(bands, mags.T) if not np.isfinite(column).any()]
    if len(empty) == len(bands):
        raise InputError(source, f"no finite magnitude in any photometric band {list(bands)}: nothing for the photometry "
                                 "branch to learn (train with --branches image, or give magnitudes)")
    if empty:
        raise InputError(source, f"no finite magnitude in band(s) {empty}: leave them out with --photometry-bands")


def require_classes(labels: np.ndarray, classes: Sequence[str], source, minimum: int = 2) -> np.ndarray:
    """Refuse a training set whose rows hold fewer than ``minimum`` of ``classes``.

    Parameters
    ----------
    labels : ndarray of int
        Class indices into ``classes`` of the training rows.
    classes : sequence of str
        The model's class names.
    source : str or path-like
        The training file, named in the error.

    Returns
    -------
    ndarray of int
        Rows per class (``len(classes)`` entries).

    Raises
    ------
    InputError
        With the counts, when too few classes are present: a classifier fitted on one class
        only learns to answer that class.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    if np.count_nonzero(counts) < minimum:
        found = ", ".join(f"{name} {int(count):,}" for name, count in zip(classes, counts)) or "no rows"
        raise InputError(source, f"training rows hold fewer than {minimum} classes ({found}); "
                         f"a {'/'.join(classes)} classifier needs examples of at least {minimum}")
    return counts


class InMemoryBatches(Dataset):
    """Named per-object arrays held in memory, served as whole batches (dicts of tensors).

    Parameters
    ----------
    arrays : mapping of str to ndarray (N, ...)
        Inputs and targets, e.g. ``{"image": ..., "blended": ...}`` or ``{"features": ...,
        "label": ...}``; converted to tensors once.
    transform : callable, optional
        Applied to every batch dict (augmentation); gets and returns a dict of tensors.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], transform: BatchTransform | None = None):
        self.columns = {name: torch.as_tensor(np.ascontiguousarray(values)) for name, values in arrays.items()}
        lengths = {name: len(values) for name, values in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"arrays have different lengths: {lengths}")
        self._length = next(iter(lengths.values()), 0)
        self.transform = transform

    def __len__(self) -> int:
        return self._length

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return sum(values.element_size() * values.nelement() for values in self.columns.values())

    @property
    def device(self) -> torch.device:
        """Where the arrays are held (and batches are served)."""
        return next(iter(self.columns.values())).device if self.columns else torch.device("cpu")

    @contextlib.contextmanager
    def resident_on(self, device: str | torch.device) -> Iterator["InMemoryBatches"]:
        """Hold the arrays on ``device`` (e.g. a GPU) inside the ``with`` block, serving batches
        there; the arrays held before are served again after it."""
        held = self.columns
        self.columns = {name: values.to(device) for name, values in held.items()}
        try:
            yield self
        finally:
            self.columns = held

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64)).to(self.device)
        batch = {"index": index, **{name: values[index] for name, values in self.columns.items()}}
        return self.transform(batch) if self.transform else batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}


class InMemoryStamps(InMemoryBatches):
    """:class:`InMemoryBatches` whose ``image`` entry holds stamps ``(N, B, H, W)`` float32."""

    def __init__(self, images: np.ndarray, columns: Mapping[str, np.ndarray], transform: BatchTransform | None = None):
        super().__init__({"image": np.asarray(images, dtype=np.float32), **columns}, transform)

    @property
    def images(self) -> torch.Tensor:
        return self.columns["image"]

    @classmethod
    def from_stampset(cls, stamps: StampSet, columns: Mapping[str, np.ndarray], indices: Sequence[int] | None = None,
                      transform: BatchTransform | None = None) -> "InMemoryStamps":
        """Load the stamps at ``indices`` (default all) and the matching rows of ``columns``."""
        indices = np.arange(len(stamps)) if indices is None else np.asarray(indices)
        images = stamps.read_images(indices) if len(indices) else np.zeros((0,) + stamps.shape[1:], np.float32)
        return cls(images, {k: np.asarray(v)[indices] for k, v in columns.items()}, transform)


def _identity(batch):
    return batch


def batch_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A DataLoader yielding whole batch dicts from a dataset with ``__getitems__``."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last,
                      collate_fn=_identity, num_workers=0)


def split_indices(n: int, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Shuffle ``range(n)`` and cut it into consecutive parts of the given fractions."""
    order = np.random.default_rng(seed).permutation(n)
    edges = np.round(np.cumsum([0.0, *fractions]) / sum(fractions) * n).astype(int)
    return [np.sort(order[a:b]) for a, b in zip(edges[:-1], edges[1:])]
