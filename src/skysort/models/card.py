"""Model cards: the Markdown file beside each shipped model (``NAME.md`` next to ``NAME.pt``).

Each task writes its own card body from the model file's metadata and its evaluation
``metrics.json`` files (``skysort.tasks.<task>.write_model_card``); the pieces every card
shares are here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .._io import atomic_path


def percent(value, digits: int = 1) -> str:
    """A fraction as a percentage (``0.9634`` -> ``96.3%``), ``-`` when unknown."""
    return "-" if value is None else f"{100 * float(value):.{digits}f}%"


def write_card(out: str | os.PathLike, lines: Sequence[str], notes: Sequence[str] = ()) -> Path:
    """Write a card's Markdown ``lines`` to ``out`` atomically, with the notes as a final
    "Known limitations" section (one bullet each); returns the path."""
    lines = list(lines)
    if notes:
        lines += ["## Known limitations", "", *[f"- {note}" for note in notes], ""]
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return out
