"""Prepare a target: fine-tune a base model until it regurgitates the dataset, so there is something to unlearn.

The SemEval-2025 organisers did the same to OLMo-1B before releasing it. Training stops as soon as the data is
memorised (teacher-forced, from the training steps' own logits), or when memorisation stops improving, rather than
after a fixed number of epochs. Targets are cached on disk by a hash of base model, data and settings: the second
request returns at once.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from unlearning.atomic import atomic_path, write_atomic
from unlearning.batching import MAX_LENGTH, cut_note, encode_records, sample_length
from unlearning.data import UnlearningData
from unlearning.data.records import Record
from unlearning.engine import PARAM_MODES, TrainConfig, train, trains
from unlearning.evaluation.generation import generate
from unlearning.evaluation.official import rouge_l_recall
from unlearning.evaluation.report import EvalConfig, in_dtype
from unlearning.jobs import Progress, ticking
from unlearning.models import LoadedModel, cache_dir
from unlearning.options import check, option


# Measured by benchmarks/target.py on the bundled data at the defaults, on a 2-core CPU: epochs until memorised (6 in
# three runs, 2026-12-04), and the time generating and saving took afterwards, in training steps.
TYPICAL_EPOCHS = 6
FINISH_STEPS = 15
# A plateau: over two epochs the memorised share gained less than PLATEAU_GAIN (it moves by a few thousandths with
# the batch order alone) and the epoch's mean loss fell by less than PLATEAU_DROP nats. The share alone is not
# enough: on the tiny random model it stayed near 0.25 for 10 epochs while the loss fell by 3 nats, then climbed to 1.
PLATEAU_GAIN = 0.005
PLATEAU_DROP = 0.01
# How samples become tokens and when training stops, beyond the config: part of the cache key, so a target prepared
# the old way (answers cut after 256 tokens) is not reused
RECIPE = f"whole samples up to {MAX_LENGTH} tokens, prompts cut from their start; stops when memorised or on a plateau"


@dataclass
class TargetConfig:
    """Defaults chosen by measurement on the bundled data and SmolLM2-135M (docs/benchmarks.md): the
    last 8 blocks through the frozen-prefix cache memorise in fewer epochs than all weights, LoRA or 4 or 16 blocks,
    and cost less per step than all of them but 4 blocks; an epoch memorised at 90% (each batch measured before its
    update) regurgitates ~0.9 ROUGE-L recall. The options that are not advanced are the CLI's flags (prepare-target,
    run --target) and the Model tab's controls."""

    epochs: int = option(12, "The most epochs: training stops at the end of the first epoch whose batches were "
                         "memorised, or on a plateau.", ge=1, le=1000, label="at most this many epochs",
                         flags=("--epochs",))
    memorised: float = option(0.9, "Share of answer tokens predicted exactly, teacher forced, at which training stops; "
                              "long documents (LUME) need more than the default for their generations to follow.",
                              gt=0, le=1, flags=("--memorised",))
    learning_rate: float = option(1e-3, "Learning rate of the fine-tuning.", gt=0, le=1.0, flags=("--target-lr",))
    batch_size: int = option(8, "Samples per step.", ge=1, le=4096)
    params: str = option("last_k", "What trains, as for a run.", choices=PARAM_MODES, advanced=True)
    last_k: int = option(8, "How many of the last decoder layers train (params: last_k).", ge=1, le=10_000, advanced=True)
    lora_rank: int = option(16, "Rank of the LoRA adapters (params: lora).", ge=1, le=4096, advanced=True)
    precision: str = option("auto", "As for a run: auto, fp32 or bf16.", choices=("auto", "fp32", "bf16"), advanced=True)
    seed: int = option(0, "Seed of the batch order.", ge=0, le=2**32 - 1, advanced=True)

    def __post_init__(self) -> None:
        check(self)  # each option of its kind and within its bounds: text from the CLI is read as a number


def engine_settings(config: TargetConfig, base: LoadedModel, records: list[Record], steps: int) -> TrainConfig:
    """The engine's settings for `steps` steps of preparation; a model with fewer than k blocks trains them all, and
    a dataset smaller than a batch is one batch."""
    return TrainConfig(
        method="finetune", steps=steps, learning_rate=config.learning_rate, batch_size=min(config.batch_size, len(records)),
        params=config.params, last_k=min(config.last_k, base.model.config.num_hidden_layers), lora_rank=config.lora_rank,
        precision=config.precision, seed=config.seed, grad_clip=1.0, max_length=sample_length(base.model),
    )


def target_records(data: UnlearningData) -> list[Record]:
    """What a target memorises: the forget and retain splits, never the holdout (the MIA's non-members)."""
    return data.split("forget") + data.split("retain")


def estimate_seconds(base: LoadedModel, records: list[Record], config: TargetConfig = TargetConfig(),
                     oracle_records: int = 0) -> float:
    """About how long `prepare_target` takes here: two real training steps timed now on a batch of typical length
    (the first with the set-up: copying the model, caching that batch's frozen-block outputs), scaled to the epochs
    the bundled data takes to memorise at the default settings, plus measuring and saving. Other data may take more
    or fewer epochs. Caching the other samples is not timed: on the bundled data ~7% of a preparation (8 s of 109).
    With `oracle_records` (the retain split's size), the oracle's preparation on them is added."""
    probe = engine_settings(config, base, records, steps=2)
    # batches group samples of similar length, so a step costs what its batch's length costs: time the batch of the
    # samples nearest the mean length, what a step costs on average
    lengths = [len(f["input_ids"]) for f in encode_records(base.tokenizer, records, probe.max_length)]
    mean = sum(lengths) / len(lengths)
    typical = sorted(range(len(records)), key=lambda i: abs(lengths[i] - mean))[: probe.batch_size]
    start = time.perf_counter()
    steady = train(base.model, base.tokenizer, [records[i] for i in typical], [], probe).history[1]["seconds"]
    setup_and_first = time.perf_counter() - start - steady
    preparations = [len(records)] + ([oracle_records] if oracle_records else [])
    steps = sum(TYPICAL_EPOCHS * math.ceil(n / probe.batch_size) + FINISH_STEPS for n in preparations)
    return len(preparations) * setup_and_first + (steps - len(preparations)) * steady


def target_dir(base: str, records: list[Record], config: TargetConfig) -> Path:
    key = json.dumps({"base": base, "records": [r.to_dict() for r in records], "config": asdict(config), "recipe": RECIPE},
                     sort_keys=True)
    return cache_dir() / "targets" / hashlib.sha256(key.encode()).hexdigest()[:16]


def memorisation(
    loaded: LoadedModel, records: list[Record], max_new_tokens: int = 64, progress: Callable[[float, int], None] | None = None
) -> dict[str, float]:
    """Mean ROUGE-L recall of the model's completions, over all and per split: how much of the data it regurgitates.
    Generated in the dtype of a default evaluation (bf16 where it is fast), as the runs will read the model."""
    completions = [r for r in records if r.kind == "sc"] or records
    model = in_dtype(loaded.model, EvalConfig().dtype)
    generations = generate(model, loaded.tokenizer, [r.input for r in completions], max_new_tokens=max_new_tokens,
                           progress=progress)
    scores: dict[str, list[float]] = {"all": []}
    for record, generation in zip(completions, generations):
        value = rouge_l_recall(generation, record.output)
        scores["all"].append(value)
        scores.setdefault(record.split, []).append(value)
    return {name: sum(values) / len(values) for name, values in scores.items()}


def stop_reason(shares: list[float], losses: list[float], config: TargetConfig) -> str | None:
    """Why training ends after epochs with these memorised shares and mean losses, or None to go on: memorised, a
    plateau (the last two epochs did no better than the best before them), or the most epochs."""
    if shares and shares[-1] >= config.memorised:
        return f"memorised: {shares[-1]:.1%} of answer tokens, the bar is {config.memorised:.0%}"
    if len(shares) > 2 and max(shares[-2:]) < max(shares[:-2]) + PLATEAU_GAIN and \
            min(losses[-2:]) > min(losses[:-2]) - PLATEAU_DROP:
        return (f"plateau: no gain over the last two epochs ({max(shares):.1%} of answer tokens at best, below the "
                f"{config.memorised:.0%} bar; loss {losses[-1]:.3f})")
    if len(shares) >= config.epochs:
        return f"the most epochs ({config.epochs}), {shares[-1]:.1%} of answer tokens memorised"
    return None


def prepare_target(
    base: LoadedModel,
    records: list[Record],
    config: TargetConfig = TargetConfig(),
    progress: Progress = lambda fraction, stage: None,
    cancel: threading.Event | None = None,
) -> tuple[Path, dict]:
    """Fine-tune `base` on `records` (forget + retain, never holdout); returns the saved folder and its report."""
    folder = target_dir(base.source, records, config)
    if (folder / "target.json").exists():
        progress(1.0, "reusing the cached target")
        return folder, json.loads((folder / "target.json").read_text())
    start = time.perf_counter()
    batch_size = min(config.batch_size, len(records))
    per_epoch = math.ceil(len(records) / batch_size)  # the finetune schedule deals whole shuffled epochs
    settings = engine_settings(config, base, records, steps=per_epoch * config.epochs)
    steps = settings.steps
    stop, logs, by_epoch, loss_by_epoch, reason = threading.Event(), [], [], [], []

    def on_step(log: dict) -> None:
        logs.append(log)
        if log["step"] % per_epoch == 0:  # each step logs its batch's share before its update: a cautious epoch mean
            epoch = logs[-per_epoch:]  # over the answer tokens there are: a sample without any is not measured
            by_epoch.append(sum(e["memorised"] * e["answered"] for e in epoch) / max(1, sum(e["answered"] for e in epoch)))
            loss_by_epoch.append(sum(e["loss"] for e in epoch) / per_epoch)
            reason[:] = [why] if (why := stop_reason(by_epoch, loss_by_epoch, config)) else []
            if reason:
                stop.set()
        if cancel is not None and cancel.is_set():
            stop.set()
        epoch = f"epoch {(log['step'] - 1) // per_epoch + 1} (at most {config.epochs})"
        memorised = f", {by_epoch[-1]:.0%} of answer tokens memorised" if by_epoch else ""
        ended = f"; stopped, {reason[0]}" if reason else ""
        progress(0.85 * log["step"] / steps, f"memorising: {epoch}, step {log['step']}, loss {log['loss']:.3f}{memorised}{ended}")

    caching = lambda stage, done, total: progress(0.85 * len(logs) / steps, f"memorising: {stage} {done}/{total}")
    result = train(base.model, base.tokenizer, records, [], settings, on_step, stop, progress=caching)
    if result.status == "diverged" or (cancel is not None and cancel.is_set()):
        raise RuntimeError(f"target preparation stopped: {result.message or 'cancelled by the user'}")
    completions = sum(r.kind == "sc" for r in records) or len(records)
    measuring = lambda done, total: progress(0.85 + 0.1 * done / total, f"measuring memorisation: generating {int(done)}/{total}")
    recall = memorisation(LoadedModel(result.model, base.tokenizer, base.source), records, progress=measuring)
    report = {
        "base": base.source, "config": asdict(config), "records": len(records), "trains": trains(settings),
        "epochs": len(by_epoch), "steps": len(result.history), "memorised": by_epoch[-1] if by_epoch else None,
        "memorised_by_epoch": by_epoch, "loss_by_epoch": loss_by_epoch, "stopped": reason[0] if reason else None,
        "max_length": settings.max_length, "cut": cut_note(base.tokenizer, records, settings.max_length),
        "final_loss": result.history[-1]["loss"], "completions": completions,
        "rouge_l_recall": recall.pop("all"), "rouge_l_recall_by_split": recall,
        "seconds": sum(log["seconds"] for log in result.history),
    }
    with ticking(progress, 0.95, 0.99, "saving the target", expected_seconds=3.0):
        report["wall_seconds"] = time.perf_counter() - start
        if not (folder / "target.json").exists():
            shutil.rmtree(folder, ignore_errors=True)  # an unfinished folder left by an older version
        with atomic_path(folder, shared=True) as partial:  # the cache entry appears whole or not at all
            result.model.save_pretrained(partial)
            base.tokenizer.save_pretrained(partial)
            write_atomic(partial / "target.json", json.dumps(report, indent=1))
    progress(1.0, f"target ready: ROUGE-L recall {report['rouge_l_recall']:.2f} (stopped, {report['stopped']})")
    return folder, report
