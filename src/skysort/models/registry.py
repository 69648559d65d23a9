"""Shipped pretrained models: ``--model NAME`` works wherever a model path does.

Shipped models live in ``skysort/models/pretrained/NAME.pt`` with a model card
``NAME.md`` beside them. Each was trained with skysort's own ``skysort train`` command; its
metadata (``skysort info``) records the data, command, metrics, date and version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from .checkpoint import load_model_file

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def shipped_model_names() -> list[str]:
    """Names of the models shipped inside the package."""
    if not PRETRAINED_DIR.exists():
        return []
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped model name (e.g. ``blend-cfis``) or an existing model path."""
    path = Path(name_or_path)
    if path.exists():
        return path
    candidate = PRETRAINED_DIR / f"{name_or_path}.pt"
    if candidate.exists():
        return candidate
    names = shipped_model_names()
    raise InputError(name_or_path, f"no such model file or shipped model (shipped: {', '.join(names) or 'none'})")


def list_models() -> list[dict[str, Any]]:
    """Summaries of the shipped models: name, task, classes, bands, size, date, metrics."""
    rows = []
    for name in shipped_model_names():
        path = PRETRAINED_DIR / f"{name}.pt"
        meta, _ = load_model_file(path)
        card = path.with_suffix(".md")
        rows.append({
            "name": name, "task": meta.get("task"), "classes": meta.get("classes"),
            "image_bands": meta.get("image_bands"), "size_mb": round(path.stat().st_size / 1e6, 2),
            "created": meta.get("created"), "creator": meta.get("creator"),
            "metrics": meta.get("metrics", {}), "card": str(card) if card.exists() else None, "path": str(path),
        })
    return rows
