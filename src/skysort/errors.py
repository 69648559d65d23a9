"""Errors that skysort reports to users as one line, without a traceback.

Every problem with what a user gave us (a file, a column, an option) is raised as an
:class:`InputError` naming the offending file or option. The command-line interface turns it
into ``skysort: error: <where>: <problem>`` on standard error and exit code 2.
"""

from __future__ import annotations

import os


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


class SchemaVersionError(InputError):
    """A stamp set or model written with a format version this release cannot read."""
