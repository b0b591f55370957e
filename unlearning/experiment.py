"""One unlearning experiment end to end: evaluate before, unlearn, evaluate after, save everything as a run."""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Callable

from safetensors.torch import save_file
from transformers import PreTrainedModel

from unlearning.atomic import atomic_path, to_json, write_atomic
from unlearning.data import cached_data
from unlearning.engine import give_back_freed_memory, train
from unlearning.evaluation import Cancelled, EvalReport, evaluate
from unlearning.evaluation.knowledge import knowledge_checks
from unlearning.jobs import Progress, ticking, user_message
from unlearning.models import LoadedModel, cache_dir, cached_model
from unlearning.monitor import Monitor
from unlearning.oracle import oracle_folder
from unlearning.plan import Plan, Selection
from unlearning.prefix import PrefixCache
from unlearning.run_config import RunConfig
from unlearning.runs import RunStore


def source_stamp(source: str) -> float:
    """When a model folder's files last changed: a re-saved folder must not reuse the old folder's scores."""
    folder = Path(source)
    return max((f.stat().st_mtime for f in folder.iterdir() if f.is_file()), default=0.0) if folder.is_dir() else 0.0


def cached_report(key: dict, compute: Callable[[], EvalReport]) -> EvalReport:
    """An evaluation of a model that does not change (the original, the oracle, the original rounded) depends only on
    `key` (model, samples, settings): computed once per combination and kept in the cache folder."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    file = cache_dir() / "evals" / f"{digest}.json"
    try:
        return EvalReport.from_dict(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError):  # not cached yet, or a damaged or older cache entry: compute it again
        pass
    report = compute()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(file, to_json(report.to_dict()))
    except OSError:  # a cache that cannot be written (full disk) costs time later, never the run
        pass
    return report


def evaluate_model(source: str, sel: Selection, config: RunConfig, progress: Progress,
                   cancel: threading.Event | None) -> EvalReport:
    """A model that does not change (the original, the oracle) on a run's samples: cached per model, samples and
    settings, so every run from the same original shares it."""
    records = sel.forget + sel.retain_eval
    key = {"model": source, "stamp": source_stamp(source), "data": config.data, "ids": [r.id for r in records],
           "eval": config.eval.__dict__, "mia": sel.mia_source}
    with ticking(progress, 0.0, 0.02, f"loading {source}", expected_seconds=3.0):  # the oracle's first load
        loaded = cached_model(source)
    return cached_report(key, lambda: evaluate(
        loaded.model, loaded.tokenizer, records, sel.mia_members, sel.mia_nonmembers, config.eval, progress,
        cancel=cancel, mia_source=sel.mia_source, notes=sel.notes))


def evaluate_after(plan: Plan, original: LoadedModel, unlearned: PreTrainedModel, progress: Progress,
                   cancel: threading.Event | None) -> EvalReport:
    """The unlearned model on the run's samples, with what the verdict reads it against stored in the report: the
    oracle's evaluation on the same samples (where the oracle is prepared: `prepare-target` makes it; cached per
    oracle and samples) and the knowledge checks (question forms and paraphrases, teacher forced, on the original,
    the unlearned model and the oracle)."""
    sel, config = plan.selection, plan.config
    records = sel.forget + sel.retain_eval
    after = evaluate(unlearned, original.tokenizer, records, sel.mia_members, sel.mia_nonmembers, config.eval,
                     lambda f, text: progress(0.85 * f, text), reference=original.model, cancel=cancel,
                     mia_source=sel.mia_source, notes=sel.notes)
    data = cached_data(config.data)
    folder = oracle_folder(config.model, data)
    models = {"original": original.model, "unlearned": unlearned}
    if folder is not None:
        after.reference = evaluate_model(str(folder), sel, config,
                                         lambda f, text: progress(0.85 + 0.1 * f, f"the oracle: {text}"), cancel).to_dict()
        models["oracle"] = cached_model(str(folder)).model
    after.checks = knowledge_checks(models, original.tokenizer, data, sel.forget, lambda text: progress(0.96, text))
    return after


def run_experiment(
    plan: Plan,
    store: RunStore,
    progress: Progress = lambda fraction, stage: None,
    on_step: Callable[[dict], None] | None = None,
    cancel: threading.Event | None = None,
    run_id: str | None = None,
    prefix: PrefixCache | None = None,
) -> tuple[str, PreTrainedModel | None]:
    """Run a checked plan (unlearning.plan.make_plan) and save it in `store`; returns the run id and the unlearned
    model (None unless completed). A caller may have created the run beforehand (the app, to show it queued).
    `prefix`: a frozen-prefix cache shared with other runs (a sweep's), see unlearning.prefix.

    The run's status follows its stage (evaluating before, unlearning step n/N, evaluating after, saving), so any
    reader sees where it is. Whatever stops it is written down: failed with a readable reason, or cancelled when a
    signal interrupted it (KeyboardInterrupt).
    """
    config, sel = plan.config, plan.selection
    run_id = run_id or store.create(config)
    stage = ""

    def report(fraction: float, text: str) -> None:
        nonlocal stage
        stage = text
        store.set_status(run_id, "running", text)  # every reader, in any process, sees the stage the bar shows
        progress(fraction, text)

    try:
        with ticking(report, 0.0, 0.02, f"loading {config.model}", expected_seconds=5.0):
            loaded = cached_model(config.model)

        def eval_progress(start: float, span: float, label: str) -> Progress:
            return lambda fraction, text: report(start + span * fraction, f"{label}: {text}")

        before = evaluate_model(config.model, sel, config, eval_progress(0.02, 0.13, "evaluating before"), cancel)
        store.write_json(run_id, "before.json", before.to_dict())

        steps = config.train.steps
        last = 0  # the last step logged: work between steps is reported beside it

        def step_logged(log: dict) -> None:
            store.append_step(run_id, log)
            scores = log.get("scores")
            forgotten = f", {scores['forgotten']}/{scores['forget_total']} forgotten" if scores else ""
            nonlocal last
            if log["step"]:  # step 0 holds the original's scores; the stage stays "compiling"/"step 0" until step 1
                last = log["step"]
                report(0.15 + 0.6 * log["step"] / steps, f"unlearning: step {log['step']}/{steps}{forgotten}")
            if on_step is not None:
                on_step(log)

        def between_steps(stage: str, count: float, total: int) -> None:
            report(0.15 + 0.6 * last / steps, f"unlearning: step {last}/{steps}, {stage} {int(count)}/{total}")

        # a compiled run's first step includes torch.compile: say so, or the bar looks stuck for half a minute
        report(0.15, f"unlearning: compiling, then step 1/{steps} (~30 s the first time)" if config.train.compile else f"unlearning: step 0/{steps}")
        monitor = (Monitor(loaded.tokenizer, sel.forget, sel.retain_eval, config.train, loaded.model,
                           config.eval.max_new_tokens, sel.holdout) if config.train.score_every else None)
        result = train(loaded.model, loaded.tokenizer, sel.forget, sel.retain, config.train, step_logged, cancel, monitor,
                       between_steps, prefix)
        if result.status not in ("completed", "stopped"):  # cancelled or diverged: keep the curve, skip the evaluation
            store.set_status(run_id, result.status, result.message)
            progress(1.0, result.message)
            return run_id, None
        after = evaluate_after(plan, loaded, result.model, eval_progress(0.75, 0.24, "evaluating after"), cancel)
        store.write_json(run_id, "after.json", after.to_dict())
        if config.save_weights:  # a full model folder, loadable later as a model source; plus the adapter alone
            report(0.99, "saving the unlearned weights")
            with atomic_path(store.path(run_id) / "model") as folder:
                result.model.save_pretrained(folder)
                loaded.tokenizer.save_pretrained(folder)
            if result.adapter is not None:
                with atomic_path(store.path(run_id) / "adapter.safetensors") as file:
                    save_file({k: v.contiguous() for k, v in result.adapter.items()}, str(file))
        store.set_status(run_id, result.status, result.message, kept=result.kept)
        progress(1.0, result.message or "done")
        return run_id, result.model
    except Cancelled:
        message = "cancelled by the user during the evaluation; the curve so far is kept"
        store.set_status(run_id, "cancelled", message)
        progress(1.0, message)
        return run_id, None
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            status, message = "cancelled", f"stopped by a signal while {stage or 'starting'}"
        else:
            status, message = "failed", user_message(error)
        try:
            store.set_status(run_id, status, message)
        except OSError:  # not even the status could be written: readers see the stage it reached
            pass
        raise
    finally:
        give_back_freed_memory()
