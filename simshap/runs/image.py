"""The image end-to-end job: ResNet-18 classifier, surrogate, SimSHAP / FastSHAP, evaluation.

The image counterpart of :class:`simshap.runs.tabular.TabularRun` (``simshap.runs.cli.make_run``
returns an :class:`ImageRun` for the data sets in ``simshap.runs.config.IMAGE_DATASETS``). Every
stage reads its inputs from and writes its outputs to one run folder, so the stages can run as
separate commands (``simshap fit-model`` ... ``simshap evaluate``) and resume where the last one
stopped; nothing is overwritten without ``overwrite=True`` (``--overwrite``).

Run folder::

    config.yaml                    the merged configuration
    classifier.pt                  the original ResNet-18 (hyperparameters + weights)
    surrogate.pt                   the 4-channel surrogate s(x, m)
    simshap.pt, fastshap.pt        the explainers (U-Net or ResNet-18; with their surrogate)
    timings.json                   training seconds per stage
    attributions/<method>.pt       cached attributions + inference seconds (evaluate resumes)
    results.json, results.md       Table 3 (insertion / deletion AUC) and the Table 4 row
    figure3.png, curves.png        explanations grid (images x methods), mean curves

GPU speed: ``trainer.precision: auto`` trains in bf16 autocast on a bf16-capable GPU; with
``trainer.channels_last`` the ResNets and the U-Net keep their weights in ``channels_last``
(cuDNN then runs every convolution in NHWC); ``surrogate.compile`` / ``explainer.compile`` wrap
the networks with ``torch.compile`` (state-dict keys unchanged); loaders pin memory on CUDA; the
training steps make no host syncs (the game runs with ``check_finite=False``). Several GPUs:
``trainer.devices: N`` and ``trainer.strategy: ddp`` (only rank 0 writes the run folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from simshap.amortized.base import AmortizedExplainer
from simshap.amortized.surrogate import Surrogate
from simshap.amortized.training import fit_module, is_rank_zero
from simshap.data.image_modules import CIFAR10DataModule, FashionMNISTDataModule, ImageDataModule
from simshap.errors import UserError
from simshap.evaluation.image_scores import METHOD_LABELS
from simshap.evaluation.report import image_results_table
from simshap.files import torch_save_atomic
from simshap.models.classifier import ImageClassifier
from simshap.models.resnet import warm_start_from_classifier
from simshap.models.speedups import apply_speedups
from simshap.runs.config import IMAGE_DATASETS
from simshap.runs.image_evaluation import EXPLAINERS, ImageEvaluation
from simshap.runs.run import Run

__all__ = [
    "EXPLAINERS",
    "METHOD_LABELS",
    "ImageRun",
]


class ImageRun(ImageEvaluation, Run):
    """One run folder of the image job (CIFAR-10, the CIFAR-10 subset or Fashion-MNIST).

    The image hooks of :class:`~simshap.runs.run.Run`: the ResNet-18 classifier, the 4-channel
    surrogate on k x k superpixels (``superpixel_size``, 2 by default), U-Net or ResNet-18
    explainers (``explainer.backbone``) and
    the insertion / deletion protocol.

    Args:
        out: the run folder.
        config: the merged configuration (``None``: read ``out/config.yaml``).
    """

    model_file = "classifier.pt"
    explainer_choices = EXPLAINERS
    modality = "image"

    def __init__(self, out: str | Path, config: dict[str, Any] | None = None) -> None:
        super().__init__(out, config, example_config="cifar10-subset")
        if self.config["dataset"] not in IMAGE_DATASETS:
            raise UserError(
                f"ImageRun handles {IMAGE_DATASETS}, got dataset {self.config['dataset']!r}"
            )
        k = self.config["superpixel_size"]
        if isinstance(k, bool) or not isinstance(k, int) or k not in (1, 2, 4, 8):
            raise UserError(
                f"superpixel_size must be 1, 2, 4 or 8 (a power of two dividing 32 "
                f"and at most 2**explainer.depth), got {k!r}"
            )
        self.superpixel_size = k
        self._dm: ImageDataModule | None = None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def table(results: dict[str, Any]) -> str:
        """Markdown Table 3 and Table 4 row of a results dict."""
        return image_results_table(results)

    @property
    def channels_last(self) -> bool:
        """Keep convolution weights (and so activations) in ``torch.channels_last``."""
        return bool(self.config["trainer"]["channels_last"])

    def datamodule(self, batch_size: int = 128, augment: bool = True) -> ImageDataModule:
        """The data set's DataModule (same seed and validation split for every stage)."""
        d = self.config["data"]
        common: dict[str, Any] = {
            "batch_size": batch_size,
            "num_workers": d["num_workers"],
            "val_size": d["val_size"],
            "seed": self.seed,
            "augment": augment,
        }
        if self.config["dataset"] == "fashion_mnist":
            return FashionMNISTDataModule(data_dir=self.config["data_dir"], **common)
        source = "subset" if self.config["dataset"] == "cifar10-subset" else d["source"]
        return CIFAR10DataModule(source=source, data_dir=self.config["data_dir"], **common)

    @property
    def data(self) -> ImageDataModule:
        """A DataModule for evaluation tensors (loaded once)."""
        if self._dm is None:
            self._dm = self.datamodule(augment=False)
            self._dm.setup()
        return self._dm

    def _loaders(self, batch_size: int, augment: bool) -> tuple[DataLoader, DataLoader]:
        """Training loader (optionally the first ``data.train_size`` images) and validation."""
        dm = self.datamodule(batch_size, augment)
        train = dm.train_dataloader()
        n = self.config["data"]["train_size"]
        if n is not None:
            ds = Subset(train.dataset, range(min(int(n), len(train.dataset))))
            train = DataLoader(
                ds,
                batch_size=batch_size,
                shuffle=True,
                drop_last=len(ds) > batch_size,
                num_workers=train.num_workers,
                pin_memory=torch.cuda.is_available(),
                generator=torch.Generator().manual_seed(self.seed),
                persistent_workers=train.num_workers > 0,
            )
        return train, dm.val_dataloader()

    # ------------------------------------------------------------------ original classifier
    def build_classifier(self) -> ImageClassifier:
        """A fresh (untrained) classifier from ``config["model"]``."""
        m = self.config["model"]
        return ImageClassifier(
            num_classes=self.data_num_classes,
            width=m["width"],
            optimizer=m["optimizer"],
            lr=m["lr"],
            weight_decay=m["weight_decay"],
            scheduler=m["scheduler"],
            label_smoothing=m["label_smoothing"],
            channels_last=self.channels_last and self.device.type == "cuda",
        )

    @property
    def data_num_classes(self) -> int:
        """Classes of the data set (10 for all three)."""
        return 10

    @property
    def in_channels(self) -> int:
        """Image channels: 3 (CIFAR-10) or 1 (Fashion-MNIST)."""
        return 1 if self.config["dataset"] == "fashion_mnist" else 3

    def fit_model(self, overwrite: bool = False) -> dict[str, float]:
        """Train the original ResNet-18 (augmented batches); returns its accuracy and time."""
        self.begin("model", overwrite)
        m = self.config["model"]
        torch.manual_seed(self.seed)
        module = self.build_classifier()
        train, val = self._loaders(m["batch_size"], self.config["data"]["augment"])
        fit = fit_module(
            module,
            train,
            val,
            monitor="val_loss",
            max_epochs=m["max_epochs"],
            patience=m["patience"],
            out_dir=self.logs("classifier", [], overwrite),
            resume=not overwrite,
            **self.trainer_kwargs(),
        )
        if not is_rank_zero():
            return {}
        torch_save_atomic(
            {
                "hparams": dict(module.hparams),
                "state_dict": {k: v.cpu() for k, v in module.state_dict().items()},
            },
            self.path("classifier.pt"),
        )
        self._record_time("model_train_s", fit.train_seconds)
        self.commit("model", ["classifier.pt"])
        return {
            "test_accuracy": self.classifier_accuracy(self.classifier()),
            "val_loss": fit.best_score,
            "train_s": fit.train_seconds,
            "epochs": fit.epochs,
        }

    def classifier(self) -> ImageClassifier:
        """The stored classifier, in eval mode on :attr:`device`."""
        blob = torch.load(
            self._require("classifier.pt", "model", "fit-model"),
            map_location="cpu",
            weights_only=True,
        )
        model = ImageClassifier(**blob["hparams"])
        model.load_state_dict(blob["state_dict"])
        return model.to(self.device).eval()

    def classifier_accuracy(self, classifier: ImageClassifier, n: int | None = None) -> float:
        """Test accuracy of the classifier (on the first ``n`` test images)."""
        x, y = self.data.test_tensors(n)
        pred = classifier.predict_logits(x.to(self.device), batch_size=1024).argmax(1).cpu()
        return float((pred == y).float().mean())

    # ------------------------------------------------------------------ surrogate
    def build_surrogate(self, original: nn.Module | None = None) -> Surrogate:
        """A fresh surrogate from ``config["surrogate"]`` (channels_last / compiled per config)."""
        s = self.config["surrogate"]
        module = Surrogate(
            {
                "kind": "resnet18",
                "in_channels": self.in_channels,
                "num_classes": self.data_num_classes,
                "width": s["width"],
            },
            {
                "kind": "superpixels",
                "image_size": [32, 32],
                "superpixel_size": self.superpixel_size,
            },
            original=original,
            lr=s["lr"],
            weight_decay=s["weight_decay"],
            masks_per_row=s["masks_per_row"],
            max_epochs_hint=s["max_epochs"],
            seed=self.seed,
        )
        self.speed_up(module.net, compile_net=s["compile"])
        return module

    def training_surrogate(self) -> Surrogate:
        """A fresh surrogate that distils the stored classifier on augmented batches.

        With ``surrogate.init: classifier`` it starts from the classifier's weights: the image
        channels of the first convolution are copied and the mask channel's weights start at
        zero, so before training the surrogate equals the classifier on the mean-imputed image
        ``x * m`` (features are standardized, so a masked pixel is the training mean).
        """
        classifier = self.classifier()
        surrogate = self.build_surrogate(original=classifier)
        init = self.config["surrogate"]["init"]
        if init == "classifier":
            try:
                warm_start_from_classifier(surrogate.net.net, classifier.model)
            except ValueError as err:
                raise UserError(str(err)) from None
        elif init != "random":
            raise UserError(f"surrogate.init must be 'random' or 'classifier', got {init!r}")
        return surrogate

    def surrogate_loaders(self) -> tuple[DataLoader, DataLoader]:
        """``(x, y)`` batches (augmented); the surrogate gets p from the classifier."""
        s = self.config["surrogate"]
        return self._loaders(s["batch_size"], self.config["data"]["augment"])

    def surrogate_report(self, surrogate: Surrogate) -> dict[str, float]:
        """Full-mask accuracy of the surrogate and its agreement with the classifier."""
        return self.surrogate_accuracy(surrogate, self.classifier())

    # ------------------------------------------------------------------ explainers
    def explainer_net_spec(self) -> dict[str, Any]:
        """The network from images to ``(C, 32 / k, 32 / k)`` superpixel attributions.

        ``explainer.backbone: unet`` is a U-Net (``base_width``, ``depth``); ``resnet18`` is the
        classifier's ResNet-18 trunk (at ``model.width``) cut at the superpixel grid, with a 1x1
        head (:class:`~simshap.models.ResNetExplainerNet`).
        """
        e = self.config["explainer"]
        if e["backbone"] == "resnet18":
            return {
                "kind": "resnet18",
                "in_channels": self.in_channels,
                "num_classes": self.data_num_classes,
                "width": self.config["model"]["width"],
                "superpixel_size": self.superpixel_size,
            }
        if e["backbone"] != "unet":
            raise UserError(
                f"explainer.backbone must be 'unet' or 'resnet18', got {e['backbone']!r}"
            )
        return {
            "kind": "unet",
            "in_channels": self.in_channels,
            "num_classes": self.data_num_classes,
            "base_width": e["base_width"],
            "depth": e["depth"],
            "superpixel_size": self.superpixel_size,
        }

    def build_explainer(self, name: str, surrogate: Surrogate) -> AmortizedExplainer:
        """A fresh explainer; with ``explainer.init: classifier`` its trunk is the classifier's.

        The classifier sees the same unmasked images as the explainer, so its features (where
        the object is) are a warm start, as FastSHAP's pretrained image backbone is.
        """
        init = self.config["explainer"]["init"]
        if init not in ("random", "classifier"):
            raise UserError(f"explainer.init must be 'random' or 'classifier', got {init!r}")
        self.explainer_net_spec()  # checks explainer.backbone
        if init == "classifier" and self.config["explainer"]["backbone"] != "resnet18":
            raise UserError(
                "explainer.init: classifier needs explainer.backbone: resnet18 (the "
                "U-Net has no classifier to start from)"
            )
        module = super().build_explainer(name, surrogate)
        if init == "classifier":
            try:
                module.net.load_trunk(self.classifier().model)
            except ValueError as err:
                raise UserError(str(err)) from None
        return module

    def explainer_loaders(self) -> tuple[DataLoader, DataLoader]:
        """Training images (augmented per config) and the first validation images."""
        e = self.config["explainer"]
        train, _ = self._loaders(e["batch_size"], e["augment"])
        x_val, _ = self.data.test_tensors(e["val_instances"], split="val")
        return train, DataLoader(TensorDataset(x_val), batch_size=max(1, len(x_val)))

    def speed_up(self, net: nn.Module, compile_net: bool) -> None:
        """Channels-last weights and, optionally, ``torch.compile``: on CUDA only (in place).

        For the surrogate's ``MaskedInput`` the inner ResNet is compiled (the masking stays
        eager), so the compiled network is the same in training, the game and the benchmark.
        On the CPU both are skipped with a one-line log (see :mod:`simshap.models.speedups`).
        """
        apply_speedups(net, self.device, self.channels_last, compile_net)

    def surrogate_accuracy(
        self, surrogate: Surrogate, classifier: ImageClassifier, n: int = 1000
    ) -> dict[str, float]:
        """Full-mask test accuracy of the surrogate and its agreement with the classifier."""
        x, y = self.data.test_tensors(n)
        x, y = x.to(self.device), y.to(self.device)
        full = torch.ones(x.shape[0], 1, *x.shape[-2:], dtype=torch.bool, device=self.device)
        pred = torch.cat(
            [
                surrogate.value(x[i : i + 512], full[i : i + 512]).argmax(1)
                for i in range(0, len(x), 512)
            ]
        )
        orig = classifier.predict_logits(x).argmax(1)
        return {
            "surrogate_full_mask_accuracy": float((pred == y).float().mean()),
            "surrogate_agreement": float((pred == orig).float().mean()),
            "original_accuracy": float((orig == y).float().mean()),
        }
