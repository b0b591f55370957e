"""What a probe is, and what every probe shares: the run it probes, re-scoring, recovery and the plain verdict.

A surface score can fall while the knowledge stays in the weights ("Forgotten but not lost"). A probe attacks a
finished run's unlearned model (a little fine-tuning, quantisation, other prompts) and re-scores the forget samples
with the evaluation's own metrics. One module per probe registers itself with `@probe(...)`: its name, title, the
question it asks, its Options dataclass (declared with unlearning.options.option, like the methods' configs) and its run
function, which returns a JSON-able result with a `headline` and `bars`. The CLI, the app and the tests list PROBES.

Recovery, the one number most probes report, is read per metric as
    recovery = (probed - unlearned) / (original - unlearned)
0 = the forgetting held, 1 = the original's score is back. It works either way up (answer NLL falls as a score rises).
"""
from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.data import UnlearningData
from unlearning.data.records import Record
from unlearning.evaluation import METRICS, EvalConfig, EvalReport, evaluate
from unlearning.evaluation.verdict import CAME_BACK, HELD  # recovery below HELD: held; from CAME_BACK on: came back
from unlearning.models import LoadedModel
from unlearning.plan import Selection
from unlearning.options import check, parse
from unlearning.run_config import RunConfig

Progress = Callable[[float, str], None]

# The knowledge metrics a probe re-scores: the official score (generation) and the teacher-forced memorisation metrics.
KNOWLEDGE = tuple(m.name for m in METRICS.values() if m.knowledge and m.family in ("official", "memorisation"))
BAR_METRICS = tuple(name for name in KNOWLEDGE if METRICS[name].ideal == 1.0)  # the 0..1 ones share one bar axis
HEADLINE = "official"  # the number a verdict is about: what the model says
MIN_GAP = 0.05  # a run must have moved a metric at least this much for a share of it to mean anything


@dataclass
class ProbeOptions:
    """A probe's options, declared with unlearning.options.option (help and bounds), checked on construction."""

    def __post_init__(self) -> None:
        check(self)
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        """Checks beyond one field's bounds (a probe overrides this)."""
        return []


@dataclass
class Subject:
    """A finished run as the probes see it: its settings, samples, models and the two evaluations it saved."""

    run_id: str
    config: RunConfig
    data: UnlearningData
    selection: Selection
    original: LoadedModel
    unlearned: PreTrainedModel
    before: EvalReport
    after: EvalReport

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.original.tokenizer

    def knowledge_config(self) -> EvalConfig:
        """The run's own evaluation settings, so probed scores compare with its saved ones; MIA and utility off."""
        config = EvalConfig(**self.config.eval.__dict__)
        # set after construction: official mode's __post_init__ would switch both back on
        config.mia, config.utility = False, "none"
        return config

    def rescore(self, model: PreTrainedModel, records: list[Record], progress: Progress | None = None,
                cancel: threading.Event | None = None) -> EvalReport:
        """Generations, official scores, memorisation and fluency of `records` on `model` (fluency judged by the
        original, as in the run's own evaluation)."""
        return evaluate(model, self.tokenizer, records, [], [], self.knowledge_config(), progress,
                        reference=self.original.model, cancel=cancel)


@dataclass(frozen=True)
class Probe:
    name: str
    title: str
    asks: str  # the question the probe answers, in one plain sentence
    Options: type[ProbeOptions]
    run: Callable[[Subject, ProbeOptions, Progress, threading.Event | None], dict] = field(repr=False, compare=False)

    def options(self, values: dict | None = None) -> ProbeOptions:
        """Checked options from raw values (text from a flag, numbers from a control); unknown names refused."""
        parsed, problems = parse(self.Options, values or {}, f"probe {self.name!r}")
        if problems:
            raise ValueError("; ".join(problems))
        try:
            return self.Options(**parsed)
        except ValueError as error:
            raise ValueError(f"probe {self.name!r}: {error}") from error


PROBES: dict[str, Probe] = {}


def probe(name: str, title: str, asks: str, options: type[ProbeOptions] = ProbeOptions) -> Callable:
    """Decorator: register the decorated run(subject, options, progress, cancel) -> dict as a probe."""

    def register(run: Callable) -> Callable:
        PROBES[name] = Probe(name, title, asks, options, run)
        return run

    return register


def get_probes(names: Sequence[str]) -> list[Probe]:
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; choose from {', '.join(PROBES)}")
    if not names:
        raise ValueError(f"no probe chosen; choose from {', '.join(PROBES)}")
    return [PROBES[n] for n in dict.fromkeys(names)]


# ------------------------------------------------------------------------------------------------------- the maths


def means(rows: Sequence[dict], ids: Sequence[str] | None = None, split: str | None = None) -> dict[str, float | None]:
    """Mean of each knowledge metric over the rows with these ids (an id listed twice counts twice), or over a split."""
    if ids is not None:
        by_id = {row["id"]: row for row in rows}
        chosen = [by_id[i] for i in ids if i in by_id]
    else:
        chosen = [row for row in rows if split is None or row["split"] == split]
    out = {}
    for name in KNOWLEDGE:
        values = [row[name] for row in chosen if row.get(name) is not None]
        out[name] = statistics.fmean(values) if values else None
    return out


def recovery(original: float | None, unlearned: float | None, probed: float | None) -> float | None:
    """Share of the run's change undone by the probe: 0 = held, 1 = back to the original; None when the run moved the
    metric by less than MIN_GAP (nothing forgotten to recover) or a value is missing."""
    if original is None or unlearned is None or probed is None or abs(original - unlearned) < MIN_GAP:
        return None
    return (probed - unlearned) / (original - unlearned)


def compare(original: dict, unlearned: dict, probed: dict) -> dict[str, dict]:
    """Per knowledge metric: the original's and the unlearned model's scores, the probed one, and the recovery."""
    return {name: {"original": original.get(name), "unlearned": unlearned.get(name), "probed": probed.get(name),
                   "recovery": recovery(original.get(name), unlearned.get(name), probed.get(name))}
            for name in KNOWLEDGE}


def bars(original: dict, unlearned: dict, probed: dict[str, dict], recovered: dict[str, dict] | None = None) -> dict:
    """What the app's bar chart draws, per 0..1 metric: original, unlearned, each probed setting and its recovery."""
    return {name: {"title": METRICS[name].title, "original": original.get(name), "unlearned": unlearned.get(name),
                   "probed": {label: values.get(name) for label, values in probed.items()},
                   "recovery": {label: (recovered or {}).get(label, {}).get(name) for label in probed}}
            for name in BAR_METRICS}


def status(value: float | None) -> str:
    """good (held), warn (partly back), bad (came back) or unknown, for a recovery."""
    if value is None:
        return "unknown"
    return "good" if value < HELD else "warn" if value < CAME_BACK else "bad"


def verdict(value: float | None, how: str, nothing: str = "") -> dict:
    """The headline: the recovery as one number and a plain sentence ("came back: 64% recovered after 10 steps")."""
    state = status(value)
    if value is None:
        text = nothing or "No verdict: the run barely moved this score, so there was nothing forgotten to recover."
    else:
        word = {"good": "held", "warn": "partly came back", "bad": "came back"}[state]
        text = f"{word}: {value:.0%} recovered {how}"
    return {"value": value, "unit": "%", "status": state, "text": text}
