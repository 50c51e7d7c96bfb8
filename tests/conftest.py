import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Folder with the real data files (adult.data, news CSV, CIFAR-10 subset)."""
    env = os.environ.get("SIMSHAP_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def data_dir() -> Path:
    return shared_data_dir()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
