"""Oracle reference probe: how far is the unlearned model from the model that never saw the forget set?

The oracle itself (what it is, how it is prepared, forget quality and PrivLeak) lives in unlearning.oracle; this probe
prepares it if needed, evaluates it on the run's samples and sets the run's scores beside it.
"""
from __future__ import annotations

import threading

from unlearning.evaluation import EvalReport
from unlearning.evaluation.verdict import tradeoff_point
from unlearning.experiment import evaluate_model
from unlearning.evaluation.distance import BAD_P, GOOD_P, LEAK_FAR, LEAK_NEAR, forget_quality, privleak
from unlearning.oracle import prepare_oracle
from unlearning.probes.base import KNOWLEDGE, Progress, Subject, bars, means, probe


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
    folder, report, note = prepare_oracle(subject.config.model, subject.data, lambda f, stage: progress(0.6 * f, stage), cancel)
    oracle = evaluate_model(str(folder), subject.selection, subject.config,
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
