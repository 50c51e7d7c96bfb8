"""The 'labels' explainer: regression on Shapley labels computed once per training row."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import mlp_spec, tiny_surrogate

from simshap.amortized.io import load_explainer
from simshap.amortized.labels import LabelRegression
from simshap.amortized.surrogate import Surrogate
from simshap.amortized.training import fit_module
from simshap.errors import UserError
from simshap.estimators.exact import exact_shapley
from simshap.runs.config import TABULAR_DEFAULTS
from simshap.runs.config_files import merge_config
from simshap.runs.tabular import TabularRun

D, C = 6, 2


def _surrogate() -> Surrogate:
    return tiny_surrogate(D, C, hidden=32)


def _spec(hidden: int = 64) -> dict:
    return mlp_spec(D, C, hidden=hidden)


def test_exact_labels_are_the_exact_shapley_values() -> None:
    module = LabelRegression(_spec(), _surrogate())
    x = torch.randn(10, D)
    labels, evals = module.compute_labels(x, chunk_rows=4)
    exact = exact_shapley(module.game(x))
    assert evals == 2**D and labels.shape == (10, D, C)
    torch.testing.assert_close(labels, exact.values.float())
    torch.testing.assert_close(module.base_value, exact.base_values.float().mean(0))


def test_label_method_and_budget_checks() -> None:
    assert LabelRegression(_spec(), _surrogate()).label_method(D) == ("exact", 64)
    assert LabelRegression(_spec(), _surrogate()).label_method(30) == ("kernel_shap", 2048)
    # the default budget buys exact labels only while 2^d fits in it (census, d = 12: KernelSHAP)
    assert LabelRegression(_spec()).label_method(11) == ("exact", 2048)
    assert LabelRegression(_spec()).label_method(12) == ("kernel_shap", 2048)
    assert LabelRegression(_spec(), label_budget=4096).label_method(12) == ("exact", 4096)
    assert LabelRegression(_spec(), label_budget=32).label_method(D) == ("kernel_shap", 32)
    assert LabelRegression(_spec(), label_budget=100).label_method(D) == ("exact", 64)
    for bad in (1, 2.5, True, "64"):
        with pytest.raises(UserError, match="label_budget"):
            LabelRegression(_spec(), label_budget=bad)


def test_regression_on_labels_learns_the_shapley_values() -> None:
    """Trained on exact labels, g beats the best constant explanation on held-out rows."""
    surrogate = _surrogate()
    with torch.no_grad():  # larger weights: Shapley values that vary from row to row
        for p in surrogate.net.parameters():
            p.mul_(3.0)
    torch.manual_seed(1)
    x_train, x_test = torch.randn(768, D), torch.randn(64, D)
    module = LabelRegression(_spec(128), surrogate, lr=3e-3, max_epochs_hint=30, val_budget=64)
    ds = module.training_dataset(x_train)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_test[:32]), batch_size=32)
    fit_module(
        module,
        loader,
        val,
        monitor="val_l2",
        max_epochs=30,
        patience=30,
        accelerator="cpu",
        progress_bar=False,
    )
    truth = exact_shapley(module.game(x_test)).values.float()
    err = (module.explain(x_test) - truth).norm(dim=1).mean()
    const = (ds.tensors[1].mean(0) - truth).norm(dim=1).mean()
    assert float(err) < 0.5 * float(const), (float(err), float(const))  # measured 0.32


def test_labels_explainer_in_a_run_cache_and_round_trip(tmp_path: Path) -> None:
    """A tabular run trains 'labels' (KernelSHAP labels, d = 30), caches them, evaluates."""
    torch.set_num_threads(1)
    cfg = merge_config(
        TABULAR_DEFAULTS,
        {
            "dataset": "breast_cancer",
            "seed": 0,
            "surrogate": {"hidden": 32, "layers": 2, "batch_size": 64, "max_epochs": 2},
            "explainer": {
                "methods": ["labels"],
                "hidden": 32,
                "layers": 2,
                "batch_size": 32,
                "max_epochs": 2,
                "val_instances": 8,
                "val_budget": 64,
                "label_budget": 96,
                "label_rows": 40,
                "label_epochs": 3,
            },
            "evaluation": {"n_instances": 4, "threshold": 0.2, "budgets": [64]},
            "trainer": {"accelerator": "cpu", "progress_bar": False},
        },
    )
    run = TabularRun(tmp_path / "run", cfg)
    run.start()
    run.fit_model()
    run.fit_surrogate()
    first = run.fit_explainer("labels")
    assert first["label_rows"] == 40 and first["label_evals_per_row"] == 96
    assert first["train_s"] >= first["label_s"] > 0 and first["epochs"] == 3
    labels = torch.load(run.path("label_cache.pt"), weights_only=True)
    assert labels["labels"].shape == (40, 30, 2)
    again = run.fit_explainer("labels", overwrite=True)  # the cached labels are reused
    assert again["label_s"] == first["label_s"]
    explainer = load_explainer(run.path("labels.pt"))
    assert type(explainer).__name__ == "LabelRegression"
    rows = run.data.raw_test[:5]
    torch.testing.assert_close(explainer(rows).values, explainer.explain(rows))
    results = run.evaluate()  # a run without SimSHAP or FastSHAP evaluates and plots too
    assert set(results["methods"]) >= {"labels", "kernelshap_paired@64", "labels+kernelshap@64"}
    assert results["methods"]["labels+kernelshap@64"]["n_evals"] <= 64  # amortized + budget
    assert run.path("labels_bar.png").is_file() and run.path("error_vs_budget.png").is_file()


def test_image_runs_refuse_the_labels_explainer(tmp_path: Path) -> None:
    from simshap.runs.config import IMAGE_DEFAULTS
    from simshap.runs.image import ImageRun

    cfg = merge_config(
        IMAGE_DEFAULTS,
        {"dataset": "cifar10-subset", "explainer": {"methods": ["simshap", "labels"]}},
    )
    with pytest.raises(UserError, match="explainer.methods"):
        _ = ImageRun(tmp_path / "img", cfg).explainer_names
