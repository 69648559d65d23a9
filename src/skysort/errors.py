"""Errors that skysort reports to users as one line, without a traceback.

Every problem with what a user gave us (a file, a column, an option) is raised as an
:class:`InputError` naming the offending file or option. The command-line interface turns it
into ``skysort: error: <where>: <problem>`` on standard error and exit code 2.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable


class InputError(Exception):
    """A user-supplied input is unusable.

    Parameters
    ----------
    where : str or os.PathLike
        The file (or option) the problem is in.
    problem : str
        What is wrong, phrased for a person, without a trailing full stop.
    """

    def __init__(self, where: str | os.PathLike, problem: str):
        self.where = os.fspath(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")

    def __reduce__(self):
        # An exception pickles as ``cls(*self.args)``, and ``args`` here is the joined message:
        # rebuild from the fields instead, so that the error a Dask worker raised reaches the
        # client whole (subclasses' extra fields included).
        return _restored_input_error, (type(self), dict(self.__dict__))


def _restored_input_error(cls: type, state: dict) -> InputError:
    error = cls.__new__(cls)
    InputError.__init__(error, state["where"], state["problem"])
    error.__dict__.update(state)
    return error


class UnfinishedRunError(InputError):
    """Bad input (a damaged tile, say) stopped some work units of a streamed prediction run
    while the others were written: the output folder is kept, and rerunning the same command
    once the files are replaced computes only the units left."""


class SchemaVersionError(InputError):
    """A stamp set or model written with a format version this release cannot read."""


#: ``warn(where, message)``: how a caller wants non-fatal problems reported (the command line
#: prints one line per problem); ``None`` means :func:`warnings.warn`.
WarnCallback = Callable[[str | os.PathLike, str], None]


def report_problem(warn: WarnCallback | None, where: str | os.PathLike, message: str) -> None:
    """Report a non-fatal problem with ``where`` (a file or option) through ``warn``, else
    :func:`warnings.warn`, so that library calls and the command line share one channel."""
    if warn:
        warn(where, message)
    else:
        warnings.warn(f"{os.fspath(where)}: {message}", stacklevel=3)
