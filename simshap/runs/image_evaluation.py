"""Evaluation of an image run: insertion / deletion of every explainer and baseline, cached.

The evaluation stage of :class:`simshap.runs.image.ImageRun`, kept in its own file: SimSHAP,
FastSHAP and the baselines explain the same test images; their attributions and inference
seconds are cached in the run folder's ``attributions/`` (keyed on the stage files, the
method's settings and the images), then scored with both normalizations and paired per-image
differences.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import torch

from simshap.amortized.io import load_explainer
from simshap.errors import UserError
from simshap.evaluation.baselines import BASELINES, explain_baseline
from simshap.evaluation.figures import attribution_grid, mean_curves
from simshap.evaluation.image_scores import METHOD_LABELS, paired_differences, score_attributions
from simshap.evaluation.report import environment, image_results_table
from simshap.evaluation.timing import seconds_per_instance, timed
from simshap.files import read_cache, torch_save_atomic
from simshap.fingerprint import fingerprint
from simshap.models.classifier import ImageClassifier
from simshap.models.speedups import apply_speedups
from simshap.runs.run import EXPLAINERS as _ALL_EXPLAINERS

__all__ = ["EXPLAINERS", "ImageEvaluation"]

#: the explainers an image run trains: the labels regression needs a fixed table of rows, and
#: images are augmented (and 256 superpixels make exact labels impossible)
EXPLAINERS = {k: v for k, v in _ALL_EXPLAINERS.items() if k != "labels"}


class ImageEvaluation:
    """The ``evaluate`` stage of an image run.

    A mix-in of :class:`~simshap.runs.image.ImageRun`, whose classifier, surrogate, data and
    run folder it uses.
    """

    def evaluate(self, overwrite: bool = False) -> dict[str, Any]:
        """Insertion / deletion AUCs (both normalizations) and inference seconds of every method.

        SimSHAP, FastSHAP and every baseline of ``evaluation.baselines`` explain the same first
        ``evaluation.n_images`` test images, for the classifier's predicted class. Attributions
        and their timings are cached in ``attributions/`` so an interrupted evaluation resumes;
        ``overwrite=True`` recomputes everything.
        """
        self._require("surrogate.pt", "surrogate", "fit-surrogate")
        for name in self.explainer_names:
            self._require(f"{name}.pt", name, "fit-explainer")
        self.begin("evaluate", overwrite)
        cache = self.path("attributions")
        if overwrite and cache.exists():
            shutil.rmtree(cache)
        cache.mkdir(parents=True, exist_ok=True)
        ev = self.config["evaluation"]
        unknown = set(ev["baselines"]) - set(BASELINES)
        if unknown:
            raise UserError(f"unknown baselines {sorted(unknown)}; choose from {sorted(BASELINES)}")
        x, labels = self.data.test_tensors(ev["n_images"])
        x = x.to(self.device)
        n = x.shape[0]
        classifier = self.classifier()
        net = classifier.model  # the plain ResNet: what captum / shap / the curves call
        with torch.no_grad():
            tgt = classifier.predict_logits(x).argmax(1)
        timings = self._timings()
        attrs: dict[str, dict[str, Any]] = {}
        for name in [*self.explainer_names, *ev["baselines"]]:
            attrs[name] = self._cached_attribution(name, x, tgt, classifier)
        methods: dict[str, dict[str, Any]] = {}
        curves: dict[str, dict[str, torch.Tensor]] = {}
        for name, a in attrs.items():
            row: dict[str, Any] = {
                "label": METHOD_LABELS.get(name, name),
                "used": a["used"],
                "fallback_reason": a["fallback_reason"],
            }
            scores, curves[name] = score_attributions(
                net,
                x,
                a["values"].to(self.device),
                tgt,
                self.superpixel_size,
                batch_size=ev["batch_size"],
                denominator_eps=ev["denominator_eps"],
            )
            row.update(scores)
            row["inference_s"] = a["seconds"]
            row["inference_s_per_image"] = a["seconds"] / n
            if name in EXPLAINERS:
                row["train_minutes"] = timings.get(f"{name}_train_s", float("nan")) / 60.0
            methods[name] = row

        results = {
            "dataset": self.config["dataset"],
            "device": environment()["device"],
            "n_images": n,
            "denominator_eps": ev["denominator_eps"],
            "target": "the classifier's predicted class",
            "classifier": {"test_accuracy_evaluated": float((tgt.cpu() == labels).float().mean())},
            "methods": methods,
            "training_minutes": {k.removesuffix("_train_s"): v / 60.0 for k, v in timings.items()},
            "paired": paired_differences(curves, list(EXPLAINERS), ["random", "ig", "fastshap"]),
            "environment": environment(),
        }
        torch_save_atomic(curves, self.path("curves.pt"))
        self.write("results.json", json.dumps(results, indent=2))
        self.write("results.md", image_results_table(results))
        images = self.data.denormalize(x).cpu()
        labels = [METHOD_LABELS.get(m, m) for m in attrs]
        class_names = getattr(self.data, "classes", None)
        k = int(self.config["evaluation"]["figure_images"])
        self.write(
            "figure3.png",
            lambda p: attribution_grid(
                images[:k],
                tgt[:k],
                {lab: a["values"] for lab, a in zip(labels, attrs.values(), strict=True)},
                class_names,
                p,
            ),
        )
        self.write(
            "curves.png",
            lambda p: mean_curves({METHOD_LABELS.get(m, m): c for m, c in curves.items()}, p),
        )
        self.commit(
            "evaluate",
            ["results.json", "results.md", "curves.pt", "figure3.png", "curves.png"],
            after=["model", "surrogate", *self.explainer_names],
        )
        return results

    def _cached_attribution(
        self, name: str, x: torch.Tensor, tgt: torch.Tensor, classifier: ImageClassifier
    ) -> dict[str, Any]:
        """Attributions ``(N, h, w)`` of one method and the seconds it took for all N images.

        The cache ``attributions/<name>.pt`` is keyed on the stage files that produced it (the
        classifier, the surrogate, the explainer), the method's settings and the explained
        images and targets; any change recomputes it.
        """
        path = self.path(f"attributions/{name}.pt")
        stages = ["classifier.pt", "surrogate.pt"] + ([f"{name}.pt"] if name in EXPLAINERS else [])
        key = fingerprint(
            [self.path(f).read_bytes() if self.path(f).exists() else b"" for f in stages],
            {"method": name, "options": self.config["evaluation"].get(name, {}), "seed": self.seed},
            x,
            tgt,
        )
        blob = read_cache(path)
        if blob.get("key") == key:
            return blob
        values, seconds, used, reason = self._attribute(name, x, tgt, classifier)
        blob = {
            "values": values.detach().float().cpu(),
            "seconds": float(seconds),
            "used": used,
            "fallback_reason": reason,
            "target": tgt.cpu(),
            "key": key,
        }
        torch_save_atomic(blob, path)
        return blob

    def _attribute(
        self, name: str, x: torch.Tensor, tgt: torch.Tensor, classifier: ImageClassifier
    ) -> tuple[torch.Tensor, float, str, str | None]:
        n = x.shape[0]
        rows = torch.arange(n, device=x.device)
        grid = (x.shape[-2] // self.superpixel_size, x.shape[-1] // self.superpixel_size)
        if name in EXPLAINERS:
            explainer = load_explainer(
                self._require(f"{name}.pt", name, "fit-explainer"), self.device
            )
            apply_speedups(explainer.net, self.device, self.channels_last)
            if explainer.surrogate is not None:
                apply_speedups(explainer.surrogate.net, self.device, self.channels_last)
            phi = explainer.explain(x)
            seconds = seconds_per_instance(lambda: explainer.explain(x), n) * n
            used = f"simshap.{type(explainer).__name__}"
            return phi[rows, :, tgt].view(n, *grid), seconds, used, None
        ev = self.config["evaluation"]
        opts = dict(ev.get(name, {}))
        model: Any = classifier.model
        if name == "kernelshap_s":
            model = self.surrogate()
            opts["output_transform"] = _softmax
        elif name == "deepshap":
            k = int(opts.pop("background_size"))
            opts["background"] = self.data.test_tensors(k, split="train")[0].to(x.device)
        torch.manual_seed(self.seed)
        sv, seconds = timed(
            lambda: explain_baseline(
                name, model, x, tgt, superpixel_size=self.superpixel_size, **opts
            )
        )
        return sv.as_image()[:, 0], seconds, sv.method, sv.extras.get("fallback_reason")


def _softmax(z: torch.Tensor) -> torch.Tensor:
    return z.float().softmax(-1)
