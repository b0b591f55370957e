"""TOFU-style question answering (locuslab/TOFU): .json or .jsonl files whose rows have `question` and `answer`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearning.data.custom import dataset_with_mia, read_table, records_from_frame, require_columns
from unlearning.data.records import Record, UnlearningData


def load_tofu(
    forget: str | Path,
    retain: str | Path | None = None,
    holdout: str | Path | None = None,
) -> UnlearningData:
    """Load a forget file and optional retain and holdout files; every record is QA, task "TOFU"."""
    records: list[Record] = []
    for split, path in (("forget", forget), ("retain", retain), ("holdout", holdout)):
        if path is not None:
            records += _split_records(Path(path), split)
    return dataset_with_mia(f"tofu-{Path(forget).stem}", records)


def _split_records(path: Path, split: str) -> list[Record]:
    frame = read_table(path)
    require_columns(frame, ("question", "answer"), str(path))
    table = pd.DataFrame({
        # the split in the id keeps ids unique across files; the qa0 suffix gives the kind
        "id": [f"tofu-{split}-{row:04d}qa0" for row in range(1, len(frame) + 1)],
        "input": frame["question"],
        "output": frame["answer"],
    })
    table.attrs = frame.attrs  # the line numbers of JSON lines, for messages
    return records_from_frame(table, str(path), task="TOFU", split=split)
