"""skysort: deep-learning classification of sources in astronomical imaging surveys."""

from ._version import __version__

__all__ = ["__version__"]
