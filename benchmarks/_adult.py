"""UCI Adult as a user has it: the raw file, strings as they are, '?' read as missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from simshap.data.tabular_sources import CENSUS_COLUMNS


def read_adult(data_dir: Path, n: int | None = None, seed: int = 0) -> pd.DataFrame:
    """``adult.data`` with the UCI column names (``Income`` is the label's column).

    Args:
        data_dir: the folder holding ``adult.data``.
        n: a seeded sample of this many rows (``None``: every row).
        seed: the sample's seed.
    """
    frame = pd.read_csv(
        data_dir / "adult.data",
        header=None,
        names=CENSUS_COLUMNS,
        na_values=["?"],
        skipinitialspace=True,
    )
    if n is not None:
        frame = frame.sample(n=n, random_state=seed).reset_index(drop=True)
    return frame
