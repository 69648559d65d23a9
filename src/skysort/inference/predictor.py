"""One interface for every trained classifier, whatever its task.

A :class:`Predictor` turns per-object inputs (image stamps in physical units and/or AB
magnitudes) into class probabilities. ``skysort predict`` on a stamp set, on a catalogue alone,
and the streaming survey-scale inference all go through it, so a new task only has to provide a
predictor, not its own prediction loop.

A task module ``skysort.tasks.<task>`` provides ``predictor_from_file(path, meta, state,
device)`` returning a :class:`Predictor`; :func:`load_predictor` dispatches on the model
file's ``task``.

Conventions
-----------
- ``inputs["image"]``: float32 ``(N, B, H, W)``, the model's ``image_bands`` in that order, in the
  stamp set's flux units (the model normalises them itself); NaN pixels allowed.
- ``inputs["mag"]`` / ``inputs["magerr"]``: float32 ``(N, P)`` AB magnitudes and errors in the
  model's ``photometry_bands`` order; NaN where missing.
- ``Predictor.predict`` returns ``{"probabilities": (N, C) float32, ...}`` with rows summing to 1
  over ``classes`` (for a binary model, C = 2), plus optional extra per-object outputs
  (1-D arrays of length N) that are copied into the output table as they are.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np
from astropy.table import Table

from ..errors import InputError

#: Bit set in the output ``flags`` column (beside the stamp set's own flags) when the model
#: ran without one of its inputs (images or some photometric bands).
MISSING_INPUT_FLAG = 1 << 8


@dataclass
class InputSpec:
    """What a predictor needs.

    Attributes
    ----------
    image_bands : list of str
        Bands of the image stamps, in order (empty: the model uses no images).
    stamp_size : (int, int) or None
        Stamp height and width in pixels.
    pixel_scale : float or None
        Arcsec per pixel the model was trained at.
    photometry_bands : list of str
        Bands of the magnitudes, in order (empty: no photometry).
    cut_size : (int, int) or None
        Stamp size to cut from survey images when the model accepts several sizes
        (``stamp_size`` None, e.g. a model that centre-crops); default ``stamp_size``.
    """

    image_bands: list[str] = field(default_factory=list)
    stamp_size: tuple[int, int] | None = None
    pixel_scale: float | None = None
    photometry_bands: list[str] = field(default_factory=list)
    cut_size: tuple[int, int] | None = None

    @property
    def stamp_size_to_cut(self) -> tuple[int, int] | None:
        """The stamp size to cut from images: ``stamp_size``, else ``cut_size``."""
        return tuple(self.stamp_size) if self.stamp_size else (tuple(self.cut_size) if self.cut_size else None)

    @property
    def uses_images(self) -> bool:
        return bool(self.image_bands)

    @property
    def uses_photometry(self) -> bool:
        return bool(self.photometry_bands)


class Predictor(Protocol):
    """A loaded model ready for inference (see the module docstring for array conventions)."""

    name: str
    task: str
    classes: list[str]
    meta: dict[str, Any]
    spec: InputSpec
    model_file: Path

    def predict(self, inputs: Mapping[str, np.ndarray], *, images_available: bool = True) -> dict[str, np.ndarray]:
        """Class probabilities ``(N, C)`` under ``"probabilities"`` plus optional extras.

        ``images_available=False`` asks a model that can (e.g. sgq's photometry branch) to
        classify from photometry alone; others raise :class:`~skysort.errors.InputError`.
        """
        ...

    def to(self, device: str) -> "Predictor":
        """Move the network to ``device`` (``"cpu"``, ``"cuda"``); returns self."""
        ...


class TorchPredictor:
    """State shared by the predictors of one torch network: the network, its model file and
    metadata, classes, input spec and device. Task predictors add ``predict``."""

    task = ""

    def __init__(self, network, meta: dict[str, Any], model_file: str | os.PathLike, spec: InputSpec,
                 device: str = "cpu", default_classes: list[str] | None = None):
        self.network, self.meta, self.model_file = network, meta, Path(model_file)
        self.classes = list(meta.get("classes") or default_classes or [])
        self.name = self.model_file.stem
        self.spec = spec
        self.device = "cpu"
        self.to(device)

    def to(self, device: str) -> "TorchPredictor":
        self.network.to(device)
        self.device = device
        return self


def load_predictor(model: str | os.PathLike, device: str | None = None) -> Predictor:
    """Load a model file or shipped model name as a :class:`Predictor`.

    Parameters
    ----------
    model : str or path-like
        Model file or shipped name (``skysort models list``).
    device : str, optional
        ``"cpu"`` or ``"cuda"``; default CUDA when available.
    """
    import torch

    from ..models.checkpoint import load_model_file
    from ..models.registry import resolve_model

    path = resolve_model(model)
    meta, state = load_model_file(path)
    task = meta.get("task")
    try:
        module = importlib.import_module(f"skysort.tasks.{task}")
        factory: Callable[..., Predictor] = getattr(module, "predictor_from_file")
    except (ImportError, AttributeError, TypeError):
        raise InputError(path, f"models of task {task!r} cannot be used for prediction by this skysort") from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return factory(path, meta, state, device)


def class_table(predictor: Predictor, outputs: Mapping[str, np.ndarray], ids: np.ndarray | None = None,
                extra_columns: Mapping[str, np.ndarray] | None = None, flags: np.ndarray | None = None,
                threshold: float | None = None) -> Table:
    """Output rows: ``id`` (and ``ra``, ``dec`` when given in ``extra_columns``), ``p_<class>``
    per class, ``class`` (the most probable, or for a binary model the second class when its
    probability exceeds ``threshold``), ``flags``, then the predictor's extra outputs."""
    probabilities = np.asarray(outputs["probabilities"], np.float32)
    n = len(probabilities)
    table = Table()
    if ids is not None:
        table["id"] = np.asarray(ids)
    for name, values in (extra_columns or {}).items():
        table[name] = np.asarray(values)
    for index, name in enumerate(predictor.classes):
        table[f"p_{name}"] = probabilities[:, index] if n else np.zeros(0, np.float32)
    if threshold is not None and len(predictor.classes) == 2:
        chosen = (probabilities[:, 1] > threshold).astype(int) if n else np.zeros(0, int)
    else:
        chosen = np.argmax(probabilities, axis=1) if n else np.zeros(0, int)
    labels = np.asarray(predictor.classes)
    table["class"] = labels[chosen] if n else np.zeros(0, dtype=labels.dtype)
    table["flags"] = np.asarray(flags, np.int32) if flags is not None else np.zeros(n, np.int32)
    for name, values in outputs.items():
        if name != "probabilities" and np.ndim(values) == 1:
            table[name] = np.asarray(values)
    return table


def stampset_inputs(predictor: Predictor, stamps, indices: np.ndarray | slice | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The inputs a predictor needs, read from a stamp set (optionally a subset of rows).

    Returns ``(inputs, missing)`` where ``missing`` is True for objects lacking some of the
    model's photometric bands.

    Raises
    ------
    InputError
        The stamp set lacks a band the model needs or has a different stamp size.
    """
    spec = predictor.spec
    if indices is not None:
        stamps = stamps[indices]
    inputs: dict[str, np.ndarray] = {}
    missing = np.zeros(len(stamps), bool)
    if spec.uses_images:
        absent = [b for b in spec.image_bands if b not in stamps.meta.bands]
        if absent:
            raise InputError(stamps.path, f"no image band(s) {absent} needed by model {predictor.name} (has {stamps.meta.bands})")
        if spec.stamp_size and tuple(stamps.shape[2:]) != tuple(spec.stamp_size):
            raise InputError(stamps.path, f"stamps are {stamps.shape[2]}x{stamps.shape[3]} px but model {predictor.name} expects "
                                          f"{spec.stamp_size[0]}x{spec.stamp_size[1]}")
        band_index = [list(stamps.meta.bands).index(b) for b in spec.image_bands]
        inputs["image"] = np.ascontiguousarray(stamps.read_images()[:, band_index], dtype=np.float32)
    if spec.uses_photometry:
        mags, errs = [], []
        for band in spec.photometry_bands:
            mag = f"mag_{band}"
            mags.append(np.asarray(stamps.column(mag), np.float32) if mag in stamps.columns else np.full(len(stamps), np.nan, np.float32))
            err = f"magerr_{band}"
            errs.append(np.asarray(stamps.column(err), np.float32) if err in stamps.columns else np.full(len(stamps), np.nan, np.float32))
        inputs["mag"] = np.stack(mags, axis=1) if mags else np.zeros((len(stamps), 0), np.float32)
        inputs["magerr"] = np.stack(errs, axis=1) if errs else np.zeros((len(stamps), 0), np.float32)
        missing |= ~np.isfinite(inputs["mag"]).all(axis=1)
    return inputs, missing


def predict_stampset(predictor: Predictor, stamps, *, batch_size: int = 4096, threshold: float | None = None,
                     progress: Callable[[int], None] | None = None) -> Table:
    """Classify every object of a stamp set: one row per object (see :func:`class_table`).

    Objects with missing model inputs get :data:`MISSING_INPUT_FLAG` in ``flags`` beside the
    stamp set's own flags.
    """
    parts = []
    n = len(stamps)
    columns = stamps.columns
    for start in range(0, max(n, 1), batch_size):
        stop = min(n, start + batch_size)
        view = stamps[start:stop]
        inputs, missing = stampset_inputs(predictor, view)
        outputs = predictor.predict(inputs)
        flags = np.asarray(view.column("flags"), np.int32) if "flags" in columns else np.zeros(stop - start, np.int32)
        flags = flags | np.where(missing, MISSING_INPUT_FLAG, 0).astype(np.int32)
        extra = {c: np.asarray(view.column(c)) for c in ("ra", "dec") if c in columns}
        ids = np.asarray(view.column("id")) if "id" in columns else np.arange(start, stop)
        parts.append(class_table(predictor, outputs, ids, extra, flags, threshold))
        if progress:
            progress(stop - start)
        if n == 0:
            break
    from astropy.table import vstack

    table = vstack(parts, metadata_conflicts="silent") if len(parts) > 1 else parts[0]
    table.meta.update({"model": predictor.name, "model_file": str(predictor.model_file), "task": predictor.task,
                       "classes": list(predictor.classes)})
    return table
