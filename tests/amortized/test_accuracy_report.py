"""The accuracy report: the explainer's error in KernelSHAP evaluations, and its remedy."""

from __future__ import annotations

import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import simshap
from simshap.amortized.accuracy import BUDGETS, warn_accuracy


@pytest.mark.timeout(300)
def test_few_players_recommend_the_exact_budget_and_never_a_dead_end(tmp_path, monkeypatch):
    """d = 4: KernelSHAP at 32+ evaluations is exact, and budget=16 too; the warning says so."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(150, 4)), columns=list("abcd"))
    y = (x["a"] + x["b"] * x["c"] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = simshap.fit(model, x, y, accelerator="cpu", explainer={"max_epochs": 1, "hidden": 16})
    # without out_dir, the checkpoints' temporary folder is gone once the call returns
    assert list(tmp_path.iterdir()) == []
    report = e.hparams.model_info["accuracy"]
    assert set(report["kernel_shap_l2"]) == set(BUDGETS)
    assert max(report["kernel_shap_l2"].values()) < 1e-6  # exact: 2^4 coalitions
    if report["l2"] > 1e-6:  # a one-epoch explainer is not exact; the remedy must be one
        assert report["recommended_budget"] == min(BUDGETS)
        assert report["refined_l2"][min(BUDGETS)] < 1e-6
        text = " ".join(str(w.message) for w in caught)
        assert report["exact_budget"] == 16  # all 2^4 coalitions: fewer than 32, and exact
        assert "budget=16) gives the game's exact Shapley values" in text
        assert "did not reach" not in text
        assert "fewer than 32" in text or "at 32" in text


def test_the_warning_names_a_measured_budget_only():
    report = {
        "rows": 8,
        "l2": 0.5,
        "kernel_shap_l2": {32: 0.9, 64: 0.4, 512: 0.1},
        "equivalent_budget": 32,
        "recommended_budget": None,
    }
    with pytest.warns(UserWarning, match=r"at 32 evaluations\).*up to 512 did not reach"):
        warn_accuracy(report)
    report.update(equivalent_budget=0, recommended_budget=64)
    with pytest.warns(UserWarning, match=r"fewer than 32 evaluations\).*budget=64\) makes"):
        warn_accuracy(report)
    report.update(exact_budget=64)  # d = 6: the same budget is exact, and the warning says so
    with pytest.warns(UserWarning, match=r"budget=64\) gives the game's exact.*of its 6 players"):
        warn_accuracy(report)
