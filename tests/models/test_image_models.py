import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import ResNet

from simshap.models import UNet, cifar_resnet18
from simshap.models.classifier import ImageClassifier

torch.set_num_threads(1)

CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(1, 3, 1, 1)
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32).reshape(1, 3, 1, 1)


def real_batch(data_dir, n):
    path = data_dir / "cifar10-subset.npz"
    if not path.exists():
        pytest.skip(f"real CIFAR-10 subset not found at {path} (set SIMSHAP_DATA)")
    data = np.load(path)
    x = (data["x_train"][:n].astype(np.float32) / 255.0 - CIFAR_MEAN) / CIFAR_STD
    return torch.from_numpy(x), torch.from_numpy(data["y_train"][:n].astype(np.int64))


def test_cifar_resnet18_is_torchvision_resnet_with_cifar_stem():
    net = cifar_resnet18(num_classes=10)
    assert isinstance(net, ResNet)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)
    # torchvision's ResNet-18 has 11.69M parameters with the 7x7 stem and 1000 classes; with the
    # 3x3 stem and 10 classes it has 11,173,962
    assert sum(p.numel() for p in net.parameters()) == 11_173_962
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        # layer4 sees 4x4 feature maps on 32x32 inputs (stride-1 stem, no max-pool)
        feats = net.layer3(
            net.layer2(net.layer1(net.relu(net.bn1(net.conv1(torch.zeros(1, 3, 32, 32))))))
        )
        assert net.layer4(feats).shape[-2:] == (4, 4)


def test_surrogate_resnet_reads_masked_image_and_mask():
    torch.manual_seed(0)
    net = cifar_resnet18(num_classes=7, in_channels=4, width=8).eval()
    x = torch.randn(3, 3, 32, 32)
    m = torch.rand(3, 1, 32, 32) > 0.5
    with torch.no_grad():
        out = net(torch.cat([x * m, m.float()], dim=1))
        assert out.shape == (3, 7) and torch.isfinite(out).all()
        # the mask channel is read: same masked pixels, different mask, different output
        other = net(torch.cat([x * m, torch.zeros_like(m, dtype=torch.float)], dim=1))
    assert not torch.allclose(out, other)
    assert net.layer1[0].conv1.in_channels == 8 and net.fc.in_features == 64
    with pytest.raises(RuntimeError):
        net(x)  # three channels into a four-channel stem


def test_bad_resnet_arguments():
    with pytest.raises(ValueError, match="width"):
        cifar_resnet18(width=0)


@pytest.mark.parametrize(("depth", "superpixel_size", "grid"), [(3, 2, 16), (2, 2, 16), (3, 4, 8)])
def test_unet_output_on_superpixel_grid(depth, superpixel_size, grid):
    torch.manual_seed(0)
    net = UNet(
        in_channels=3, num_classes=10, base_width=4, depth=depth, superpixel_size=superpixel_size
    )
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10, grid, grid)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_unet_is_translation_aware_per_superpixel():
    # a change confined to one corner superpixel changes outputs near it more than far away
    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2).eval()
    x = torch.randn(1, 3, 32, 32)
    y = x.clone()
    y[:, :, :2, :2] += 5.0
    with torch.no_grad():
        delta = (net(y) - net(x)).abs().sum(1)[0]
    assert delta[:4, :4].sum() > delta[-4:, -4:].sum()


def test_unet_bad_arguments():
    with pytest.raises(ValueError, match="superpixel_size"):
        UNet(depth=1, superpixel_size=4)
    with pytest.raises(ValueError, match="divisible"):
        UNet(base_width=4, depth=3)(torch.zeros(1, 3, 36, 36))


def test_classifier_optimizer_steps_reduce_loss(data_dir):
    torch.manual_seed(0)
    x, y = real_batch(data_dir, 16)
    clf = ImageClassifier(cifar_resnet18(width=8), optimizer="adamw", lr=3e-3, scheduler="none")
    opt = clf.configure_optimizers()
    clf.train()
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(clf(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    logits = clf.predict_logits(x, batch_size=5)
    assert logits.shape == (16, 10) and clf.training  # eval only inside, mode restored


def test_classifier_trains_with_lightning_trainer(data_dir, tmp_path):
    import lightning as L

    torch.manual_seed(0)
    x, y = real_batch(data_dir, 16)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    clf = ImageClassifier(width=4, lr=0.05, scheduler="onecycle")
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(clf, loader, loader)
    metrics = trainer.callback_metrics
    assert {"train_loss", "val_loss", "val_acc"} <= set(metrics)
    assert 0.0 <= float(metrics["val_acc"]) <= 1.0
    # the default model is rebuilt from the hyperparameters when a checkpoint is loaded
    trainer.save_checkpoint(tmp_path / "clf.ckpt")
    loaded = ImageClassifier.load_from_checkpoint(tmp_path / "clf.ckpt")
    torch.testing.assert_close(loaded.predict_logits(x), clf.predict_logits(x))


def test_classifier_bad_arguments():
    with pytest.raises(ValueError, match="optimizer"):
        ImageClassifier(cifar_resnet18(width=4), optimizer="adam")
    with pytest.raises(ValueError, match="scheduler"):
        ImageClassifier(cifar_resnet18(width=4), scheduler="step")


def test_resnet_blocks_let_shap_deepexplainer_run_with_additivity():
    import shap
    from torchvision.models import resnet18

    from simshap.evaluation.baselines import explain_baseline
    from simshap.models.resnet import cifar_resnet18

    torch.manual_seed(0)
    net = cifar_resnet18(10, 3, 4).eval()
    # the same parameters and state-dict keys as torchvision's ResNet-18
    assert {
        k: v.shape
        for k, v in net.state_dict().items()
        if "conv1" not in k and "fc" not in k and "layer" not in k
    }.keys() <= resnet18(weights=None).state_dict().keys()
    assert not any(getattr(m, "inplace", False) for m in net.modules())
    background, x = torch.randn(6, 3, 32, 32), torch.randn(2, 3, 32, 32)
    values = shap.DeepExplainer(net, background).shap_values(x, check_additivity=True)
    assert values.shape == (2, 3, 32, 32, 10)
    sv = explain_baseline("deepshap", net, x, None, background=background, superpixel_size=2)
    assert sv.method == "shap.DeepExplainer" and not sv.extras.get("fallback_reason")


def test_surrogate_warm_start_equals_the_classifier_on_the_masked_image():
    """`surrogate.init: classifier`: before training, s(x, m) = f(x * m) for every mask."""
    from simshap.models.mlp import MaskedInput
    from simshap.models.resnet import warm_start_from_classifier

    torch.manual_seed(0)
    classifier = cifar_resnet18(num_classes=10, width=8)
    for module in classifier.modules():  # non-trivial batch-norm statistics
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    surrogate = MaskedInput(cifar_resnet18(num_classes=10, in_channels=4, width=8))
    warm_start_from_classifier(surrogate.net, classifier)
    classifier.eval()
    surrogate.eval()
    x = torch.randn(3, 3, 32, 32)
    mask = torch.rand(3, 1, 32, 32) < 0.5
    with torch.no_grad():
        torch.testing.assert_close(surrogate(x, torch.ones_like(mask)), classifier(x))
        torch.testing.assert_close(surrogate(x, mask), classifier(x * mask))
    with pytest.raises(ValueError, match="width"):
        warm_start_from_classifier(cifar_resnet18(in_channels=4, width=16), classifier)


@pytest.mark.parametrize("superpixel_size,grid", [(1, 32), (2, 16), (4, 8), (8, 4)])
def test_resnet_explainer_output_on_superpixel_grid(superpixel_size, grid):
    """The ResNet-18 trunk is cut where its resolution is the superpixel grid; the zero head
    makes an untrained explainer output zeros; the spec rebuilds the same network."""
    from simshap.models import ResNetExplainerNet, build_explainer_net

    torch.manual_seed(0)
    net = ResNetExplainerNet(3, 10, width=4, superpixel_size=superpixel_size).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (2, grid * grid, 10) and not out.any()
        nn.init.normal_(net.head.weight)
        rebuilt = build_explainer_net(net.spec).eval()
        rebuilt.load_state_dict(net.state_dict())
        torch.testing.assert_close(rebuilt(x), net(x))
        assert net(x).abs().sum() > 0
    with pytest.raises(ValueError, match="superpixel_size in"):
        ResNetExplainerNet(superpixel_size=3)
    with pytest.raises(ValueError, match="expects images"):
        net(torch.randn(2, 3 * 32 * 32))


def test_resnet_explainer_trunk_starts_as_the_classifier():
    """`load_trunk` copies the classifier's stem and stages: the trunk's features are the
    classifier's own (with non-trivial batch-norm statistics); a wrong width is refused."""
    from simshap.models import ResNetExplainerNet

    torch.manual_seed(0)
    classifier = cifar_resnet18(num_classes=10, width=8)
    for module in classifier.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    classifier.eval()
    net = ResNetExplainerNet(3, 10, width=8, superpixel_size=4)
    net.load_trunk(classifier)
    net.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        c = classifier
        want = c.layer3(c.layer2(c.layer1(c.relu(c.bn1(c.conv1(x))))))
        torch.testing.assert_close(net.trunk(x), want)
    with pytest.raises(ValueError, match="width"):
        ResNetExplainerNet(3, 10, width=16, superpixel_size=4).load_trunk(classifier)
    with pytest.raises(ValueError, match="ResNet-18 classifier"):
        net.load_trunk(UNet(3, 10, base_width=4, depth=2))
