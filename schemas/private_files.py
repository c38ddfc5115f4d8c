"""Files only their owner may read: keys, secrets, the hub's registries.

Each is read refusing a file that group or others can read or write (naming the ``chmod``
that fixes it), that is not a regular file, or that cannot be read; each is written whole to
a private temporary file, synced and renamed (or linked) into place in a 0700 directory, so
no reader ever sees half a file. ``locked`` holds an exclusive lock beside a file while a
change re-reads and rewrites it. Errors are raised as the caller's own error class. ``PrivateRegistry`` is a JSON file of
entries kept that way: read when loaded, read again when it changed, changed under its lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ContractError


def make_private_directory(directory: Path, error: type[ContractError]) -> None:
    """Create ``directory`` (and its parents) and make it 0700."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise error(f"cannot make {directory} a private directory: {exc.strerror}") from None


def read_private(path: Path, error: type[ContractError]) -> bytes | None:
    """The bytes of ``path``, None when it does not exist; refused when others may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO in its place does not hang us
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            raise error(f"{path} is readable or writable by group or others "
                        f"(mode {stat.S_IMODE(info.st_mode):04o}): make it 0600 (chmod 600 {path})")
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read()
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes, error: type[ContractError], *, keep_existing: bool = False) -> bool:
    """Write ``data`` to ``path`` (mode 0600) atomically; True if written.

    With ``keep_existing`` a file that is already there is kept as it is (False is returned):
    two processes creating the same secret at once agree on the first one written.
    """
    make_private_directory(path.parent, error)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if keep_existing:
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
        else:
            os.replace(temporary, path)
        return True
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror}") from None
    finally:
        Path(temporary).unlink(missing_ok=True)


@contextmanager
def locked(path: Path, error: type[ContractError]) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` for the block."""
    make_private_directory(path.parent, error)
    try:
        lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise error(f"cannot lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime_ns, size) of ``path``, None when absent: a file replaced or changed differs."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


class PrivateRegistry(ABC):
    """Entries kept in one private JSON file (``path``): ``_parse`` turns its bytes into
    ``_entries``, ``_document`` turns them back into JSON; errors are ``error``."""

    error: type[ContractError] = ContractError

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Any] = {}
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) of the file last read

    def reload_if_changed(self) -> bool:
        """Read the file again if it was replaced, changed or removed since last read; True if it was.

        A file that cannot be used raises the registry's error and leaves the entries as they were.
        """
        if file_signature(self.path) == self._seen:
            return False
        self._read()
        return True

    @abstractmethod
    def _parse(self, data: bytes) -> dict[str, Any]:
        """The entries of the file's bytes, each checked."""

    @abstractmethod
    def _document(self) -> dict[str, Any]:
        """The entries as the JSON document the file holds."""

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the file's lock, read it afresh, let the caller change the entries, then write them.

        A change that is refused or cannot be written leaves the entries as the file holds them.
        """
        with locked(self.path, self.error):
            self._read()
            stored = dict(self._entries)
            try:
                yield
                self._write()
            except BaseException:
                self._entries = stored
                raise

    def _read(self) -> None:
        seen = file_signature(self.path)
        data = read_private(self.path, self.error)
        self._entries = {} if data is None else self._parse(data)
        self._seen = None if data is None else seen

    def _write(self) -> None:
        write_private(self.path, (json.dumps(self._document(), indent=1) + "\n").encode("utf-8"), self.error)
        self._seen = file_signature(self.path)
