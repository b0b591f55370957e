"""The one record format every loader produces, matching LUME: id, input, output, task, split, kind."""
from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field

KINDS = ("sc", "qa")  # sentence completion, question answering
SPLITS = ("forget", "retain", "holdout")

_KIND_SUFFIX = re.compile(r"(sc|qa)\d+$")


def kind_from_id(record_id: str) -> str | None:
    """LUME ids end in sc1 or qa0..qa4; the suffix is the only place the kind is stated."""
    match = _KIND_SUFFIX.search(record_id)
    return match.group(1) if match else None


def entity_id(record_id: str) -> str | None:
    """The document a LUME-style id belongs to: its completion and its questions share the id before sc1/qa0.."""
    match = _KIND_SUFFIX.search(record_id)
    return record_id[: match.start()] if match and match.start() else None


@dataclass(frozen=True)
class Record:
    id: str
    input: str
    output: str
    task: str
    split: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"record {self.id!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.split not in SPLITS:
            raise ValueError(f"record {self.id!r}: split must be one of {SPLITS}, got {self.split!r}")

    @property
    def text(self) -> str:
        """The whole document, built as the official MIA files are: `input + " " + output`.

        Every LUME member document is its completion row's input and output joined by one space; where the data
        already has a space at the join (the bundled outputs start with one), no second space is added.
        """
        joined = self.input[-1:].isspace() or self.output[:1].isspace()
        return self.input + self.output if joined else f"{self.input} {self.output}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class UnlearningData:
    """A dataset as the studio uses it: records plus MIA member / non-member documents."""

    name: str
    records: list[Record]
    mia_members: list[str] = field(default_factory=list)
    mia_nonmembers: list[str] = field(default_factory=list)
    # where the MIA documents come from: the data's own member files (official) or built from its records
    mia_source: str = "built from the forget and holdout records (input + ' ' + output)"
    mia_official: bool = False  # the members and non-members are the benchmark's own files

    def split(self, name: str) -> list[Record]:
        return [r for r in self.records if r.split == name]

    def retain_set(self, forget_ids: list[str]) -> list[Record]:
        """The retain split less any sample chosen to forget: what a run keeps when it names no retain samples, so the
        forget and retain sets never overlap."""
        chosen = set(forget_ids)
        return [r for r in self.split("retain") if r.id not in chosen]

    def sample_forget(self, n: int, seed: int | None = None, kind: str | None = None) -> list[str]:
        """Ids of n forget-split samples (of one kind, if given) drawn at random, in dataset order; all when n exceeds them."""
        pool = [r.id for r in self.split("forget") if kind in (None, r.kind)]
        picked = set(random.Random(seed).sample(pool, max(0, min(int(n), len(pool)))))
        return [i for i in pool if i in picked]

    def by_ids(self, ids: list[str]) -> list[Record]:
        index = {r.id: r for r in self.records}
        missing = [i for i in ids if i not in index]
        if missing:
            raise KeyError(f"unknown record ids: {missing[:5]}")
        return [index[i] for i in ids]
