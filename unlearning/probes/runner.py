"""Run probes on a saved run: check it can be probed, gather what the probes read, run each, save each to probes.json.

A run can be probed once it finished (completed, or stopped by its guard) with its two evaluations saved, and when its
unlearned model is at hand: the app passes the one it keeps in memory; otherwise the weights saved with the run
(--save-weights) are loaded. Each probe's result is saved as soon as it ends, so a cancelled job keeps the ones done.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path

from transformers import PreTrainedModel

from unlearning.evaluation import Cancelled, EvalReport
from unlearning.data import cached_data
from unlearning.models import cached_model, load_model
from unlearning.plan import make_plan
from unlearning.probes.base import Progress, Subject, get_probes
from unlearning.runs import RunStore

PROBEABLE = ("completed", "stopped")  # "stopped": the retain guard ended the run, which was still evaluated
NO_MODEL = ("its unlearned model is not at hand: only the app keeps recent runs' models in memory, and this run did "
            "not save its weights. Re-run it with --save-weights (CLI) or 'Save the unlearned weights' ticked (Run tab).")


def saved_model(store: RunStore, run_id: str) -> Path | None:
    folder = store.path(run_id) / "model"
    return folder if (folder / "config.json").exists() else None


def problem(store: RunStore, run_id: str, model_at_hand: bool = False) -> str | None:
    """Why this run cannot be probed, in a sentence for the user; None when it can."""
    if not store.path(run_id).is_dir():
        return f"There is no run {run_id} in {store.root}: `python -m unlearning runs` lists them."
    state = store.status(run_id)
    name = state["status"]
    if name in ("queued", "running"):
        return f"Run {run_id} is still {name}: probe it once it has finished."
    if name not in PROBEABLE:
        why = f" ({state['message']})" if state.get("message") else ""
        return (f"Run {run_id} was {name}{why}: it has no unlearned model and no after-evaluation, so there is nothing "
                "to probe. Probe a completed run.")
    if store.read_json(run_id, "before.json") is None or store.read_json(run_id, "after.json") is None:
        return f"Run {run_id} has no before/after evaluation saved: there are no scores to compare a probe with."
    if not model_at_hand and saved_model(store, run_id) is None:
        return f"Run {run_id} cannot be probed: {NO_MODEL}"
    return None


def open_subject(store: RunStore, run_id: str, unlearned: PreTrainedModel | None = None) -> Subject:
    """The run as probes read it; raises ValueError with the reason when it cannot be probed."""
    why = problem(store, run_id, unlearned is not None)
    if why:
        raise ValueError(why)
    config = store.config(run_id)
    data = cached_data(config.data)
    if unlearned is None:
        unlearned = load_model(str(saved_model(store, run_id))).model
    return Subject(run_id, config, data, make_plan(config).selection, cached_model(config.model), unlearned,
                   EvalReport.from_dict(store.read_json(run_id, "before.json")),
                   EvalReport.from_dict(store.read_json(run_id, "after.json")))


def probe_summary(entry: dict) -> dict:
    """A saved probe without the oracle's whole evaluation report (its scores stay): what the CLI and app list."""
    return {**entry, "result": {k: v for k, v in entry["result"].items() if k != "report"}}


def run_probes(
    store: RunStore,
    run_id: str,
    names: list[str],
    options: dict[str, dict] | None = None,
    unlearned: PreTrainedModel | None = None,
    progress: Progress = lambda fraction, stage: None,
    cancel: threading.Event | None = None,
) -> dict[str, dict]:
    """Run the named probes on a run, saving each result to its probes.json; returns the entries saved.

    `options` maps a probe's name to its option values. Every probe's options are checked before the first one runs.
    A cancel stops the current probe and keeps the finished ones.
    """
    chosen = get_probes(names)
    checked = {p.name: p.options((options or {}).get(p.name)) for p in chosen}
    progress(0.0, "loading the run's models")
    subject = open_subject(store, run_id, unlearned)
    done = {}
    for i, entry in enumerate(chosen):
        if cancel is not None and cancel.is_set():
            break

        def part(fraction: float, stage: str, i: int = i, title: str = entry.title) -> None:
            progress((i + min(max(fraction, 0.0), 1.0)) / len(chosen), f"{title}: {stage}")

        start = time.perf_counter()
        try:
            result = entry.run(subject, checked[entry.name], part, cancel)
        except Cancelled:
            break
        done[entry.name] = {"title": entry.title, "asks": entry.asks, "options": asdict(checked[entry.name]),
                            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.perf_counter() - start, 1),
                            "result": result}
        store.save_probe(run_id, entry.name, done[entry.name])
    stopped = cancel is not None and cancel.is_set()
    progress(1.0, f"stopped: {len(done)} of {len(chosen)} probes done" if stopped else "done")
    return done
