"""One run per workdir: an exclusive lock; a second run is refused at once.

Two runs writing the same workdir would train the same folds and seeds twice,
overwrite each other's checkpoints and append duplicate rows to results.jsonl.
`hold` takes a `fcntl.flock` lock on a file inside the workdir for as long as
the run lasts:

  with run_lock.hold(workdir, process_index=jax.process_index()):
    ...  # the whole run, up to its last write to the workdir

A second holder, in this process or any other on the host, gets `WorkdirLocked`
(a ValueError, so the CLI prints it as one line) naming the workdir and the
holder's pid, without waiting. The kernel drops the lock when the holder's
process ends, however it ends (SIGKILL, OOM, a preempted VM restarting), so a
killed run's lock is taken over by the next run with no clean-up: the lock file
is never deleted (deleting it would let two runs lock two different files of
the same name) and its stale pid is simply overwritten.

Scope. A lock is only as good as the filesystem's flock: local disks and tmpfs
honour it; NFS (v4, or v3 with lockd) turns it into a lock the server arbitrates
across hosts; some network or FUSE filesystems keep it to the local host only.
So the guarantee is per host. In a multi-host program every process runs the
same code on the same workdir, so each takes its own lock file (``process_index``
> 0 picks ``run-<index>.lock``): process i of a second job collides with process
i of the first wherever the filesystem shares locks, and nothing stops the
processes of one job from running together. Where flock is not supported at all
the run goes ahead unlocked, with a warning.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from typing import Iterator

from absl import logging

LOCK_FILE = 'run.lock'
# How long a refused run keeps rereading the holder's pid when it catches the
# holder between taking the lock and writing its pid (microseconds in practice).
_PID_WAIT_SECONDS = 1.0


class WorkdirLocked(ValueError):
  """The workdir is held by another live run."""

  def __init__(self, workdir: str, pid: int | None, host: str | None):
    self.workdir, self.pid, self.host = workdir, pid, host
    if pid is None:
      who = 'another process (its pid was not recorded)'
    elif pid == os.getpid() and host == socket.gethostname():
      who = f'this process (pid {pid}), in another run still going'
    else:
      who = f'process {pid}' + (f' on {host}' if host and host != socket.gethostname() else '')
    super().__init__(
        f'workdir {workdir} is in use by {who}: another run is writing it. Wait for it to '
        'finish (or stop it), or choose another --workdir.')


def lock_path(workdir: str, process_index: int = 0) -> str:
  """The lock file of ``process_index``'s run in ``workdir``."""
  name = LOCK_FILE if process_index == 0 else f'run-{process_index}.lock'
  return os.path.join(workdir, name)


def _read_holder(fd: int) -> tuple[int, str] | None:
  """The ``(pid, host)`` the holder wrote, or None if it has not written them yet."""
  try:
    text = os.pread(fd, 4096, 0).decode('utf-8', 'replace')
    pid, host = text.split()[:2]
    return int(pid), host
  except (OSError, ValueError):
    return None


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Someone else's process: alive.
  return True


def _refusal(workdir: str, fd: int) -> WorkdirLocked:
  """The error for a lock someone holds; waits a moment for a pid it can trust."""
  here = socket.gethostname()
  deadline = time.monotonic() + _PID_WAIT_SECONDS
  holder = _read_holder(fd)
  # Right after taking the lock the holder truncates the file and writes its pid:
  # an empty file, or a dead process's pid left by a killed holder, means we read
  # in between. A pid on another host cannot be checked, so it is believed.
  while (holder is None or (holder[1] == here and not _alive(holder[0]))) and (
      time.monotonic() < deadline):
    time.sleep(0.02)
    holder = _read_holder(fd)
  if holder is None:
    return WorkdirLocked(workdir, None, None)
  return WorkdirLocked(workdir, holder[0], holder[1])


@contextlib.contextmanager
def hold(workdir: str, process_index: int = 0) -> Iterator[str]:
  """Holds ``workdir``'s run lock for the ``with`` block; yields the lock file's path.

  Creates ``workdir`` if needed. Raises `WorkdirLocked` at once if a live process
  holds the lock, ValueError if the workdir cannot be created.
  """
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f'workdir {workdir} cannot be created: {e}.') from None
  path = lock_path(workdir, process_index)
  try:
    # O_CLOEXEC: programs this run starts must not keep the lock after it dies.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
  except OSError as e:
    raise ValueError(f'workdir {workdir} cannot be written: {path}: {e}.') from None
  try:
    locked = _lock(fd, workdir, path)
    if locked:
      os.ftruncate(fd, 0)
      os.pwrite(fd, f'{os.getpid()} {socket.gethostname()}\n'.encode(), 0)
    try:
      yield path
    finally:
      if locked:
        # Still holding it: nobody reads a half-cleared file. A killed holder skips
        # this and leaves its pid, which the next holder overwrites.
        os.ftruncate(fd, 0)
  finally:
    os.close(fd)  # Releases the flock.


def _lock(fd: int, workdir: str, path: str) -> bool:
  """Takes the flock without waiting: True if taken, False if flock is unavailable."""
  try:
    import fcntl  # POSIX only: imported here so that importing this module never fails.
  except ImportError:
    logging.warning('%s: no fcntl on this platform; running without the lock, so nothing '
                    'stops a second run on this workdir.', path)
    return False
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except BlockingIOError:
    raise _refusal(workdir, fd) from None
  except OSError as e:
    if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
      logging.warning('%s: file locks are not supported here (%s); running without the '
                      'lock, so nothing stops a second run on this workdir.', path, e)
      return False
    raise
