"""Relearning attack: fine-tune the unlearned model a few steps on half of its forget samples, score the other half.

If the forgetting only hid the answers, a little training on related samples brings back the ones it never trained on
(Hu et al. 2024; Lucki et al. 2024; Deeb & Roger 2024 recovered 88% of held-out accuracy). The held-out half is never
trained on, so what comes back there was still in the weights. A model that never knew the data gets the same attack
(the control): what it gains on the held-out half is learnt from the trained half (shared templates and phrasing),
not recovered, and the verdict sets the two side by side.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.data.records import Record
from unlearning.engine import TrainConfig, train
from unlearning.evaluation import Cancelled
from unlearning.models import cached_model
from unlearning.monitor import Monitor
from unlearning.options import option
from unlearning.probes.base import (HEADLINE, KNOWLEDGE, ProbeOptions, Progress, Subject, bars, compare, means,
                                    probe, verdict)
from unlearning.oracle import oracle_folder, prepare_oracle, target_report

CONTROLS = ("auto", "base", "oracle", "none")


@dataclass
class Options(ProbeOptions):
    steps: int = option(10, "Fine-tuning steps on the trained half: a few, as an attacker with a little data would.",
                        ge=1, le=1000)
    learning_rate: float = option(0.0, "The attack's learning rate; 0 = the run's own.", ge=0.0, le=1.0)
    batch_size: int = option(4, "Samples per step (at most the trained half).", ge=1, le=256)
    score_every: int = option(2, "Score both halves every N steps for the curve (teacher forced, no generation).",
                              ge=1, le=1000)
    seed: int = option(0, "Which samples go to which half, and the order they are trained in.", ge=0, le=2**31 - 1)
    control: str = option("auto", "A model that never knew the data, attacked the same way: 'base' (the model the "
                                  "target was prepared from), 'oracle' (retain only; prepared if missing), 'none', or "
                                  "'auto' (the base, else an oracle already prepared, else none).", choices=CONTROLS)


def halves(records: list[Record], seed: int) -> tuple[list[Record], list[Record]]:
    """Split into a trained and a held-out half, dealing each task and kind out in turn so both halves hold them."""
    rng = random.Random(seed)
    groups: dict[tuple, list[Record]] = {}
    for record in records:
        groups.setdefault((record.task, record.kind), []).append(record)
    dealt: list[list[Record]] = [[], []]
    turn = 0
    for key in sorted(groups):
        group = groups[key]
        rng.shuffle(group)
        for record in group:
            dealt[turn].append(record)
            turn = 1 - turn
    return dealt[0], dealt[1]


def attack(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, trained: list[Record], held_out: list[Record],
           options: Options, learning_rate: float, progress: Progress,
           cancel: threading.Event | None) -> tuple[PreTrainedModel, list[dict]]:
    """Fine-tune a copy of `model` on `trained` (the engine's plain fine-tuning); returns it and the curve of both
    halves' teacher-forced scores every `score_every` steps (step 0: before the attack)."""
    config = TrainConfig(method="finetune", steps=options.steps, learning_rate=learning_rate, seed=options.seed,
                         batch_size=min(options.batch_size, len(trained)), score_every=options.score_every)
    # The monitor scores its forget and retain-eval lists; here they are the trained and the held-out half.
    monitor = Monitor(tokenizer, trained, held_out, config)
    curve = []

    def on_step(log: dict) -> None:
        scores = log.get("scores")
        if scores:
            curve.append({"step": log["step"], "trained_em": scores["forget_em"], "trained_nll": scores["forget_nll"],
                          "held_out_em": scores["retain_em"], "held_out_nll": scores["retain_nll"]})
        progress(log["step"] / options.steps, f"step {log['step']}/{options.steps}")

    result = train(model, tokenizer, trained, [], config, on_step, cancel, monitor)
    if result.status == "cancelled":
        raise Cancelled(result.message)
    if result.status != "completed":
        raise RuntimeError(f"the relearning attack stopped: {result.message}")
    return result.model, curve


def control_model(subject: Subject, choice: str, progress: Progress,
                  cancel: threading.Event | None) -> tuple[str, str, PreTrainedModel | None, str]:
    """(kind, source, model, why) of the control: a model that never saw the forget samples."""
    base = (target_report(subject.config.model) or {}).get("base")
    if choice == "base" and not base:
        raise ValueError("control 'base' needs a run on a prepared target (its target.json names the base model); "
                         "choose 'oracle' or 'none'")
    if choice in ("auto", "base") and base:
        return "base", base, cached_model(base).model, "the model the target was prepared from"
    cached = oracle_folder(subject.config.model, subject.data)
    if choice == "oracle" or (choice == "auto" and cached is not None):
        folder = cached or prepare_oracle(subject.config.model, subject.data, progress, cancel)[0]
        return "oracle", str(folder), cached_model(str(folder)).model, "trained on the retain split only"
    why = "no control asked for" if choice == "none" else (
        "the run's model is not a prepared target and no oracle is prepared yet (the oracle probe or "
        "`prepare-target --oracle` makes one)")
    return "none", "", None, why


@probe(name="relearn", title="Relearning attack",
       asks="Does a little fine-tuning on some forgotten samples bring back the others?", options=Options)
def run(subject: Subject, options: Options, progress: Progress, cancel: threading.Event | None) -> dict:
    forget = subject.selection.forget
    if len(forget) < 2:
        raise ValueError("the relearning attack needs at least 2 forget samples: one half to train on, one to score")
    trained, held_out = halves(forget, options.seed)
    ids = [r.id for r in held_out]
    lr = options.learning_rate or subject.config.train.learning_rate
    tokenizer = subject.tokenizer

    def part(start: float, span: float, label: str) -> Progress:
        return lambda fraction, stage: progress(start + span * fraction, f"{label}: {stage}")

    original, unlearned = means(subject.before.rows, ids), means(subject.after.rows, ids)
    model, curve = attack(subject.unlearned, tokenizer, trained, held_out, options, lr,
                          part(0.0, 0.3, "attacking the unlearned model"), cancel)
    attacked = means(subject.rescore(model, held_out, part(0.3, 0.15, "scoring the held-out half"), cancel).rows)
    del model
    metrics = compare(original, unlearned, attacked)

    kind, source, control, why = control_model(subject, options.control, part(0.45, 0.2, "preparing the oracle"), cancel)
    control_result, control_curve = {"kind": kind, "model": source, "why": why}, []
    if control is not None:
        start = means(subject.rescore(control, held_out, part(0.65, 0.1, "scoring the control"), cancel).rows)
        model, control_curve = attack(control, tokenizer, trained, held_out, options, lr,
                                      part(0.75, 0.15, "attacking the control"), cancel)
        end = means(subject.rescore(model, held_out, part(0.9, 0.1, "scoring the attacked control"), cancel).rows)
        del model
        # the control's gain on the same scale as recovery: a share of the run's own drop
        gains = {name: (end[name] - start[name]) / (original[name] - unlearned[name])
                 if None not in (start[name], end[name]) and metrics[name]["recovery"] is not None else None
                 for name in KNOWLEDGE}
        control_result |= {"metrics": {name: {"before": start[name], "attacked": end[name], "gain": gains[name]}
                                        for name in KNOWLEDGE}}

    headline = verdict(metrics[HEADLINE]["recovery"], f"after {options.steps} steps")
    gain = control_result.get("metrics", {}).get(HEADLINE, {}).get("gain")
    if headline["value"] is not None:
        headline["text"] += (f" (a model that never saw these samples gains {gain:.0%} of the same gap)" if gain is not None
                             else " (no control: " + why + ")" if control is None else "")
    reference = {"original": original.get("exact_memorization"), "unlearned": unlearned.get("exact_memorization")}
    attacked_label = f"after {options.steps} steps"
    probed = {attacked_label: attacked} | ({f"control {attacked_label}": end} if control is not None else {})
    return {
        "halves": {"trained": [r.id for r in trained], "held_out": ids},
        "learning_rate": lr, "steps": options.steps,
        "metrics": metrics, "control": control_result,
        "curve": {"unlearned": curve, "control": control_curve, "reference": reference},
        "headline": headline,
        "bars": bars(original, unlearned, probed, {attacked_label: {n: m["recovery"] for n, m in metrics.items()}}),
    }
