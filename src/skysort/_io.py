"""Small file-system helpers shared by every writer in skysort."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
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
    for path in list(_TEMPORARIES):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        _TEMPORARIES.discard(path)


def check_output_path(path: str | os.PathLike, *, folder: bool = False, option: str = "--out",
                      inputs: Iterable[str | os.PathLike | None] = (), suffixes: Sequence[str] = (),
                      whole: bool = False) -> Path:
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
    whole : bool
        Whether the folder is written whole beside itself and renamed into place
        (:func:`atomic_folder`): then its parent, not the folder, must take new entries.

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
    if whole:
        # The folder is made beside where it really lies (a link is followed), then renamed.
        ancestor = Path(os.path.realpath(path)).parent
    else:
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
        os.chmod(tmp, 0o666 & ~_umask())
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


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, replaces: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` that takes the place of ``path``, whole, on success.

    Files that belong together (metrics and the plots drawn from them) are written into the
    temporary folder, so that an error or an interruption midway leaves ``path`` as it was,
    never half rewritten; the temporary folder is then removed.

    Parameters
    ----------
    path : path-like
        The output folder; missing parent folders are created. A link to a folder is followed:
        the output goes where the link points.
    replaces : iterable of str
        Names of the entries this kind of output writes. When ``path`` exists (an earlier
        run's output), its entries of these names, and those the new run writes, are dropped
        with it: a plot the new run does not draw cannot survive beside the new metrics. Every
        other entry (a user's notes, say) is carried into the new folder, hard-linked where the
        file system allows, else copied.

    Yields
    ------
    pathlib.Path
        The temporary folder, hidden (``.<name>.<random>.tmp``) in the same folder as ``path``
        so that the final rename is atomic.

    Raises
    ------
    skysort.errors.InputError
        ``path`` exists and is not a folder.

    Notes
    -----
    A new ``path`` appears by one rename. An existing one is swapped for the new folder by two
    renames, with SIGINT and SIGTERM held back between them (where the platform allows), and
    the old folder is removed afterwards; only a crash of the machine in that instant leaves
    it, complete, under a hidden ``.<name>.<random>.old`` name.
    """
    from .errors import InputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(path, "must be a folder, and this is a file")
    # Renamed in place, a link to a folder would become a folder on the link's file system.
    final = Path(os.path.realpath(path))
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    with registered_temporary(tmp):
        try:
            # mkdtemp makes a folder only its owner can read; an existing output keeps its rights.
            os.chmod(tmp, stat.S_IMODE(final.stat().st_mode) if final.is_dir() else 0o777 & ~_umask())
            yield tmp
            if final.is_dir():
                _carry_over(final, tmp, set(replaces))
                _swap_folders(tmp, final)
            else:
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _carry_over(old: Path, new: Path, replaced: set[str]) -> None:
    """Link (else copy) into ``new`` each entry of ``old`` that ``new`` lacks and ``replaced`` does not name."""
    for entry in os.scandir(old):
        target = new / entry.name
        if entry.name in replaced or os.path.lexists(target):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            shutil.copytree(entry.path, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry.path, target)


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link ``source`` as ``target``: no data is copied; a copy where links are not allowed."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _swap_folders(new: Path, final: Path) -> None:
    """Put the folder ``new`` in the place of the existing folder ``final``, then remove the old one."""
    old = new.with_name(new.name.removesuffix(".tmp") + ".old")
    # Interrupted between the two renames, the command would leave neither folder at ``final``;
    # the termination handler would even remove the new one.
    with _signals_held():
        os.rename(final, old)
        try:
            os.rename(new, final)
        except BaseException:
            os.rename(old, final)
            raise
    with registered_temporary(old):
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back from this thread while the block runs, then deliver them."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
