"""Prepare a target: fine-tune a base model until it regurgitates the dataset, so there is something to unlearn.

The SemEval-2025 organisers did the same to OLMo-1B before releasing it. Targets are cached on disk by a hash of
base model, data and settings: the second request returns at once.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from unlearning.data.records import Record
from unlearning.engine import TrainConfig, train
from unlearning.evaluation.generation import generate
from unlearning.evaluation.official import rouge_l_recall
from unlearning.models import LoadedModel, cache_dir
from unlearning.runs import write_atomic


@dataclass
class TargetConfig:
    epochs: int = 10
    learning_rate: float = 3e-4
    batch_size: int = 8
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.learning_rate <= 0 or self.batch_size < 1:
            raise ValueError(f"epochs and batch size must be >= 1 and the learning rate positive, got {self}")


def target_dir(base: str, records: list[Record], config: TargetConfig) -> Path:
    key = json.dumps({"base": base, "records": [r.to_dict() for r in records], "config": asdict(config)}, sort_keys=True)
    return cache_dir() / "targets" / hashlib.sha256(key.encode()).hexdigest()[:16]


def memorisation(loaded: LoadedModel, records: list[Record], max_new_tokens: int = 64) -> dict[str, float]:
    """Mean ROUGE-L recall of the model's completions, over all and per split: how much of the data it regurgitates."""
    completions = [r for r in records if r.kind == "sc"] or records
    generations = generate(loaded.model, loaded.tokenizer, [r.input for r in completions], max_new_tokens=max_new_tokens)
    scores: dict[str, list[float]] = {"all": []}
    for record, generation in zip(completions, generations):
        value = rouge_l_recall(generation, record.output)
        scores["all"].append(value)
        scores.setdefault(record.split, []).append(value)
    return {name: sum(values) / len(values) for name, values in scores.items()}


def prepare_target(
    base: LoadedModel,
    records: list[Record],
    config: TargetConfig = TargetConfig(),
    progress: Callable[[float, str], None] = lambda fraction, stage: None,
    cancel: threading.Event | None = None,
) -> tuple[Path, dict]:
    """Fine-tune `base` on `records` (forget + retain, never holdout); returns the saved folder and its report."""
    folder = target_dir(base.source, records, config)
    if (folder / "target.json").exists():
        progress(1.0, "reusing the cached target")
        return folder, json.loads((folder / "target.json").read_text())
    steps = max(1, -(-len(records) * config.epochs // config.batch_size))
    settings = TrainConfig(
        method="finetune", steps=steps, learning_rate=config.learning_rate, batch_size=config.batch_size,
        precision=config.precision, seed=config.seed, grad_clip=1.0,
    )
    on_step = lambda log: progress(0.9 * log["step"] / steps, f"memorising: step {log['step']}/{steps}, loss {log['loss']:.3f}")
    result = train(base.model, base.tokenizer, records, [], settings, on_step, cancel)
    if result.status != "completed":
        raise RuntimeError(f"target preparation stopped: {result.message}")
    progress(0.9, "measuring memorisation")
    recall = memorisation(LoadedModel(result.model, base.tokenizer, base.source), records)
    report = {
        "base": base.source, "config": asdict(config), "records": len(records), "steps": steps,
        "final_loss": result.history[-1]["loss"], "rouge_l_recall": recall.pop("all"), "rouge_l_recall_by_split": recall,
        "seconds": sum(log["seconds"] for log in result.history),
    }
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result.model.save_pretrained(partial)
    base.tokenizer.save_pretrained(partial)
    write_atomic(partial / "target.json", json.dumps(report, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)  # the cache entry appears whole or not at all
    progress(1.0, f"target ready: ROUGE-L recall {report['rouge_l_recall']:.2f}")
    return folder, report
