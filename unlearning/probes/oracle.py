"""Oracle reference: the model trained on the retain set only, the one that never saw the forget set.

Retraining without the forget set is what unlearning approximates, so the oracle is the reference every score can be
read against. It is prepared like a target (unlearning.target: the same base model, settings and cache) on the retain
split alone. Per run, two distances to it:
- TOFU's forget quality (Maini et al. 2024): the p-value of a two-sample Kolmogorov-Smirnov test between the unlearned
  model's and the oracle's per-sample answer NLL on the forget set. High (>= 0.05): the test cannot tell the two
  apart; tiny: the forget losses still look unlike a model that never saw the samples. With a handful of samples the
  test is weak, so a high p-value is weak evidence: the number of samples is reported with it.
- MUSE's PrivLeak (Shi et al. 2024): (AUC_unlearned - AUC_oracle) / AUC_oracle of the membership-inference AUC. 0 =
  as private as the oracle; positive = members still stand out (under-unlearned); negative = over-unlearned.
"""
from __future__ import annotations

import json
import threading
from dataclasses import fields
from pathlib import Path

from scipy.stats import ks_2samp

from unlearning.evaluation import Cancelled, EvalReport
from unlearning.evaluation.verdict import tradeoff_point
from unlearning.experiment import cached_data, cached_model, evaluate_cached, source_stamp
from unlearning.probes.base import KNOWLEDGE, Progress, Subject, bars, means, probe
from unlearning.runs import RunConfig
from unlearning.target import TargetConfig, prepare_target, target_dir

GOOD_P, BAD_P = 0.05, 0.01  # forget quality at or above GOOD_P: indistinguishable from the oracle; below BAD_P: far
LEAK_NEAR, LEAK_FAR = 0.1, 0.3  # |PrivLeak| within LEAK_NEAR: as private as the oracle; beyond LEAK_FAR: far from it


def target_report(model: str) -> dict | None:
    """The target.json of a prepared target's folder (what it was trained from, and how), None for other models."""
    file = Path(model) / "target.json"
    try:
        return json.loads(file.read_text()) if file.is_file() else None
    except (OSError, ValueError):
        return None


def plan(config: RunConfig) -> tuple[str, TargetConfig, str]:
    """The oracle of a run: which base model it starts from, its training settings, and a note on how sure that is.

    A prepared target names its base and settings, so the oracle repeats them on the retain split. Any other model's
    base is unknown: its oracle is trained from the run's model itself, which is right only if that model never saw
    the forget set.
    """
    report = target_report(config.model)
    if report is None:
        return config.model, TargetConfig(), ("the run's model is not a prepared target, so its oracle is trained from "
                                              "the model itself: right only if that model never saw the forget set")
    known = {f.name for f in fields(TargetConfig)}
    settings = TargetConfig(**{k: v for k, v in report.get("config", {}).items() if k in known})
    return report["base"], settings, f"trained from {report['base']} like the target, on the retain split only"


def oracle_folder(config: RunConfig) -> Path | None:
    """The run's oracle, when it is already prepared (nothing is trained)."""
    base, settings, _ = plan(config)
    folder = target_dir(base, cached_data(config.data).split("retain"), settings)
    return folder if (folder / "target.json").exists() else None


def prepare_oracle(config: RunConfig, progress: Progress = lambda fraction, stage: None,
                   cancel: threading.Event | None = None) -> tuple[Path, dict, str]:
    """Prepare (or reuse from the cache) the oracle of this run; returns its folder, its target report and the note."""
    base, settings, note = plan(config)
    retain = cached_data(config.data).split("retain")
    if not retain:
        raise ValueError(f"{config.data} has no retain split: there is nothing to train an oracle on")
    progress(0.0, f"loading {base}")
    try:
        folder, report = prepare_target(cached_model(base), retain, settings, progress, cancel)
    except RuntimeError:
        if cancel is not None and cancel.is_set():
            raise Cancelled("oracle preparation cancelled by the user") from None
        raise
    return folder, report, note


def forget_quality(unlearned: list[float], oracle: list[float]) -> dict:
    """TOFU's forget quality: the KS test's p-value between two samples of per-sample losses (and its statistic)."""
    test = ks_2samp(unlearned, oracle)
    return {"p": float(test.pvalue), "statistic": float(test.statistic), "samples": [len(unlearned), len(oracle)]}


def privleak(auc: float, oracle_auc: float) -> float:
    """MUSE's PrivLeak: the MIA AUC's gap to the oracle's, relative to the oracle's."""
    return (auc - oracle_auc) / oracle_auc


def _nll(report: EvalReport) -> list[float]:
    return [row["answer_nll"] for row in report.rows if row["split"] == "forget" and row.get("answer_nll") is not None]


def _headline(quality: float | None, leak: float | None) -> dict:
    if quality is None:
        return {"value": None, "unit": "p", "status": "unknown", "text": "No forget quality: the run has no answer NLL."}
    states = ["good" if quality >= GOOD_P else "bad" if quality < BAD_P else "warn"]
    text = (f"forget quality p = {quality:.2g}: " + ("the forget losses look like the oracle's" if quality >= GOOD_P
                                                     else "the forget losses still differ from the oracle's"))
    if leak is not None:
        states.append("good" if abs(leak) <= LEAK_NEAR else "bad" if abs(leak) > LEAK_FAR else "warn")
        side = "as private as the oracle" if abs(leak) <= LEAK_NEAR else (
            "members still stand out" if leak > 0 else "over-unlearned: members stand out as unlikely")
        text += f"; PrivLeak {leak:+.0%} ({side})"
    state = "bad" if "bad" in states else "warn" if "warn" in states else "good"
    return {"value": quality, "unit": "p", "status": state, "text": text}


@probe(name="oracle", title="Oracle reference",
       asks="How far is the unlearned model from a model that never saw the forget set?")
def run(subject: Subject, options, progress: Progress, cancel: threading.Event | None) -> dict:
    folder, report, note = prepare_oracle(subject.config, lambda f, stage: progress(0.6 * f, stage), cancel)
    loaded = cached_model(str(folder))
    sel, config = subject.selection, subject.config
    records = sel.forget + sel.retain_eval
    key = {"model": str(folder), "stamp": source_stamp(str(folder)), "data": config.data,
           "ids": [r.id for r in records], "eval": config.eval.__dict__, "mia": sel.mia_source}
    oracle = evaluate_cached(loaded, key, records, sel, config,
                             lambda f, stage: progress(0.6 + 0.4 * f, f"evaluating the oracle: {stage}"), cancel)
    quality = {name: forget_quality(_nll(r), _nll(oracle)) if _nll(r) and _nll(oracle) else None
               for name, r in (("unlearned", subject.after), ("original", subject.before))}
    aucs = {"unlearned": subject.after.value("mia_auc"), "original": subject.before.value("mia_auc"),
            "oracle": oracle.value("mia_auc")}
    leaks = {name: privleak(aucs[name], aucs["oracle"]) if aucs[name] is not None and aucs["oracle"] else None
             for name in ("unlearned", "original")}
    scores = {split: {"original": means(subject.before.rows, split=split), "unlearned": means(subject.after.rows, split=split),
                      "oracle": means(oracle.rows, split=split)} for split in ("forget", "retain")}
    forget = scores["forget"]
    return {
        "oracle": str(folder), "base": report["base"], "note": note,
        "forget_quality": quality, "privleak": leaks, "mia_auc": aucs,
        "scores": {split: {name: {model: values[name] for model, values in s.items()} for name in KNOWLEDGE}
                   for split, s in scores.items()},
        "tradeoff": tradeoff_point(oracle),
        "headline": _headline(quality["unlearned"]["p"] if quality["unlearned"] else None, leaks["unlearned"]),
        "bars": bars(forget["original"], forget["unlearned"], {"oracle": forget["oracle"]}),
        "report": oracle.to_dict(),
    }
