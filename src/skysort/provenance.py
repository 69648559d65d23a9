"""Provenance records: which software, which command, when.

Every file skysort writes (stamp sets, catalogues, models, metrics) carries the record
returned by :func:`provenance_record`, so that a result can be traced to its inputs.
"""

from __future__ import annotations

import datetime as _dt
import platform
import shlex
import sys
from importlib.metadata import PackageNotFoundError, version

from ._version import __version__

_TRACKED_PACKAGES = ("numpy", "astropy", "torch", "galsim", "sep", "h5py", "scipy")


def software_versions() -> dict[str, str]:
    """Versions of skysort, Python and the main scientific packages, as strings."""
    versions = {"skysort": __version__, "python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def current_command() -> str:
    """The command line of this process, quoted so that it can be pasted into a shell."""
    argv = list(sys.argv)
    # ``python -m skysort.cli`` puts the module's file path in argv[0]; it is the same command.
    if argv and argv[0].replace("\\", "/").endswith(("skysort", "__main__.py", "skysort/cli.py")):
        argv[0] = "skysort"
    return shlex.join(argv)


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string with second precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def provenance_record(command: str | None = None) -> dict[str, object]:
    """A provenance dictionary: creator version, command, date and software versions."""
    return {
        "creator": f"skysort {__version__}",
        "command": command if command is not None else current_command(),
        "created": utc_now(),
        "software": software_versions(),
    }
