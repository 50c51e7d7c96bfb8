"""Named tabular data sets: breast_cancer (embedded), census, news and bankruptcy (UCI files).

Each UCI data set is read from its official file in a local folder, resolved as: the
``data_dir=`` argument, else the ``SIMSHAP_DATA`` environment variable, else
``~/.cache/simshap``. When the file is absent it is downloaded from its official UCI address if
the machine is online (short timeout); otherwise a :class:`~simshap.errors.MissingFileError`
names the file, the folder searched and where to get it.

:func:`load_raw` returns the features as a ``pandas.DataFrame`` (categoricals as integer codes)
and the labels.
"""

from __future__ import annotations

import io
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simshap.errors import MissingFileError, UserError
from simshap.files import atomic_write

__all__ = [
    "CENSUS_CATEGORICAL",
    "REGRESSION_DATASETS",
    "TABULAR_DATASETS",
    "data_file",
    "load_raw",
    "resolve_data_dir",
]

DOWNLOAD_TIMEOUT_S = 10.0

CENSUS_COLUMNS = [
    "Age",
    "Workclass",
    "fnlwgt",
    "Education",
    "Education-Num",
    "Marital Status",
    "Occupation",
    "Relationship",
    "Race",
    "Sex",
    "Capital Gain",
    "Capital Loss",
    "Hours per week",
    "Country",
    "Income",
]
CENSUS_CATEGORICAL = [
    "Workclass",
    "Marital Status",
    "Occupation",
    "Relationship",
    "Race",
    "Sex",
    "Country",
]


@dataclass(frozen=True)
class _Source:
    """Where a UCI data set's file comes from."""

    filenames: tuple[str, ...]  # accepted local names, preferred first
    url: str  # official address
    member: str | None = None  # file inside the zip at ``url`` (None: ``url`` is the file)


_SOURCES: dict[str, _Source] = {
    "census": _Source(
        ("adult.data",),
        "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.data",
    ),
    "news": _Source(
        ("OnlineNewsPopularity.csv", "OnlineNewsPopularity-head.csv"),
        "https://archive.ics.uci.edu/static/public/332/online+news+popularity.zip",
        member="OnlineNewsPopularity.csv",
    ),
    "bankruptcy": _Source(
        ("data.csv",),
        "https://archive.ics.uci.edu/static/public/572/taiwanese+bankruptcy+prediction.zip",
        member="data.csv",
    ),
}

TABULAR_DATASETS: tuple[str, ...] = (
    "breast_cancer",
    "wine",
    "digits",
    "diabetes",
    "census",
    "news",
    "bankruptcy",
)
#: the named data sets whose target is a number (the others are classifications)
REGRESSION_DATASETS: tuple[str, ...] = ("diabetes",)


# --------------------------------------------------------------------------- files


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder data files are read from (and downloaded to).

    Args:
        data_dir: explicit folder; takes precedence.

    Returns:
        ``data_dir`` if given, else ``$SIMSHAP_DATA`` if set, else ``~/.cache/simshap``.

    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("SIMSHAP_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "simshap"


def _download(source: _Source, folder: Path, timeout: float) -> Path:
    """Fetch ``source`` into ``folder``; raise ``OSError`` on any network failure."""
    with urllib.request.urlopen(source.url, timeout=timeout) as response:
        payload = response.read()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.filenames[0]
    if source.member is not None:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            names = [n for n in archive.namelist() if Path(n).name == source.member]
            if not names:
                raise OSError(f"{source.url} does not contain {source.member}")
            payload = archive.read(names[0])
    # atomically, so an interrupted download never leaves a truncated file behind
    return atomic_write(target, payload)


def _find_file(name: str, data_dir: str | os.PathLike[str] | None, download: bool | None) -> Path:
    source = _SOURCES[name]
    folder = resolve_data_dir(data_dir)
    for filename in source.filenames:
        if (folder / filename).is_file():
            return folder / filename
    if download is None:
        download = os.environ.get("SIMSHAP_OFFLINE", "") not in ("1", "true", "yes")
    reason = "downloads are disabled (download=False or SIMSHAP_OFFLINE=1)"
    if download:
        try:
            return _download(source, folder, DOWNLOAD_TIMEOUT_S)
        except (OSError, urllib.error.URLError, zipfile.BadZipFile) as err:
            reason = f"the download failed ({err})"
    wanted = " or ".join(source.filenames)
    how = f"unzip {source.member} from it" if source.member else "save it as is"
    raise MissingFileError(
        f"data set {name!r} needs the file {source.filenames[0]} ({wanted} accepted), "
        f"which is not in {folder} (searched: {folder}); {reason}. Download it from "
        f"{source.url} ({how}) and put it in {folder}, or point data_dir= or the "
        "SIMSHAP_DATA environment variable at the folder that holds it."
    )


# --------------------------------------------------------------------------- raw loaders


def _raw_breast_cancer(
    data_dir: str | os.PathLike[str] | None, download: bool | None
) -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    return bunch.data.reset_index(drop=True), bunch.target.to_numpy().astype(np.int64)


def _raw_sklearn(loader: str) -> Callable[..., tuple[pd.DataFrame, np.ndarray]]:
    def load(
        data_dir: str | os.PathLike[str] | None, download: bool | None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)(as_frame=True)
        y = bunch.target.to_numpy()
        y = y.astype(np.float64) if loader == "load_diabetes" else y.astype(np.int64)
        return bunch.data.reset_index(drop=True).astype(np.float64), y

    return load


def _raw_census(
    data_dir: str | os.PathLike[str] | None, download: bool | None
) -> tuple[pd.DataFrame, np.ndarray]:
    path = _find_file("census", data_dir, download)
    df = pd.read_csv(
        path,
        header=None,
        names=CENSUS_COLUMNS,
        sep=",",
        skipinitialspace=True,
        na_values=[],
        keep_default_na=False,
        comment="|",  # adult.test's first line is a comment
    )
    df = df.dropna(how="all")
    if df.shape[1] != len(CENSUS_COLUMNS):
        raise UserError(f"{path} is not the UCI Adult file: expected 15 columns")
    # adult.test spells the labels '>50K.' / '<=50K.'
    label = df.pop("Income").astype(str).str.strip().str.rstrip(".")
    unknown = set(label.unique()) - {">50K", "<=50K"}
    if unknown:
        raise UserError(f"{path}: unexpected labels {sorted(unknown)} (expected >50K / <=50K)")
    y = (label == ">50K").to_numpy().astype(np.int64)
    df = df.drop(columns=["fnlwgt", "Education"])
    for col in CENSUS_CATEGORICAL:
        # sorted categories give the same codes on every machine; '?' (missing) is a category
        values = df[col].astype(str).str.strip()
        categories = sorted(values.unique())
        df[col] = pd.Categorical(values, categories=categories).codes.astype(np.int64)
    return df.reset_index(drop=True).astype(np.float64), y


def _raw_news(
    data_dir: str | os.PathLike[str] | None, download: bool | None
) -> tuple[pd.DataFrame, np.ndarray]:
    path = _find_file("news", data_dir, download)
    df = pd.read_csv(path)
    df.columns = [c.strip() for c in df.columns]
    missing = {"url", "timedelta", "shares"} - set(df.columns)
    if missing:
        raise UserError(f"{path} is not the UCI Online News Popularity CSV: no {missing}")
    y = (df.pop("shares").to_numpy() > 1400).astype(np.int64)
    df = df.drop(columns=["url", "timedelta"])
    return df.reset_index(drop=True).astype(np.float64), y


def _raw_bankruptcy(
    data_dir: str | os.PathLike[str] | None, download: bool | None
) -> tuple[pd.DataFrame, np.ndarray]:
    path = _find_file("bankruptcy", data_dir, download)
    df = pd.read_csv(path)
    df.columns = [c.strip() for c in df.columns]
    if "Bankrupt?" not in df.columns or df.shape[1] != 96:
        raise UserError(
            f"{path} is not the UCI Taiwanese Bankruptcy Prediction data.csv: expected the "
            f"label 'Bankrupt?' and 95 features, got {df.shape[1]} columns"
        )
    y = df.pop("Bankrupt?").to_numpy().astype(np.int64)
    return df.reset_index(drop=True).astype(np.float64), y


_RAW_LOADERS: dict[
    str,
    Callable[[str | os.PathLike[str] | None, bool | None], tuple[pd.DataFrame, np.ndarray]],
] = {
    "breast_cancer": _raw_breast_cancer,
    "wine": _raw_sklearn("load_wine"),
    "digits": _raw_sklearn("load_digits"),
    "diabetes": _raw_sklearn("load_diabetes"),
    "census": _raw_census,
    "news": _raw_news,
    "bankruptcy": _raw_bankruptcy,
}


def _check_name(name: str) -> str:
    if name not in _RAW_LOADERS:
        raise UserError(
            f"unknown tabular data set {name!r}; available: {', '.join(TABULAR_DATASETS)}"
        )
    return name


def load_raw(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and labels of a tabular data set, unsplit and unstandardized.

    Args:
        name: one of ``TABULAR_DATASETS``: ``breast_cancer``, ``wine``, ``digits`` and
            ``diabetes`` (a regression) (scikit-learn, embedded),
            ``census`` (UCI Adult ``adult.data``: 12 features, fnlwgt and Education dropped,
            categoricals as integer codes, label >50K), ``news`` (UCI Online News Popularity
            ``OnlineNewsPopularity.csv`` or ``OnlineNewsPopularity-head.csv``: url and timedelta
            dropped, label shares > 1400), ``bankruptcy`` (UCI Taiwanese Bankruptcy Prediction
            ``data.csv``: 95 features, label ``Bankrupt?``).
        data_dir: folder holding the file (default: ``$SIMSHAP_DATA``, else ``~/.cache/simshap``).
        download: fetch a missing file from UCI (default: yes unless ``SIMSHAP_OFFLINE=1``);
            without network the error says where to put the file.

    Returns:
        ``(X, y)``: a float ``DataFrame`` with named columns and the target: ``int64`` class
        labels, or ``float64`` values for ``diabetes`` (regression).

    Raises:
        ValueError: unknown ``name`` (the message lists the available ones) or a malformed file.
        FileNotFoundError: the file is absent and could not be downloaded.

    """
    x, y = _RAW_LOADERS[_check_name(name)](data_dir, download)
    return x, y


def data_file(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The local file a named data set is read from (``None`` for the embedded ones)."""
    if name not in _SOURCES:
        return None
    folder = resolve_data_dir(data_dir)
    for filename in _SOURCES[name].filenames:
        if (folder / filename).is_file():
            return folder / filename
    return None
