"""The causal explanation-vs-prediction study (Karimi et al.) on a model zoo trained here.

Layers: ``data`` (images) -> ``zoo`` (CNN, grid, initializers) -> ``grouped`` / ``optim`` (many
models as one grouped network, per-model optimizers) -> ``trainer`` (batched training, and the
one-model reference) -> ``chunks`` (resumable storage, ``workers``) -> ``saliency`` /
``explanations`` (batched saliency checked against captum, Shapley values from the game layer,
identity) -> ``effects`` (ITEs, MMD², the paper's buckets, correlations) -> ``study`` (end to
end) -> ``plots`` / ``cli``. ``lightning_loop`` keeps the former one-model Lightning loop as the
throughput baseline.
"""
