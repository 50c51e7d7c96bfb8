"""The helpers every benchmark script shares (``benchmarks/_report.py``, ``--set`` overrides)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from simshap.config import UserError, load_config, merge_config

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from _report import write_section  # noqa: E402


def test_write_section_replaces_in_place_and_appends_new(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# R\n\n## A\n\na\n\n## B\n\nb\n\n### B.1\n\nb1\n\n## C\n\nc\n")
    write_section(path, "## B", "## B\n\nnew b\n")
    write_section(path, "## C", "## C\n\nnew c")
    write_section(path, "## D", "## D\n\nd")
    assert path.read_text() == "# R\n\n## A\n\na\n\n## B\n\nnew b\n\n## C\n\nnew c\n\n## D\n\nd\n"


def test_cifar10_set_overrides_are_validated_like_yaml_keys() -> None:
    import cifar10

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "cifar10-subset.yaml")
    out = merge_config(cfg, cifar10.parse_override("explainer.methods=[simshap, fastshap]"))
    assert out["explainer"]["methods"] == ["simshap", "fastshap"]
    assert out["explainer"]["n_masks"] == cfg["explainer"]["n_masks"]
    with pytest.raises(UserError, match="explainer.max_epoch"):
        merge_config(cfg, cifar10.parse_override("explainer.max_epoch=3"))
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        cifar10.parse_override("explainer.max_epochs")
