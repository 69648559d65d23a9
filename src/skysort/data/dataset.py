"""PyTorch access to stamp sets: normalisation, augmentation and a ``Dataset``.

Networks never see raw fluxes: :class:`AsinhStretch` maps each band through
``asinh(flux / softening_b)``, a luptitude-like stretch that is linear near the noise level
and logarithmic for bright sources. Its per-band softening scales are fitted on a training
set (robust sky-noise estimate) and saved inside every model, so inference applies exactly
the transformation used in training.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .stampset import StampSet


def background_sigma(images: np.ndarray, border: int = 4) -> np.ndarray:
    """Robust per-band sky-noise estimate from the stamp borders.

    Parameters
    ----------
    images : ndarray, shape (N, B, H, W)
        Stamps in flux units.
    border : int
        Width in pixels of the frame used (the object sits at the centre, so borders are
        mostly sky).

    Returns
    -------
    ndarray, shape (B,)
        1.4826 x median absolute deviation of the border pixels in each band, in flux units.
    """
    images = np.asarray(images, dtype=np.float32)
    mask = np.zeros(images.shape[-2:], dtype=bool)
    mask[:border, :] = mask[-border:, :] = mask[:, :border] = mask[:, -border:] = True
    pixels = images[..., mask]  # (N, B, n_border)
    pixels = np.moveaxis(pixels, 1, 0).reshape(images.shape[1], -1)
    sigma = np.empty(images.shape[1], dtype=np.float64)
    for band, values in enumerate(pixels):
        values = values[np.isfinite(values)]
        if values.size == 0:
            sigma[band] = np.nan
            continue
        sigma[band] = 1.4826 * np.median(np.abs(values - np.median(values)))
    return sigma


class AsinhStretch:
    """Per-band ``asinh(flux / softening)`` normalisation of stamps.

    Parameters
    ----------
    softening : sequence of float
        Per-band softening scale in the stamps' flux unit (one per band, in band order).
    bands : sequence of str, optional
        Band names the scales belong to (checked against the data at use).

    Notes
    -----
    NaN pixels (outside the image, bad pixels) become 0 after the stretch, i.e. sky level.
    """

    def __init__(self, softening: Sequence[float], bands: Sequence[str] | None = None):
        self.softening = np.asarray(softening, dtype=np.float32)
        if np.any(~np.isfinite(self.softening)) or np.any(self.softening <= 0):
            raise ValueError(f"softening scales must be positive and finite, got {self.softening}")
        self.bands = tuple(bands) if bands is not None else None

    @classmethod
    def fit(cls, stamps: StampSet, bands: Sequence[str] | None = None, n_sample: int = 2000,
            seed: int = 0, noise_multiple: float = 1.0) -> "AsinhStretch":
        """Fit the softening to ``noise_multiple`` x the sky noise of up to ``n_sample`` stamps."""
        if len(stamps) == 0:
            raise ValueError(f"{stamps.path}: no stamps to fit the image stretch on (an empty selection); "
                             "give a normaliser fitted elsewhere")
        rng = np.random.default_rng(seed)
        n = min(n_sample, len(stamps))
        indices = np.sort(rng.choice(len(stamps), size=n, replace=False))
        images = stamps.read_images(indices)
        band_index = _band_indices(stamps.meta.bands, bands)
        sigma = background_sigma(images[:, band_index])
        # A noiseless band (simulations without noise) still needs a positive scale; a band
        # without a finite pixel gets 1 (its stretched pixels are all sky level anyway).
        finite = np.where(np.isfinite(images[:, band_index]), np.abs(images[:, band_index]), 0.0)
        fallback = finite.max(axis=(0, 2, 3)) * 1e-3
        sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.where(fallback > 0, fallback, 1.0))
        return cls(noise_multiple * sigma, bands=[stamps.meta.bands[i] for i in band_index])

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Stretch ``(..., B, H, W)`` images; returns a float32 tensor."""
        if not isinstance(images, torch.Tensor):
            # FITS arrays are big-endian, which torch does not take; float32 in native order is.
            images = np.asarray(images, dtype=np.float32)
        tensor = torch.as_tensor(images, dtype=torch.float32)
        if tensor.ndim < 3 or tensor.shape[-3] != self.softening.size:
            raise ValueError(f"images of shape {tuple(tensor.shape)} for a stretch of {self.softening.size} band(s) "
                             f"(expected (..., {self.softening.size}, H, W))")
        scale = torch.as_tensor(self.softening, dtype=torch.float32).view(-1, 1, 1)
        # Non-finite pixels (NaN, and inf from an overflowing cast) carry no measurement: sky level.
        return torch.nan_to_num(torch.asinh(tensor / scale), nan=0.0, posinf=0.0, neginf=0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "asinh", "softening": self.softening.tolist(), "bands": list(self.bands or [])}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "AsinhStretch":
        if state.get("kind") != "asinh":
            raise ValueError(f"not an asinh normalisation state: {state.get('kind')!r}")
        return cls(state["softening"], state.get("bands") or None)

    def __repr__(self) -> str:
        return f"AsinhStretch(softening={self.softening.tolist()}, bands={self.bands})"


def _band_indices(available: Sequence[str], wanted: Sequence[str] | None) -> list[int]:
    if wanted is None:
        return list(range(len(available)))
    missing = [b for b in wanted if b not in available]
    if missing:
        raise KeyError(f"bands {missing} are not in the stamp set (bands {list(available)})")
    return [list(available).index(b) for b in wanted]


def _keep_shape(k, height: int, width: int):
    """Quarter turns ``k`` (int or tensor) limited to half turns for non-square stamps: a quarter
    turn would swap their height and width. The same random draws serve both cases."""
    return k if height == width else 2 * (k % 2)


def random_dihedral(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply one of the 8 flips / 90-degree rotations, drawn at random, to ``(..., H, W)``.

    Non-square stamps get one of the 4 of them that keep their shape (identity, half turn and
    the two mirrors), so that the output is ``(..., H, W)`` too.
    """
    k = int(torch.randint(0, 4, (1,), generator=generator))
    flip = bool(torch.randint(0, 2, (1,), generator=generator))
    k = _keep_shape(k, images.shape[-2], images.shape[-1])
    out = torch.rot90(images, k, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if flip else out


def random_dihedral_batch(images: torch.Tensor, generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random flip / 90-degree rotation per image of a batch ``(N, ..., H, W)``.

    Returns ``(transformed, k, flip)``: image ``i`` is ``rot90(image, k[i], dims=(-2, -1))``,
    then mirrored in its columns where ``flip[i]``, so callers can transform positions too.
    Non-square images get only half turns (``k`` 0 or 2), which keep their shape.
    """
    n = images.shape[0]
    # Drawn on the generator's device (the CPU), so that one seed gives the same transforms
    # whatever device holds the images; the groups are chosen there too, so images on a GPU
    # are transformed without waiting for it.
    k = _keep_shape(torch.randint(0, 4, (n,), generator=generator), images.shape[-2], images.shape[-1])
    flip = torch.rand(n, generator=generator) < 0.5
    out = images.clone()
    # Eight groups, one vectorised transform each, rather than a Python loop over images.
    for turns in range(4):
        for flipped in (False, True):
            chosen = torch.nonzero((k == turns) & (flip == flipped)).squeeze(1)
            if len(chosen):
                chosen = chosen.to(images.device)
                part = torch.rot90(images[chosen], turns, dims=(-2, -1))
                out[chosen] = torch.flip(part, dims=(-1,)) if flipped else part
    return out, k.to(images.device), flip.to(images.device)


class StampDataset(Dataset):
    """A torch ``Dataset`` over a :class:`StampSet` yielding normalised images and labels.

    Each item is a dict with
    ``image`` (float32, ``(B, H, W)``, stretched), ``label`` (int64 class index, -1 when
    unlabelled or not in ``classes``) and ``index`` (position in the stamp set); with
    ``photometry_bands``, also ``photometry`` (float32 magnitudes, 0 where missing) and
    ``photometry_mask`` (1 where a magnitude is present), so that missing values never reach a
    network as a number that looks like a measurement.

    Parameters
    ----------
    stamps : StampSet
        The stamps (a whole set or a view).
    normaliser : AsinhStretch, optional
        Image normalisation; fitted on ``stamps`` if not given.
    image_bands : sequence of str, optional
        Bands to feed as image channels (default: all).
    classes : sequence of str, optional
        Class names in label-index order (default: sorted distinct non-empty labels).
    photometry_bands : sequence of str, optional
        Bands whose ``mag_<band>`` columns are returned as photometry.
    augment : bool
        Random flips and 90-degree rotations (training only).
    seed : int
        Seed of the augmentation random numbers.
    """

    def __init__(self, stamps: StampSet, normaliser: AsinhStretch | None = None, *,
                 image_bands: Sequence[str] | None = None, classes: Sequence[str] | None = None,
                 photometry_bands: Sequence[str] | None = None, augment: bool = False, seed: int = 0):
        self.stamps = stamps
        self.band_index = _band_indices(stamps.meta.bands, image_bands)
        self.image_bands = [stamps.meta.bands[i] for i in self.band_index]
        self.normaliser = normaliser or AsinhStretch.fit(stamps, self.image_bands)
        if self.normaliser.bands and list(self.normaliser.bands) != self.image_bands:
            raise ValueError(f"normaliser bands {self.normaliser.bands} differ from image bands {self.image_bands}")
        labels = stamps.labels()
        self.classes = list(classes) if classes is not None else sorted({str(x) for x in labels if x})
        lookup = {name: i for i, name in enumerate(self.classes)}
        # Labels are small; holding them avoids one HDF5 read per item.
        self._targets = np.array([lookup.get(str(x), -1) for x in labels], dtype=np.int64)
        self.photometry_bands = list(photometry_bands or [])
        if self.photometry_bands:
            mags = np.stack([stamps.column(f"mag_{b}") for b in self.photometry_bands], axis=1).astype(np.float32)
            self._photometry_mask = np.isfinite(mags)
            self._photometry = np.where(self._photometry_mask, mags, 0.0).astype(np.float32)
        self.augment = augment
        self._generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.stamps)

    def _items(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        indices = np.asarray(indices, dtype=np.int64)
        n = len(self)
        if np.any((indices < -n) | (indices >= n)):
            raise IndexError(f"index out of range for a dataset of {n} objects")
        indices = np.where(indices < 0, indices + n, indices)  # "index" is the position in the set
        images = self.stamps.read_images(indices)[:, self.band_index]
        stretched = self.normaliser(images)
        items = []
        for j, index in enumerate(indices):
            image = stretched[j]
            if self.augment:
                image = random_dihedral(image, self._generator)
            item = {"image": image.contiguous(), "label": torch.tensor(self._targets[index]), "index": torch.tensor(index)}
            if self.photometry_bands:
                item["photometry"] = torch.from_numpy(self._photometry[index])
                item["photometry_mask"] = torch.from_numpy(self._photometry_mask[index].astype(np.float32))
            items.append(item)
        return items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self._items([int(index)])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Batched fetch used by ``DataLoader``: one sorted HDF5 read per batch."""
        return self._items(indices)
