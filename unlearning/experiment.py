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
from unlearning.evaluation import Cancelled, EvalReport, evaluate
from unlearning.jobs import user_message
from unlearning.models import LoadedModel, cache_dir, load_model
from unlearning.monitor import Monitor
from unlearning.runs import RunConfig, RunStore, write_atomic

Progress = Callable[[float, str], None]


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
    retain_eval: list[Record]  # evaluated before and after: a fixed sample (fast) or all of them (official)
    mia_members: list[str]
    mia_nonmembers: list[str]
    mia_source: str  # what the members are, shown next to every MIA number
    notes: dict[str, str]  # how this selection departs from the official protocol
    holdout: list[Record]  # never trained on: the level a forgotten sample should fall to


def select(data: UnlearningData, config: RunConfig) -> Selection:
    """Resolve the run's ids into records, refusing empty or overlapping choices; choose the MIA documents.

    MIA members: in official mode the data's own member documents (LUME's files; for other data, its forget split's
    documents built as the official files are); in fast mode the selected forget samples' documents, since those are
    what this run unlearns. Non-members are always the data's (LUME's files, else its holdout documents).
    """
    forget = data.by_ids(config.forget_ids)
    retain = data.by_ids(config.retain_ids) if config.retain_ids is not None else data.split("retain")
    overlap = {r.id for r in forget} & {r.id for r in retain}
    if overlap:
        raise ValueError(f"{len(overlap)} sample(s) are in both the forget and the retain set, e.g. {sorted(overlap)[0]!r}.")
    retain_eval = sorted(retain, key=lambda r: r.id)
    if config.eval.retain_rows:
        retain_eval = random.Random(0).sample(retain_eval, min(config.eval.retain_rows, len(retain_eval)))
    notes = {}
    if config.eval.mode == "official":
        members, source = data.mia_members, data.mia_source
        if not data.mia_official:
            notes["mia"] = f"the data has no member/non-member files: MIA documents {data.mia_source}"
    else:
        members = [r.text for r in forget]
        source = f"the {len(forget)} selected forget samples, each as input + ' ' + output"
    return Selection(forget, retain, retain_eval, members, data.mia_nonmembers, source, notes, data.split("holdout"))


def source_stamp(source: str) -> float:
    """When a model folder's files last changed: a re-saved folder must not reuse the old folder's scores."""
    folder = Path(source)
    return max((f.stat().st_mtime for f in folder.iterdir() if f.is_file()), default=0.0) if folder.is_dir() else 0.0


def evaluate_cached(loaded: LoadedModel, key: dict, records: list[Record], sel: Selection, config: RunConfig,
                    progress: Progress, cancel: threading.Event | None) -> EvalReport:
    """The original model's scores depend only on model, samples and settings: compute them once per combination."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    file = cache_dir() / "evals" / f"{digest}.json"
    if file.exists():
        try:
            return EvalReport.from_dict(json.loads(file.read_text()))
        except (OSError, ValueError):  # a cache entry of an older or damaged format: measure again
            pass
    report = evaluate(loaded.model, loaded.tokenizer, records, sel.mia_members, sel.mia_nonmembers, config.eval, progress,
                      cancel=cancel, mia_source=sel.mia_source, notes=sel.notes)
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
        progress(0.0, "loading model and data")
        loaded = cached_model(config.model)
        sel = select(cached_data(config.data), config)
        check_data(sel.forget, sel.retain, config.train)
    except BaseException as error:
        if run_id is not None:
            store.set_status(run_id, "failed", user_message(error))
        raise
    records = sel.forget + sel.retain_eval
    run_id = run_id or store.create(config)
    store.set_status(run_id, "running", "evaluating the original model")
    try:

        def eval_progress(start: float, span: float, label: str) -> Progress:
            return lambda fraction, stage: progress(start + span * fraction, f"{label}: {stage}")

        key = {"model": config.model, "stamp": source_stamp(config.model), "data": config.data,
               "ids": [r.id for r in records], "eval": config.eval.__dict__, "mia": sel.mia_source}
        before = evaluate_cached(loaded, key, records, sel, config, eval_progress(0.0, 0.15, "evaluating before"), cancel)
        store.write_json(run_id, "before.json", before.to_dict())

        def step_logged(log: dict) -> None:
            store.append_step(run_id, log)
            scores = log.get("scores")
            forgotten = f", {scores['forgotten']}/{scores['forget_total']} forgotten" if scores else ""
            if log["step"]:  # step 0 holds the original's scores; the stage stays "compiling"/"step 0" until step 1
                progress(0.15 + 0.6 * log["step"] / config.train.steps,
                         f"unlearning: step {log['step']}/{config.train.steps}{forgotten}")
            if on_step is not None:
                on_step(log)

        steps = config.train.steps
        # a compiled run's first step includes torch.compile: say so, or the bar looks stuck for half a minute
        progress(0.15, f"unlearning: compiling, then step 1/{steps} (~30 s the first time)" if config.train.compile else f"unlearning: step 0/{steps}")
        monitor = (Monitor(loaded.tokenizer, sel.forget, sel.retain_eval, config.train, loaded.model,
                           config.eval.max_new_tokens, sel.holdout) if config.train.score_every else None)
        result = train(loaded.model, loaded.tokenizer, sel.forget, sel.retain, config.train, step_logged, cancel, monitor)
        if result.status not in ("completed", "stopped"):  # cancelled or diverged: keep the curve, skip the evaluation
            store.set_status(run_id, result.status, result.message)
            progress(1.0, result.message)
            return run_id, None
        after = evaluate(result.model, loaded.tokenizer, records, sel.mia_members, sel.mia_nonmembers, config.eval,
                         eval_progress(0.75, 0.25, "evaluating after"), reference=loaded.model, cancel=cancel,
                         mia_source=sel.mia_source, notes=sel.notes)
        store.write_json(run_id, "after.json", after.to_dict())
        if config.save_weights:  # a full model folder, loadable later as a model source; plus the adapter alone
            result.model.save_pretrained(store.path(run_id) / "model")
            loaded.tokenizer.save_pretrained(store.path(run_id) / "model")
            if result.adapter is not None:
                save_file({k: v.contiguous() for k, v in result.adapter.items()}, str(store.path(run_id) / "adapter.safetensors"))
        store.set_status(run_id, result.status, result.message, kept=result.kept)
        progress(1.0, result.message or "done")
        return run_id, result.model
    except Cancelled:
        message = "cancelled by the user during the evaluation; the curve so far is kept"
        store.set_status(run_id, "cancelled", message)
        progress(1.0, message)
        return run_id, None
    except BaseException as error:
        store.set_status(run_id, "failed", user_message(error))
        raise
