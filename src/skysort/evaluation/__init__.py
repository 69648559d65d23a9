"""Metrics, reports and plots."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterable

from .._io import atomic_folder, atomic_path

#: The name of every file and folder an evaluation writes (any task's, and the SEP baseline's).
#: An evaluation into an existing folder replaces the earlier run's entries of these names, those
#: the new run does not write included, and keeps every other entry.
EVALUATION_OUTPUTS = frozenset({
    "metrics.json", "predictions.parquet", "predictions.csv", "catalog_predictions.parquet", "sep",
    "confusion_matrix.png", "purity_completeness.png", "reliability.png", "roc.png",
    "accuracy_vs_r_mag.png", "accuracy_vs_separation.png", "f1_vs_magnitude.png", "accuracy_vs_magnitude.png",
    "qso_completeness_vs_redshift.png", "features_pca.png", "expected_class_fraction_vs_r_mag.png",
})


def evaluation_folder(out_dir: str | os.PathLike, *,
                      outputs: Iterable[str] = ()) -> contextlib.AbstractContextManager[Path]:
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
    outputs : iterable of str
        The names of the entries that an evaluation made of several (an experiment's summary
        beside the evaluations it sums up) writes besides :data:`EVALUATION_OUTPUTS`: replaced
        likewise. They are not added to :data:`EVALUATION_OUTPUTS`, where names as common as
        ``data`` or ``all`` would make every evaluation drop a user's folder of that name.

    Returns
    -------
    context manager of pathlib.Path
        Yields the temporary folder to write into; nothing of it is left when the block raises.
    """
    return atomic_folder(out_dir, replaces=EVALUATION_OUTPUTS | frozenset(outputs))


def record_final_paths(folder: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """Make the JSON files written into ``folder`` (an :func:`evaluation_folder`) name its files
    where they will lie, under ``out_dir``, rather than under the temporary folder's name.

    An evaluation that scores a file it wrote itself (a model fine-tuned on half of the
    objects, a simulated set) records that file's path as it was when read, inside the
    temporary folder, which no longer exists once the folder is in place. Call this last, in
    the ``with`` block.

    Parameters
    ----------
    folder : path-like
        The temporary folder yielded by :func:`evaluation_folder`.
    out_dir : path-like
        The ``out_dir`` given to :func:`evaluation_folder`.

    Notes
    -----
    JSON files and the metadata of Parquet tables (a prediction table names the model and
    data it came from) are rewritten. Model files are not: their SHA-256 is recorded beside
    them (``source_provenance``), so their training record keeps the temporary folder's name
    for the data they were trained on, as do HDF5 stamp sets made in the folder.
    """
    folder = Path(folder)
    # The folder is renamed to where out_dir really lies (a link followed), as atomic_folder does.
    final = os.path.realpath(out_dir)
    # Replaced as JSON spells them, so that the files keep their layout byte for byte elsewhere.
    old, new = json.dumps(str(folder))[1:-1], json.dumps(final)[1:-1]
    for path in sorted(folder.rglob("*.json")):
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if old in text:
            with atomic_path(path) as tmp:
                tmp.write_text(text.replace(old, new), encoding="utf-8")
    for path in sorted(folder.rglob("*.parquet")):
        if not path.is_symlink() and path.is_file():
            _replace_in_parquet_metadata(path, old, new)


def _replace_in_parquet_metadata(path: Path, old: str, new: str) -> None:
    """Rewrite a Parquet file whose schema metadata (JSON, as skysort writes it) holds ``old``,
    with ``new`` in its place; its rows are copied unchanged."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    updated = {key: value.replace(old.encode(), new.encode()) for key, value in metadata.items()}
    if updated == metadata:
        return
    table = pq.read_table(path)
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(updated), tmp)
