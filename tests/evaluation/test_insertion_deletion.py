import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from simshap.estimators.kernel import kernel_shap
from simshap.evaluation.insertion_deletion import insertion_deletion, superpixel_order
from simshap.games.values import BaselineGame
from simshap.models import cifar_resnet18
from simshap.players import Players

torch.set_num_threads(1)

CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465]).reshape(1, 3, 1, 1)
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616]).reshape(1, 3, 1, 1)


def real_images(data_dir, n: int) -> torch.Tensor:
    path = data_dir / "cifar10-subset.npz"
    if not path.exists():
        pytest.skip(f"real CIFAR-10 subset not found at {path} (set SIMSHAP_DATA)")
    x = np.load(path)["x_test"][:n].astype(np.float64) / 255.0
    return torch.from_numpy((x - CIFAR_MEAN) / CIFAR_STD)


class SuperpixelLinear(nn.Module):
    """Logits linear in the 256 superpixel means (channel mean, 2x2 mean) with no bias."""

    def __init__(self, num_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(num_classes, 256, generator=g, dtype=torch.float64))

    def superpixel_means(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(x.mean(1, keepdim=True), 2).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.superpixel_means(x) @ self.weight.T


def slow_reference(model, images, attributions, target, normalize):
    """One image and one step at a time, with explicit superpixel loops."""
    n = images.shape[0]
    d = attributions[0].numel()
    side = attributions.shape[-1]

    def score(x, i):
        out = model(x[None])[0]
        if normalize == "prob":
            out = out.softmax(0)
        return float(out[target[i]])

    ins_auc, del_auc, ins_curves, del_curves = [], [], [], []
    for i in range(n):
        a = attributions[i].flatten().tolist()
        order = sorted(range(d), key=lambda j: (-a[j], j))
        x = images[i]
        blur = gaussian_blur(x[None], kernel_size=11, sigma=5.0)[0]
        ins, dele = [], []
        for k in range(d + 1):
            xi, xd = blur.clone(), x.clone()
            for j in order[:k]:
                r, c = divmod(j, side)
                xi[:, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = x[
                    :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2
                ]
                xd[:, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 0.0
            ins.append(score(xi, i))
            dele.append(score(xd, i))
        if normalize == "paper":
            f_x, f_blur, f_zero = score(x, i), score(blur, i), score(torch.zeros_like(x), i)
            ins = [(v - f_blur) / (f_x - f_blur) for v in ins]
            dele = [(v - f_zero) / (f_x - f_zero) for v in dele]
        trap = lambda c: sum((c[k] + c[k + 1]) / 2 for k in range(d)) / d  # noqa: E731
        ins_auc.append(trap(ins))
        del_auc.append(trap(dele))
        ins_curves.append(ins)
        del_curves.append(dele)
    as_t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return as_t(ins_auc), as_t(del_auc), as_t(ins_curves), as_t(del_curves)


@pytest.mark.parametrize("normalize", ["paper", "prob"])
def test_matches_slow_loop(data_dir, normalize):
    torch.manual_seed(0)
    images = real_images(data_dir, 2)
    model = cifar_resnet18(num_classes=10, width=4).double().eval()
    # rounded attributions create many ties, which must be broken by the lower index
    attributions = torch.randn(2, 16, 16, dtype=torch.float64).round()
    target = model(images).argmax(1)
    with torch.no_grad():
        ref = slow_reference(model, images, attributions, target, normalize)
        res = insertion_deletion(model, images, attributions, normalize=normalize, batch_size=96)
    assert torch.equal(res.target, target)
    assert res.insertion_curve.shape == (2, 257) and res.deletion_auc.shape == (2,)
    for got, want in zip(
        (res.insertion_auc, res.deletion_auc, res.insertion_curve, res.deletion_curve),
        ref,
        strict=True,
    ):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    if normalize == "paper":
        torch.testing.assert_close(res.insertion_curve[:, 0], torch.zeros(2, dtype=torch.float64))
        torch.testing.assert_close(res.deletion_curve[:, 0], torch.ones(2, dtype=torch.float64))


def test_batch_size_and_explicit_target_do_not_change_results():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 32, 32, generator=g, dtype=torch.float64)
    model = SuperpixelLinear(num_classes=4)
    attributions = torch.randn(3, 16, 16, generator=g, dtype=torch.float64)
    with torch.no_grad():
        a = insertion_deletion(model, images, attributions, target=2, batch_size=1000)
        b = insertion_deletion(
            model, images, attributions, target=torch.tensor([2, 2, 2]), batch_size=7
        )
    torch.testing.assert_close(a.insertion_curve, b.insertion_curve)
    torch.testing.assert_close(a.deletion_auc, b.deletion_auc)
    assert set(a.as_dict()) >= {"insertion_auc", "deletion_curve"}


def test_ties_broken_by_index():
    att = torch.tensor([[0.0, 1.0, 1.0, -2.0, 1.0]])
    assert superpixel_order(att).tolist() == [[1, 2, 4, 0, 3]]


def linear_game_values(model, images, baseline, target):
    """Exact Shapley values w_i (xbar_i - bbar_i) of the linear model's baseline game."""
    diff = model.superpixel_means(images) - model.superpixel_means(baseline)
    return diff * model.weight[target]


def test_exact_shapley_beats_random_on_linear_superpixel_game(data_dir):
    n = 4
    images = real_images(data_dir, n)
    model = SuperpixelLinear(num_classes=10, seed=3)
    zeros = torch.zeros_like(images)
    blurred = gaussian_blur(images, kernel_size=11, sigma=5.0)
    g = torch.Generator().manual_seed(0)
    random_att = [torch.randn(n, 16, 16, generator=g) for _ in range(5)]
    with torch.no_grad():
        # deletion is the game with baseline 0; track the predicted class (f_x > f_zero = 0)
        t_del = model(images).argmax(1)
        phi_del = linear_game_values(model, images, zeros, t_del)
        # they are the Shapley values: KernelSHAP is exact on additive games
        game = BaselineGame(model, images, zeros[0], groups=Players.superpixels())
        est = kernel_shap(game, budget=602, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(est.values[torch.arange(n), :, t_del], phi_del)
        # insertion is the game with the blurred image as baseline; track the class it helps most
        t_ins = (model(images) - model(blurred)).argmax(1)
        phi_ins = linear_game_values(model, images, blurred, t_ins)
        assert (phi_del.sum(1) > 0).all() and (phi_ins.sum(1) > 0).all()

        dele = insertion_deletion(model, images, phi_del.view(n, 16, 16), target=t_del)
        ins = insertion_deletion(model, images, phi_ins.view(n, 16, 16), target=t_ins)
        rand_del = torch.stack(
            [insertion_deletion(model, images, a, target=t_del).deletion_auc for a in random_att]
        )
        rand_ins = torch.stack(
            [insertion_deletion(model, images, a, target=t_ins).insertion_auc for a in random_att]
        )

    # linear game: the curves are the partial sums of the sorted values, normalized
    def partial_sums(phi, start):
        steps = phi.sort(dim=1, descending=True).values.cumsum(1)
        return (
            torch.cat([torch.zeros(n, 1, dtype=phi.dtype), steps], dim=1) / phi.sum(1, True) + start
        )

    torch.testing.assert_close(dele.deletion_curve, 1 - partial_sums(phi_del, 0.0))
    torch.testing.assert_close(ins.insertion_curve, partial_sums(phi_ins, 0.0))
    # ordering by the exact values is optimal, so it beats every random ordering on every image
    assert (dele.deletion_auc < rand_del.min(0).values).all()
    assert (ins.insertion_auc > rand_ins.max(0).values).all()


def test_training_mode_model_is_evaluated_in_eval_mode_and_restored():
    torch.manual_seed(0)
    model = cifar_resnet18(num_classes=10, width=4)
    images = torch.randn(2, 3, 32, 32)
    att = torch.randn(2, 16, 16)
    model.eval()
    ref = insertion_deletion(model, images, att, normalize="prob", batch_size=128)
    model.train()
    got = insertion_deletion(model, images, att, normalize="prob", batch_size=128)
    assert model.training
    torch.testing.assert_close(got.insertion_curve, ref.insertion_curve)


def test_degenerate_normalization_gives_nan_with_warning():
    model = SuperpixelLinear(num_classes=2)
    images = torch.zeros(1, 3, 32, 32, dtype=torch.float64)  # f_x == f_zero == f_blur
    with pytest.warns(RuntimeWarning, match="normalization is undefined"):
        res = insertion_deletion(model, images, torch.randn(1, 16, 16), target=0)
    assert torch.isnan(res.deletion_auc).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attributions": torch.zeros(2, 8, 8)}, "attributions must have shape"),
        ({"attributions": torch.zeros(2, 256)}, "attributions must have shape"),
        ({"images": torch.zeros(3, 32, 32)}, "images must be a float"),
        ({"attributions": torch.full((2, 16, 16), float("nan"))}, "NaN"),
        ({"images": torch.full((2, 3, 32, 32), float("nan"))}, "NaN"),
        ({"normalize": "softmax"}, "normalize must be one of"),
        ({"target": 7}, "out of range"),
        ({"target": torch.tensor([0, 1, 1])}, "target must be"),
        ({"target": torch.tensor([0.0, 1.0])}, "integer class"),
        ({"superpixel_size": 3}, "not divisible"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_inputs(kwargs, match):
    model = SuperpixelLinear(num_classes=3).float()
    args = {"images": torch.zeros(2, 3, 32, 32), "attributions": torch.zeros(2, 16, 16)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        insertion_deletion(model, args.pop("images"), args.pop("attributions"), **args)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    model = cifar_resnet18(num_classes=10, width=8).eval()
    images = torch.randn(3, 3, 32, 32)
    att = torch.randn(3, 16, 16)
    cpu = insertion_deletion(model, images, att, batch_size=256)
    gpu = insertion_deletion(model.cuda(), images.cuda(), att.cuda(), batch_size=256)
    assert gpu.insertion_auc.device.type == "cuda"
    torch.testing.assert_close(gpu.insertion_curve.cpu(), cpu.insertion_curve, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(gpu.deletion_auc.cpu(), cpu.deletion_auc, atol=1e-3, rtol=1e-3)


def test_paper_denominators_are_counted_and_unstable_images_set_apart():
    import warnings

    from simshap.evaluation.insertion_deletion import stable_mask

    torch.manual_seed(0)
    images = torch.randn(4, 3, 8, 8)
    images[3] = 0.7  # a constant image: blurring changes nothing, so f_x - f_blur = 0

    class Energy(torch.nn.Module):  # target logit: the image's energy (blur lowers it)
        def forward(self, x):
            z = 0.05 * x.pow(2).sum((1, 2, 3))
            return torch.stack([z, -z], 1)

    target = torch.zeros(4, dtype=torch.long)
    attributions = torch.rand(4, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # image 3's curves are NaN, as documented
        res = insertion_deletion(
            Energy(),
            images,
            attributions,
            target=target,
            superpixel_size=2,
            normalize="paper",
            batch_size=4096,
        )
    f_x, f_0 = Energy()(images)[:, 0], Energy()(torch.zeros_like(images))[:, 0]
    raw = insertion_deletion(
        Energy(),
        images,
        attributions,
        target=target,
        superpixel_size=2,
        normalize="prob",
        batch_size=4096,
    )
    assert raw.denominator is None and stable_mask(raw).all()
    # the signed denominator is min(f_x - f_blur, f_x - f_0); image 3 has f_x == f_blur
    assert res.denominator[3].abs() < 1e-5
    assert (res.denominator[:3] > 0.05).all() and (res.denominator <= f_x - f_0 + 1e-5).all()
    mask = stable_mask(res, eps=0.05)
    assert mask.tolist() == [True, True, True, False]
    assert torch.isfinite(res.insertion_auc[mask]).all()


@pytest.mark.timeout(60)
def test_paired_differences_cancel_the_image_spread_and_skip_nan_images():
    from simshap.evaluation.image_scores import paired_differences
    from simshap.evaluation.report import image_results_table

    g = torch.Generator().manual_seed(0)
    base = torch.rand(50, generator=g, dtype=torch.float64)  # a wide spread between images
    shift = 0.01 * torch.randn(50, generator=g, dtype=torch.float64)
    per_image = {
        "random": {"insertion_auc_prob": base, "deletion_auc_prob": base},
        "simshap": {"insertion_auc_prob": base + 0.05 + shift, "deletion_auc_prob": base - 0.02},
    }
    per_image["simshap"]["deletion_auc_prob"][7] = float("nan")  # a curve that failed
    out = paired_differences(per_image, ["simshap", "fastshap"], ["random", "ig"])
    assert list(out) == ["simshap"] and list(out["simshap"]) == ["random"]  # absent ones skipped
    e = out["simshap"]["random"]
    d = np.delete((0.05 + shift).numpy(), 7)  # the NaN image is left out of both differences
    assert e["insertion_diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert e["insertion_se"] == pytest.approx(d.std(ddof=1) / np.sqrt(49), rel=1e-9)
    # the per-image spread (std ~0.29) cancels: the standard error is that of the shift alone
    assert e["insertion_se"] < 0.01 < base.std() / np.sqrt(50)
    assert e["deletion_diff"] == pytest.approx(-0.02) and e["deletion_se"] == pytest.approx(0.0)
    assert e["n"] == 49
    row = {"label": "x", "used": "u", "inference_s": 0.0}
    for k in ("insertion_auc", "deletion_auc", "insertion_auc_prob", "deletion_auc_prob"):
        row |= {f"{k}_mean": 0.5, f"{k}_std": 0.1}
    table = image_results_table(
        {
            "dataset": "d",
            "device": "cpu",
            "n_images": 50,
            "methods": {"simshap": row, "random": row},
            "paired": out,
        }
    )
    pair = f"- x: vs x {d.mean():+.3f} ± {e['insertion_se']:.3f} / -0.020 ± 0.000 (49 images)"
    assert pair in table
