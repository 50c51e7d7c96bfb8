"""The README's bring-your-own-data snippet runs as written and explains raw rows correctly."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _byo_snippet() -> str:
    text = README.read_text()
    section = text[text.index("## Using it from Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.timeout(600)
def test_readme_bring_your_own_flow_runs(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_byo_snippet(), "README.md", "exec"), scope)  # noqa: S102
    sv, explainer, X_test = scope["sv"], scope["explainer"], scope["X_test"]
    assert (tmp_path / "beeswarm.png").stat().st_size > 0
    assert sv.values.shape == (len(X_test), 30, 2)
    assert sv.player_names == list(X_test.columns)
    # raw rows as an array, and a DataFrame with its columns in another order: identical values
    np.testing.assert_array_equal(explainer(X_test.to_numpy()).values, sv.values)
    shuffled = X_test[list(reversed(X_test.columns))]
    np.testing.assert_array_equal(explainer(shuffled).values, sv.values)
    # the wrong input is refused, never explained silently
    with pytest.raises(ValueError, match="missing"):
        explainer(X_test.drop(columns=X_test.columns[0]))
    with pytest.raises(ValueError, match="shape"):
        explainer(X_test.to_numpy()[:, :5])
    bad = X_test.copy()
    bad.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        explainer(bad)
