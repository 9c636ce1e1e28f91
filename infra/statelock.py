"""One bot per state directory: an exclusive ``flock`` on ``<state dir>/bot.lock``.

The launcher takes the lock before anything else starts and holds it for its whole life; a
second launcher on the same directory fails at once and is told the holder's pid. The kernel
releases the lock when the holder dies (``kill -9`` included), so a crashed bot never blocks
its restart. Only the process that took the lock holds it: the descriptor is closed in every
child forked afterwards (actor processes, the embedded exchange), so an actor system left
behind by a killed launcher does not keep the lock (the launcher deals with such an orphan
through ``bot.json`` once it holds the lock)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK_FILE = "bot.lock"

#: descriptors of locks this process holds (closed in forked children)
_held: set[int] = set()


def _close_in_child() -> None:
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


class StateDirLocked(Exception):
    """Another live process holds the state directory's lock (``pid``: 0 if unknown)."""

    def __init__(self, state_dir: Path, pid: int) -> None:
        who = f"pid {pid}" if pid > 0 else "another process"
        super().__init__(f"state dir {state_dir} is in use by {who} (lock {state_dir / LOCK_FILE})")
        self.state_dir = state_dir
        self.pid = pid


def _read_pid(fd: int) -> int:
    try:
        raw = os.pread(fd, 32, 0)
    except OSError:
        return 0
    text = raw.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_pid(fd: int, wait_s: float = 1.0) -> int:
    """The pid in a lock file someone holds: a holder that has just taken the lock may not
    have written its pid yet (the file is empty or still names the previous, dead holder), so
    re-read briefly until a live pid is there (0 if none appears)."""
    deadline = time.monotonic() + wait_s
    while True:
        pid = _read_pid(fd)
        if (pid > 0 and _alive(pid)) or time.monotonic() >= deadline:
            return pid if pid > 0 and _alive(pid) else 0
        time.sleep(0.01)


class StateLock:
    """The held lock; ``release()`` (or process exit) gives it up."""

    def __init__(self, state_dir: Path, fd: int) -> None:
        self.state_dir = state_dir
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlock and close (idempotent). The pid stays in the file: harmless, as only a
        held lock counts."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _held.discard(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(state_dir: Path) -> StateLock:
    """Take the state directory's lock (creating the directory 0700 and the lock file 0600),
    write our pid into it; ``StateDirLocked`` naming the holder if a live process has it."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder_pid(fd)
        os.close(fd)
        raise StateDirLocked(state_dir, pid) from None
    except OSError:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise
    _held.add(fd)
    return StateLock(state_dir, fd)


def holder(state_dir: Path) -> int | None:
    """Pid of the process holding the lock (0 if it holds it but wrote no pid yet), or None
    when nobody holds it (or there is no lock file)."""
    path = state_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
