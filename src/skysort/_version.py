"""The installed version of skysort."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skysort")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
