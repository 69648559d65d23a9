"""The skysort model file: weights plus the metadata needed to use and trust them.

A model file is a ``torch.save`` dictionary with two keys:

``skysort_model``
    JSON-serialisable metadata: ``format_version``, ``task`` (``"sgq"``, ``"pointsource"``,
    ``"blend"``), ``architecture`` and its keyword arguments, ``classes``, ``image_bands``,
    ``photometry_bands``, ``pixel_scale`` (arcsec/px), ``stamp_size``, ``normalisation`` (the
    stretch state), ``training`` (data files, seed, metrics), plus the provenance record
    (creator, command, date, software versions).
``state_dict``
    The network's tensors.

Files load with ``weights_only=True``: they hold tensors and plain data only, never pickled code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_path
from ..errors import InputError, SchemaVersionError
from ..provenance import provenance_record

MODEL_FORMAT_VERSION = 1


def save_model_file(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], metadata: dict[str, Any], command: str | None = None) -> Path:
    """Write a model file atomically; provenance is added to ``metadata``."""
    meta = {"format_version": MODEL_FORMAT_VERSION, **provenance_record(command), **metadata}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"skysort_model": meta, "state_dict": state_dict}, tmp)
    return path


def load_model_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a model file; returns ``(metadata, state_dict)``.

    Raises
    ------
    InputError
        Missing or unreadable file, or not a skysort model.
    SchemaVersionError
        Written with a newer model format.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise InputError(path, f"not a readable model file: truncated, corrupt or not written by torch "
                               f"({exc.__class__.__name__})") from exc
    if not isinstance(content, dict) or "skysort_model" not in content or "state_dict" not in content:
        raise InputError(path, "not a skysort model file (no 'skysort_model' metadata)")
    meta = content["skysort_model"]
    version = meta.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise SchemaVersionError(path, f"model format version {version} is not supported (this skysort reads {MODEL_FORMAT_VERSION})")
    return meta, content["state_dict"]
