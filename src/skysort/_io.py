"""Small file-system helpers shared by every writer in skysort."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence


#: Temporary files and folders of this process that are not yet committed; removed by
#: :func:`discard_temporaries` when the process is terminated (SIGTERM) before it can unwind.
_TEMPORARIES: set[Path] = set()


@contextlib.contextmanager
def registered_temporary(path: str | os.PathLike) -> Iterator[Path]:
    """Register ``path`` (a temporary file or folder) for removal on termination while the
    block runs; the block itself is responsible for removing it in the normal course."""
    path = Path(path)
    _TEMPORARIES.add(path)
    try:
        yield path
    finally:
        _TEMPORARIES.discard(path)


def discard_temporaries() -> None:
    """Remove every registered temporary file and folder of this process (best effort)."""
    import shutil

    for path in list(_TEMPORARIES):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        _TEMPORARIES.discard(path)


def check_output_path(path: str | os.PathLike, *, folder: bool = False, option: str = "--out",
                      inputs: Iterable[str | os.PathLike | None] = (), suffixes: Sequence[str] = ()) -> Path:
    """Check, before any work is done, that ``path`` can be written as a file (or a folder).

    A command that finds out only at the end that its output cannot be written has wasted the
    work and may have committed other outputs; this check makes it fail first, with one line.

    Parameters
    ----------
    path : path-like
        The output file or folder; missing parent folders are allowed (they are created).
    folder : bool
        Whether ``path`` is a folder.
    option : str
        The command-line option that gave it, for the message.
    inputs : iterable of path-like or None
        The command's input files: an output that is one of them would destroy it.
    suffixes : sequence of str
        Accepted file name endings, lower case (e.g. ``(".h5", ".hdf5")``); empty accepts any.

    Raises
    ------
    skysort.errors.InputError
        ``path`` is one of ``inputs``, a folder where a file is wanted (or a file where a folder
        is), its name ends otherwise than ``suffixes``, a parent is a file, or nothing can be
        created in the nearest existing folder.
    """
    from .errors import InputError

    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise InputError(path, f"{option} names an input of this command, which the output would overwrite")
        if source is not None and Path(source).is_dir() and _inside(path, Path(source)):
            # A folder input (a folder catalogue) would read the output as part of itself next time.
            raise InputError(path, f"{option} lies inside {source}, an input folder of this command: write it elsewhere")
    if suffixes and not path.name.lower().endswith(tuple(suffixes)):
        # A file that the tool's readers would not recognise later (``info``, ``--model``,
        # ``--data``) is better refused now than written.
        raise InputError(path, f"{option} must end in {' or '.join(suffixes)}")
    if path.exists():
        if folder and not path.is_dir():
            raise InputError(path, f"{option} must be a folder, and this is a file")
        if not folder and path.is_dir():
            raise InputError(path, f"{option} must be a file name, and this is a folder")
    ancestor = path if folder and path.is_dir() else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(path, f"cannot be written: {ancestor} is a file, not a folder")
    try:
        # Creating a file is the test the output will face; permission bits alone miss
        # read-only and special file systems, and say yes to root everywhere.
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise InputError(path, f"cannot be written: {exc.strerror or exc} in {ancestor}") from None
    return path


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (existing or not) lies in ``folder`` or any folder beneath it."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(folder)))
    except OSError:
        return False


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same existing file (links and relative paths included)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


class AtomicFile:
    """A temporary file beside ``path`` that replaces ``path`` only when committed.

    Readers never see a half-written output: until :meth:`commit`, the data lives under a
    hidden ``.<name>.<random>.tmp`` name in the same folder (so the final rename is atomic).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        # mkstemp creates files readable by the owner only; outputs get the usual umask rights.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        self.tmp = Path(tmp)
        _TEMPORARIES.add(self.tmp)

    def commit(self) -> None:
        """Move the temporary file onto the final path (the temporary file is removed if that fails)."""
        try:
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        _TEMPORARIES.discard(self.tmp)

    def discard(self) -> None:
        """Remove the temporary file, leaving the final path untouched."""
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
        _TEMPORARIES.discard(self.tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    target = AtomicFile(path)
    try:
        yield target.tmp
        target.commit()
    except BaseException:
        target.discard()
        raise
