"""Saved runs without training: reports built by the library's own maths, runs written to a store, a session's
states. Shared by the tests of the views, the Studio, damaged runs and the browser."""
import gradio as gr

from unlearning.engine import TrainConfig
from unlearning.evaluation import EvalReport
from unlearning.evaluation.official import final_score, task_aggregate
from unlearning.evaluation.report import sample_summary
from unlearning.run_config import RunConfig
from unlearning.runs import RunStore


def session_states():
    """The shared states of one browser session, as app.ui builds them (call inside gr.Blocks)."""
    from app.tabs.common import Shared

    return Shared(gr.Timer(1), gr.State([]), gr.State(""), gr.State(0), gr.State("tiny"), gr.State("bundled"),
                  gr.State({"id": None, "mine": False}))


def report(scores: dict[str, float], generation: str = "an answer", utility: float = 0.6, auc: float = 0.8,
           gibberish: float = 0.0) -> dict:
    """A valid EvalReport dict with one row per (id, split) and the given score, built by the library's own maths."""
    rows = [{"id": rid, "task": "Task2", "kind": "qa", "split": split, "input": f"Q {rid}?", "output": "A",
             "generation": generation, "official": score, "answer_nll": 1.0, "gibberish": gibberish,
             "tokens": ["A", "⏎"], "token_probs": [score or 0.01, 0.9]}
            for (rid, split), score in scores.items()]
    metrics = {name: sample_summary(rows, name) for name in ("official", "answer_nll", "gibberish")}
    aggregate, parts = task_aggregate(rows)
    mia_score = 1 - 2 * abs(auc - 0.5)
    final, final_parts = final_score({"task_aggregate": aggregate, "mia_score": mia_score, "utility": utility})
    metrics |= {"task_aggregate": {"value": aggregate, "parts": parts},
                "mia_auc": {"value": auc, "variants": {}, "member_losses": [1.0], "nonmember_losses": [2.0]},
                "mia_score": {"value": mia_score}, "final": {"value": final, "parts": final_parts},
                "utility": {"value": utility, "name": "items", "chance": 0.25, "families": {"capitals": utility}}}
    return EvalReport(rows=rows, metrics=metrics, skipped={}, unofficial={"protocol": "fast mode"}, mode="fast",
                      seconds=1.0, config={}).to_dict()


BEFORE = report({("f1", "forget"): 1.0, ("f2", "forget"): 1.0, ("r1", "retain"): 1.0, ("r2", "retain"): 1.0})


GOOD_AFTER = report({("f1", "forget"): 0.0, ("f2", "forget"): 0.0, ("r1", "retain"): 1.0, ("r2", "retain"): 1.0},
                    auc=0.5)


COLLAPSED = report({("f1", "forget"): 0.0, ("f2", "forget"): 0.0, ("r1", "retain"): 0.0, ("r2", "retain"): 0.0},
                   generation="", utility=0.25, auc=0.5, gibberish=1.0)


def fake_run(store: RunStore, name: str, method: str, after: dict | None, status: str = "completed") -> str:
    config = RunConfig(model="tiny", forget_ids=["f1", "f2"], name=name,
                       train=TrainConfig(method=method, steps=12, learning_rate=1e-3))
    run_id = store.create(config)
    store.write_json(run_id, "before.json", BEFORE)
    if after is not None:
        store.write_json(run_id, "after.json", after)
    for step in (1, 2):
        store.append_step(run_id, {"step": step, "loss": -step, "forget_nll": step, "retain_nll": 1.0})
    store.set_status(run_id, status, "" if status == "completed" else "the loss became nan")
    return run_id


def probe_entry(title: str, headline: dict, **result) -> dict:
    return {"title": title, "asks": "Does it come back?", "options": {}, "date": "2026-11-25 12:00:00", "seconds": 12.3,
            "result": {"headline": headline, **result}}


RELEARN = probe_entry("Relearning attack", {"value": 0.64, "unit": "%", "status": "bad",
                                            "text": "came back: 64% recovered after 10 steps <b>"})


ORACLE = probe_entry("Oracle reference", {"value": 0.41, "unit": "p", "status": "good", "text": "forget quality p = 0.41"},
                     tradeoff={"forget": 0.05, "retain": 0.9, "retain_worst": 0.85}, report=GOOD_AFTER)


def orphan(store: RunStore, run_id: str) -> None:
    """Make an active run's owner a process that is gone: our pid with another start time (a reused pid)."""
    status = store.read_json(run_id, "status.json")
    store.write_json(run_id, "status.json", {**status, "owner": {**status["owner"], "started": 0.0}})
