"""Data sets and Lightning DataModules: tabular (breast_cancer, census, news, bankruptcy)."""

from simshap.data.tabular import (
    TABULAR_DATASETS,
    TabularData,
    TabularDataModule,
    load_raw,
    load_tabular,
    resolve_data_dir,
)

__all__ = [
    "TABULAR_DATASETS",
    "TabularData",
    "TabularDataModule",
    "load_raw",
    "load_tabular",
    "resolve_data_dir",
]
