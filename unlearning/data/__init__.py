"""Datasets for unlearning: one Record format and one entry point, load_data."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from unlearning.data.custom import DataError, load_custom, read_table, validate_records
from unlearning.data.lume import download_lume, load_lume
from unlearning.data.records import Record, UnlearningData
from unlearning.data.synthetic import bundled_dataset
from unlearning.data.tofu import load_tofu

__all__ = [
    "DataError", "Record", "UnlearningData", "bundled_dataset", "cached_data", "load_custom", "load_data", "load_lume",
    "load_tofu", "validate_records",
]

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")  # owner/name
_BUNDLED_SPLIT = re.compile(r"^bundled:\d{1,6}$")


def load_data(source: str, **kw) -> UnlearningData:
    """Load "bundled" (or "bundled:N", split with seed N), a LUME folder or hub id, a TOFU .json/.jsonl file, or a .csv/.jsonl/.parquet table.

    Keyword arguments go to the loader: part= for LUME, retain=/holdout= for TOFU, max_chars= for a table.
    """
    path = Path(source)
    suffix = path.suffix.lower()
    if source == "bundled":
        return bundled_dataset()
    if _BUNDLED_SPLIT.match(source):  # bundled:N, the same people and stories split with another seed
        return bundled_dataset(int(source.partition(":")[2]))
    if path.is_dir():
        return load_lume(path, **kw)
    if path.is_file():
        # .jsonl is both TOFU (question/answer) and a custom table (input/output): the columns decide
        if suffix == ".json" or (suffix == ".jsonl" and "question" in read_table(path).columns):
            return load_tofu(path, **kw)
        return load_custom(path, **kw)
    if _HUB_ID.match(source) and suffix not in (".csv", ".json", ".jsonl", ".parquet"):
        return load_lume(download_lume(source), **kw)
    raise DataError(f"{source!r}: no such file or folder, and not 'bundled' or a hub dataset id (owner/name)")


@functools.lru_cache(maxsize=4)
def cached_data(source: str) -> UnlearningData:
    """Loaded data is shared read-only by every run, plan and probe."""
    return load_data(source)
