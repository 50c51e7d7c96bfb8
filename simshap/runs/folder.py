"""A run folder: the config and every stage's outputs of one job, never silently overwritten.

Outputs are written atomically (:func:`simshap.files.atomic_write`). A stage is *done* only when
its entry in ``manifest.json`` (each file's size and SHA-256, and the digests of the stages it
was computed from) is written, last, and every file still matches it. A file that is missing,
truncated or altered, or a stage whose inputs were recomputed since, makes the stage (and every
stage after it) not done, so a resumed run recomputes it; nothing half-written is ever kept.

The run's identity is its config and its inputs: the content hashes of the data file and of the
user's model file are recorded when the run starts, and a run whose inputs changed in place is
refused with a message naming the file and ``--overwrite``. A lock file (``.lock``, an advisory
``flock`` that the kernel releases when its holder dies, so a stale lock from a killed process is
taken over safely) keeps two processes from working on one folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from simshap.errors import ExistingOutputError, MissingFileError, UserError
from simshap.files import atomic_write, fault_point, sha256_file
from simshap.runs.config_files import load_config

__all__ = ["RunFolder", "lock_folder"]

MANIFEST = "manifest.json"
LOCK = ".lock"


class RunFolder:
    """Files of one run: ``config.yaml``, ``manifest.json``, stage outputs and ``timings.json``.

    Args:
        out: the run folder.
        config: the merged configuration (``None``: read ``out/config.yaml``).
        example_config: config named in the error when ``out`` has none yet.
    """

    def __init__(
        self,
        out: str | Path,
        config: dict[str, Any] | None = None,
        example_config: str = "breast_cancer",
    ) -> None:
        self.out = Path(out)
        if config is None:
            cfg_path = self.out / "config.yaml"
            if not cfg_path.is_file():
                raise MissingFileError(
                    f"{cfg_path} not found: start the run with a config, e.g. "
                    f"`simshap fit-model {example_config} --out {self.out}`"
                )
            config = load_config(cfg_path)
        self.config = config
        self.config_file = config  # as given (config.yaml); modalities may resolve ``config``
        self.seed = int(config["seed"])
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ paths
    def path(self, name: str) -> Path:
        """A file of the run folder (a name inside it, never a path out of it)."""
        p = (self.out / name).resolve()
        if self.out.resolve() not in p.parents:
            raise UserError(f"{name!r} is not a file inside the run folder {self.out}")
        return self.out / name

    # ------------------------------------------------------------------ the manifest
    def _manifest(self) -> dict[str, Any]:
        p = self.out / MANIFEST
        if not p.is_file():
            return {"inputs": None, "stages": {}}
        try:
            blob = json.loads(p.read_text())
            if not isinstance(blob, dict) or not isinstance(blob.get("stages"), dict):
                raise ValueError("not a manifest")
        except (ValueError, UnicodeDecodeError):
            print(f"[simshap] {p} is unreadable; every stage will be recomputed", flush=True)
            return {"inputs": None, "stages": {}}
        return blob

    def _save_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write(self.out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))

    def stage_digest(self, stage: str) -> str | None:
        """Digest of a done stage's files (``None`` when not done)."""
        entry = self._manifest()["stages"].get(stage)
        return entry["digest"] if entry and self.done(stage) else None

    def commit(self, stage: str, files: list[str], after: list[str] = ()) -> None:  # type: ignore[assignment]
        """Record a finished stage: its files' sizes and hashes, and its inputs' digests.

        Written last, after every file of the stage is in place.

        Args:
            stage: the stage's name.
            files: its output files (names inside the run folder).
            after: the stages it was computed from (their digests are recorded).
        """
        fault_point("run.commit")
        entries = {}
        for name in files:
            p = self.path(name)
            entries[name] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
        upstream = {}
        for dep in after:
            digest = self.stage_digest(dep)
            if digest is None:
                raise RuntimeError(f"stage {stage!r} committed before its input {dep!r}")
            upstream[dep] = digest
        digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
        manifest = self._manifest()
        manifest["inputs"] = manifest.get("inputs") or self.input_hashes()
        manifest["stages"][stage] = {"files": entries, "after": upstream, "digest": digest}
        self._save_manifest(manifest)

    def problem(self, stage: str) -> str | None:
        """Why a stage is not done (``None`` when it is)."""
        stages = self._manifest()["stages"]
        entry = stages.get(stage)
        if not entry:
            return "not run yet"
        for name, want in entry["files"].items():
            p = self.out / name
            if not p.is_file():
                return f"{name} is missing"
            if p.stat().st_size != want["size"] or sha256_file(p) != want["sha256"]:
                return f"{name} does not match its manifest entry (truncated or altered)"
        for dep, digest in entry["after"].items():
            if self.problem(dep) is not None or stages[dep]["digest"] != digest:
                return f"its input stage {dep!r} changed since"
        return None

    def done(self, stage: str) -> bool:
        """Whether a stage is finished and its files are intact."""
        return self.problem(stage) is None

    def forget(self, stage: str) -> None:
        """Drop a stage's manifest entry (before recomputing it)."""
        manifest = self._manifest()
        if manifest["stages"].pop(stage, None) is not None:
            self._save_manifest(manifest)

    # ------------------------------------------------------------------ stage helpers
    def _require(self, name: str, stage: str, command: str | None = None) -> Path:
        """A finished stage's file; a clear error naming the command when it is not."""
        problem = self.problem(stage)
        if problem is not None:
            cmd = command or stage
            raise MissingFileError(
                f"{self.path(name)} is not usable ({problem}): run `simshap {cmd} --out "
                f"{self.out}` (with --overwrite to recompute it)"
            )
        return self.path(name)

    def begin(self, stage: str, overwrite: bool) -> None:
        """Start (re)computing a stage: refuse to replace a finished one without ``overwrite``."""
        if not overwrite and self.done(stage):
            raise ExistingOutputError(
                f"stage {stage!r} of {self.out} is done; pass --overwrite to recompute it"
            )
        self.forget(stage)

    def write(self, name: str, content: bytes | str | Callable[[Path], Any]) -> Path:
        """Write a file of the run folder atomically (see :func:`~simshap.files.atomic_write`)."""
        return atomic_write(self.path(name), content)

    def _timings(self) -> dict[str, float]:
        p = self.out / "timings.json"
        try:
            return json.loads(p.read_text()) if p.exists() else {}
        except ValueError:
            return {}

    def _record_time(self, key: str, seconds: float) -> None:
        t = self._timings()
        t[key] = seconds
        self.write("timings.json", json.dumps(t, indent=2))

    # ------------------------------------------------------------------ identity and lock
    def input_hashes(self) -> dict[str, Any]:
        """Content hashes of the run's inputs (data and model files); modalities fill it in."""
        return {}

    def check_inputs(self) -> None:
        """Refuse a run whose data or model file changed since it started."""
        recorded = self._manifest().get("inputs")
        if not recorded:
            return
        current = self.input_hashes()
        for key, was in recorded.items():
            now = current.get(key)
            if now != was:
                where = (was or {}).get("path") or key
                raise ExistingOutputError(
                    f"the {key} of {self.out} changed since the run started ({where} has other "
                    "content now); pass --overwrite to start the run over with it, or restore "
                    "the file"
                )

    def locked(self) -> Any:
        """Hold the folder's lock (see :func:`lock_folder`)."""
        return lock_folder(self.out)

    def start(self, overwrite: bool = False) -> bool:
        """Create the run folder and write the config; returns whether an old run is resumed.

        A folder started with the same config and unchanged inputs is resumed (finished stages
        are kept, an interrupted training stage continues from its last checkpoint); a folder
        with another config, or other files, is only replaced with ``overwrite=True``.
        """
        cfg_path = self.out / "config.yaml"
        present = [p for p in self.out.iterdir() if p.name != LOCK] if self.out.exists() else []
        if present:
            if not overwrite:
                if cfg_path.is_file() and load_config(cfg_path) == self.config_file:
                    self.check_inputs()
                    manifest = self._manifest()
                    if not manifest.get("inputs"):  # killed before the manifest was written
                        self._save_manifest({**manifest, "inputs": self.input_hashes()})
                    return True
                raise ExistingOutputError(
                    f"{self.out} exists and holds another run (different config or no "
                    "config.yaml); pass --overwrite to replace it, or choose another --out"
                )
            for p in present:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        self.out.mkdir(parents=True, exist_ok=True)
        self.write("config.yaml", yaml.safe_dump(self.config_file, sort_keys=False))
        self._save_manifest({"inputs": self.input_hashes(), "stages": {}})
        return False


@contextmanager
def lock_folder(out: str | Path) -> Iterator[None]:
    """Hold ``out``'s lock while working on it; another holder is a clear error, at once.

    An advisory ``flock`` on ``out/.lock``, which the kernel releases when its holder dies, so
    a stale lock from a killed process is taken over safely. The holder's PID is written in the
    file for the message. DDP ranks started by rank 0 do not take it (rank 0 holds it).
    """
    import fcntl

    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        yield
        return
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(
            f"{out} is in use by another simshap process (PID {holder}); wait for "
            "it to finish or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        yield
    finally:
        if [p.name for p in out.iterdir()] == [LOCK]:  # nothing was started: leave no trace
            (out / LOCK).unlink()
            if created:
                out.rmdir()
        os.close(fd)  # closing releases the flock
