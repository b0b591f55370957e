"""The metric registry: every number the studio reports is declared once, beside the code that computes it.

A metric module decorates its compute function with `@metric(...)`: name, what it measures, which way is better,
chance and ideal values. The report (EvalReport), the verdict, the CLI's `metrics` command and the app's tables,
plots and Learn tab all read METRICS, so adding a metric touches its module and its test, nothing else.

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

BETTER = ("higher", "lower", "0.5")  # "0.5": best at 0.5 (an MIA AUC of 0.5 means members look like non-members)
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
    compute: Callable[["Context"], Any] = field(default=None, repr=False, compare=False)

    def better_on(self, split: str | None = None) -> str:
        """Which way is better on this split: a knowledge metric flips on forget (it should be forgotten)."""
        if self.knowledge and split == "forget":
            return {"higher": "lower", "lower": "higher"}[self.better]
        return self.better

    def describe(self) -> dict:
        """The declaration as JSON (no compute function)."""
        return {k: v for k, v in self.__dict__.items() if k != "compute"}


METRICS: dict[str, Metric] = {}


def metric(**declaration) -> Callable:
    """Decorator: declare the metric computed by the decorated function and register it."""

    def register(compute: Callable[["Context"], Any]) -> Callable:
        entry = Metric(compute=compute, **declaration)
        if entry.family not in FAMILIES or entry.better not in BETTER:
            raise ValueError(f"metric {entry.name!r}: family must be one of {FAMILIES}, better one of {BETTER}")
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
        progress: Callable[[str, int, int], None] | None = None,
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

    def progress(self, stage: str, done: int, total: int) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("evaluation cancelled by the user")
        if self._progress is not None:
            self._progress(stage, done, total)
