"""ImageRun end to end on a few real CIFAR-10 subset images, with tiny networks on the CPU."""

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from simshap.amortized.training import fit_module
from simshap.cli import main as cli_main
from simshap.evaluation.baselines import BASELINES
from simshap.evaluation.report import image_results_table
from simshap.evaluation.throughput import measure_target_throughput
from simshap.runs.cli import make_run
from simshap.runs.config import IMAGE_DEFAULTS
from simshap.runs.config_files import load_config
from simshap.runs.image import EXPLAINERS, ImageRun
from simshap.runs.run import resolve_precision

SUBSET = "cifar10-subset.npz"
RESULT_KEYS = (
    "insertion_auc_mean",
    "insertion_auc_std",
    "deletion_auc_mean",
    "deletion_auc_std",
    "inference_s",
)


def tiny_config(data_dir: Path) -> dict:
    """A CPU-sized config: widths 4, a few dozen training images, three test images."""
    return {
        "dataset": "cifar10-subset",
        "data_dir": str(data_dir),
        "seed": 0,
        "data": {"train_size": 48, "num_workers": 0, "val_size": 16},
        "model": {"width": 4, "batch_size": 16, "max_epochs": 1, "lr": 0.05},
        "surrogate": {"width": 4, "batch_size": 16, "max_epochs": 1},
        "explainer": {
            "base_width": 4,
            "depth": 2,
            "n_masks": 8,
            "batch_size": 8,
            "max_epochs": 1,
            "val_instances": 2,
            "val_budget": 512,
        },
        "evaluation": {
            "n_images": 3,
            "batch_size": 257,
            "figure_images": 2,
            "ig": {"budget": 4},
            "smoothgrad": {"budget": 2, "samples_batch_size": 2},
            "kernelshap": {"budget": 302},
            "kernelshap_s": {"budget": 302},
            "deepshap": {"budget": 4, "background_size": 4},
        },
        "trainer": {"accelerator": "cpu", "progress_bar": False},
    }


def write_config(path: Path, data_dir: Path) -> Path:
    path.write_text(yaml.safe_dump(tiny_config(data_dir)))
    return path


@pytest.fixture(scope="module")
def subset_dir() -> Path:
    from conftest import shared_data_dir  # tests/ is on sys.path (rootdir conftest)

    folder = shared_data_dir()
    if not (folder / SUBSET).is_file():
        pytest.skip(f"{SUBSET} not found in {folder} (set SIMSHAP_DATA to its folder)")
    return folder


@pytest.fixture(scope="module")
def finished_run(subset_dir, tmp_path_factory):
    """A run folder with every stage done (shared by the checks below)."""
    out = tmp_path_factory.mktemp("image-run") / "run"
    cfg = load_config(write_config(out.parent / "tiny.yaml", subset_dir))
    run = make_run(out, cfg)
    assert isinstance(run, ImageRun)
    torch.manual_seed(0)
    run.start()
    stages = {"model": run.fit_model(), "surrogate": run.fit_surrogate()}
    for name in EXPLAINERS:
        stages[name] = run.fit_explainer(name)
    return run, stages, run.evaluate()


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_every_stage_runs_and_writes_its_outputs(finished_run):
    run, stages, results = finished_run
    assert 0.0 <= stages["model"]["test_accuracy"] <= 1.0
    assert stages["surrogate"]["val_loss"] >= 0.0
    for name in EXPLAINERS:
        assert torch.isfinite(torch.tensor(stages[name]["val_l2"]))
    for f in (
        "classifier.pt",
        "surrogate.pt",
        "simshap.pt",
        "simshap_paper.pt",
        "fastshap.pt",
        "results.json",
        "results.md",
        "figure3.png",
        "curves.png",
        "timings.json",
    ):
        assert run.path(f).is_file(), f
    on_disk = json.loads(run.path("results.json").read_text())
    assert on_disk["n_images"] == 3
    expected = {*EXPLAINERS, *BASELINES}
    assert set(on_disk["methods"]) == expected
    for name, m in on_disk["methods"].items():
        for key in RESULT_KEYS:
            assert key in m, (name, key)
        for key in ("insertion_auc_prob_mean", "deletion_auc_prob_mean"):
            assert 0.0 <= m[key] <= 1.0  # probabilities: the AUC lies in [0, 1]
        assert m["inference_s"] > 0
    for name in EXPLAINERS:
        assert on_disk["methods"][name]["train_minutes"] > 0
    assert on_disk["methods"]["deepshap"]["used"].startswith("shap.")
    # the cache holds one attribution file per method, on the same images and classes
    cached = {p.stem for p in run.path("attributions").glob("*.pt")}
    assert cached == expected
    blob = torch.load(run.path("attributions/simshap.pt"), weights_only=True)
    assert blob["values"].shape == (3, 16, 16)
    table = run.table(on_disk)
    assert "Table 3" in table and "Table 4" in table
    assert table.count("\n| ") >= len(expected) + 2  # Table 3: header, separator, a row each
    assert "- Table 4 row, inference seconds for the 3 images: " in table
    for label in (
        "SimSHAP (default target)",
        "SimSHAP (paper target)",
        "FastSHAP",
        "KernelSHAP-S",
        "GradCAM",
    ):
        assert f"| {label} |" in table


@pytest.mark.slow
def test_outputs_are_not_overwritten_without_permission(finished_run):
    run, _, results = finished_run
    assert run.start() is True  # the same config resumes the folder; nothing is deleted
    assert (run.out / "results.json").exists()
    other = ImageRun(run.out, {**run.config, "seed": run.config["seed"] + 1})
    with pytest.raises(FileExistsError, match="overwrite"):
        other.start()  # another config never takes over the folder silently
    with pytest.raises(FileExistsError, match="overwrite"):
        run.fit_model()
    with pytest.raises(FileExistsError, match="overwrite"):
        run.fit_surrogate()
    with pytest.raises(FileExistsError, match="overwrite"):
        run.fit_explainer("simshap")
    with pytest.raises(FileExistsError, match="overwrite"):
        run.evaluate()
    # resuming from the folder alone finds the same config
    again = make_run(run.out)
    assert isinstance(again, ImageRun) and again.config == run.config


@pytest.mark.slow
def test_evaluate_overwrite_recomputes_and_matches_explainer_output(finished_run):
    run, _, _ = finished_run
    results = run.evaluate(overwrite=True)
    x, _ = run.data.test_tensors(3)
    classifier = run.classifier()
    tgt = classifier.predict_logits(x).argmax(1)
    from simshap.amortized.io import load_explainer

    phi = load_explainer(run.path("simshap.pt")).explain(x)[torch.arange(3), :, tgt]
    cached = torch.load(run.path("attributions/simshap.pt"), weights_only=True)["values"]
    # the cache holds float32; explain() returns float64 (the efficiency step's precision)
    torch.testing.assert_close(cached.view(3, -1), phi.float(), rtol=1e-4, atol=1e-6)
    assert results["n_images"] == 3
    # paired differences: every trained explainer against random (and IG where it ran), and
    # each SimSHAP against FastSHAP (never an explainer against itself)
    assert "fastshap" in results["paired"]["simshap"]
    assert "fastshap" not in results["paired"]["fastshap"]
    for name in EXPLAINERS:
        e = results["paired"][name]["random"]
        assert e["n"] <= 3 and set(e) >= {"insertion_diff", "insertion_se", "deletion_diff"}
        ins = results["methods"][name]["insertion_auc_prob_mean"]
        ref = results["methods"]["random"]["insertion_auc_prob_mean"]
        if e["n"] == 3:  # no NaN image: the mean difference is the difference of the means
            assert e["insertion_diff"] == pytest.approx(ins - ref, abs=1e-6)


@pytest.mark.slow
def test_cli_runs_a_tiny_config_resumes_it_and_refuses_another(subset_dir, tmp_path, capsys):
    cfg = write_config(tmp_path / "tiny.yaml", subset_dir)
    out = tmp_path / "cli-run"
    assert cli_main(["run", str(cfg), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {*EXPLAINERS, *BASELINES}
    assert "Table 3" in capsys.readouterr().out
    # the same command again resumes: every stage is kept, nothing is recomputed
    before = (out / "results.json").read_text()
    assert cli_main(["run", str(cfg), "--out", str(out)]) == 0
    assert "done, kept" in capsys.readouterr().out
    assert (out / "results.json").read_text() == before
    other = tmp_path / "other.yaml"
    other.write_text(cfg.read_text().replace("seed: 0", "seed: 1"))
    assert "seed: 1" in other.read_text()
    assert cli_main(["run", str(other), "--out", str(out)]) == 2  # another config
    assert re.search("overwrite", capsys.readouterr().err)
    assert cli_main(["evaluate", "--out", str(out)]) == 2  # FileExistsError
    assert re.search("overwrite", capsys.readouterr().err)


# --------------------------------------------------------------------------- training step


class CountingCalls:
    """Wraps the surrogate's value function and records the rows of every call."""

    def __init__(self, fn, module):
        self.fn, self.module, self.rows = fn, module, []

    def __call__(self, x, mask):
        if self.module.training:
            self.rows.append(x.shape[0])
        return self.fn(x, mask)


def test_simshap_step_calls_the_surrogate_once_on_all_masked_images(subset_dir, tmp_path):
    run = ImageRun(tmp_path / "run", load_config(write_config(tmp_path / "c.yaml", subset_dir)))
    surrogate = run.build_surrogate().eval()
    explainer = run.build_explainer("simshap", surrogate)
    counter = CountingCalls(surrogate.value, explainer)
    surrogate.value = counter  # the game binds this callable in every step
    x, _ = run.data.test_tensors(12, split="train")
    b, m = 4, explainer.hparams.n_masks
    train = DataLoader(TensorDataset(x), batch_size=b)  # 3 steps
    val = DataLoader(TensorDataset(x[:2]), batch_size=2)
    fit_module(
        explainer,
        train,
        val,
        monitor="val_l2",
        max_epochs=1,
        patience=1,
        accelerator="cpu",
        devices=1,
        progress_bar=False,
    )
    assert counter.rows == [b * (m + 2)] * 3
    assert not surrogate.training  # the frozen surrogate's BatchNorm stays in eval mode


def test_speed_ups_apply_on_cuda_only(subset_dir, tmp_path, capsys):
    cfg = load_config(write_config(tmp_path / "c.yaml", subset_dir))
    cfg["trainer"]["channels_last"] = True
    cfg["surrogate"]["compile"] = True
    run = ImageRun(tmp_path / "run", cfg)
    surrogate = run.build_surrogate()
    conv = surrogate.net.net.conv1.weight
    explainer = run.build_explainer("fastshap", surrogate)
    stem = next(p for p in explainer.net.parameters() if p.ndim == 4)
    on_cuda = run.device.type == "cuda"
    assert conv.shape[1] == 4
    assert conv.is_contiguous(memory_format=torch.channels_last) == on_cuda
    assert stem.is_contiguous(memory_format=torch.channels_last) == on_cuda
    if not on_cuda:  # skipped with a one-line log, whatever the config says
        out = capsys.readouterr().out
        assert "channels_last and compile skipped on cpu" in out
        assert "torch._dynamo" not in type(surrogate.net.net.forward).__module__
    assert explainer.hparams.efficiency_lambda == IMAGE_DEFAULTS["explainer"]["efficiency_lambda"]
    if not torch.cuda.is_available():
        assert resolve_precision("auto") == "32-true"
    assert resolve_precision("16-mixed") == "16-mixed"
    assert run.trainer_kwargs()["precision"] == resolve_precision("auto")


@pytest.mark.timeout(60)
def test_cpu_training_step_of_image_surrogate_finishes(subset_dir, tmp_path):
    # regression: a channels_last ResNet backward pass on the CPU hung with torch 2.14.1; the
    # config asks for channels_last, the CPU run must skip it and finish a step quickly
    cfg = load_config(write_config(tmp_path / "c.yaml", subset_dir))
    cfg["trainer"]["channels_last"] = True
    run = ImageRun(tmp_path / "run", cfg)
    surrogate = run.build_surrogate(original=run.build_classifier().model)
    x, y = run.data.test_tensors(16, split="train")
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    fit_module(
        surrogate,
        loader,
        loader,
        monitor="val_kl",
        max_epochs=1,
        patience=1,
        accelerator="cpu",
        devices=1,
        progress_bar=False,
    )
    assert surrogate.trainer.global_step == 1


def test_target_throughput_is_measured_on_the_same_batches(subset_dir, tmp_path):
    run = ImageRun(tmp_path / "run", load_config(write_config(tmp_path / "c.yaml", subset_dir)))
    surrogate = run.build_surrogate().eval()
    explainer = run.build_explainer("simshap", surrogate)
    x, _ = run.data.test_tensors(4)
    out = measure_target_throughput(explainer, x, iters=2, warmup=1)
    assert out["masked_images_per_step"] == 4 * (8 + 2)
    assert out["target_images_per_s"] > 0 and out["raw_images_per_s"] > 0
    assert out["ratio"] == pytest.approx(out["target_images_per_s"] / out["raw_images_per_s"])


# --------------------------------------------------------------------------- config


def test_image_config_keys_are_strict_and_validated(subset_dir, tmp_path):
    cfg = tiny_config(subset_dir)
    cfg["explainer"]["n_maskz"] = 3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="n_maskz"):
        load_config(path)
    good = load_config(write_config(tmp_path / "ok.yaml", subset_dir))
    good["explainer"]["val_budget"] = 64
    run = ImageRun(tmp_path / "run", good)
    with pytest.raises(ValueError, match="val_budget"):
        run.build_explainer("simshap", run.build_surrogate())
    with pytest.raises(ValueError, match="unknown explainer"):
        run.build_explainer("lime", run.build_surrogate())


def test_superpixel_size_and_surrogate_init_are_checked(subset_dir, tmp_path):
    """superpixel_size sets the players of the surrogate and the explainer's output grid;
    bad values of it and of surrogate.init are refused with the allowed ones named."""
    cfg = load_config(write_config(tmp_path / "ok.yaml", subset_dir))
    cfg["superpixel_size"] = 4
    run = ImageRun(tmp_path / "run4", cfg)
    assert run.build_surrogate().groups.num_players == 64
    assert run.explainer_net_spec()["superpixel_size"] == 4
    for bad in (3, 16, "2", True):
        with pytest.raises(ValueError, match="superpixel_size' should be 1, 2, 4 or 8"):
            ImageRun(tmp_path / "bad", {**cfg, "superpixel_size": bad})
    cfg = load_config(write_config(tmp_path / "ok2.yaml", subset_dir))
    cfg["surrogate"]["init"] = "pretrained"
    with pytest.raises(ValueError, match="'random' or 'classifier'"):
        ImageRun(tmp_path / "run-init", cfg)  # checked before any work
    cfg["surrogate"]["init"] = "classifier"
    run = ImageRun(tmp_path / "run-init", cfg)
    run.start()
    run.fit_model()
    surrogate, classifier = run.training_surrogate(), run.classifier()
    x = run.data.test_tensors(2)[0]
    full = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(surrogate.eval().net(x, full), classifier(x))


def test_resnet_explainer_backbone_starts_from_the_classifier(subset_dir, tmp_path):
    """explainer.backbone: resnet18 with init: classifier trains, saves and reloads exactly;
    its trunk starts as the classifier's; bad values and the U-Net warm start are refused."""
    from simshap.amortized.io import load_explainer

    cfg = load_config(write_config(tmp_path / "ok.yaml", subset_dir))
    cfg["superpixel_size"] = 4
    cfg["explainer"].update(backbone="resnet18", init="classifier", val_budget=128)
    run = ImageRun(tmp_path / "run", cfg)
    run.start()
    run.fit_model()
    run.fit_surrogate()
    module = run.build_explainer("simshap", run.surrogate())
    assert module.net.spec["kind"] == "resnet18" and module.net.spec["width"] == 4
    trunk = module.net.trunk.state_dict()
    classifier = run.classifier().model.state_dict()
    for key, value in trunk.items():
        torch.testing.assert_close(value, classifier[key])
    assert torch.isfinite(torch.tensor(run.fit_explainer("simshap")["val_l2"]))
    x = run.data.test_tensors(3)[0]
    loaded = load_explainer(run.path("simshap.pt"))
    assert loaded.net.spec == module.net.spec
    assert loaded.explain(x).shape == (3, 64, 10)
    module.load_state_dict(loaded.state_dict())  # the saved weights give the saved outputs
    torch.testing.assert_close(loaded.explain(x), module.eval().explain(x))
    for key, bad, match in (
        ("backbone", "vit", "'unet' or 'resnet18'"),
        ("init", "imagenet", "'random' or 'classifier'"),
    ):
        run.config["explainer"][key] = bad
        with pytest.raises(ValueError, match=match):
            run.build_explainer("simshap", run.surrogate())
        run.config["explainer"].update(backbone="resnet18", init="classifier")
    run.config["explainer"]["backbone"] = "unet"
    with pytest.raises(ValueError, match="needs explainer.backbone: resnet18"):
        run.build_explainer("simshap", run.surrogate())


@pytest.mark.parametrize("name", ["cifar10", "cifar10-subset", "fashion_mnist"])
def test_shipped_image_configs_load(name):
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "simshap" / "runs" / "configs" / f"{name}.yaml")
    assert cfg["dataset"] == name
    assert cfg["explainer"]["n_masks"] == 8 and cfg["explainer"]["centered"]
    assert cfg["trainer"]["precision"] == "auto" and cfg["trainer"]["channels_last"]


def test_cpu_proof_config_loads_and_builds(tmp_path):
    """configs/cifar10-cpu.yaml: 64 players of 4x4 pixels, a warm-started surrogate and a
    ResNet-18 explainer trunk started from the classifier."""
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "simshap" / "runs" / "configs" / "cifar10-cpu.yaml")
    assert cfg["superpixel_size"] == 4 and cfg["surrogate"]["init"] == "classifier"
    assert cfg["model"]["width"] == cfg["surrogate"]["width"]  # the warm start needs it
    assert cfg["explainer"]["backbone"] == "resnet18" and cfg["explainer"]["init"] == "classifier"
    run = ImageRun(tmp_path / "run", cfg)
    assert run.build_surrogate().groups.num_players == 64
    assert run.explainer_net_spec() == {
        "kind": "resnet18",
        "in_channels": 3,
        "num_classes": 10,
        "width": 16,
        "superpixel_size": 4,
    }


def test_results_table_from_a_results_dict():
    row = {
        "label": "SimSHAP",
        "used": "simshap.SimSHAP",
        "fallback_reason": None,
        "inference_s": 0.5,
        "train_minutes": 3.0,
    }
    for key in ("insertion_auc", "deletion_auc", "insertion_auc_prob", "deletion_auc_prob"):
        row[f"{key}_mean"], row[f"{key}_std"] = 0.75, 0.1
    fast = {**row, "label": "FastSHAP", "used": "simshap.FastSHAP", "train_minutes": 4.0}
    table = image_results_table(
        {
            "dataset": "cifar10",
            "n_images": 10,
            "device": "GPU",
            "methods": {"simshap": row, "fastshap": fast},
        }
    )
    assert "| SimSHAP | simshap.SimSHAP | 0.750 ± 0.100 |" in table
    assert (
        "- Table 4 row, inference seconds for the 10 images: SimSHAP 0.5, FastSHAP 0.5; "
        "training minutes: SimSHAP 3.00, FastSHAP 4.00"
    ) in table


@pytest.mark.gpu
def test_bf16_channels_last_step_on_gpu(subset_dir, tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml", subset_dir))
    cfg["trainer"]["accelerator"] = "gpu"
    run = ImageRun(tmp_path / "run", cfg)
    surrogate = run.build_surrogate().eval().cuda()
    explainer = run.build_explainer("simshap", surrogate).cuda()
    x, _ = run.data.test_tensors(16)
    out = measure_target_throughput(explainer, x.cuda(), iters=3, warmup=2, bf16=True)
    assert out["ratio"] > 0 and out["masked_images_per_step"] == 160
