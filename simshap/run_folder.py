"""A run folder: the config and every stage's outputs of one job, never silently overwritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from simshap.config import load_config
from simshap.errors import ExistingOutputError, MissingFileError

__all__ = ["RunFolder"]


class RunFolder:
    """Files of one run: ``config.yaml``, stage outputs and ``timings.json``.

    Args:
        out: the run folder.
        config: the merged configuration (``None``: read ``out/config.yaml``).
        example_config: config named in the error when ``out`` has none yet.
    """

    def __init__(
        self,
        out: str | Path,
        config: dict[str, Any] | None = None,
        example_config: str = "configs/breast_cancer.yaml",
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
        self.seed = int(config["seed"])

    def path(self, name: str) -> Path:
        """A file of the run folder."""
        return self.out / name

    def _require(self, name: str, stage: str) -> Path:
        p = self.path(name)
        if not p.exists():
            raise MissingFileError(f"{p} is missing: run `simshap {stage} --out {self.out}` first")
        return p

    def _write_output(self, name: str, overwrite: bool) -> Path:
        p = self.path(name)
        if p.exists() and not overwrite:
            raise ExistingOutputError(f"{p} exists; pass --overwrite to recompute it")
        return p

    def _timings(self) -> dict[str, float]:
        p = self.path("timings.json")
        return json.loads(p.read_text()) if p.exists() else {}

    def _record_time(self, key: str, seconds: float) -> None:
        t = self._timings()
        t[key] = seconds
        self.path("timings.json").write_text(json.dumps(t, indent=2))

    def done(self, name: str) -> bool:
        """Whether a stage's output file exists already."""
        return self.path(name).exists()

    def start(self, overwrite: bool = False) -> bool:
        """Create the run folder and write the config; returns whether an old run is resumed.

        A folder started with the same config is resumed (finished stages are kept, an
        interrupted training stage continues from its last checkpoint); a folder with another
        config, or other files, is only replaced with ``overwrite=True``.
        """
        if self.out.exists() and any(self.out.iterdir()):
            cfg_path = self.path("config.yaml")
            if not overwrite:
                if cfg_path.is_file() and load_config(cfg_path) == self.config:
                    return True
                raise ExistingOutputError(
                    f"{self.out} exists and holds another run (different config or no "
                    "config.yaml); pass --overwrite to replace it, or choose another --out"
                )
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.path("config.yaml"), "w") as fh:
            yaml.safe_dump(self.config, fh, sort_keys=False)
        return False
