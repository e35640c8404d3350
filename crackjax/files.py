"""What a trusted tool does with its files when things go wrong: damaged files set aside, failed writes named, and
one run at a time in a folder.

- `set_aside(path, what, reason)`: a damaged checkpoint step or cached shard is moved beside itself under a
  `.damaged` name (never deleted: a user may want it), and the move is logged naming what it was and why.
- `writing(path)`: an OSError raised while writing `path` (a full disk, an unwritable folder) carries the path, so
  the command's one-line error names it with its errno (`describe`).
- `Lock(folder, shared=...)`: `main.py` holds one per run. A run that writes the folder (training, the default
  evaluation) holds it exclusively; a run that only reads it and writes its own subfolder (an evaluation with its
  own `eval.name`, a prediction into its own folder) holds it shared, and its own subfolder exclusively. A run that
  cannot have it stops in one line naming the holder (pid, command, start). The lock is the kernel's (flock), so a
  killed run's lock goes with its process; the note it left (its pid and command) is taken over with a log line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import sys
import time

from crackjax.errors import UserError

log = logging.getLogger(__name__)


def set_aside(path: str, what: str, reason: str) -> str:
  """Moves the damaged file or folder `path` to `path.damaged` (or `path.damaged-2`, ...) and logs it; returns the
  new path."""
  dst = path.rstrip("/") + ".damaged"
  k = 1
  while os.path.exists(dst):
    k += 1
    dst = f"{path.rstrip('/')}.damaged-{k}"
  shutil.move(path, dst)
  log.warning("%s %s is damaged (%s); moved aside to %s", what, path, reason[:200], dst)
  return dst


@contextlib.contextmanager
def writing(path: str):
  """Re-raises an OSError without a file name (a write to an open file: ENOSPC, EIO) as one naming `path`."""
  try:
    yield
  except OSError as e:
    if e.filename is None and e.errno is not None:
      raise OSError(e.errno, e.strerror or os.strerror(e.errno), path) from None
    raise


def describe(e: OSError) -> str:
  """One line for an OSError: the path, what went wrong and the errno's name (`... (ENOSPC)`)."""
  if e.errno is None or not e.filename:
    return str(e)
  name = errno.errorcode.get(e.errno, str(e.errno))
  return f"{e.filename}: {e.strerror or os.strerror(e.errno)} ({name})"


class Busy(UserError):
  """The folder is held by another run."""


LOCK_DIR = ".crackjax-lock"  # in the locked folder: `lock` (flocked) and one <pid>.json note per holder


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's process
    return True
  return True


class Lock:
  """An exclusive or shared hold on `folder` for this process (see the module docstring); a context manager."""

  def __init__(self, folder: str, *, shared: bool = False):
    self.folder, self.shared = folder, shared
    self.dir = os.path.join(folder, LOCK_DIR)
    self.note = os.path.join(self.dir, f"{os.getpid()}.json")
    self.fd: int | None = None

  def _notes(self) -> list[tuple[str, dict]]:
    out = []
    for name in sorted(os.listdir(self.dir)):
      if name.endswith(".json") and name != os.path.basename(self.note):
        path = os.path.join(self.dir, name)
        try:
          with open(path) as f:
            out.append((path, json.load(f)))
        except (OSError, ValueError):
          out.append((path, {}))
    return out

  def _live(self, info: dict) -> bool:
    return info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) and _alive(info["pid"])

  def acquire(self) -> Lock:
    os.makedirs(self.dir, exist_ok=True)
    fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      holders = [info for _, info in self._notes() if info] or [{}]
      raise Busy(f"{self.folder} is in use by {_who(holders)}; wait for it to finish, or use another --workdir") from None
    self.fd = fd
    for path, info in self._notes():  # holding it exclusively, every other note is stale; shared, those of the dead
      if not self.shared or not self._live(info):
        log.warning("%s: taking over the lock left by %s, which no longer runs", self.folder, _who([info]))
        with contextlib.suppress(FileNotFoundError):
          os.remove(path)
    info = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "command": " ".join(sys.argv),
      "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with open(self.note, "w") as f:
      json.dump({**info, "shared": self.shared}, f)
    return self

  def release(self) -> None:
    if self.fd is None:
      return
    with contextlib.suppress(FileNotFoundError):
      os.remove(self.note)
    os.close(self.fd)  # closing the descriptor ends the flock
    self.fd = None

  def __enter__(self) -> Lock:
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def _who(holders: list[dict]) -> str:
  def one(h: dict) -> str:
    if not h:
      return "another crackjax run"
    return f"pid {h.get('pid')} on {h.get('host')} ({h.get('command', '?')}, started {h.get('started', '?')})"

  return "; ".join(one(h) for h in holders)
