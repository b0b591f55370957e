"""One evaluation end to end: run every registered metric on a model and keep the results as an EvalReport.

Two modes. "fast" (interactive default): batched generation, 64 new tokens, a fixed sample of 40 retain rows, bf16
where the hardware does it fast (else the model's own dtype). "official": the SemEval-2025 Task 4 protocol wherever
it is defined: one prompt at a time in bf16, 256 new tokens, every retain row, the data's own member and non-member
documents for MIA, MMLU when reachable. A report lists the parts that did not follow the protocol (`unofficial`), so a
number never hides which mode made it.
"""
from __future__ import annotations

import copy
import statistics
import threading
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.data.records import Record
from unlearning.evaluation.generation import generations
from unlearning.evaluation.memorisation import teacher_forced, token_view
from unlearning.evaluation.metrics import METRICS, STAGES, Context, Skip
from unlearning.evaluation.official import group_means
from unlearning.models import bf16_is_fast, pick_device
from unlearning.options import check, finite_number, option

MODES = ("fast", "official")
MAX_NEW_TOKENS = 1024  # beyond this a CPU evaluation takes hours; the official setting is 256
# The organisers' protocol (shared/data/lume-validation/README.md): what official mode sets, whatever was asked.
OFFICIAL = {"max_new_tokens": 256, "generation_batch_size": 1, "dtype": "bf16", "retain_rows": 0, "utility": "mmlu",
            "mia": True}


@dataclass
class EvalConfig:
    mode: str = option("fast", "fast: batched generation, 64 new tokens, 40 retain rows; official: the SemEval protocol "
                       "(one prompt at a time in bf16, 256 tokens, every retain row, the data's own MIA files, MMLU).",
                       choices={"fast": "fast (interactive)", "official": "official SemEval protocol (slow)"})
    # at most 1024: a run generates for every sample twice, and more makes a CPU evaluation take hours
    max_new_tokens: int = option(64, "Tokens generated per prompt (official: 256).", ge=1, le=MAX_NEW_TOKENS)
    batch_size: int = option(16, "Samples per teacher-forced batch (vocabulary-sized logits each).", ge=1, le=4096,
                             advanced=True)
    # Decoding reads every weight once per token whatever the batch, so larger batches are nearly free (benchmarks).
    generation_batch_size: int = option(64, "Prompts generated together (official: 1).", ge=1, le=4096, advanced=True)
    dtype: str = option("auto", "auto: bf16 where it is fast (GPUs, CPUs with bf16 matmuls), else the model's own; "
                        "model: the model's own dtype; bf16: evaluate a bf16 copy (the organisers load the model in "
                        "bf16).", choices=("auto", "model", "bf16"), advanced=True)
    retain_rows: int = option(40, "Retain rows scored, a fixed sample; 0 = all (official).", ge=0, le=1_000_000)
    utility: str = option("items", "items: the bundled multiple-choice families; mmlu: an MMLU subset (needs the hub, "
                          "falls back to the items); none.", choices={"items": "bundled multiple choice (offline)",
                                                                      "mmlu": "MMLU subset (needs the hub)",
                                                                      "none": "none"})
    mmlu_subset: int = option(200, "MMLU test questions sampled (fixed seed).", ge=1, le=100_000, advanced=True)
    mia: bool = option(True, "Run the membership-inference attacks on the MIA documents.")

    def __post_init__(self) -> None:
        if self.mode == "official":
            for name, value in OFFICIAL.items():
                setattr(self, name, value)
        if self.dtype == "auto":  # resolved here, so a saved run (and a cached evaluation's key) says which was used:
            # bf16 halves a CPU evaluation where matmuls do bf16, and it is the organisers' dtype and a GPU model's own
            self.dtype = "bf16" if bf16_is_fast(pick_device()) else "model"
        check(self)


def sample_summary(rows: list[dict], name: str) -> dict:
    """A per-sample metric's means per split and per task/kind/split group (values that are None left out)."""
    splits: dict[str, list[float]] = {}
    for row in rows:
        if row.get(name) is not None:
            splits.setdefault(row["split"], []).append(row[name])
    return {"splits": {s: statistics.fmean(v) for s, v in splits.items()}, "groups": group_means(rows, name)}


@dataclass
class EvalReport:
    rows: list[dict]  # record fields, generation, one value per per-sample metric, answer tokens and their probabilities
    metrics: dict[str, dict]  # name -> {"value": ...} for model metrics, {"splits", "groups"} for per-sample ones
    skipped: dict[str, str]  # metric -> why it was not measured
    unofficial: dict[str, str]  # part -> how it departs from the official protocol (empty: fully official)
    mode: str
    seconds: float
    config: dict
    # What the verdict reads the run against (absent in runs saved before it existed): the oracle's evaluation on the
    # same samples, where an oracle is prepared, and the knowledge checks (evaluation.knowledge).
    reference: dict | None = None
    checks: dict = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """A model metric's value (task_aggregate, mia_auc, utility, final, ...), None when not measured."""
        return self.metrics.get(name, {}).get("value")

    def split(self, name: str, split: str) -> float | None:
        """A per-sample metric's mean over one split, None when not measured."""
        return self.metrics.get(name, {}).get("splits", {}).get(split)

    def chance(self, name: str) -> float | None:
        """The guessing level of a metric in this evaluation: its own where it measured one (utility's depends on
        the items asked), else the registry's."""
        return self.metrics.get(name, {}).get("chance", METRICS[name].chance)

    def groups(self, name: str, split: str | None = None) -> dict[str, float]:
        """A per-sample metric's "Task1/sc/forget" -> mean, optionally of one split only."""
        found = self.metrics.get(name, {}).get("groups", {})
        return {g: v for g, v in found.items() if split is None or g.endswith("/" + split)}

    def to_dict(self) -> dict:
        return asdict(self)

    def oracle(self) -> "EvalReport | None":
        """The oracle's evaluation on the same samples, None when no oracle was prepared for the run. Read once per
        reference: every finding of a verdict asks for it, and reading checks the whole report."""
        if not self.reference:
            return None
        read = self.__dict__.get("_oracle")  # not a field: asdict, equality and the stored JSON never see it
        if read is None or read[0] is not self.reference:
            read = self.__dict__["_oracle"] = (self.reference, EvalReport.from_dict(self.reference))
        return read[1]

    @classmethod
    def from_dict(cls, data: dict) -> "EvalReport":
        """Read a saved report, or raise ValueError saying what is wrong with it: the one place a stored report's shape
        is checked (the run store and every view rely on it). Reports saved before the metric registry are upgraded;
        metrics they lack stay absent."""
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ValueError("not an evaluation report (no list of rows)")
        if "metrics" not in data:
            try:
                data = _upgrade(data)
            except (TypeError, KeyError, AttributeError) as error:
                raise ValueError(f"an evaluation report of the first sessions, damaged ({type(error).__name__}: {error})") from error
        names = {f.name for f in fields(cls)}
        missing = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING} - set(data)
        if missing:
            raise ValueError(f"evaluation report lacks {sorted(missing)}")
        _check(data)
        return cls(**{k: v for k, v in data.items() if k in names})


ROW_TEXT = ("id", "task", "kind", "split", "input", "output", "generation")


def number_or_null(value: Any) -> bool:
    """A finite number, or null: what a NaN or an infinity is stored as (a model with non-finite weights scores NaN)."""
    return value is None or finite_number(value)


def number_table(value: Any) -> bool:
    """A table of numbers or nulls (name -> value), as a result's splits, groups or parts are."""
    return isinstance(value, dict) and all(map(number_or_null, value.values()))


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(map(number_or_null, value))


# What each field of a metric's result may hold, for every field a reader reads (the metric modules write them).
RESULT_FIELDS = {
    "value": number_or_null, "chance": number_or_null, "questions": number_or_null, "n_members": number_or_null,
    "n_nonmembers": number_or_null,
    "name": lambda v: isinstance(v, str), "note": lambda v: isinstance(v, str), "members": lambda v: isinstance(v, str),
    "splits": number_table, "groups": number_table, "parts": number_table, "families": number_table,
    "member_losses": _numbers, "nonmember_losses": _numbers,
    "variants": lambda v: isinstance(v, dict) and all(map(number_table, v.values())),
}


def _check(data: dict) -> None:
    """Raise ValueError unless every field the views read has its type (strings, finite numbers or null, tables)."""
    for row in data["rows"]:
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ROW_TEXT):
            raise ValueError(f"a row lacks its text fields ({', '.join(ROW_TEXT)})")
        if not all(number_or_null(row[name]) for name in METRICS if name in row):
            raise ValueError(f"row {row['id']!r}: a per-sample metric is not a number")
        tokens, probs = row.get("tokens", []), row.get("token_probs", [])
        if not (isinstance(tokens, list) and _numbers(probs) and len(tokens) == len(probs)
                and all(isinstance(t, str) for t in tokens)):
            raise ValueError(f"row {row['id']!r}: its answer tokens and their probabilities do not match")
    if not isinstance(data["metrics"], dict) or not all(isinstance(v, dict) for v in data["metrics"].values()):
        raise ValueError("its metrics are not a table of results")
    for name, result in data["metrics"].items():
        wrong = [key for key, ok in RESULT_FIELDS.items() if key in result and not ok(result[key])]
        if wrong:
            raise ValueError(f"metric {name!r}: {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not of its kind")
    for key in ("skipped", "unofficial"):
        if not isinstance(data[key], dict) or not all(isinstance(v, str) for v in data[key].values()):
            raise ValueError(f"its {key} notes are not text")
    if data["mode"] not in MODES or not finite_number(data["seconds"]) or not isinstance(data["config"], dict):
        raise ValueError("its mode, time or config is malformed")
    if data.get("reference") is not None:
        try:
            EvalReport.from_dict(data["reference"])
        except ValueError as error:
            raise ValueError(f"its oracle reference: {error}") from None
    if not _checks_ok(data.get("checks", {})):
        raise ValueError("its knowledge checks are malformed")


def _checks_ok(checks) -> bool:
    """evaluation.knowledge's shape: holdout levels by task/kind, and per check a list of reworded samples."""
    if not isinstance(checks, dict) or not isinstance(checks.get("holdout_level", {}), dict):
        return False
    if not all(isinstance(k, str) and finite_number(v) for k, v in checks.get("holdout_level", {}).items()):
        return False
    for name, rows in checks.items():
        if name == "holdout_level":
            continue
        if not isinstance(rows, list):
            return False
        for row in rows:
            if not (isinstance(row, dict) and all(isinstance(row.get(k), str) for k in ("id", "rewords", "task", "kind"))
                    and isinstance(row.get("exact_memorization"), dict)
                    and number_table(row["exact_memorization"])):
                return False
    return True


def _upgrade(old: dict) -> dict:
    """A report of the first sessions (score/loss per row, aggregate, mia, utility, final) in today's shape."""
    rows = [{**{k: v for k, v in row.items() if k not in ("score", "loss")}, "official": row.get("score"),
             "answer_nll": row.get("loss")} for row in old["rows"]]
    metrics = {name: sample_summary(rows, name) for name in ("official", "answer_nll")}
    if old.get("aggregate") is not None:
        metrics["task_aggregate"] = {"value": old["aggregate"], "parts": old.get("aggregate_parts", {})}
    mia = old.get("mia")
    if mia:
        metrics["mia_auc"] = {"value": mia["auc"], **{k: v for k, v in mia.items() if k not in ("auc", "score")},
                              "members": "the selected forget samples"}
        metrics["mia_score"] = {"value": mia["score"]}
    utility = old.get("utility")
    if utility:
        metrics["utility"] = {"value": utility["accuracy"], "name": utility.get("name", "probe"), "families": {},
                              "chance": utility.get("chance", METRICS["utility"].chance),
                              "questions": utility.get("questions"),
                              "note": "the 40-question letter probe of the first sessions (chance level for small models)"}
    if old.get("final") is not None:
        metrics["final"] = {"value": old["final"], "parts": old.get("final_parts", {})}
    return {"rows": rows, "metrics": metrics, "skipped": {}, "mode": "fast", "seconds": old.get("seconds", 0.0),
            "config": old.get("config", {}),
            "unofficial": {"protocol": "saved before official mode existed: batched generation, a retain sample"}}


def _progress(report: Callable[[float, str], None] | None) -> Callable[[str, float, int], None]:
    """Stage-level progress (stage, done, total) as one fraction of the whole evaluation that only moves forward.

    Each stage fills its own share of the bar, whatever order the metrics ask for them in."""
    shares: dict[str, float] = {}

    def update(stage: str, done: float, total_items: int) -> None:
        if report is None:
            return
        shares[stage] = max(shares.get(stage, 0.0), STAGES[stage] * done / max(total_items, 1))
        report(sum(shares.values()), f"{stage} {int(done)}/{total_items}")  # generation reports parts of a batch

    return update


def protocol_notes(config: EvalConfig, metrics: dict[str, dict], model: PreTrainedModel) -> dict[str, str]:
    """Which parts of this evaluation did not follow the official protocol, and how."""
    if config.mode != "official":
        dtype = str(model.dtype).removeprefix("torch.")
        return {"protocol": f"batched generation of {config.max_new_tokens} new tokens in {dtype}, "
                            + (f"{config.retain_rows} retain rows" if config.retain_rows else "all retain rows")}
    notes = {}
    utility = metrics.get("utility")
    if utility is None or utility.get("name") != "mmlu":
        notes["utility"] = (utility or {}).get("note") or "MMLU was not measured"
    return notes


def bf16_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A bf16 copy of `model` as the organisers' `from_pretrained(..., dtype=torch.bfloat16)` makes one: weights and
    saved buffers in bf16, the buffers a model computes for itself (rotary inverse frequencies) left in fp32.

    Why not `.to(torch.bfloat16)`: it rounds those buffers too, which moves every position's rotary angle a little,
    more the further into the text; enough to change the greedy generations of long prompts (LUME's Task3
    completions scored ~0.007 ROUGE-L away from the organisers' script, issue 20).
    """
    copied = copy.deepcopy(model)
    for tensor in copied.state_dict(keep_vars=True).values():
        if tensor.is_floating_point():
            tensor.data = tensor.data.to(torch.bfloat16)
    return copied


def in_dtype(model: PreTrainedModel, dtype: str) -> PreTrainedModel:
    """`model` as an evaluation in `dtype` (an EvalConfig's: "model" or "bf16") runs it: a bf16 copy where it is not
    bf16 already, else `model` itself; the caller's model is never changed."""
    return bf16_copy(model) if dtype == "bf16" and model.dtype != torch.bfloat16 else model


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record],
    mia_members: list[str],
    mia_nonmembers: list[str],
    config: EvalConfig | None = None,
    progress: Callable[[float, str], None] | None = None,
    reference: PreTrainedModel | None = None,
    cancel: threading.Event | None = None,
    mia_source: str = "",
    notes: dict[str, str] | None = None,
) -> EvalReport:
    """Every registered metric on `model`: generations, official scores, memorisation, fluency, MIA, utility.

    `reference` judges fluency (the original model; `model` itself when evaluating the original). `notes` are the
    caller's departures from the official protocol (e.g. how the MIA members were chosen). Raises
    metrics.Cancelled when `cancel` is set (checked between batches).
    """
    config = config or EvalConfig()
    start = time.perf_counter()
    evaluated = in_dtype(model, config.dtype)
    was_training = model.training
    evaluated.eval()  # dropout off: scores must not depend on whether training left the model in train mode
    judge = in_dtype(reference, config.dtype) if reference is not None else evaluated  # fluency's, in the same dtype
    ctx = Context(evaluated, tokenizer, records, config, judge, mia_members, mia_nonmembers, mia_source,
                  _progress(progress), cancel)
    rows = [r.to_dict() for r in records]
    metrics, skipped = {}, {}
    try:
        for name, entry in METRICS.items():
            try:
                result = ctx.value(name)
            except Skip as why:
                skipped[name] = str(why)
                continue
            if entry.per_sample:
                for row, value in zip(rows, result):
                    row[name] = value
                metrics[name] = sample_summary(rows, name)
            else:
                metrics[name] = result
    finally:
        model.train(was_training)
    for row, text, view in zip(rows, ctx.shared(generations), token_view(tokenizer, ctx.shared(teacher_forced))):
        row.update(generation=text, tokens=view["tokens"], token_probs=view["probs"])
    if progress is not None:
        progress(1.0, "done")
    return EvalReport(
        rows=rows, metrics=metrics, skipped=skipped, unofficial={**(notes or {}), **protocol_notes(config, metrics, evaluated)},
        mode=config.mode, seconds=time.perf_counter() - start, config=asdict(config),
    )
