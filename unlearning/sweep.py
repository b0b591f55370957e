"""Sweeps: a grid or list of settings run as one job, each point a normal saved run tagged with the sweep's id.

A grid maps a setting to the values to try: any training option ("learning_rate" or "lr", "steps", "params", "last_k",
"seed", ...), "method", or a method option ("alpha", "beta", ...). Each point is the base request with those values,
checked by the run plan like any run. Points share what they can without any bookkeeping here: the model is loaded
once (models.cached_model), the data once (cached_data), the original's evaluation is computed once and reused by
every point (experiment.cached_report), so are its scores before the first step (unlearning.monitor), and last-k
points reuse one frozen-prefix cache (unlearning.prefix). A cancelled sweep keeps the points that finished.
"""
from __future__ import annotations

import copy
import itertools
import json
import secrets
import threading
import time
from typing import Any, Callable, Mapping

from unlearning.engine import TrainConfig
from unlearning.experiment import Progress, run_experiment
from unlearning.options import options
from unlearning.plan import Plan, PlanError, make_plan
from unlearning.prefix import PrefixCache
from unlearning.runs import RunStore

ALIASES = {"lr": "learning_rate"}
TRAIN_OPTIONS = {o.name for o in options(TrainConfig)} | {"method"}


def parse_grid(items: list[str]) -> dict[str, list]:
    """["lr=1e-5,3e-5", "alpha=10,30"] -> {"learning_rate": [1e-05, 3e-05], "alpha": [10, 30]}; values read as JSON
    when they parse (numbers, true/false), else kept as text; the run plan checks them."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = ALIASES.get(key.strip(), key.strip())
        if not sep or not key or not values.strip():
            raise ValueError(f"a grid entry looks like name=value1,value2; got {item!r}")
        grid[key] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def points(base: Mapping[str, Any], grid: dict[str, list], sweep_id: str) -> list[Plan]:
    """One checked plan per combination of the grid's values (base: a run request, as the CLI and the app build it);
    every point is checked before any runs, and a bad one is refused with its settings named."""
    if not grid:
        raise ValueError("a sweep needs at least one setting to vary, e.g. lr=1e-5,3e-5")
    names = list(grid)
    if base.get("forget_n") is not None:  # drawn once: every point forgets the same samples, whatever its seed
        base = {**base, "forget_n": None, "forget_ids": make_plan(base).config.forget_ids}
    plans, problems = [], []
    for values in itertools.product(*(grid[n] for n in names)):
        request = copy.deepcopy(dict(base))
        train = request.setdefault("train", {})
        for name, value in zip(names, values):
            target = train if name in TRAIN_OPTIONS else train.setdefault("method_options", {})
            target[name] = value
        label = " ".join(f"{n}={v}" for n, v in zip(names, values))
        request |= {"sweep": sweep_id, "name": f"{base.get('name') or ''} {label}".strip()}
        try:
            plans.append(make_plan(request))
        except PlanError as error:
            problems += [f"sweep point {label}: {p}" for p in error.problems]
    if problems:
        raise PlanError(problems)
    return plans


def new_sweep_id() -> str:
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def run_sweep(
    plans: list[Plan],
    store: RunStore,
    progress: Progress = lambda fraction, stage: None,
    cancel: threading.Event | None = None,
    on_start: Callable[[str], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> list[str]:
    """Run each point in turn; returns the run ids made. Progress spans the whole sweep; `on_start` hears each point's
    run id as it starts; cancel stops the current point and keeps every finished one."""
    run_ids, prefix = [], PrefixCache()  # points with the same model and k reuse the frozen blocks' outputs
    for i, plan in enumerate(plans):
        if cancel is not None and cancel.is_set():
            break
        run_id = store.create(plan.config)
        if on_start is not None:
            on_start(run_id)
        label = f"point {i + 1}/{len(plans)} ({plan.config.name})"
        _, model = run_experiment(
            plan, store, lambda fraction, stage: progress((i + fraction) / len(plans), f"{label}: {stage}"),
            on_step, cancel, run_id, prefix,
        )
        del model  # each point's unlearned model is a whole copy: let it go before the next one trains
        run_ids.append(run_id)
    return run_ids
