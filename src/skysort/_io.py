"""Small file-system helpers shared by every writer in skysort."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


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

    def commit(self) -> None:
        """Move the temporary file onto the final path."""
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        """Remove the temporary file, leaving the final path untouched."""
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


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
