"""Choosing forget samples: table filters, the tick-box table and its shortcuts. Pure functions over UnlearningData.

The selection is a list of record ids, kept per browser session. Everything not selected in the retain split is
the retain set; a retain-split sample that the user ticks moves from retain to forget, so the two never overlap.
"""
from __future__ import annotations

from collections import Counter

import pandas as pd

from unlearning.data.records import SPLITS, Record, UnlearningData

ALL = "all"
TICK = "forget"  # header of the tick-box column
COLUMNS = (TICK, "id", "task", "kind", "split", "input", "output")
DATATYPES = ["bool", "str", "str", "str", "str", "str", "str"]
KIND_NAMES = {"sc": "sentence completion", "qa": "question answering"}


def filter_records(records: list[Record], task: str = ALL, kind: str = ALL, split: str = ALL, query: str = "") -> list[Record]:
    """Records matching the three filters and a case-insensitive text search over id, input and output; the forget
    split first (what a user came to pick from), then retain and holdout, each in the data's order."""
    words = query.lower().split()
    found = [
        r for r in records
        if task in (ALL, r.task) and kind in (ALL, r.kind) and split in (ALL, r.split)
        and all(w in f"{r.id} {r.input} {r.output}".lower() for w in words)
    ]
    return sorted(found, key=lambda r: SPLITS.index(r.split))


def table(records: list[Record], selected: list[str]) -> pd.DataFrame:
    chosen = set(selected)
    return pd.DataFrame(
        [[r.id in chosen, r.id, r.task, r.kind, r.split, r.input, r.output] for r in records], columns=list(COLUMNS)
    )


def _ticked(value: object) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def apply_ticks(selected: list[str], frame: pd.DataFrame, known: set[str]) -> list[str]:
    """The selection after the user edited the shown table: shown rows follow their box, hidden rows stay as they were."""
    chosen = dict.fromkeys(selected)
    for _, row in frame.iterrows():
        record_id = str(row["id"])
        if record_id not in known:  # a row the user typed in, not one of ours
            continue
        if _ticked(row[TICK]):
            chosen[record_id] = None
        else:
            chosen.pop(record_id, None)
    return list(chosen)


def tasks(data: UnlearningData) -> list[str]:
    return sorted({r.task for r in data.records})


# ------------------------------------------------------------------------------------------------------ shortcuts


def task_forget_ids(data: UnlearningData, task: str) -> list[str]:
    """Every forget-split sample of one task (all tasks for "all")."""
    return [r.id for r in data.split("forget") if task in (ALL, r.task)]


def whole_forget_ids(data: UnlearningData) -> list[str]:
    return [r.id for r in data.split("forget")]


# ---------------------------------------------------------------------------------------------- forget vs retain


def _counts(records: list[Record]) -> str:
    by_task = Counter(r.task for r in records)
    by_kind = Counter(KIND_NAMES.get(r.kind, r.kind) for r in records)
    parts = [f"{task} {n}" for task, n in sorted(by_task.items())] + [f"{kind} {n}" for kind, n in sorted(by_kind.items())]
    return " · ".join(parts)


def summary(data: UnlearningData, selected: list[str]) -> str:
    """Markdown: how many samples will be forgotten, kept, and held out."""
    index = {r.id: r for r in data.records}
    forget = [index[i] for i in selected if i in index]
    retain = data.retain_set(selected)
    holdout = data.split("holdout")
    plural = "s" if len(forget) != 1 else ""
    chosen = f"**{len(forget)} sample{plural} selected to forget**" + (f" ({_counts(forget)})" if forget else
                                                                      ": tick rows below, or use a shortcut")
    moved = [r for r in forget if r.split != "forget"]
    if moved:
        chosen += f", {len(moved)} of them taken out of the {', '.join(sorted({r.split for r in moved}))} split"
    return (f"{chosen}<br>**Retain set** {len(retain)} samples ({_counts(retain) or 'none'}): trained on to keep them · "
            f"**Holdout** {len(holdout)} samples, never trained on: the reference for membership inference")
