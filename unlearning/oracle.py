"""The oracle: the model trained on the retain set only, the one that never saw the forget set.

Retraining without the forget set is what unlearning approximates (TOFU, MUSE, the NeurIPS 2023 unlearning challenge),
so the oracle is the reference the verdict reads every forget score against. It is prepared like a target
(unlearning.target: the same base model, settings and cache) on the retain split alone; preparing a target prepares
its oracle too. Each run evaluates its oracle on the run's own samples (unlearning.experiment), and the distances to
it (forget quality, PrivLeak) are in unlearning.evaluation.distance.
"""
from __future__ import annotations

import json
import threading
from dataclasses import fields
from pathlib import Path

from unlearning.data import UnlearningData
from unlearning.evaluation.metrics import Cancelled
from unlearning.jobs import Progress
from unlearning.models import cached_model
from unlearning.target import TargetConfig, prepare_target, target_dir


def target_report(model: str) -> dict | None:
    """The target.json of a prepared target's folder (what it was trained from, and how), None for other models."""
    file = Path(model) / "target.json"
    try:
        report = json.loads(file.read_text()) if file.is_file() else None
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and isinstance(report.get("base"), str) else None


def oracle_plan(model: str) -> tuple[str, TargetConfig, str]:
    """The oracle of a model: which base it is trained from, its training settings, and a note on how sure that is.

    A prepared target names its base and settings, so the oracle repeats them on the retain split. Any other model's
    base is unknown: its oracle is trained from the model itself, which is right only if that model never saw the
    forget set.
    """
    report = target_report(model)
    if report is None:
        return model, TargetConfig(), ("the run's model is not a prepared target, so its oracle is trained from the "
                                       "model itself: right only if that model never saw the forget set")
    known = {f.name for f in fields(TargetConfig)}
    try:
        settings = TargetConfig(**{k: v for k, v in (report.get("config") or {}).items() if k in known})
    except (TypeError, ValueError):
        settings = TargetConfig()
    return report["base"], settings, f"trained from {report['base']} like the target, on the retain split only"


def oracle_folder(model: str, data: UnlearningData) -> Path | None:
    """The oracle of `model` on `data`, when it is already prepared (nothing is trained)."""
    base, settings, _ = oracle_plan(model)
    folder = target_dir(base, data.split("retain"), settings)
    return folder if (folder / "target.json").exists() else None


def prepare_oracle(model: str, data: UnlearningData, progress: Progress = lambda fraction, stage: None,
                   cancel: threading.Event | None = None) -> tuple[Path, dict, str]:
    """Prepare (or reuse from the cache) the oracle of `model` on `data`; returns its folder, report and note."""
    base, settings, note = oracle_plan(model)
    retain = data.split("retain")
    if not retain:
        raise ValueError(f"{data.name} has no retain split: there is nothing to train an oracle on")
    progress(0.0, f"loading {base}")
    try:
        folder, report = prepare_target(cached_model(base), retain, settings, progress, cancel)
    except RuntimeError:
        if cancel is not None and cancel.is_set():
            raise Cancelled("oracle preparation cancelled by the user") from None
        raise
    return folder, report, note
