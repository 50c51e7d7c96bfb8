"""Files we write and read: atomic writes, content hashes, and the fault-injection points.

Every output simshap writes goes through :func:`atomic_write`: the content is written to a
temporary file in the same folder, flushed and ``fsync``-ed, then renamed over the target (a
rename within one file system is atomic), and the folder is ``fsync``-ed. A crash at any moment
leaves either the old file or the new one, never a truncated one.

:func:`fault_point` is a named point where a test can kill the process (``SIMSHAP_FAULT=name:n``
kills it with SIGKILL the n-th time ``name`` is reached). It costs one dictionary lookup when
the variable is unset, and lets the fault-injection tests kill every stage at a chosen place
instead of at a random time. This module sits at the bottom of the layer stack.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "fault_point", "read_cache", "sha256_file", "torch_save_atomic"]

FAULT_ENV = "SIMSHAP_FAULT"
_fault_counts: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL here if ``$SIMSHAP_FAULT`` names this point (tests only).

    ``SIMSHAP_FAULT=stage.epoch:3`` kills the process the third time ``stage.epoch`` is reached.

    Args:
        name: the point's name.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, _, count = spec.rpartition(":")
    if target != name:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str], content: bytes | str | Callable[[Path], Any]
) -> Path:
    """Write ``path`` atomically: a temporary file in the same folder, fsync, rename.

    The file gets the permissions ``open(path, "w")`` would give it (an existing file's mode,
    else 0o666 less the umask), not the temporary file's private 0o600: a saved explainer or an
    exported graph can be read by the server's user as a plain file could.

    Args:
        path: the file to write (its folder is created).
        content: bytes, text (UTF-8), or a function that writes the temporary file it is given
            (for writers that want a path: ``torch.save``, ``savefig``, LightGBM).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # created as open() would create it (0o666 less the umask, applied by the kernel), unlike
    # mkstemp's 0o600; the random name and O_EXCL keep it private to this call
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if callable(content):
            os.close(fd)
            content(tmp)
        else:
            data = content.encode() if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():  # a rewritten file keeps its mode
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        fault_point("atomic_write.before_rename")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def torch_save_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, buffer.getvalue())


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_cache(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A cache file's blob, or ``{}`` when it is absent or unreadable (then it is recomputed).

    Loaded weights-only: a truncated, altered or code-holding file is never trusted.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        return {}
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, altered or holding code
        print(f"[simshap] {path} is unreadable; recomputing it", flush=True)
        return {}
    return blob if isinstance(blob, dict) else {}
