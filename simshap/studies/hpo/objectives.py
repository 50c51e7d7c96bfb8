"""Performance objectives for the HPI games: true learner evaluations and fitted surrogates.

:class:`LightGBMObjective` trains a LightGBM classifier per configuration and scores it on a
validation split (or by k-fold cross-validation); it is exact but costs one fit per row.
:class:`SurrogateObjective` fits a random forest or LightGBM regressor on evaluated
configurations (as HyperSHAP does with benchmark surrogates) and predicts millions of rows per
second, which is what the games' 10,000-candidate searches need.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simshap.studies.hpo.space import ConfigSpace

__all__ = ["LightGBMObjective", "SurrogateObjective", "score_predictions"]


def score_predictions(y: np.ndarray, proba: np.ndarray, metric: str) -> float:
    """Score class probabilities ``(N, K)``; higher is better for every metric.

    Metrics: "roc_auc" (one-vs-rest for K > 2), "accuracy" or "neg_log_loss".
    """
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    if metric == "roc_auc":
        if proba.shape[1] == 2:
            return float(roc_auc_score(y, proba[:, 1]))
        return float(roc_auc_score(y, proba, multi_class="ovr", labels=np.arange(proba.shape[1])))
    if metric == "accuracy":
        return float(accuracy_score(y, proba.argmax(1)))
    if metric == "neg_log_loss":
        return -float(log_loss(y, proba, labels=np.arange(proba.shape[1])))
    raise ValueError(f"unknown metric {metric!r}; use 'roc_auc', 'accuracy' or 'neg_log_loss'")


class LightGBMObjective:
    """Validation score of a LightGBM classifier trained with each configuration.

    Hyperparameter names are LightGBM's sklearn-API names (``learning_rate``, ``num_leaves``,
    ``min_child_samples``, ``subsample``, ``colsample_bytree``, ``reg_lambda``,
    ``n_estimators``, ...); ``subsample < 1`` turns on bagging every iteration.

    Args:
        space: configuration space.
        x_train: training features.
        y_train: training labels (integers 0..K-1).
        x_val: validation features (ignored when ``cv`` is set).
        y_val: validation labels.
        metric: see :func:`score_predictions`.
        cv: if set, the mean score of a stratified ``cv``-fold cross-validation on the training
            data instead of the validation split.
        seed: LightGBM's ``random_state`` (and the folds').
        n_jobs: LightGBM threads.
        fixed: extra LightGBM parameters applied to every fit.
    """

    def __init__(
        self,
        space: ConfigSpace,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        metric: str = "roc_auc",
        cv: int | None = None,
        seed: int = 0,
        n_jobs: int = 1,
        fixed: dict[str, Any] | None = None,
    ) -> None:
        if cv is None and (x_val is None or y_val is None):
            raise ValueError("give x_val and y_val, or cv=k for k-fold cross-validation")
        if cv is not None and cv < 2:
            raise ValueError(f"cv must be >= 2 folds, got {cv}")
        self.space = space
        self.x_train, self.y_train = np.asarray(x_train), np.asarray(y_train).astype(int)
        self.x_val = None if x_val is None else np.asarray(x_val)
        self.y_val = None if y_val is None else np.asarray(y_val).astype(int)
        self.n_classes = int(self.y_train.max()) + 1
        score_predictions(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), metric)
        self.metric, self.cv, self.seed, self.n_jobs = metric, cv, seed, n_jobs
        self.fixed = dict(fixed or {})
        self.n_fits = 0

    def params(self, row: np.ndarray) -> dict[str, Any]:
        """LightGBM parameters of one configuration row."""
        params = {"random_state": self.seed, "n_jobs": self.n_jobs, "verbose": -1}
        params.update(self.fixed)
        params.update(self.space.decode(row))
        if params.get("subsample", 1.0) < 1.0:
            params.setdefault("subsample_freq", 1)
        return params

    def _fit_score(self, params: dict, xt, yt, xv, yv) -> float:
        import lightgbm

        model = lightgbm.LGBMClassifier(**params)
        model.fit(xt, yt)
        self.n_fits += 1
        proba = model.predict_proba(xv)
        if proba.shape[1] < self.n_classes:  # a class absent from this fold
            full = np.zeros((proba.shape[0], self.n_classes))
            full[:, model.classes_] = proba
            proba = full
        return score_predictions(yv, proba, self.metric)

    def __call__(self, configs: np.ndarray) -> np.ndarray:
        """Scores ``(N,)`` of ``(N, d)`` configurations (one fit per row and fold)."""
        configs = np.atleast_2d(np.asarray(configs, dtype=np.float64))
        out = np.empty(configs.shape[0])
        for i, row in enumerate(configs):
            params = self.params(row)
            if self.cv is None:
                out[i] = self._fit_score(params, self.x_train, self.y_train, self.x_val, self.y_val)
            else:
                from sklearn.model_selection import StratifiedKFold

                folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.seed)
                out[i] = np.mean(
                    [
                        self._fit_score(
                            params,
                            self.x_train[a],
                            self.y_train[a],
                            self.x_train[b],
                            self.y_train[b],
                        )
                        for a, b in folds.split(self.x_train, self.y_train)
                    ]
                )
        return out


class SurrogateObjective:
    """A regressor of performance fitted on evaluated configurations.

    Args:
        space: configuration space (features are :meth:`ConfigSpace.to_unit` rows).
        configs: ``(N, d)`` evaluated configurations.
        scores: ``(N,)`` their performance.
        model: "random_forest" or "lightgbm".
        seed: the regressor's random state.
        n_jobs: threads for fitting and prediction.
    """

    def __init__(
        self,
        space: ConfigSpace,
        configs: np.ndarray,
        scores: np.ndarray,
        model: str = "random_forest",
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        configs = np.asarray(configs, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if configs.shape[0] != scores.shape[0] or configs.shape[0] < 5:
            raise ValueError(
                f"need at least 5 evaluated configurations with one score each, got "
                f"{configs.shape[0]} configurations and {scores.shape[0]} scores"
            )
        self.space = space
        self.model_name = model
        self.regressor = self._make(model, seed, n_jobs)
        self.regressor.fit(space.to_unit(configs), scores)
        self.configs, self.scores = configs, scores

    @staticmethod
    def _make(model: str, seed: int, n_jobs: int):
        if model == "random_forest":
            from sklearn.ensemble import RandomForestRegressor

            return RandomForestRegressor(
                n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=n_jobs
            )
        if model == "lightgbm":
            import lightgbm

            return lightgbm.LGBMRegressor(
                n_estimators=200,
                learning_rate=0.05,
                num_leaves=8,
                min_child_samples=3,
                random_state=seed,
                n_jobs=n_jobs,
                verbose=-1,
            )
        raise ValueError(f"unknown surrogate model {model!r}; use 'random_forest' or 'lightgbm'")

    def __call__(self, configs: np.ndarray) -> np.ndarray:
        """Predicted performance ``(N,)``."""
        return self.regressor.predict(self.space.to_unit(np.atleast_2d(configs)))

    def cv_r2(self, folds: int = 5, seed: int = 0) -> float:
        """Cross-validated R² of the surrogate on its training configurations."""
        from sklearn.base import clone
        from sklearn.model_selection import KFold, cross_val_score

        cv = KFold(min(folds, len(self.scores)), shuffle=True, random_state=seed)
        x = self.space.to_unit(self.configs)
        return float(np.mean(cross_val_score(clone(self.regressor), x, self.scores, cv=cv)))
