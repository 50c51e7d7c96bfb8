"""The user's model, wrapped for an explainer as it was when the explainer was trained."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simshap.errors import UserError
from simshap.models.adapter import ModelAdapter

__all__ = ["adapter_for"]


def adapter_for(explainer: Any, model: Any) -> Any:
    """The user's model wrapped as it was when ``explainer`` was trained (from its file).

    Args:
        explainer: a tabular amortized explainer (its preprocessing and background rows).
        model: the user's model, or a :class:`ModelAdapter` (returned as it is).

    Raises:
        UserError: an explainer without rows to check the model on.
    """
    if isinstance(model, ModelAdapter):
        return model
    info = dict(explainer.hparams.get("model_info") or {})
    prep = explainer.preprocessor
    background = explainer.hparams.get("background")
    if prep is None or not background:
        raise UserError(
            "this explainer holds no rows to check the model on (an image "
            "explainer, or a file of an earlier release)"
        )
    rows: Any = np.array(background, dtype=object)
    dtypes = info.get("frame_dtypes")
    if dtypes:
        frame = pd.DataFrame(rows, columns=prep.feature_names)
        for name, dtype in dtypes.items():
            try:
                frame[name] = frame[name].astype(dtype)
            except (TypeError, ValueError):
                frame[name] = frame[name].infer_objects()
        rows = frame
    else:
        rows = rows.astype(np.float64) if not prep.categories else rows
    return ModelAdapter(
        model,
        rows,
        task=info.get("task", "auto"),
        output=info.get("output", "auto"),
        link=info.get("link", "identity"),
        class_names=explainer.hparams.get("class_names"),
    )
