"""One unlearning experiment end to end: evaluate before, unlearn, evaluate after, save everything as a run."""
from __future__ import annotations

import functools
import hashlib
import json
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from safetensors.torch import save_file
from transformers import PreTrainedModel

from unlearning.data import UnlearningData, load_data
from unlearning.data.records import Record
from unlearning.engine import check_data, train
from unlearning.evaluate import EvalReport, collapse_warnings, evaluate
from unlearning.jobs import Progress, ticking, user_message
from unlearning.models import LoadedModel, cache_dir, load_model
from unlearning.runs import RunConfig, RunStore, write_atomic

# Share of an evaluation's time each stage of `evaluate` takes, roughly: (start, width) within its progress span.
EVAL_STAGES = {"generate": (0.0, 0.7), "losses": (0.7, 0.1), "mia": (0.8, 0.1), "utility": (0.9, 0.1), "done": (1.0, 0.0)}


@functools.lru_cache(maxsize=2)
def cached_model(source: str) -> LoadedModel:
    """Loaded models are shared read-only: the engine trains a copy, so one load serves every run."""
    return load_model(source)


@functools.lru_cache(maxsize=4)
def cached_data(source: str) -> UnlearningData:
    return load_data(source)


@dataclass
class Selection:
    forget: list[Record]
    retain: list[Record]  # trained on (the retain term)
    retain_eval: list[Record]  # evaluated before and after: a fixed sample, so every run is scored alike
    mia_members: list[str]
    mia_nonmembers: list[str]


def select(data: UnlearningData, config: RunConfig, retain_eval_size: int = 40) -> Selection:
    """Resolve the run's ids into records, refusing empty or overlapping choices."""
    forget = data.by_ids(config.forget_ids)
    retain = data.by_ids(config.retain_ids) if config.retain_ids is not None else data.split("retain")
    overlap = {r.id for r in forget} & {r.id for r in retain}
    if overlap:
        raise ValueError(f"{len(overlap)} sample(s) are in both the forget and the retain set, e.g. {sorted(overlap)[0]!r}.")
    retain_eval = sorted(retain, key=lambda r: r.id)
    retain_eval = random.Random(0).sample(retain_eval, min(retain_eval_size, len(retain_eval)))
    # MIA asks: do the forgotten samples still look like training data, compared with text never trained on?
    holdout = [r.text for r in data.split("holdout")]
    return Selection(forget, retain, retain_eval, [r.text for r in forget], data.mia_nonmembers or holdout)


def source_stamp(source: str) -> float:
    """When a model folder's files last changed: a re-saved folder must not reuse the old folder's scores."""
    folder = Path(source)
    return max((f.stat().st_mtime for f in folder.iterdir() if f.is_file()), default=0.0) if folder.is_dir() else 0.0


def evaluate_cached(model: PreTrainedModel, loaded: LoadedModel, key: dict, records: list[Record], sel: Selection, config: RunConfig, progress) -> EvalReport:
    """The original model's scores depend only on model, samples and settings: compute them once per combination."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    file = cache_dir() / "evals" / f"{digest}.json"
    if file.exists():
        return EvalReport.from_dict(json.loads(file.read_text()))
    report = evaluate(model, loaded.tokenizer, records, sel.mia_members, sel.mia_nonmembers, config.eval, progress)
    file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(file, json.dumps(report.to_dict()))
    return report


def run_experiment(
    config: RunConfig,
    store: RunStore,
    progress: Progress = lambda fraction, stage: None,
    on_step: Callable[[dict], None] | None = None,
    cancel: threading.Event | None = None,
    run_id: str | None = None,
) -> tuple[str, PreTrainedModel | None]:
    """Run `config` and save it in `store`; returns the run id and the unlearned model (None unless completed).

    Without `run_id`, bad input (no such model, unknown ids, overlapping sets) fails before a run exists, so it
    changes nothing; a caller that made the run beforehand (to show it queued) gets it marked failed instead.
    """
    try:
        with ticking(progress, 0.0, 0.02, f"loading {config.model}", expected_seconds=5.0):
            loaded = cached_model(config.model)
        sel = select(cached_data(config.data), config)
        check_data(sel.forget, sel.retain, config.train, loaded.model)
    except BaseException as error:
        if run_id is not None:
            store.set_status(run_id, "failed", user_message(error))
        raise
    records = sel.forget + sel.retain_eval
    run_id = run_id or store.create(config)
    store.set_status(run_id, "running", "evaluating the original model")
    try:

        def eval_progress(start: float, span: float, label: str):
            def report(stage: str, done: int, total: int) -> None:
                begin, width = EVAL_STAGES[stage]  # stages in order, so the bar never moves backwards
                progress(start + span * (begin + width * done / max(total, 1)), f"{label}: {stage} {done}/{total}")

            return report

        key = {"model": config.model, "stamp": source_stamp(config.model), "data": config.data,
               "ids": [r.id for r in records], "eval": config.eval.__dict__}
        before = evaluate_cached(loaded.model, loaded, key, records, sel, config, eval_progress(0.02, 0.13, "evaluating before"))
        store.write_json(run_id, "before.json", before.to_dict())

        def step_logged(log: dict) -> None:
            store.append_step(run_id, log)
            progress(0.15 + 0.6 * log["step"] / config.train.steps, f"unlearning: step {log['step']}/{config.train.steps}")
            if on_step is not None:
                on_step(log)

        steps = config.train.steps
        # a compiled run's first step includes torch.compile: say so, or the bar looks stuck for half a minute
        progress(0.15, f"unlearning: compiling, then step 1/{steps} (~30 s the first time)" if config.train.compile else f"unlearning: step 0/{steps}")
        caching = lambda stage, done, total: progress(0.15, f"unlearning: caching the frozen blocks' outputs, {done}/{total} samples")
        result = train(loaded.model, loaded.tokenizer, sel.forget, sel.retain, config.train, step_logged, cancel, caching)
        if result.status != "completed":  # cancelled or diverged: keep the curve, skip the slow evaluation
            store.set_status(run_id, result.status, result.message)
            progress(1.0, result.message)
            return run_id, None
        after = evaluate(result.model, loaded.tokenizer, records, sel.mia_members, sel.mia_nonmembers, config.eval, eval_progress(0.75, 0.25, "evaluating after"))
        after.warnings = collapse_warnings(after, before)  # relative checks: what this run broke, not what was never there
        store.write_json(run_id, "after.json", after.to_dict())
        if config.save_weights:  # a full model folder, loadable later as a model source; plus the adapter alone
            result.model.save_pretrained(store.path(run_id) / "model")
            loaded.tokenizer.save_pretrained(store.path(run_id) / "model")
            if result.adapter is not None:
                save_file({k: v.contiguous() for k, v in result.adapter.items()}, str(store.path(run_id) / "adapter.safetensors"))
        store.set_status(run_id, result.status, result.message)
        progress(1.0, result.message or "done")
        return run_id, result.model
    except BaseException as error:
        store.set_status(run_id, "failed", user_message(error))
        raise
