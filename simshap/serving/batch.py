"""Explaining batches of raw rows with one loaded explainer: the server's, Spark's and Ray's engine.

:class:`Runtime` runs a loaded explainer on checked rows: ONNX Runtime on its exported graph
(one thread per session, the CPU default), or the PyTorch module (on a GPU, or for tests that
swap in another attribution function). :class:`BatchExplainer` turns a pandas batch of raw rows
into a pandas batch of values, ``base_value`` and ``prediction`` columns (the values add up:
base + Σφ = prediction), checking the rows with the explainer's own preprocessing exactly as the
server does: unknown or missing columns, missing values where training had none, non-finite or
float32-overflowing values and (with ``unseen_categories: error``) new categories are a clear
:class:`~simshap.errors.UserError`, or with ``on_error="column"`` a per-row message in an
``error`` column (and NaN values).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from simshap.errors import UserError

__all__ = ["BatchExplainer", "Runtime", "output_columns"]

RUNTIMES = ("onnx", "torch")


class Runtime:
    """A loaded explainer run on checked rows: ONNX Runtime, or the PyTorch module.

    Args:
        explainer: a loaded tabular explainer (a model's game needs its model attached).
        runtime: ``"onnx"`` or ``"torch"``.
        device: the torch device (``"cuda"`` runs the module there).
        attributions: ``(explainer, x) -> (B, d, C)`` of network inputs instead of the
            explainer's own pass (implies ``runtime="torch"``).
    """

    def __init__(
        self,
        explainer: Any,
        runtime: str = "onnx",
        device: str = "cpu",
        attributions: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise UserError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        if explainer.preprocessor is None:
            raise UserError(
                "this explainer holds no preprocessing: serve or explain a tabular explainer "
                "trained by `simshap run` or simshap.fit"
            )
        if explainer.game_name != "surrogate" and explainer.model is None:
            raise UserError(
                f"this explainer explains the {explainer.game_name} game of a model, whose "
                "output its values add up to: pass the model file (--model-file, model_file=)"
            )
        self.explainer = explainer.to(device).eval()
        self.device = torch.device(device)
        self.attributions = attributions
        self.runtime = "torch" if attributions is not None else runtime
        self.session = self._onnx_session(explainer) if self.runtime == "onnx" else None

    @staticmethod
    def _onnx_session(explainer: Any) -> Any:
        """An ONNX Runtime session (one thread) on the explainer's exported graph."""
        import onnxruntime as ort

        from simshap.amortized.export import export_explainer

        with tempfile.TemporaryDirectory() as tmp:
            path = export_explainer(explainer.cpu(), Path(tmp) / "explainer.onnx")
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            return ort.InferenceSession(
                path.read_bytes(), options, providers=["CPUExecutionProvider"]
            )

    def __call__(
        self, raw: np.ndarray | None, encoded: np.ndarray, x: np.ndarray
    ) -> tuple[Any, Any]:
        """Values ``(B, d, C)`` and prediction ``(B, C)`` of checked rows (raw, encoded, inputs)."""
        e = self.explainer
        v_full = None
        if e.game_name != "surrogate":  # v(N) = f(x): the model's own output on the rows
            v_full = torch.from_numpy(e.model.on_array(raw)).double()
        if self.session is not None:
            feed = {"rows": encoded.astype(np.float32)}
            if v_full is not None:
                feed["prediction"] = v_full.numpy()
            values, prediction = self.session.run(None, feed)
            return torch.from_numpy(values), torch.from_numpy(prediction)
        inputs = torch.from_numpy(x).to(self.device)
        with torch.inference_mode():
            if self.attributions is not None:
                values = self.attributions(e, inputs)
                return values.cpu(), (values.sum(1) + e.base_value).cpu()
            if v_full is None:
                v_full = e.source.v_full(inputs)
            values = e.efficient(e.raw_attributions(inputs), v_full.to(inputs.device))
        return values.cpu(), v_full.double().cpu()


def output_columns(explainer: Any, target: int | None, passthrough: list[str]) -> list[str]:
    """The columns :class:`BatchExplainer` writes, in order."""
    names = explainer.preprocessor.feature_names
    classes = class_names(explainer)
    # one output (a regressor, or one class kept): plain names; else one column per class
    suffixes = [""] if target is not None or len(classes) == 1 else [f"__{c}" for c in classes]
    out = list(passthrough) + [f + s for f in names for s in suffixes]
    extra = ["base_value", "prediction"]
    if explainer.game_name == "surrogate" and explainer.model is not None:
        extra.append("model_output")
    return out + [f"{name}{s}" for name in extra for s in suffixes]


def class_names(explainer: Any) -> list[str]:
    """The explainer's output names."""
    c = explainer.net.spec["num_classes"]
    return list(explainer.hparams.get("class_names") or [str(i) for i in range(c)])


def target_index(target: int | str | None, classes: list[str]) -> int | None:
    """A class index from a name or an index (``None``: every class)."""
    if target is None:
        return None
    if isinstance(target, str) and target in classes:
        return classes.index(target)
    try:
        index = int(target)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < len(classes):
        raise UserError(
            f"target must be a class name {classes} or an index 0..{len(classes) - 1}, got "
            f"{target!r}"
        )
    return index


class BatchExplainer:
    """Raw rows (a pandas batch) -> a pandas batch of values, base values and predictions.

    Args:
        explainer: a loaded tabular explainer (see :class:`Runtime`).
        target: keep one class (name or index); ``None`` keeps every class.
        passthrough: columns of the input copied to the output as they are (ids...).
        on_error: ``"raise"`` (a bad row stops the batch with a clear error) or ``"column"``
            (an ``error`` column says what is wrong with each bad row; its values are NaN).
        runtime: ``"onnx"`` or ``"torch"``.
        device: the torch device.
    """

    def __init__(
        self,
        explainer: Any,
        target: int | str | None = None,
        passthrough: list[str] | None = None,
        on_error: str = "raise",
        runtime: str = "onnx",
        device: str = "cpu",
    ) -> None:
        if on_error not in ("raise", "column"):
            raise UserError(f"on_error must be 'raise' or 'column', got {on_error!r}")
        self.run = Runtime(explainer, runtime, device)
        self.explainer = explainer
        self.prep = explainer.preprocessor
        self.target = target_index(target, class_names(explainer))
        self.passthrough = list(passthrough or [])
        self.on_error = on_error
        self.columns = output_columns(explainer, self.target, self.passthrough)
        if on_error == "column":
            self.columns.append("error")

    @classmethod
    def from_bytes(cls, blob: bytes, model: Any = None, **options: Any) -> BatchExplainer:
        """From an explainer file's bytes (what a Ray or Spark worker receives)."""
        from simshap.amortized.io import load_explainer

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "explainer.pt"
            path.write_bytes(blob)
            explainer = load_explainer(path, model=model)
        return cls(explainer, **options)

    def _checked(self, frame: pd.DataFrame, first_row: int = 0) -> tuple[np.ndarray, ...]:
        features = frame.drop(columns=self.passthrough)
        encoded = self.prep.encode(features)
        x = self.prep.network_inputs(encoded, first_row)
        # raw rows only go to the user's model (its game, or its own prediction beside the values)
        raw = self.prep.raw_array(features) if self.explainer.model is not None else None
        return raw, encoded, x

    def _row_errors(self, frame: pd.DataFrame) -> list[str | None]:
        errors: list[str | None] = []
        for i in range(len(frame)):
            try:
                self._checked(frame.iloc[i : i + 1])
                errors.append(None)
            except UserError as err:
                errors.append(str(err).replace("row 0, ", ""))
        return errors

    def __call__(self, frame: pd.DataFrame, first_row: int = 0) -> pd.DataFrame:
        """Explain a batch; the output has :attr:`columns`, one row per input row.

        Args:
            frame: the rows, with the feature and pass-through columns.
            first_row: the index of the batch's first row in the whole input (errors name rows
                by it).
        """
        unknown = [c for c in self.passthrough if c not in frame.columns]
        if unknown:
            raise UserError(f"the pass-through columns {unknown} are not in the rows")
        frame = frame.reset_index(drop=True)
        errors: list[str | None] = [None] * len(frame)
        try:
            checked = self._checked(frame, first_row)
            ok = np.ones(len(frame), dtype=bool)
        except UserError:
            if self.on_error == "raise":
                raise
            errors = self._row_errors(frame)
            ok = np.array([e is None for e in errors], dtype=bool)
            checked = self._checked(frame[ok]) if ok.any() else None
        out: dict[str, Any] = {c: frame[c].to_numpy() for c in self.passthrough}
        n, width = len(frame), len(self.columns) - len(self.passthrough)
        numbers = np.full((n, width - (self.on_error == "column")), np.nan)
        if checked is not None:
            numbers[ok] = self._numbers(checked)
        names = [c for c in self.columns[len(self.passthrough) :] if c != "error"]
        out.update({c: numbers[:, j] for j, c in enumerate(names)})
        if self.on_error == "column":
            out["error"] = errors
        return pd.DataFrame(out, columns=self.columns)

    def _numbers(self, checked: tuple[np.ndarray, ...]) -> np.ndarray:
        """The numeric output columns ``(n, width)`` of checked rows."""
        values, prediction = self.run(*checked)
        pick = (
            (lambda t: t[..., self.target : self.target + 1])
            if self.target is not None
            else (lambda t: t)
        )
        base = pick(self.explainer.base_value.cpu().expand_as(prediction))
        values, prediction = pick(values), pick(prediction)
        parts = [values.reshape(len(values), -1), base, prediction]
        if self.explainer.game_name == "surrogate" and self.explainer.model is not None:
            own = torch.from_numpy(self.explainer.model.on_array(checked[0])).float()
            parts.append(pick(own))
        return torch.cat([p.double() for p in parts], dim=1).numpy()


def explainer_bytes(path: str | Path) -> bytes:
    """An explainer file's bytes, checked to load (so a bad file fails before any worker)."""
    from simshap.amortized.io import load_explainer

    path = Path(path)
    load_explainer(path)
    return path.read_bytes()
