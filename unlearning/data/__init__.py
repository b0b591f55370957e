"""Datasets for unlearning: one Record format and one entry point, load_data."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from unlearning.data.custom import DataError, load_custom, read_table, validate_records
from unlearning.data.lume import PARTS, download_lume, load_lume
from unlearning.data.records import Record, UnlearningData
from unlearning.data.synthetic import bundled_dataset
from unlearning.data.tofu import load_tofu

__all__ = [
    "DataError", "Record", "UnlearningData", "bundled_dataset", "cached_data", "data_source", "load_custom", "load_data",
    "load_lume",
    "load_tofu", "validate_records",
]

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")  # owner/name
_BUNDLED_SPLIT = re.compile(r"^bundled:\d{1,6}$")
_PART = re.compile(rf"^(.+)#({'|'.join(PARTS)})$")  # a LUME folder or hub id with its part: lume-folder#train


def data_source(source: str, part: str | None) -> str:
    """One string for a dataset and, for LUME, its part, as runs record it (config.json's `data`) and load_data takes.

    A folder holding both LUME parts is two datasets: a run on its train part must reload the train part."""
    return f"{source}#{part}" if part else source


def load_data(source: str, **kw) -> UnlearningData:
    """Load "bundled" (or "bundled:N", split with seed N), a LUME folder or hub id, a TOFU .json/.jsonl file, or a .csv/.jsonl/.parquet table.

    A LUME source may end in #train or #validation (data_source): the part to load, validation by default.
    Keyword arguments go to the loader: part= for LUME, retain=/holdout= for TOFU, max_chars= for a table.
    """
    match = _PART.match(source)
    if match:
        source, kw = match[1], {**kw, "part": match[2]}
        if Path(source).is_file() or source == "bundled":
            raise DataError(f"a part (#{match[2]}) is for a LUME folder or hub dataset, and {source!r} is neither")
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
