import numpy as np
import pytest
import torch
from torch import nn

from simshap import ShapleyValues
from simshap.errors import UserError
from simshap.evaluation.baselines import (
    BASELINES,
    deepshap,
    explain_baseline,
    gradcam,
    integrated_gradients,
    kernelshap,
    kernelshap_surrogate,
    to_superpixels,
)
from simshap.models import cifar_resnet18

torch.set_num_threads(1)

CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(1, 3, 1, 1)
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32).reshape(1, 3, 1, 1)

# small budgets keep the CPU tests fast; the defaults are the benchmark settings
FAST = {
    "random": {},
    "ig": {"budget": 32},
    "smoothgrad": {"budget": 8},
    "gradcam": {},
    "kernelshap": {"budget": 302},
    "kernelshap_s": {"budget": 302},
    "deepshap": {"budget": 16},
}
USED = {
    "random": "random",
    "ig": "captum.attr.IntegratedGradients",
    "smoothgrad": "captum.attr.NoiseTunnel(Saliency)",
    "gradcam": "captum.attr.LayerGradCam",
    "kernelshap": "shap.KernelExplainer",
    "kernelshap_s": "simshap.games.kernel_shap",
    "deepshap": "shap.DeepExplainer",  # simshap's ResNet blocks have no in-place operations
}


@pytest.fixture
def images(data_dir):
    path = data_dir / "cifar10-subset.npz"
    if not path.exists():
        pytest.skip(f"real CIFAR-10 subset not found at {path} (set SIMSHAP_DATA)")
    x = np.load(path)["x_test"][:2].astype(np.float32) / 255.0
    return torch.from_numpy((x - CIFAR_MEAN) / CIFAR_STD)


@pytest.fixture
def resnet():
    torch.manual_seed(0)
    return cifar_resnet18(num_classes=10, width=4).eval()


class Surrogate(nn.Module):
    """s(x, m): a 4-channel ResNet on (x * m, m)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = cifar_resnet18(num_classes=10, in_channels=4, width=4)

    def forward(self, x, mask):
        return self.net(torch.cat([x * mask, mask.to(x.dtype)], dim=1))


@pytest.fixture
def surrogate():
    torch.manual_seed(1)
    return Surrogate().eval()


class SuperpixelLinear(nn.Module):
    """Logits linear in the superpixel means: Shapley values with a 0 baseline are w_i * xbar_i."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(num_classes, 256, generator=g))

    def means(self, x):
        return nn.functional.avg_pool2d(x.mean(1, keepdim=True), 2).flatten(1)

    def forward(self, x):
        return self.means(x) @ self.weight.T


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_every_baseline_returns_shapley_values(method, images, resnet, surrogate):
    model = surrogate if method == "kernelshap_s" else resnet
    out = explain_baseline(method, model, images, torch.tensor([3, 5]), **FAST[method])
    assert isinstance(out, ShapleyValues)
    assert out.values.shape == (2, 256, 1) and out.grid == (16, 16)
    assert out.as_image().shape == (2, 1, 16, 16)
    assert torch.isfinite(out.values).all()
    assert out.values.abs().sum() > 0
    assert out.method == USED[method] and out.target.tolist() == [3, 5]
    assert torch.equal(out.select(torch.tensor([3, 5])), out.values[..., 0])
    if method == "deepshap":  # DeepLIFT: one pass per background row (zeros: one), no budget
        assert out.n_evals == 1
    elif "budget" in FAST[method]:  # the same budget meaning everywhere: n_evals reports it
        assert out.n_evals == FAST[method]["budget"]


def test_integrated_gradients_completeness(images, resnet):
    out = integrated_gradients(resnet, images, budget=64)
    with torch.no_grad():
        logits = resnet(images)
        target = logits.argmax(1)
        gap = logits[range(2), target] - resnet(torch.zeros_like(images))[range(2), target]
    pixel_sum = out.extras["pixel_sum"]
    torch.testing.assert_close(pixel_sum, gap, atol=0.02 * float(gap.abs().max()) + 1e-3, rtol=0)
    # the superpixel map is the channel mean, then the 2x2 mean: it sums to pixel_sum / (3 * 4)
    torch.testing.assert_close(out.values.sum((1, 2)) * 12, pixel_sum, rtol=1e-4, atol=1e-4)
    assert out.n_evals == 64


def test_kernelshap_surrogate_is_efficient(images, surrogate):
    target = torch.tensor([3, 7])
    out = kernelshap_surrogate(surrogate, images, target, budget=302)
    ones = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    with torch.no_grad():
        total = surrogate(images, ones) - surrogate(images, ~ones)
    torch.testing.assert_close(
        out.values.sum((1, 2)), total[range(2), target], rtol=1e-4, atol=1e-4
    )
    assert out.n_evals == 302
    with torch.no_grad():
        v0 = surrogate(images, ~ones)[range(2), target]
    torch.testing.assert_close(out.base_values[:, 0], v0)


def test_shap_and_our_kernelshap_recover_known_values_on_a_linear_game(images):
    model = SuperpixelLinear()
    with torch.no_grad():
        target = model(images).argmax(1)
        exact = (model.means(images) * model.weight[target]).view(2, 256, 1)
    shap_ks = kernelshap(model, images, budget=602)
    torch.testing.assert_close(shap_ks.values, exact, atol=1e-4, rtol=1e-3)
    assert torch.allclose(shap_ks.base_values, torch.zeros(2, 1), atol=1e-6)  # model(0) = 0

    def masked(x, mask):
        return model(x * mask)

    ours = kernelshap_surrogate(masked, images, target, budget=602)
    torch.testing.assert_close(ours.values, exact, atol=1e-4, rtol=1e-3)
    ours = kernelshap_surrogate(masked, images, target, budget=602, sampling="leverage")
    torch.testing.assert_close(ours.values, exact, atol=1e-4, rtol=1e-3)


def test_deepshap_falls_back_to_gradient_explainer_on_torchvision_resnet(images):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    resnet = resnet18(num_classes=10).eval()  # torchvision's own: in-place add, reused ReLU
    out = deepshap(resnet, images, target=1, budget=16)
    assert out.method == "shap.GradientExplainer"
    assert "DeepExplainer failed" in out.extras["fallback_reason"]
    # the user's model is left without shap's hooks
    assert all(not m._forward_hooks and not m._backward_hooks for m in resnet.modules())
    with pytest.raises(RuntimeError, match="explainer='gradient'"):
        deepshap(resnet, images, explainer="deep")


def test_deepshap_uses_deep_explainer_where_it_can(images):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(256, 5)
    ).eval()
    background = torch.zeros(1, 3, 32, 32)
    out = deepshap(net, images, target=torch.tensor([0, 4]), background=background)
    assert out.method == "shap.DeepExplainer" and out.extras["fallback_reason"] is None
    with torch.no_grad():
        gap = net(images)[range(2), [0, 4]] - net(background)[0, [0, 4]]
    # DeepLIFT's summation to delta, seen through the superpixel reduction
    torch.testing.assert_close(out.values.sum((1, 2)) * 12, gap, rtol=1e-3, atol=1e-3)


def test_gradcam_needs_a_layer(images):
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(), nn.Linear(2048, 3))
    with pytest.raises(ValueError, match="layer="):
        gradcam(net, images)
    out = gradcam(net, images, layer=net[0], relu_attributions=True)
    assert out.as_image()[:, 0].shape == (2, 16, 16) and (out.values >= 0).all()


def test_reduction_and_bad_inputs(resnet):
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    red = to_superpixels(x, 2)
    assert red.shape == (2, 2, 2)
    assert red[0, 0, 0] == x[0, :, :2, :2].mean()
    with pytest.raises(ValueError, match="unknown baseline"):
        explain_baseline("lime", resnet, torch.zeros(1, 3, 32, 32))
    with pytest.raises(UserError, match="budget"):
        integrated_gradients(resnet, torch.zeros(1, 3, 32, 32), budget=0)
    with pytest.raises(ValueError, match="images must be"):
        integrated_gradients(resnet, torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        integrated_gradients(resnet, torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(ValueError, match="target must"):
        integrated_gradients(resnet, torch.zeros(2, 3, 32, 32), target=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="explainer must"):
        deepshap(resnet, torch.zeros(1, 3, 32, 32), explainer="kernel")


@pytest.mark.gpu
@pytest.mark.parametrize("method", sorted(BASELINES))
def test_baselines_run_on_cuda(method, images, resnet, surrogate):
    model = (surrogate if method == "kernelshap_s" else resnet).cuda()
    out = explain_baseline(method, model, images.cuda(), None, **FAST[method])
    assert out.values.shape == (2, 256, 1) and out.values.device.type == "cuda"
    assert torch.isfinite(out.values).all()


def test_random_baseline_is_seeded_and_costs_nothing(images, resnet):
    a = explain_baseline("random", resnet, images, 3, generator=torch.Generator().manual_seed(0))
    b = explain_baseline("random", resnet, images, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.values, b.values) and a.n_evals == 0
    assert a.values.std() > 0.5
    with pytest.raises(ValueError, match="no budget"):
        explain_baseline("random", resnet, images, 3, budget=8)
