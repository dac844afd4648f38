"""Data layer: load, preset, split, scale, cache (SPEC section 2).

prepare(opts) -> PreparedData        # load -> preset -> (sample) -> split -> scale -> cache
inspect_dataset(opts) -> dict        # for `lossbench inspect`
load_table(path) -> pandas.DataFrame # the raw load of a CSV/.csv.gz/Parquet file or folder
"""

from lossbench.data.builtin import BUILTIN_DATASETS
from lossbench.data.inspection import inspect_dataset
from lossbench.data.load import load_table
from lossbench.data.pipeline import PreparedData, prepare, preprocess

__all__ = [
    "BUILTIN_DATASETS",
    "PreparedData",
    "inspect_dataset",
    "load_table",
    "prepare",
    "preprocess",
]
