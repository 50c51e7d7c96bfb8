"""What every benchmark script shares: the machine it ran on and its own section of RESULTS.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch


def machine() -> dict[str, Any]:
    """CPU model and count, platform, versions, thread settings and the CUDA device (if any)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: keep platform.processor()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }


def write_section(path: Path, title: str, text: str) -> None:
    """Add or replace the section headed ``title`` in ``path``, leaving the others alone."""
    path = Path(path)
    old = path.read_text() if path.is_file() else "# Benchmark results\n"
    start = old.find(title)
    body = text.rstrip("\n") + "\n"
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + body)
        return
    nxt = old.find("\n## ", start + len(title))  # the section keeps its place in the file
    rest = old[nxt + 1 :] if nxt >= 0 else ""
    path.write_text(old[:start] + body + ("\n" + rest if rest else ""))
