"""Your own image classifier: folder / npz loader, model.path forms, the run end to end, the
ONNX export round trip and the image server's 4xx answers."""

from __future__ import annotations

import base64
import io
import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from simshap.data.image_folder import load_image_dataset
from simshap.errors import UserError
from simshap.models.user_image import (
    UserTrunkExplainerNet,
    describe_model,
    find_grid_node,
    load_image_model,
)
from simshap.players import Players

TINY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def tiny():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    """
)


def _folder(root, n=8, size=(16, 16), mode="RGB"):
    r = np.random.default_rng(0)
    for c in ("cat", "dog", "fox"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (*size, 3) if mode == "RGB" else size
            Image.fromarray(r.integers(0, 255, shape, dtype=np.uint8), mode).save(
                root / c / f"{i}.png"
            )
    return root


@pytest.fixture
def tiny_module(tmp_path, monkeypatch):
    (tmp_path / "tinyuser.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "tinyuser:tiny"
    sys.modules.pop("tinyuser", None)


@pytest.mark.timeout(60)
def test_folder_loader_reads_normalizes_and_splits(tmp_path):
    root = _folder(tmp_path / "imgs")
    data = load_image_dataset(root, channels=3, mean=[0.5] * 3, std=[0.25] * 3)
    assert data.classes == ["cat", "dog", "fox"]
    assert data.x_train.shape[1:] == (3, 16, 16)
    assert len(data.x_train) + len(data.x_test) == 24
    assert data.x_train.min() >= -2.0 - 1e-6 and data.x_train.max() <= 2.0 + 1e-6


@pytest.mark.timeout(60)
def test_folder_loader_names_the_bad_file(tmp_path):
    root = _folder(tmp_path / "imgs")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="broken.png.*not a readable image"):
        load_image_dataset(root)
    (root / "cat" / "broken.png").unlink()
    Image.new("L", (16, 16)).save(root / "dog" / "gray.png")
    with pytest.raises(UserError, match="gray.png.*mode 'L'.*convert"):
        load_image_dataset(root)
    (root / "dog" / "gray.png").unlink()
    Image.new("RGB", (20, 16)).save(root / "fox" / "wide.png")
    with pytest.raises(UserError, match="wide.png.*16x20.*expected 16x16"):
        load_image_dataset(root, image_size=[16, 16])


@pytest.mark.timeout(60)
def test_npz_loader_and_superpixel_error(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (10, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10) % 2)
    data = load_image_dataset(tmp_path / "d.npz", channels=1)
    assert data.x_train.shape[1:] == (1, 28, 28) and len(data.x_test) == 2
    with pytest.raises(UserError, match="not divisible by superpixel_size=5"):
        Players.superpixels((28, 28), 5)


@pytest.mark.timeout(60)
def test_model_path_forms_and_trunk_cut(tmp_path, tiny_module):
    model = load_image_model(tiny_module)
    x = torch.randn(2, 3, 16, 16)
    script = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(model), str(script))
    exported = tmp_path / "m.pt2"
    batch = {0: torch.export.Dim("batch", min=1)}
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=(batch,)), str(exported))
    for ref in (str(script), str(exported)):
        torch.testing.assert_close(load_image_model(ref)(x), model(x))
    net = UserTrunkExplainerNet(str(exported), 3, 3, [16, 16], 4)  # .pt2: traced and trainable
    assert net.train()(x).shape == (2, 16, 3)
    fixed = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(fixed))
    with pytest.raises(UserError, match="dynamic batch"):
        describe_model(load_image_model(str(fixed)), torch.zeros(3, 3, 16, 16))
    with pytest.raises(UserError, match="not a TorchScript file"):
        (tmp_path / "junk.pt").write_bytes(b"junk")
        load_image_model(str(tmp_path / "junk.pt"))
    node, feats = find_grid_node(model, torch.zeros(1, 3, 16, 16), (4, 4))
    assert feats == 16
    net = UserTrunkExplainerNet(tiny_module, 3, 3, [16, 16], 4)
    assert net(x).shape == (2, 16, 3)
    assert torch.equal(net.trunk.state_dict()["0.weight"], model.state_dict()["0.weight"])


def _run(tmp_path, tiny_module):
    from simshap.runs.user_image import UserImageRun

    cfg = {
        "modality": "image",
        "model": {"path": tiny_module},
        "dataset": {"path": str(_folder(tmp_path / "imgs"))},
        "superpixel_size": 4,
        "surrogate": {"max_epochs": 1},
        "explainer": {
            "max_epochs": 2,
            "max_minutes": 1.0,
            "crops": 1,
            "val_budget": 64,
            "n_masks": 4,
            "val_instances": 2,
        },
        "evaluation": {"images": 3, "budgets": [32, 64], "truth_threshold": 0.2},
    }
    run = UserImageRun(tmp_path / "run", cfg)
    return run.run()


@pytest.mark.timeout(240)
def test_tiny_user_model_end_to_end_and_served(tmp_path, tiny_module):
    from starlette.testclient import TestClient

    from simshap.serving.image_app import build_image_app

    res = _run(tmp_path, tiny_module)
    methods = res["methods"]
    for name in ("simshap", "fastshap", "kernelshap_32", "kernelshap_64"):
        m = methods[name]
        for key in ("l2_game", "insertion_game", "deletion_game", "insertion_prob"):
            assert np.isfinite(m[key]), (name, key)
    for name in ("ig", "deepshap"):  # rescaled to the game's v(N) - v(∅): scored the same
        assert np.isfinite(methods[name]["l2_game"]) and "rescaled" in methods[name]
        assert "l2_game_minus_kernelshap_32" in methods[name]
    for name in ("simshap", "fastshap"):  # the budget's schedule and time to accuracy
        t = res["training"][name]
        assert t["train_rows"] == 18 * 2 * 2  # 18 training images, flips, one crop round
        assert 1 <= t["schedule_epochs"] <= 2 and len(t["val_curve"]) == t["validations"] >= 1
        assert 0 < t["time_to_best_s"] <= t["train_s"]
    assert res["timings"]["val_targets_s"] > 0  # computed once, shared by both
    assert res["onnx_max_abs_diff"] < 1e-4  # the ONNX export matches eager
    assert json.loads((tmp_path / "run" / "results.json").read_text())["players"] == 16

    client = TestClient(build_image_app(str(tmp_path / "run" / "simshap.onnx")))
    png = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(png, format="PNG")
    ok = client.post(
        "/explain?heatmap=1", content=png.getvalue(), headers={"content-type": "image/png"}
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert np.asarray(body["values"]).shape == (16, 3)
    assert abs(np.sum(body["values"], 0) + body["base_values"] - body["prediction"]).max() < 1e-4
    heat = Image.open(io.BytesIO(base64.b64decode(body["heatmap_png"])))
    assert heat.size == (16, 16)
    js = client.post("/explain", json={"image": base64.b64encode(png.getvalue()).decode()})
    assert js.status_code == 200 and js.json()["values"] == body["values"]

    def post(data, ctype="image/png"):
        return client.post("/explain", content=data, headers={"content-type": ctype})

    def png_of(img):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    bomb = png_of(Image.new("L", (4000, 4000)))  # 16 Mpx of zeros: a few KB compressed
    cases = {
        "corrupt": (post(b"\x89PNG\r\n\x1a\n garbage"), 400),
        "text": (post(b"hello", "text/plain"), 415),
        "bomb": (post(bomb), 413),
        "mode": (post(png_of(Image.new("L", (16, 16)))), 422),
        "size": (post(png_of(Image.new("RGB", (17, 16)))), 422),
        "bad json": (post(b"{", "application/json"), 400),
        "bad base64": (client.post("/explain", json={"image": "@@@"}), 400),
        "no image": (client.post("/explain", json={"x": 1}), 422),
        "target": (client.post("/explain?target=99", content=png.getvalue(),
                               headers={"content-type": "image/png"}), 422),
        "too big": (post(b"\0" * (9 << 20)), 413),
    }  # fmt: skip
    for name, (resp, status) in cases.items():
        assert resp.status_code == status, (name, resp.status_code, resp.text)
        assert "detail" in resp.json()


@pytest.mark.timeout(60)
def test_user_model_errors(tmp_path, tiny_module):
    from simshap.runs.user_image import UserImageRun, merge_user_image_config

    with pytest.raises(UserError, match="needs model.path"):
        merge_user_image_config({"dataset": {"path": "x"}})
    with pytest.raises(UserError, match="unknown config key explainer.bogus"):
        merge_user_image_config(
            {"model": {"path": "m"}, "dataset": {"path": "x"}, "explainer": {"bogus": 1}}
        )
    root = _folder(tmp_path / "imgs")
    cfg = {"model": {"path": tiny_module}, "dataset": {"path": str(root), "channels": 1}}
    with pytest.raises(UserError, match="mode 'RGB', expected 'L'"):
        UserImageRun(tmp_path / "r", cfg)
    bad = nn.Conv2d(3, 3, 1)
    torch.jit.save(torch.jit.script(bad), str(tmp_path / "conv.pt"))
    cfg = {"model": {"path": str(tmp_path / "conv.pt")}, "dataset": {"path": str(root)}}
    with pytest.raises(UserError, match=r"must return \(N, K\) logits"):
        UserImageRun(tmp_path / "r2", cfg)
