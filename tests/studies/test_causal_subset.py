"""The causal study's explained subset: seeded, stratified over the zoo's accuracy buckets."""

from __future__ import annotations

import json

import pytest
import torch

from simshap.errors import UserError
from simshap.studies.causal.effects import PAPER_BUCKETS, accuracy_buckets
from simshap.studies.causal.subset import stratified_subset, subset_members


def test_subset_draws_per_bucket_of_the_whole_zoo_and_is_seeded() -> None:
    acc = torch.rand(500, generator=torch.Generator().manual_seed(3))
    buckets = [[0, 100], *[list(b) for b in PAPER_BUCKETS]]
    ids = stratified_subset(acc, buckets, 20, seed=0)
    assert ids == sorted(set(ids)) and ids == stratified_subset(acc, buckets, 20, seed=0)
    assert ids != stratified_subset(acc, buckets, 20, seed=1)
    whole = accuracy_buckets(acc, PAPER_BUCKETS)
    # 20 from each bucket, all 5 of the top 1% (500 models)
    assert [len(set(b.tolist()) & set(ids)) for b in whole] == [20] * 7 + [5]
    members = subset_members(acc, buckets, ids)
    assert len(members[0]) == len(ids) == 145
    for pos, idx in zip(members[1:], whole, strict=True):
        assert [ids[i] for i in pos.tolist()] == sorted(set(idx.tolist()) & set(ids))
    with pytest.raises(UserError, match="at least 2"):
        stratified_subset(acc, buckets, 1, seed=0)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_study_explains_only_the_subset(tmp_path) -> None:
    from simshap.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(
        "dataset: digits\nn_train: 150\nn_test: 100\nn_explain: 6\nn_models: 16\nchunk_size: 8\n"
        "epochs: 1\nstride: 1\nexplanations: {shapley_samples: 30, smoothgrad_samples: 2, "
        "ig_steps: 4}\nexplain_subset: {per_bucket: 3, seed: 4}\n"
        "analysis: {buckets: [[0, 100], [0, 50], [50, 100]], n_bootstrap: 5}\n"
    )
    out = tmp_path / "run"
    assert main(["study", "causal", str(config), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    ids = res["explained_models"]
    assert res["n_models_trained"] == 16 and res["n_models_explained"] == len(ids) == 6
    acc = torch.tensor(res["accuracy"])
    low, high = (set(b.tolist()) for b in accuracy_buckets(acc, [[0, 50], [50, 100]]))
    by_name = {b["name"]: b for b in res["buckets"]}
    assert set(by_name["0-50%"]["members"]) <= low and set(by_name["50-100%"]["members"]) <= high
    assert sorted(by_name["all"]["members"]) == ids
    assert not (out / "explanations").exists()


@pytest.mark.parametrize("name", ["causal_fmnist", "causal_digits"])
def test_shipped_configs_resolve_by_name_and_validate(name: str) -> None:
    import yaml

    from simshap.runs.config_files import resolve_config_path
    from simshap.studies.causal.study import validate_config

    cfg = validate_config(yaml.safe_load(resolve_config_path(name).read_text()))
    assert len(cfg["analysis"]["buckets"]) == 9  # all models, then the paper's 8 buckets
