"""A run folder: the config and every stage's outputs of one job, never silently overwritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from simshap.config import load_config

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
                raise FileNotFoundError(
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
            raise FileNotFoundError(f"{p} is missing: run `simshap {stage} --out {self.out}` first")
        return p

    def _write_output(self, name: str, overwrite: bool) -> Path:
        p = self.path(name)
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass --overwrite to recompute it")
        return p

    def _timings(self) -> dict[str, float]:
        p = self.path("timings.json")
        return json.loads(p.read_text()) if p.exists() else {}

    def _record_time(self, key: str, seconds: float) -> None:
        t = self._timings()
        t[key] = seconds
        self.path("timings.json").write_text(json.dumps(t, indent=2))

    def start(self, overwrite: bool = False) -> None:
        """Create the run folder and write the config (refuses to reuse a folder silently)."""
        if self.out.exists() and any(self.out.iterdir()):
            if not overwrite:
                raise FileExistsError(
                    f"{self.out} exists and is not empty; pass --overwrite to replace it, or "
                    "run a single stage (fit-surrogate, fit-explainer, evaluate) to resume it"
                )
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.path("config.yaml"), "w") as fh:
            yaml.safe_dump(self.config, fh, sort_keys=False)
