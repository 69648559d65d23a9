"""Metrics, reports and plots."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .._io import atomic_folder

#: The name of every file and folder an evaluation writes (any task's, and the SEP baseline's).
#: An evaluation into an existing folder replaces the earlier run's entries of these names, those
#: the new run does not write included, and keeps every other entry.
EVALUATION_OUTPUTS = frozenset({
    "metrics.json", "predictions.parquet", "predictions.csv", "catalog_predictions.parquet", "sep",
    "confusion_matrix.png", "purity_completeness.png", "reliability.png", "roc.png",
    "accuracy_vs_r_mag.png", "accuracy_vs_separation.png", "f1_vs_magnitude.png", "accuracy_vs_magnitude.png",
    "qso_completeness_vs_redshift.png", "features_pca.png",
})


def evaluation_folder(out_dir: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """The folder to write an evaluation's outputs into: they appear at ``out_dir`` all together,
    when the block ends without error, or not at all.

    Metrics beside plots of another run, or without their plots, would be read as one result;
    see :func:`skysort._io.atomic_folder`.

    Parameters
    ----------
    out_dir : path-like
        The evaluation's output folder (created with its parents). If it exists, the earlier
        evaluation's outputs in it (:data:`EVALUATION_OUTPUTS`) are replaced as a whole and any
        other file or folder there is kept.

    Returns
    -------
    context manager of pathlib.Path
        Yields the temporary folder to write into; nothing of it is left when the block raises.
    """
    return atomic_folder(out_dir, replaces=EVALUATION_OUTPUTS)
