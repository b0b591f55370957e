"""LUME, the SemEval-2025 Task 4 benchmark, from a local folder or from the gated hub dataset.

A folder holds forget*.parquet and retain*.parquet (columns id, input, output, task, split) and, anywhere
below it, MIA documents in *member*.jsonl files: mia_member.jsonl / mia_nonmember.jsonl in the shared copy,
mia_data/member.jsonl / mia_data/nonmember.jsonl on the hub. It may hold both parts, train and validation: the
files whose path names the part are that part's, and files naming no part belong to either.
"""
from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from huggingface_hub import snapshot_download

from unlearning.data.custom import DataError, read_table, records_from_frame, require_columns, validate_records
from unlearning.data.records import UnlearningData

HUB_ID = "llmunlearningsemeval2025organization/semeval25-unlearning-dataset-public"
PARTS = ("validation", "train")


def load_lume(folder: str | Path, part: str = "validation") -> UnlearningData:
    """Load the forget and retain files of `part` (when a folder holds both parts) and the MIA documents."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    folder = Path(folder)
    records = []
    for split in ("forget", "retain"):
        path = _find_split_file(folder, split, part)
        records += records_from_frame(read_table(path), str(path), split=split)
    validate_records(records, str(folder))  # an id may also repeat across the two files
    mia_files = _part_files(folder, "*member*.jsonl", part)
    # "nonmember" contains "member", so test for it first
    members = [p for p in mia_files if "nonmember" not in p.name]
    nonmembers = [p for p in mia_files if "nonmember" in p.name]
    names = ", ".join(p.relative_to(folder).as_posix() for p in mia_files)
    return UnlearningData(
        name=f"lume-{part}",
        records=records,
        mia_members=_documents(members),
        mia_nonmembers=_documents(nonmembers),
        mia_source=f"the data's own MIA files ({names})" if mia_files else "none: the folder has no MIA files",
        mia_official=bool(members and nonmembers),
    )


def _part_files(folder: Path, pattern: str, part: str) -> list[Path]:
    """The files below `folder` matching `pattern` that belong to `part`: those whose path names it, else those
    naming no part (a public copy holds mia_data/*.jsonl beside mia_data/validation/*.jsonl). Each is read once: a
    file whose bytes repeat one nearer the top (a nested copy of the folder) is left out."""
    files = sorted(folder.rglob(pattern), key=lambda path: (len(path.parts), path))
    named = lambda path, name: name in path.relative_to(folder).as_posix()  # noqa: E731
    own = [p for p in files if named(p, part)] or [p for p in files if not any(named(p, other) for other in PARTS)]
    seen, unique = set(), []
    for path in own:
        digest = hashlib.sha256(path.read_bytes()).digest()
        if digest not in seen:
            seen.add(digest)
            unique.append(path)
    return sorted(unique)


def write_subset(folder: str | Path, out: str | Path, per_group: int, part: str = "validation", seed: int = 0) -> Path:
    """A smaller LUME folder: `per_group` rows of each split x task x kind, and the MIA documents that go with them.

    Forget completions that are MIA members are picked first, so the subset's member file (the members among the
    picked completions) is not empty; the non-member file gets a random sample of the same size. The files keep LUME's
    layout and names, so every command takes the subset as `--data OUT`. Nothing is written into `folder`.
    """
    if not isinstance(per_group, int) or per_group < 1:
        raise ValueError(f"per_group must be a whole number >= 1, got {per_group!r}")
    data = load_lume(folder, part)
    rng = random.Random(seed)
    members = set(data.mia_members)
    picked = []
    for split in ("forget", "retain"):
        groups: dict[tuple, list] = {}
        for record in data.split(split):
            groups.setdefault((record.task, record.kind), []).append(record)
        for records in groups.values():
            rng.shuffle(records)
            records.sort(key=lambda r: r.text not in members)  # members first, in random order (stable sort)
            picked += records[:per_group]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("forget", "retain"):
        rows = [{k: v for k, v in r.to_dict().items() if k != "kind"} for r in picked if r.split == split]
        pd.DataFrame(rows).to_parquet(out / f"{split}_{part}.parquet")
    chosen = [r.text for r in picked if r.text in members]
    nonmembers = rng.sample(data.mia_nonmembers, min(len(chosen), len(data.mia_nonmembers)))
    for name, documents in (("mia_member.jsonl", chosen), ("mia_nonmember.jsonl", nonmembers)):
        pd.DataFrame({"id": range(len(documents)), "document": documents}).to_json(out / name, orient="records", lines=True)
    return out


def _find_split_file(folder: Path, split: str, part: str) -> Path:
    paths = _part_files(folder, f"{split}*.parquet", part)
    if len(paths) != 1:
        found = ", ".join(p.relative_to(folder).as_posix() for p in paths) or "none"
        there = ", ".join(p.relative_to(folder).as_posix() for p in sorted(folder.rglob(f"{split}*.parquet")))
        hint = f" (there are {there}: choose their part)" if there and not paths else ""
        raise DataError(f"{folder}: expected one {split}*.parquet file for part {part!r}, found {found}{hint}")
    return paths[0]


def _documents(paths: Iterable[Path]) -> list[str]:
    documents = []
    for path in paths:
        frame = read_table(path)
        require_columns(frame, ("document",), str(path))
        documents += frame["document"].tolist()
    return documents


def download_lume(repo_id: str = HUB_ID) -> Path:
    """Download a LUME-layout hub dataset (gated: HF_TOKEN must hold a token with access) to the local cache."""
    try:
        folder = snapshot_download(
            repo_id,
            repo_type="dataset",
            token=os.environ.get("HF_TOKEN"),
            allow_patterns=["*.parquet", "*.jsonl"],
        )
    except OSError as err:  # all hub errors (offline, gated, unknown id) are OSErrors
        raise DataError(
            f"could not download the dataset {repo_id!r} from the Hugging Face hub ({type(err).__name__}). "
            "LUME is gated: accept its terms on the hub and set HF_TOKEN, or pass a local folder instead."
        ) from err
    return Path(folder)
