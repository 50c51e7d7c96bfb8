"""The causal explanation-vs-prediction study (Karimi et al.) on a model zoo trained here.

Layers: ``data`` (images) -> ``zoo`` (CNN, grid, training, chunked storage) -> ``explanations``
(captum saliency, Shapley values from the game layer, identity) -> ``effects`` (ITEs, MMD²,
buckets, correlations) -> ``study`` (end to end) -> ``plots`` / ``cli``.
"""
