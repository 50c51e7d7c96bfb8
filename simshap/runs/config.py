"""Run configuration: typed sections with their defaults in one place, validated before any work.

A run's config is YAML merged over the defaults of its data set (:data:`TABULAR_DEFAULTS` or
:data:`IMAGE_DEFAULTS`, both produced by the pydantic models below), then validated: an unknown
key, a value of the wrong type (``seed: abc``) or out of range (``surrogate.max_epochs: -1``,
``evaluation.n_instances: 0``) is a one-line :class:`~simshap.errors.UserError` naming the key,
before anything is trained. ``simshap.fit`` takes the same tabular keys with the same defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simshap.errors import UserError

__all__ = [
    "IMAGE_DATASETS",
    "IMAGE_DEFAULTS",
    "TABULAR_DEFAULTS",
    "ImageConfig",
    "TabularConfig",
    "defaults_for",
    "validate_config",
]


IMAGE_DATASETS = ("cifar10", "cifar10-subset", "fashion_mnist")
EXPLAINER_NAMES = Literal["simshap", "simshap_paper", "fastshap", "labels"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TrainerSection(_Section):
    """Lightning settings of every training stage."""

    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = Field(default=1, gt=0)
    strategy: str = "auto"
    precision: str | int = "32-true"
    progress_bar: bool = True
    max_time: str | None = None


class UserTable(_Section):
    """A user's CSV / Parquet table with its target column."""

    path: str
    target: str
    na_values: list[str] = []  # strings read as missing (e.g. ["?"] for the raw UCI files)
    ignore: list[str] = []  # columns kept out of the features (ids...)


class DataSection(_Section):
    """How the table's values are read: missing values and categories."""

    allow_missing: bool = False  # NaN accepted in every column (not only those that had some)
    unseen_categories: Literal["other", "error"] = "other"


class TabularModelSection(_Section):
    """The original model: trained here (LightGBM), or the user's (``path``)."""

    path: str | None = None
    max_rounds: int = Field(default=5000, gt=0)
    early_stopping_rounds: int = Field(default=50, gt=0)
    output: Literal["auto", "probability", "logit", "raw"] = "auto"
    link: Literal["identity", "logit"] = "identity"


class TabularSurrogateSection(_Section):
    """The MLP surrogate s(x, m)."""

    hidden: int | None = Field(default=None, gt=0)  # None: the profile's
    layers: int | None = Field(default=None, gt=0)  # None: the profile's
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float | None = Field(default=None, ge=0)  # None: the profile's
    cosine: bool = False
    batch_size: int | None = Field(default=None, gt=0)  # None: the profile's
    masks_per_row: int | None = Field(default=None, gt=0)  # None: the profile's
    max_epochs: int | None = Field(default=None, gt=0)  # None: the profile's
    patience: int | None = Field(default=None, gt=0)  # None: the profile's
    compile: bool = False


class TabularExplainerSection(_Section):
    """The amortized explainers (every option applies to each method)."""

    methods: list[EXPLAINER_NAMES] = ["simshap", "simshap_paper", "fastshap"]
    hidden: int | None = Field(default=None, gt=0)  # None: the profile's
    layers: int | None = Field(default=None, gt=0)  # None: the profile's
    n_masks: int | None = Field(default=None, gt=0)  # None: the profile's
    paired: bool = True
    centered: bool = True
    target: Literal["default", "paper"] = "default"
    # SimSHAP (default target): regress on each row's mean target over the epochs so far;
    # null: on unless input_noise > 0 (a row's noisy copies are different inputs)
    average_targets: bool | None = None
    # SimSHAP (averaging targets): epochs after the max_epochs sampling epochs that fit g to the
    # mean targets with no surrogate call (0: none)
    memory_epochs: int = Field(default=0, ge=0)
    # FastSHAP and SimSHAP's default target: the loss sees g(x) made efficient, as served
    normalize: bool = True
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float | None = Field(default=None, ge=0)  # None: the profile's
    cosine: bool = True
    label_budget: int | None = Field(default=None, ge=2)  # 'labels': evaluations per row (2048)
    label_rows: int | None = Field(default=None, ge=1)  # 'labels': rows to label (all)
    label_epochs: int | None = Field(default=None, ge=1)  # 'labels': epochs (max_epochs)
    label_engine: Literal["local", "ray"] = "local"  # 'labels': where row chunks run
    batch_size: int | None = Field(default=None, gt=0)  # None: the profile's
    surrogate_batch_size: int | None = Field(default=None, ge=1)
    compile: bool = False
    max_epochs: int | None = Field(default=None, gt=0)  # None: the profile's
    patience: int | None = Field(default=None, gt=0)  # None: the profile's
    val_instances: int | None = Field(default=None, gt=0)  # None: the profile's
    val_budget: int | None = Field(default=None, ge=2)  # None: the profile's
    efficiency_lambda: float = Field(default=0.0, ge=0)
    input_noise: float | None = Field(default=None, ge=0)  # None: the profile's
    # thermometer inputs x_j > c at up to input_bins - 1 cut points per feature (0: none);
    # None: the game's profile (128 for the marginal game), else 0
    input_bins: int | None = Field(default=None, ge=0)

    @field_validator("input_bins")
    @classmethod
    def _bins(cls, v: int | None) -> int | None:
        if v == 1:
            raise ValueError("input_bins is 0 (off) or at least 2 intervals per feature")
        return v


class TabularEvaluationSection(_Section):
    """Ground truth and the results table."""

    n_instances: int = Field(default=100, gt=0)
    # auto: exact Shapley values when d <= 16, else KernelSHAP until Covert & Lee's per-class
    # criterion < threshold; or exact / kernel_shap
    ground_truth: Literal["auto", "exact", "kernel_shap"] = "auto"
    threshold: float = Field(default=0.01, gt=0)
    # where the ground truth's row chunks run: this process, or Ray tasks (bitwise equal)
    engine: Literal["local", "ray"] = "local"
    budgets: list[int] = [128, 256, 512, 1024, 2048]
    # the ground truth's estimated minutes above which the run is refused before training
    max_minutes: float = Field(default=120.0, gt=0)


class TabularConfig(_Section):
    """A tabular run (``simshap run``) and the one call ``simshap.fit``.

    Sizes and schedules left at ``None`` come from the profile: ``small`` for tables of at most
    :data:`~simshap.runs.profiles.SMALL_TABLE_ROWS` training rows, else ``large``
    (``profile: auto``, see :data:`~simshap.runs.profiles.PROFILES`).
    """

    profile: Literal["auto", "small", "large"] = "auto"
    dataset: str | UserTable | None = None
    data_dir: str | None = None
    seed: int = Field(default=0, ge=0)
    task: Literal["auto", "classification", "regression"] = "auto"
    # what is explained: the surrogate's game (the papers'), or the model's own marginal
    # (interventional, shap.KernelExplainer's) or baseline game
    game: Literal["surrogate", "marginal", "baseline"] = "surrogate"
    background_size: int = Field(default=100, gt=0)  # background rows of the marginal game
    data: DataSection = DataSection()
    model: TabularModelSection = TabularModelSection()
    surrogate: TabularSurrogateSection = TabularSurrogateSection()
    explainer: TabularExplainerSection = TabularExplainerSection()
    evaluation: TabularEvaluationSection = TabularEvaluationSection()
    trainer: TrainerSection = TrainerSection()


# Image runs: GPU-sized defaults (docs/images.md describes every section).


class ImageDataSection(_Section):
    """Where the images come from."""

    source: Literal["auto", "torchvision", "subset"] = "auto"
    val_size: float | int = Field(default=0.1, gt=0)  # a share (< 1) or a count of images
    train_size: int | None = Field(default=None, ge=1)
    num_workers: int = Field(default=4, ge=0)
    augment: bool = True


class ImageModelSection(_Section):
    """The original ResNet-18 classifier."""

    width: int = 64
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(default=0.1, gt=0)
    weight_decay: float = Field(default=5e-4, ge=0)
    scheduler: Literal["onecycle", "cosine", "none"] = "onecycle"
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    batch_size: int = Field(default=256, gt=0)
    max_epochs: int = Field(default=40, gt=0)
    patience: int = Field(default=10, gt=0)


class ImageSurrogateSection(_Section):
    """The masked-input ResNet-18 surrogate."""

    width: int = 64
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=256, gt=0)
    masks_per_row: int = Field(default=1, gt=0)
    max_epochs: int = Field(default=40, gt=0)
    patience: int = Field(default=8, gt=0)
    compile: bool = False
    init: Literal["random", "classifier"] = "random"


class ImageExplainerSection(_Section):
    """The image explainers (U-Net or the classifier's trunk)."""

    methods: list[EXPLAINER_NAMES] = ["simshap", "simshap_paper", "fastshap"]
    backbone: Literal["unet", "resnet18"] = "unet"
    init: Literal["random", "classifier"] = "random"
    base_width: int = Field(default=64, gt=0)
    depth: int = Field(default=3, gt=0)
    n_masks: int = Field(default=8, gt=0)
    paired: bool = True
    centered: bool = True
    target: Literal["default", "paper"] = "default"
    normalize: bool = True  # as for tables: the loss sees g(x) made efficient
    efficiency_lambda: float = Field(default=0.1, ge=0)
    lr: float = Field(default=2e-4, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    cosine: bool = True
    batch_size: int = Field(default=128, gt=0)
    augment: bool = True
    max_epochs: int = Field(default=40, gt=0)
    patience: int = Field(default=8, gt=0)
    val_instances: int = Field(default=64, gt=0)
    val_budget: int = Field(default=1024, ge=2)
    surrogate_batch_size: int | None = Field(default=None, ge=1)
    compile: bool = False


class ImageEvaluationSection(_Section):
    """Insertion / deletion and the baselines of the image table."""

    n_images: int = Field(default=100, gt=0)
    batch_size: int = Field(default=1024, gt=0)
    # paper normalization: images with f_x - f_blur or f_x - f_0 below this many logits are
    # counted and reported apart (their normalized AUCs explode or flip sign)
    denominator_eps: float = Field(default=0.5, ge=0)
    figure_images: int = Field(default=6, ge=0)
    baselines: list[str] = [
        "random",
        "ig",
        "smoothgrad",
        "gradcam",
        "kernelshap",
        "kernelshap_s",
        "deepshap",
    ]
    # budget: model passes per image (gradient methods) or game evaluations per image
    # (KernelSHAP, ∅ and N included; kernelshap's None = shap's default 2d + 2048)
    ig: dict[str, Any] = {"budget": 64, "internal_batch_size": 256}
    smoothgrad: dict[str, Any] = {"budget": 32, "stdev": 0.15, "samples_batch_size": 8}
    gradcam: dict[str, Any] = {"relu_attributions": False}
    kernelshap: dict[str, Any] = {"budget": None, "batch_size": 1024}
    kernelshap_s: dict[str, Any] = {"budget": 2562, "batch_size": 4096}
    deepshap: dict[str, Any] = {"explainer": "auto", "budget": 200, "background_size": 32}


class ImageTrainerSection(TrainerSection):
    """Lightning settings of the image stages (bf16 on a capable GPU by default)."""

    precision: str | int = "auto"
    channels_last: bool = True


class ImageConfig(_Section):
    """An image run."""

    dataset: str | None = None
    data_dir: str | None = None
    seed: int = Field(default=0, ge=0)
    superpixel_size: Literal[1, 2, 4, 8] = 2  # a power of two dividing 32, at most 2**depth

    @field_validator("superpixel_size", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # True == 1 would pass the literal check
            raise ValueError("Input should be 1, 2, 4 or 8")
        return value

    data: ImageDataSection = ImageDataSection()
    model: ImageModelSection = ImageModelSection()
    surrogate: ImageSurrogateSection = ImageSurrogateSection()
    explainer: ImageExplainerSection = ImageExplainerSection()
    evaluation: ImageEvaluationSection = ImageEvaluationSection()
    trainer: ImageTrainerSection = ImageTrainerSection()


TABULAR_DEFAULTS: dict[str, Any] = TabularConfig().model_dump()
IMAGE_DEFAULTS: dict[str, Any] = ImageConfig().model_dump()
# a mapping given as the dataset is a user table: its keys replace the default (None) wholesale
TABULAR_DEFAULTS["dataset"] = None


def defaults_for(dataset: Any) -> dict[str, Any]:
    """The defaults that apply to a data set (image or tabular)."""
    return IMAGE_DEFAULTS if dataset in IMAGE_DATASETS else TABULAR_DEFAULTS


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    types = ("str", "int", "float", "bool", "none", "list", "dict")
    where = ".".join(
        str(p) for p in e["loc"] if not (isinstance(p, str) and (p[:1].isupper() or p in types))
    )
    value = e.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    msg = e["msg"].replace("Value error, ", "").replace("Input should be", "should be")
    if e["type"] == "extra_forbidden":
        return f"unknown config key {where!r}"
    return f"config key {where!r} {msg[0].lower() + msg[1:]} (got {shown})"


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check every value of a merged config; returns it as plain data (defaults filled in).

    Raises:
        UserError: one line naming the first bad key and what it should be.
    """
    model = ImageConfig if cfg.get("dataset") in IMAGE_DATASETS else TabularConfig
    try:
        checked = model.model_validate(cfg)
    except ValidationError as err:
        raise UserError(_first_error(err)) from None
    out = checked.model_dump()
    if isinstance(cfg.get("dataset"), dict):
        out["dataset"] = {k: v for k, v in out["dataset"].items()}
    return out
