"""A user's own dataset as a .csv, .jsonl or .parquet table, and the table helpers every loader shares.

Columns: `input` and `output` are required; `id`, `task`, `split` and `kind` are optional, and an empty
cell takes the default. Every problem is a DataError naming the file, the column and the 1-based row (the line, for
JSON lines), so the UI can show it as it is.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from unlearning.data.records import Record, UnlearningData, kind_from_id

REQUIRED_COLUMNS = ("input", "output")
MAX_CHARS = 4000  # input+output of one row: a rough proxy for a ~1k-token training context


class DataError(ValueError):
    """A dataset file or record the studio cannot use; the message says where and why."""


def read_table(path: Path) -> pd.DataFrame:
    """Read a .csv, .json, .jsonl or .parquet file, keeping text cells exactly as written. A table read from JSON
    lines carries each row's line number in attrs["lines"], for messages."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl", ".parquet"):
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .jsonl or .parquet")
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path}: file is empty")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(io.BytesIO(data))
        text = data.decode("utf-8-sig")  # -sig: spreadsheet exports often start with a byte-order mark
        if suffix == ".csv":
            # keep_default_na=False: "NA" or "None" is a valid answer, not a missing value
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from err
    except ValueError as err:  # pandas' and pyarrow's parse errors are all ValueErrors
        raise DataError(f"{path}: cannot parse as {suffix[1:]}: {err}") from err
    # TOFU ships JSON lines under a .json name; a .json starting with "[" is one JSON array instead
    return _json_table(text, path, lines=suffix == ".jsonl" or not text.lstrip().startswith("["))


def _json_table(text: str, path: Path, lines: bool) -> pd.DataFrame:
    """JSON lines, or one JSON array: one object per row. Read here, not by pandas, so that an error names its line
    (pandas gives a character position) and no shape of line escapes as a TypeError."""
    if not lines:
        rows = _json(text, path)
        for n, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise DataError(f"{path}: row {n}: expected a JSON object, got {_json_type(row)}")
        return pd.DataFrame(rows, dtype=object)
    numbered = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    frame = pd.DataFrame([_json(line, path, n) for n, line in numbered], dtype=object)
    frame.attrs["lines"] = [n for n, _ in numbered]
    return frame


def _json(text: str, path: Path, line: int = 0) -> object:
    """One JSON value; DataError naming the line (`line`: the text is that line of the file) and column. The line of
    JSON lines must hold an object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {line or err.lineno}, column {err.colno}: not valid JSON ({err.msg})") from err
    except (ValueError, RecursionError) as err:  # a number of over 4300 digits; nesting too deep
        raise DataError(f"{path}: {f'line {line}' if line else 'the JSON array'}: cannot be read ({err})") from err
    if line and not isinstance(value, dict):
        raise DataError(f"{path}: line {line}: expected a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    names = {list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing))} (found: {found})")


def _text(value: object, source: str, row: str, column: str) -> str:
    """A cell as text: a missing cell is empty; a number must be quoted, so that "1947" stays "1947"."""
    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    raise DataError(
        f"{source}: {row}: column {column!r} must be text, got {type(value).__name__} {value!r:.50}")


def records_from_frame(
    frame: pd.DataFrame,
    source: str,
    *,
    task: str = "custom",
    split: str = "forget",
    max_chars: int | None = None,
) -> list[Record]:
    """Turn a table with input/output (and optional id, task, split, kind) columns into validated records."""
    require_columns(frame, REQUIRED_COLUMNS, source)
    unit, positions = ("line", frame.attrs["lines"]) if "lines" in frame.attrs else ("row", range(1, len(frame) + 1))
    records = []
    for row, values in zip(positions, frame.to_dict("records")):
        cell = {c: _text(values.get(c), source, f"{unit} {row}", c) for c in ("id", "input", "output", "task", "split", "kind")}
        kind = cell["kind"] or kind_from_id(cell["id"]) or ("qa" if cell["input"].rstrip().endswith("?") else "sc")
        try:
            records.append(Record(
                id=cell["id"] or f"row{row}{'sc1' if kind == 'sc' else 'qa0'}",  # LUME-style suffix
                input=cell["input"],
                output=cell["output"],
                task=cell["task"] or task,
                split=cell["split"] or split,
                kind=kind,
            ))
        except ValueError as err:  # Record rejects an unknown split or kind
            raise DataError(f"{source}: {unit} {row}: {err}") from err
    validate_records(records, source, max_chars, list(positions), unit)
    return records


def validate_records(records: list[Record], source: str, max_chars: int | None = None,
                     positions: list[int] | None = None, unit: str = "row") -> None:
    """Checks every loader shares: some records, no empty text, no row over max_chars, unique ids.

    Records are named by `unit` and their position in `positions` (default: counted from 1 over `records`, which is
    the file's row number when they come from one file).
    """
    if not records:
        raise DataError(f"{source}: no records")
    positions = positions or list(range(1, len(records) + 1))
    first_row: dict[str, int] = {}
    for row, record in zip(positions, records):
        for column in ("id", "input", "output"):
            if not getattr(record, column).strip():
                raise DataError(f"{source}: {unit} {row}: column {column!r} is empty")
        size = len(record.input) + len(record.output)
        if max_chars is not None and size > max_chars:
            raise DataError(f"{source}: {unit} {row}: input+output is {size} characters, over the limit of {max_chars}")
        if record.id in first_row:
            raise DataError(f"{source}: {unit}s {first_row[record.id]} and {row} have the same id {record.id!r}")
        first_row[record.id] = row


def dataset_with_mia(name: str, records: list[Record], documents: list[Record] | None = None) -> UnlearningData:
    """Forget documents become MIA members and holdout ones non-members: holdout is never trained on."""
    documents = records if documents is None else documents
    return UnlearningData(
        name=name,
        records=records,
        mia_members=[d.text for d in documents if d.split == "forget"],
        mia_nonmembers=[d.text for d in documents if d.split == "holdout"],
    )


def load_custom(path: str | Path, max_chars: int = MAX_CHARS) -> UnlearningData:
    """Load a user's .csv, .jsonl or .parquet table; forget rows are MIA members, holdout rows non-members."""
    path = Path(path)
    return dataset_with_mia(path.stem, records_from_frame(read_table(path), str(path), max_chars=max_chars))
