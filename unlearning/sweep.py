"""Sweeps: a grid or list of settings run as one job, each point a normal saved run tagged with the sweep's id.

A grid maps a setting to the values to try: any TrainConfig field ("learning_rate" or "lr", "steps", "params",
"last_k", "seed", ...), "method", or a method option ("alpha", "beta", ...). Points share what they can without
any bookkeeping here: the model is loaded once (experiment.cached_model), the data once (cached_data), and the
original's evaluation is computed once and reused by every point (experiment.evaluate_cached). A cancelled sweep
keeps the points that finished.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
import threading
import time
from dataclasses import fields
from typing import Callable

from unlearning.engine import TrainConfig
from unlearning.experiment import Progress, run_experiment
from unlearning.methods import METHODS
from unlearning.runs import RunConfig, RunStore

ALIASES = {"lr": "learning_rate"}
TRAIN_FIELDS = {f.name: f for f in fields(TrainConfig) if f.name != "method_options"}


def parse_grid(items: list[str]) -> dict[str, list]:
    """["lr=1e-5,3e-5", "alpha=10,30"] -> {"learning_rate": [1e-05, 3e-05], "alpha": [10, 30]}; values read as JSON
    when they parse (numbers, true/false), else kept as text."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = ALIASES.get(key.strip(), key.strip())
        if not sep or not key or not values.strip():
            raise ValueError(f"a grid entry looks like name=value1,value2; got {item!r}")
        grid[key] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def points(base: RunConfig, grid: dict[str, list], sweep_id: str) -> list[RunConfig]:
    """One checked RunConfig per combination of the grid's values; a bad value fails here, before anything runs."""
    if not grid:
        raise ValueError("a sweep needs at least one setting to vary, e.g. lr=1e-5,3e-5")
    names = list(grid)
    configs = []
    for values in itertools.product(*(grid[n] for n in names)):
        train = dataclasses.asdict(base.train)
        label = []
        for name, value in zip(names, values):
            if name == "method" or name in TRAIN_FIELDS:
                train[name] = value
            else:
                train["method_options"] = {**train["method_options"], name: value}
            label.append(f"{name}={value}")
        method = METHODS.get(train["method"])
        known = {f.name for f in fields(method.Config)} if method else set()
        # options of the base method that the point's method does not take are dropped, so one grid can mix methods
        train["method_options"] = {k: v for k, v in train["method_options"].items() if k in known or k in grid}
        try:
            config = dataclasses.replace(base, train=TrainConfig(**train), sweep=sweep_id,
                                         name=" ".join(label) if not base.name else f"{base.name} {' '.join(label)}")
        except (TypeError, ValueError) as error:
            raise ValueError(f"sweep point {' '.join(label)}: {error}") from error
        configs.append(config)
    return configs


def new_sweep_id() -> str:
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def run_sweep(
    configs: list[RunConfig],
    store: RunStore,
    progress: Progress = lambda fraction, stage: None,
    cancel: threading.Event | None = None,
    on_start: Callable[[str], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> list[str]:
    """Run each point in turn; returns the run ids made. Progress spans the whole sweep; `on_start` hears each point's
    run id as it starts; cancel stops the current point and keeps every finished one."""
    run_ids = []
    for i, config in enumerate(configs):
        if cancel is not None and cancel.is_set():
            break
        run_id = store.create(config)
        if on_start is not None:
            on_start(run_id)
        label = f"point {i + 1}/{len(configs)} ({config.name})"
        _, model = run_experiment(
            config, store, lambda fraction, stage: progress((i + fraction) / len(configs), f"{label}: {stage}"),
            on_step, cancel, run_id,
        )
        del model  # each point's unlearned model is a whole copy: let it go before the next one trains
        run_ids.append(run_id)
    return run_ids
