"""skysort: deep-learning classification of sources in astronomical imaging surveys.

The main objects, importable from the top level:

* :class:`StampSet` / :class:`StampMeta`: multi-band stamps with their table and metadata (HDF5);
* :func:`cutout`: cut aligned stamps of a catalogue's objects from one FITS file per band;
* :func:`read_catalog` / :func:`write_catalog`: catalogues in FITS, Parquet or CSV with survey
  column mappings (KiDS, SDSS, ...);
* :class:`StampDataset` / :class:`AsinhStretch`: PyTorch access with normalisation and augmentation.

Names are imported on first use, so ``import skysort`` (and the command line) stays fast and
does not load torch until a network is needed.
"""

from __future__ import annotations

import importlib

from ._version import __version__

_EXPORTS = {
    "AsinhStretch": "skysort.data.dataset",
    "StampDataset": "skysort.data.dataset",
    "Flags": "skysort.data.flags",
    "InputError": "skysort.errors",
    "StampMeta": "skysort.data.stampset",
    "StampSet": "skysort.data.stampset",
    "concatenate": "skysort.data.stampset",
    "write_stampset": "skysort.data.stampset",
    "cutout": "skysort.data.ingest",
    "read_catalog": "skysort.data.catalog",
    "write_catalog": "skysort.data.catalog",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'skysort' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
