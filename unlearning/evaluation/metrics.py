"""The metric registry: every number the studio reports is declared once, beside the code that computes it.

A metric module decorates its compute function with `@metric(...)`: name, what it measures, which way is better,
chance and ideal values, how views label it. The report (EvalReport), the verdict, the CLI's `metrics` command and
the app's tables, plots and Learn tab all read METRICS, so adding a metric touches its module and its test, nothing
else: importing unlearning.evaluation imports every module in it. The direction words every view shows live here
too, and so do the evaluation's stages: a pass over the records declares its share of the progress bar with stage().

Per-sample metrics return one value per record (aggregated per split and per task/kind/split group); model metrics
return a dict with a "value" and any details. Shared work (one generation pass, one teacher-forced pass) is computed
once per evaluation through `Context.shared`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.data.records import Record

# Which way is better, as a table's arrow and in words (plot axes, hints). "0.5": best at 0.5 (an MIA AUC of 0.5 means
# members look like non-members).
BETTER = {"higher": ("↑ higher", "higher is better"), "lower": ("↓ lower", "lower is better"),
          "0.5": ("→ 0.5", "best at 0.5")}
STAGES: dict[str, float] = {}  # a pass over the records -> its share of an evaluation's time, roughly: the bar's layout
FAMILIES = ("official", "memorisation", "fluency", "privacy", "utility")


class Skip(Exception):
    """The metric cannot be measured in this evaluation (MIA off, MMLU unreachable, ...); the message says why."""


class Cancelled(Exception):
    """The user stopped the evaluation; raised between batches."""


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    what: str  # one or two plain sentences: shown in tables, tooltips, the Learn tab and `python -m unlearning metrics`
    family: str  # official | memorisation | fluency | privacy | utility
    better: str  # higher | lower | 0.5; for a knowledge metric this is on retain, and forget is the other way
    per_sample: bool
    knowledge: bool = False  # how well the model knows each sample: forget wants it low, retain high
    chance: float | None = None  # what a model that knows nothing (or guesses) gets
    ideal: float | None = None  # the best value (a knowledge metric's: on retain)
    unit: str = ""
    label: str = ""  # a short name for plot axes and notes; the title when empty
    parts: tuple[str, ...] = ()  # the metrics this one is the mean of (the SemEval final score's)
    compute: Callable[["Context"], Any] = field(default=None, repr=False, compare=False)

    def better_on(self, split: str | None = None) -> str:
        """Which way is better on this split: a knowledge metric flips on forget (it should be forgotten)."""
        if self.knowledge and split == "forget":
            return {"higher": "lower", "lower": "higher"}[self.better]
        return self.better

    @property
    def short(self) -> str:
        return self.label or self.title

    def describe(self) -> dict:
        """The declaration as JSON (no compute function)."""
        return {k: v for k, v in self.__dict__.items() if k != "compute"}


METRICS: dict[str, Metric] = {}


def arrow(direction: str | None) -> str:
    """A direction as a table shows it: "↓ lower"; "–" for a number with no direction."""
    return BETTER[direction][0] if direction else "–"


def better_words(direction: str | None) -> str:
    """A direction in words: "lower is better"."""
    return BETTER[direction][1] if direction else "no direction"


def gain(direction: str, before: float, after: float) -> float:
    """How much better `after` is than `before`, going `direction`'s way; negative when it is worse."""
    if direction == "0.5":
        return abs(before - 0.5) - abs(after - 0.5)
    return after - before if direction == "higher" else before - after


def stage(name: str, share: float) -> str:
    """Declare a stage of the evaluation (a pass over the records that reports progress) with its rough share of an
    evaluation's time; returns its name, for Context.progress."""
    STAGES[name] = share
    return name


def metric(**declaration) -> Callable:
    """Decorator: declare the metric computed by the decorated function and register it."""

    def register(compute: Callable[["Context"], Any]) -> Callable:
        entry = Metric(compute=compute, **declaration)
        if entry.family not in FAMILIES or entry.better not in BETTER:
            raise ValueError(f"metric {entry.name!r}: family must be one of {FAMILIES}, better one of {tuple(BETTER)}")
        METRICS[entry.name] = entry
        return compute

    return register


class Context:
    """One evaluation's inputs, with memoised shared work and metric values.

    `reference` is the model fluency is judged by: the original model (the model itself when evaluating the original).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        records: list[Record],
        config: Any,
        reference: PreTrainedModel | None = None,
        mia_members: list[str] = (),
        mia_nonmembers: list[str] = (),
        mia_source: str = "",
        progress: Callable[[str, float, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.model, self.tokenizer, self.records, self.config = model, tokenizer, records, config
        self.reference = reference if reference is not None else model
        self.mia_members, self.mia_nonmembers, self.mia_source = list(mia_members), list(mia_nonmembers), mia_source
        self._progress, self.cancel = progress, cancel
        self._memo: dict[Any, Any] = {}

    def shared(self, fn: Callable[["Context"], Any]) -> Any:
        """fn(self), computed once: the work several metrics read (generations, the teacher-forced pass)."""
        if fn not in self._memo:
            self._memo[fn] = fn(self)
        return self._memo[fn]

    def value(self, name: str) -> Any:
        """A metric's result, computed once; raises Skip when it cannot be measured here."""
        key = ("metric", name)
        if key not in self._memo:
            try:
                self._memo[key] = METRICS[name].compute(self)
            except Skip as why:
                self._memo[key] = why
        result = self._memo[key]
        if isinstance(result, Skip):
            raise result
        return result

    def progress(self, stage: str, done: float, total: int) -> None:
        if stage not in STAGES:  # an undeclared stage would move no bar: fail where it is written, not silently
            raise KeyError(f"evaluation stage {stage!r} is not declared: declare it with metrics.stage()")
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("evaluation cancelled by the user")
        if self._progress is not None:
            self._progress(stage, done, total)
