"""The studio without a browser: selection shortcuts, run tables, metric verdicts, Studio bookkeeping, the CLI."""
import json
import re
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from app import selection as sel
from app.state import Studio
from app.views import (compare_html, metric_rows, metrics_table_html, probe_cards_html, robust_marks, runs_frame,
                       score_cards_html, token_view_html, verdict_html)
from unlearning.data import DataError
from unlearning.engine import TrainConfig
from unlearning.evaluation import EvalConfig, EvalReport
from unlearning.evaluation.official import final_score, task_aggregate
from unlearning.evaluation.report import sample_summary
from unlearning.models import model_facts
from unlearning.options import options
from unlearning.plan import make_plan
from unlearning.run_config import RunConfig
from unlearning.runs import RunStore
from unlearning.summary import oracles, originals, read_report, run_summary

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------------ selection


def session_states():
    """The shared states of one browser session, as app.ui builds them (call inside gr.Blocks)."""
    from app.tabs.common import Shared

    return Shared(gr.Timer(1), gr.State([]), gr.State(""), gr.State(0), gr.State("tiny"), gr.State("bundled"),
                  gr.State({"id": None, "mine": False}))


def test_shortcuts_pick_the_right_ids_on_the_bundled_data(bundled):
    forget = bundled.split("forget")
    assert len(sel.whole_forget_ids(bundled)) == len(forget) == 26
    # one story of each of the two templates is forget (drawn at random): one completion and two questions each
    assert sel.task_forget_ids(bundled, "Task1") == [
        f"story-0{i}{suffix}" for i in ("03", "10") for suffix in ("sc1", "qa0", "qa1")
    ]
    assert len(sel.task_forget_ids(bundled, "Task2")) == 20  # 5 people x 4 records
    assert sel.task_forget_ids(bundled, sel.ALL) == sel.whole_forget_ids(bundled)
    picked = bundled.sample_forget(5, seed=1)
    assert len(set(picked)) == 5 and set(picked) <= {r.id for r in forget}
    assert picked == bundled.sample_forget(5, seed=1)  # seeded: the same draw again
    assert picked == [r.id for r in forget if r.id in picked]  # kept in dataset order
    assert len(bundled.sample_forget(1000)) == 26  # N larger than the split: all of it
    assert bundled.sample_forget(1000, kind="sc") == [r.id for r in forget if r.kind == "sc"]  # the CLI's --forget-kind


def test_filters_and_search(bundled):
    qa_retain = sel.filter_records(bundled.records, kind="qa", split="retain")
    assert qa_retain and all(r.kind == "qa" and r.split == "retain" for r in qa_retain)
    hits = sel.filter_records(bundled.records, query="EMAIL address")  # case-insensitive, every word must match
    assert hits and all("email address" in r.input.lower() for r in hits)
    assert sel.filter_records(bundled.records, task="Task1", query="bio-001") == []
    listed = sel.filter_records(bundled.records)  # the forget split first: what a user came to pick from
    assert [r.split for r in listed] == sorted((r.split for r in bundled.records), key=("forget", "retain", "holdout").index)
    assert [r.id for r in listed[:4]] == ["bio-006sc1", "bio-006qa0", "bio-006qa1", "bio-006qa2"]


def test_ticks_in_the_shown_table_update_only_shown_rows(bundled):
    shown = bundled.split("forget")[:4]
    frame = sel.table(shown, selected=[shown[0].id, "story-010sc1"])
    assert list(frame.columns) == list(sel.COLUMNS) and frame[sel.TICK].tolist() == [True, False, False, False]
    frame.loc[0, sel.TICK] = False  # untick the first, tick the third
    frame.loc[2, sel.TICK] = True
    extra = pd.DataFrame([[True, "typed-in", "", "", "", "", ""]], columns=list(sel.COLUMNS))  # a row the user added
    frame = pd.concat([frame, extra], ignore_index=True)
    known = {r.id for r in bundled.records}
    # a hidden row stays selected, the typed-in one is ignored
    assert sel.apply_ticks([shown[0].id, "story-010sc1"], frame, known) == ["story-010sc1", shown[2].id]


def test_summary_says_which_samples_leave_the_retain_split(bundled):
    forget_id, retain_id = bundled.split("forget")[0].id, bundled.split("retain")[0].id
    assert retain_id not in {r.id for r in bundled.retain_set([forget_id, retain_id])}
    text = sel.summary(bundled, [forget_id, retain_id])
    assert "2 samples selected to forget" in text and "1 of them taken out of the retain split" in text
    # the Data tab counts the retain set by the plan's own rule: the run keeps exactly what the tab says it keeps
    plan = make_plan({"model": "tiny", "data": "bundled", "forget_ids": [forget_id, retain_id]})
    assert plan.selection.retain == bundled.retain_set([forget_id, retain_id])
    assert f"**Retain set** {len(plan.selection.retain)} samples" in text


def test_the_run_tab_says_the_plans_own_words_when_nothing_is_selected(tmp_path):
    """No forget samples is one of the plan's rules: the Run tab shows the plan's problem, not a check of its own."""
    from app.tabs.method import MethodTab
    from app.tabs.run import RunTab
    from unlearning.plan import PlanError

    studio = Studio(runs=tmp_path / "runs", model="tiny", preload=False)
    with gr.Blocks():
        shared = session_states()
        method, run = MethodTab(studio, shared), RunTab(studio, shared)
    values = {c: c.value for c in [*method.inputs, *run.evaluation.values(), run.save, run.name]}
    values |= {shared.selection: [], shared.model_source: "tiny", shared.data_source: "bundled",
               shared.model_job: {"id": None, "mine": False}}
    with pytest.raises(PlanError) as raised:
        run._checked(values, method)
    with pytest.raises(PlanError) as planned:
        make_plan(run._request(values, method))
    assert raised.value.problems == planned.value.problems
    assert any(p.startswith("No forget samples selected") for p in raised.value.problems)


# --------------------------------------------------------------------------------------------------- fake runs


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


@pytest.fixture
def store(tmp_path):
    store = RunStore(tmp_path / "runs")
    fake_run(store, "good", "npo", GOOD_AFTER)
    fake_run(store, "broken", "grad_ascent", COLLAPSED)
    return store


def test_runs_table_rows_from_a_store_with_two_runs(store):
    summaries = [run_summary(store, r) for r in store.ids()]
    frame = runs_frame(summaries)
    assert len(frame) == 2
    rows = {row["name"]: row for row in frame.to_dict("records")}
    assert rows["good"]["method"] == "npo" and rows["good"]["steps"] == 12 and rows["good"]["lr"] == "0.001"
    assert rows["good"]["status"] == "completed" and rows["good"]["mode"] == "fast"
    assert rows["good"]["forget ↓"] == "0.000" and rows["good"]["retain ↑ (lowest group)"] == "1.000"
    assert rows["good"]["verdict"] == "? forgot  ✓ output  ✓ kept  ✓ fluent  ✓ utility  ✓ privacy  ? robust"
    assert rows["broken"]["status"] == "completed ⚠ broken"  # flagged in the list, not only in Metrics
    assert "✗ kept  ✗ fluent  ✗ utility" in rows["broken"]["verdict"]
    assert originals(summaries) == [{"label": "original tiny", "forget": 1.0, "retain": 1.0, "retain_worst": 1.0}]


def test_metric_rows_follow_the_registry_directions():
    rows = {r["key"]: r for r in metric_rows(read_report(BEFORE), read_report(GOOD_AFTER))}
    assert rows["official:forget"]["moved"] == "good" and rows["official:forget"]["change"] == -1.0
    assert rows["official:forget"]["direction"] == "lower" and rows["official:retain"]["direction"] == "higher"
    assert rows["official:retain"]["moved"] == "same"
    assert rows["answer_nll:forget"]["direction"] == "higher"  # forgetting raises the NLL
    assert rows["mia_auc"]["moved"] == "good"  # 0.8 -> 0.5
    assert rows["official:Task2/qa/forget"]["sub"] and rows["utility:capitals"]["sub"]
    assert "exact_memorization:forget" not in rows  # not measured in these reports: absent, not zero
    html = metrics_table_html(list(rows.values()))
    assert 'data-metric="final"' in html and 'class="num good" data-metric="official:forget">0.000<' in html


def test_the_metrics_tab_draws_utility_against_the_runs_own_chance_level(tmp_path):
    """The guessing line is the evaluation's own (its items' 1/choices), not a fixed 0.25."""
    from app.tabs.metrics import MetricsTab

    after = json.loads(json.dumps(GOOD_AFTER))
    after["metrics"]["utility"]["chance"] = 0.2
    studio = Studio(runs=tmp_path / "runs", model="tiny", preload=False)
    run_id = fake_run(studio.store, "own chance", "npo", after)
    with gr.Blocks():
        tab = MetricsTab(studio, session_states())
    utility = tab.draw(run_id)[6]
    assert [shape.y0 for shape in utility.layout.shapes] == [0.2]


def test_a_broken_run_is_loud_and_a_good_run_is_quiet():
    good = verdict_html(read_report(BEFORE), read_report(GOOD_AFTER))
    assert "broke something" not in good and good.count('class="us-finding good"') == 5
    assert "fast mode" in good.lower()  # the mode that produced the numbers is always said
    box = verdict_html(read_report(BEFORE), read_report(COLLAPSED))
    assert "broke something" in box and 'data-aspect="kept"' in box and "Retain damaged" in box


def test_a_broken_model_never_gets_a_green_final_score():
    before, broken = read_report(BEFORE), read_report(COLLAPSED)
    rows = {r["key"]: r for r in metric_rows(before, broken)}
    assert broken.value("final") > before.value("final")  # the mean went up...
    assert rows["final"]["moved"] == "bad" and "broken" in rows["final"]["label"]  # ...and is still shown red
    assert 'us-card bad"><div class="us-card-label">SemEval final score ⚠ broken model' in score_cards_html(before, broken)


def test_a_model_that_never_knew_the_data_is_not_called_broken():
    blank = read_report(report({("f1", "forget"): 0.0, ("r1", "retain"): 0.0}, generation="", utility=0.25))
    box = verdict_html(blank, blank)
    assert "nothing to forget" in box and "broke something" not in box
    assert "⚠" not in score_cards_html(blank, blank)


def test_compare_html_pairs_samples_and_escapes_text():
    after = json.loads(json.dumps(COLLAPSED))
    after["rows"][0]["generation"] = "<img src=x onerror=alert(1)> gone"
    html = compare_html(read_report(BEFORE), read_report(after), "forget")
    assert html.count("<tr>") == 3  # header + two forget samples
    assert "<img" not in html and "&lt;img" in html
    assert "1.00 → 0.00" in html and "score good" in html and "us-gibberish" in html
    assert "no before/after" in compare_html(read_report(BEFORE), None, "forget")


def test_compare_pages_filters_flagged_answers_and_sorts_by_change():
    """Issue 22.3: every retain sample can be reached, flagged answers found, the largest moves seen first."""
    scores = {(f"r{i:02d}", "retain"): 1.0 for i in range(30)}
    before, after = read_report(report(scores)), read_report(report(scores))
    for i, row in enumerate(after.rows):
        row["official"] = 1.0 - i / 100  # r29 moved most
    after.rows[3].update(generation="", empty=1.0)
    after.rows[7].update(generation="I don't know.", refusal=1.0)
    page1 = compare_html(before, after, "retain", 25)
    page2 = compare_html(before, after, "retain", 25, page=2)
    assert "Showing 1-25 of 30 retain samples (page 1 of 2)" in page1 and "<code>r25</code>" in page2
    assert all(f"<code>r{i:02d}</code>" in page1 + page2 for i in range(30))
    flagged = compare_html(before, after, "retain", 25, show="flagged")
    assert flagged.count("<tr>") == 3 and ">empty</span>" in flagged and ">refusal</span>" in flagged
    changed = compare_html(before, after, "retain", 25, show="changed")
    assert changed.index("<code>r29</code>") < changed.index("<code>r28</code>") < changed.index("<code>r05</code>")
    assert "<code>r00</code>" not in changed  # it moved least: on the second page
    assert "No retain answer is flagged" in compare_html(before, before, "retain", 25, show="flagged")


def test_token_view_colours_each_answer_token_by_its_probability():
    html = token_view_html(read_report(BEFORE), read_report(GOOD_AFTER), "f1")
    assert html.count('class="us-tok"') == 4  # two answer tokens, before and after
    assert 'data-p="1.0000"' in html and 'data-p="0.0100"' in html and "“A” 1.00→0.01" in html
    assert "no per-token" in token_view_html(read_report(BEFORE), read_report(GOOD_AFTER), "missing")


def test_an_old_run_still_opens_in_every_view(tmp_path):
    from tests.test_metrics import OLD_REPORT

    store = RunStore(tmp_path)
    run_id = store.create(RunConfig.from_dict({"model": "tiny", "forget_ids": ["a1sc1"], "eval": {"utility": "probe"}}))
    assert store.config(run_id).eval.utility == "items"  # a config of the first sessions, with the retired probe
    store.write_json(run_id, "before.json", OLD_REPORT)
    store.write_json(run_id, "after.json", OLD_REPORT)
    summary = run_summary(store, run_id)
    assert summary["forget"] == 0.5 and summary["verdict"]["fluent"] == "unknown"
    before, after = read_report(OLD_REPORT), read_report(OLD_REPORT)
    assert "Hardly forgotten" in verdict_html(before, after) and metric_rows(before, after)
    assert "no per-token" in token_view_html(before, after, "a1sc1")


# ---------------------------------------------------------------------------------------------------------- probes


def probe_entry(title: str, headline: dict, **result) -> dict:
    return {"title": title, "asks": "Does it come back?", "options": {}, "date": "2026-11-25 12:00:00", "seconds": 12.3,
            "result": {"headline": headline, **result}}


RELEARN = probe_entry("Relearning attack", {"value": 0.64, "unit": "%", "status": "bad",
                                            "text": "came back: 64% recovered after 10 steps <b>"})
ORACLE = probe_entry("Oracle reference", {"value": 0.41, "unit": "p", "status": "good", "text": "forget quality p = 0.41"},
                     tradeoff={"forget": 0.05, "retain": 0.9, "retain_worst": 0.85}, report=GOOD_AFTER)


def test_runs_table_says_how_robust_each_probed_run_is(store):
    probed = store.ids()[0]
    store.save_probe(probed, "relearn", RELEARN)
    store.save_probe(probed, "oracle", ORACLE)
    summaries = [run_summary(store, r) for r in store.ids()]
    column = dict(zip(runs_frame(summaries)["run"], runs_frame(summaries)["robust?"]))
    assert column[probed] == "✗ relearn 64%  ✓ oracle p = 0.41"
    assert column[store.ids()[1]] == "–"  # never probed
    assert robust_marks({"variants": {"value": None, "status": "unknown"}}) == "? variants"
    assert oracles(summaries) == [{"forget": 0.05, "retain": 0.9, "retain_worst": 0.85, "label": f"oracle (run {probed})"}]
    (store.path(probed) / "probes.json").write_text("{not json")  # a damaged file shows as not probed, never a crash
    assert run_summary(store, probed)["probes"] == {}


def test_the_oracle_becomes_a_column_of_the_metric_table():
    rows = {r["key"]: r for r in metric_rows(read_report(BEFORE), read_report(COLLAPSED), read_report(GOOD_AFTER))}
    assert rows["official:forget"]["oracle"] == 0.0 and rows["official:retain"]["oracle"] == 1.0
    assert rows["mia_auc"]["oracle"] == 0.5 and rows["utility:capitals"]["oracle"] == 0.6
    html = metrics_table_html(list(rows.values()))
    assert "<th title=" in html and 'data-oracle="official:retain">1.000<' in html
    assert "oracle" not in metrics_table_html(metric_rows(read_report(BEFORE), read_report(COLLAPSED)))


def test_probe_cards_show_one_number_and_the_verdict():
    html = probe_cards_html({"relearn": RELEARN, "oracle": ORACLE})
    assert html.count('class="us-card ') == 2 and 'us-card bad" data-probe="relearn"' in html
    assert ">64%<" in html and ">p = 0.41<" in html and "recovered" in html and "forget quality" in html
    assert "came back: 64% recovered after 10 steps &lt;b&gt;" in html and "12 s" in html
    assert "No probe has run" in probe_cards_html({})


def test_studio_refuses_to_probe_a_cancelled_run_before_queueing(store):
    studio = Studio(runs=store.root, preload=False)
    cancelled = fake_run(store, "stopped early", "npo", None, status="cancelled")
    with pytest.raises(ValueError, match="was cancelled"):
        studio.probe(cancelled, ["relearn"])
    completed = next(r for r in store.ids() if store.status(r)["status"] == "completed")
    with pytest.raises(ValueError, match="Save the unlearned weights"):  # completed, but its model is not at hand
        studio.probe(completed, ["relearn"])
    assert studio.jobs("probe") == []


def test_probe_controls_give_checked_options(tmp_path):
    from app.tabs.probe import ProbeTab

    studio = Studio(runs=tmp_path, preload=False)
    with gr.Blocks():
        shared = session_states()
        tab = ProbeTab(studio, shared)
    values = {c: c.value for knobs in tab.knobs.values() for c in knobs.values()}
    values[tab.knobs["relearn"]["steps"]] = 3.0  # a number box hands back floats
    options = tab.options(values, ["relearn", "quantize"])
    assert options["relearn"]["steps"] == 3 and options["relearn"]["control"] == "auto"
    assert options["quantize"] == {"bits": "8,4", "group_size": 0, "reference": True}
    assert type(tab.knobs["relearn"]["control"]).__name__ == "Dropdown"
    values[tab.knobs["quantize"]["bits"]] = "8,1"
    with pytest.raises(ValueError, match="between 2 and 16"):
        tab.options(values, ["quantize"])


# ---------------------------------------------------------------------------------------------------------- Studio


def orphan(store: RunStore, run_id: str) -> None:
    """Make an active run's owner a process that is gone: our pid with another start time (a reused pid)."""
    status = store.read_json(run_id, "status.json")
    store.write_json(run_id, "status.json", {**status, "owner": {**status["owner"], "started": 0.0}})


def test_studio_lists_runs_and_recovers_interrupted_ones(tmp_path, store):
    cut = fake_run(store, "cut", "npo", None, status="running")
    orphan(store, cut)
    studio = Studio(runs=store.root, preload=False)
    assert studio.recovered == [cut]
    summaries = studio.summaries()
    assert [s["id"] for s in summaries] == store.ids() and len(summaries) == 3
    assert {s["status"] for s in summaries} == {"completed", "interrupted"}
    assert studio.summaries() == summaries  # served from the cache the second time


def test_cancelling_a_queued_run_marks_its_folder(store):
    studio = Studio(runs=store.root, preload=False)
    gate = threading.Event()
    blocker = studio.submit("run", "blocker", lambda job: gate.wait(10))
    run_id = store.create(RunConfig(model="tiny", forget_ids=["f1"]))
    queued = studio.submit("run", "queued", lambda job: None)
    queued.run_id = run_id
    while blocker.state == "queued":
        threading.Event().wait(0.01)
    assert studio.watched_run_job() is blocker  # the Run tab follows the job that trains, not the newest
    assert studio.runner.position(queued) == 2
    assert [q["id"] for q in studio.queue()] == [blocker.id, queued.id]
    studio.cancel(queued.id)
    assert store.status(run_id)["status"] == "cancelled"
    gate.set()
    studio.runner.wait(queued, timeout=10)
    assert queued.state == "cancelled"


def test_export_zips_the_run_folder(store):
    studio = Studio(runs=store.root, preload=False)
    run_id = store.ids()[0]
    path = studio.export(run_id)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {f"{run_id}/config.json", f"{run_id}/status.json", f"{run_id}/after.json", f"{run_id}/metrics.jsonl"} <= names


def test_uploads_are_kept_next_to_the_runs(tmp_path):
    studio = Studio(runs=tmp_path / "runs", preload=False)
    upload = tmp_path / "my data.csv"
    upload.write_text("input,output\nWho?,Me\n")
    saved = Path(studio.save_upload(upload))
    assert saved.parent == studio.store.root / "uploads" and saved.name.endswith("-my_data.csv")
    assert saved.read_text() == upload.read_text() and studio.store.ids() == []  # not mistaken for a run


@pytest.mark.parametrize("name", ["...csv", "..\\..\\b.csv", ".hidden", "ééé.csv"])
def test_upload_names_cannot_escape_the_uploads_folder(tmp_path, name):
    studio = Studio(runs=tmp_path / "runs", preload=False)
    folder = tmp_path / "in"
    folder.mkdir()
    upload = folder / name
    upload.write_text("input,output\nWho?,Me\n")
    saved = Path(studio.save_upload(upload)).resolve()
    assert saved.parent == (studio.store.root / "uploads").resolve() and saved.is_file()


def test_export_names_come_from_checked_run_ids(store):
    with pytest.raises(ValueError, match="not a run id"):
        Studio(runs=store.root, preload=False).export("../../etc")


def test_a_bad_upload_is_refused_by_its_own_name_and_not_kept(tmp_path):
    studio = Studio(runs=tmp_path / "runs", preload=False)
    upload = tmp_path / "answers.csv"
    upload.write_text("input,wrong\nWho?,Me\n")
    with pytest.raises(DataError, match=r"^answers\.csv: missing column\(s\) 'output'"):
        studio.load_upload(upload)
    assert list((studio.store.root / "uploads").iterdir()) == []


# ------------------------------------------------------------------------------------------------ method controls


def test_method_controls_are_generated_from_the_options_and_checked_by_the_plan(tmp_path):
    from app.tabs.method import MethodTab
    from unlearning.run_config import parse_run_config

    studio = Studio(runs=tmp_path, preload=False)
    with gr.Blocks():
        shared = session_states()
        tab = MethodTab(studio, shared)
    values = {c: getattr(c, "value", None) for c in tab.inputs}
    # one control per option, each starting at the option's default and bounded as the option is
    assert set(tab.train) == {o.name for o in options(TrainConfig)} and tab.train["learning_rate"].value == 3e-5
    assert tab.train["steps"].minimum == 1 and tab.train["steps"].maximum == 100_000
    assert tab.train["last_k"].visible is False and tab.train["params"].value == "full"
    assert type(tab.knobs["grad_diff"]["retain_loss"]).__name__ == "Radio"  # choices from the option
    values[tab.method] = "npo"
    values[tab.knobs["npo"]["beta"]] = 0.5
    values[tab.train["steps"]] = 8
    config, problems = parse_run_config({"train": tab.request(values)})
    assert problems == [] and config.train.method == "npo" and config.train.steps == 8 and config.train.compile is False
    assert config.train.method_options == {"gamma": 1.0, "alpha": 1.0, "retain_loss": "nll", "beta": 0.5}
    values[tab.knobs["npo"]["beta"]] = -1
    values[tab.train["learning_rate"]] = 0
    problems = parse_run_config({"train": tab.request(values)})[1]
    assert problems == ["npo option: beta must be > 0 and <= 1000 (got -1)", "learning rate must be > 0 and <= 1 (got 0)"]


def test_the_model_tab_target_controls_are_target_configs_options(tmp_path):
    """The controls of 'Prepare a target' are made from TargetConfig's options, as the CLI's flags are: the same
    labels, help, defaults and bounds, declared once."""
    from app.tabs.model import ModelTab
    from unlearning.target import TargetConfig

    studio = Studio(runs=tmp_path / "runs", model="tiny", preload=False)
    with gr.Blocks():
        tab = ModelTab(studio, session_states())
    shown = [o for o in options(TargetConfig) if not o.advanced]
    assert list(tab.target) == [o.name for o in shown] == ["epochs", "memorised", "learning_rate", "batch_size"]
    for o in shown:
        control = tab.target[o.name]
        assert (control.label, control.info, control.value) == (o.label, o.help, o.default)
        assert control.maximum == o.le and control.minimum == (o.ge if o.ge is not None else o.gt)


def test_help_works_without_loading_anything():
    out = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--host", "--port", "--model", "--data", "--runs", "--auth", "--share", "127.0.0.1"):
        assert flag in out.stdout


def test_two_sessions_start_runs_one_trains_the_other_waits_its_turn(tmp_path, bundled):
    studio = Studio(runs=tmp_path, model="tiny", preload=False)
    forget = [r.id for r in bundled.split("forget")]
    configs = [
        RunConfig(model="tiny", forget_ids=forget[:2], eval=EvalConfig(max_new_tokens=2, utility="none"),
                  train=TrainConfig(steps=steps, learning_rate=1e-3, batch_size=2))
        for steps in (6, 3)
    ]
    first, second = (studio.start_run(make_plan(c)) for c in configs)  # two tabs, one click each
    seen_waiting = False
    while not first.finished:
        if first.state == "running" and second.state == "queued":
            seen_waiting = seen_waiting or studio.runner.position(second) == 2
        threading.Event().wait(0.02)
    studio.runner.wait(second, timeout=120)
    assert seen_waiting and first.state == second.state == "done"
    assert first.run_id != second.run_id
    trained = [[s["step"] for s in studio.store.steps(j.run_id) if "loss" in s] for j in (first, second)]
    assert trained == [list(range(1, 7)), list(range(1, 4))]  # no steps leaked between runs
    assert studio.after_model(first.run_id) is not studio.after_model(second.run_id)


def test_a_session_loading_data_changes_no_other_sessions_run(tmp_path, bundled):
    """Issue 12.4 without a browser: B loads a table after A ticked samples; A's run still trains on A's data."""
    from app.tabs.data import DataTab
    from app.tabs.method import MethodTab
    from app.tabs.run import RunTab

    studio = Studio(runs=tmp_path / "runs", model="tiny", preload=False)
    with gr.Blocks():
        shared = session_states()
        data_tab, method_tab = DataTab(studio, shared), MethodTab(studio, shared)
        run_tab = RunTab(studio, shared)
    inputs = method_tab.inputs | set(run_tab.evaluation.values()) | {
        shared.selection, run_tab.name, run_tab.save, shared.model_source, shared.data_source, shared.model_job}
    session_a = {c: c.value for c in inputs} | {shared.selection: [r.id for r in bundled.split("forget")[:2]]}
    table = tmp_path / "ours.csv"
    table.write_text("id,input,output,split\nours-1,Who wrote it?,We did,forget\nours-2,Where?,Here,forget\n"
                     "ours-3,When?,Now,retain\n")
    source_b = data_tab.load_source("upload", "", str(table), "tiny")[0]  # session B, after A ticked its samples
    session_b = session_a | {shared.data_source: source_b, shared.selection: ["ours-1"]}
    plan_a, plan_b = run_tab._checked(session_a, method_tab), run_tab._checked(session_b, method_tab)
    assert plan_a.config.data == "bundled" and plan_a.selection.forget == bundled.split("forget")[:2]
    assert plan_b.config.data == source_b and [r.input for r in plan_b.selection.forget] == ["Who wrote it?"]
    assert [r.id for r in plan_b.selection.retain] == ["ours-3"]
    assert not hasattr(studio, "data_source") and not hasattr(studio, "model_source")  # nothing process-wide
    assert run_tab.evaluation["max_new_tokens"].maximum == 1024  # the bound of EvalConfig.max_new_tokens, as the plan checks it


def test_a_preset_sets_the_method_and_training_controls(tmp_path):
    from app.tabs.method import CUSTOM, MethodTab

    studio = Studio(runs=tmp_path, preload=False)
    with gr.Blocks():
        tab = MethodTab(studio, session_states())
    values = tab.apply_preset("seq_grad_diff", "SemEval-2025 winner")
    train = dict(zip(tab.train, values))
    assert train["params"] == "last_k" and train["last_k"] == 8 and train["learning_rate"] == 1e-5
    own = dict(zip([(m, o) for m, c in tab.knobs.items() for o in c], values[len(tab.train):]))
    assert own[("seq_grad_diff", "retain_ratio")] == 7 and own[("grad_diff", "alpha")] == gr.skip()
    assert "AILS-NTUA" in values[-1]
    assert all(v == gr.skip() for v in tab.apply_preset("grad_diff", CUSTOM)[:-1])


def test_a_loaded_base_model_offers_its_target_with_the_time_it_takes(tmp_path):
    from app.tabs.model import offer_button

    studio = Studio(runs=tmp_path, model="tiny")  # preloads, as the app does at start
    job = studio.latest_job("model")
    studio.runner.wait(job, timeout=120)
    seconds = studio.facts("tiny")["target_seconds"]
    assert seconds > 0  # two real steps timed, scaled to a whole preparation
    offer = offer_button(studio, "tiny", job)
    assert offer["visible"] and f"about {seconds:.0f} s" in offer["value"]
    gate = threading.Event()
    busy = studio.submit("target", "preparing", lambda job: gate.wait(10))
    assert not offer_button(studio, "tiny", busy)["visible"]  # a target is on its way
    gate.set()
    studio.runner.wait(busy, timeout=10)
    studio._targets["tiny"] = {"rouge_l_recall": 0.9}
    assert not offer_button(studio, "tiny", busy)["visible"]  # the session's model is a target already


def test_no_listener_drops_a_pick_or_a_change(tmp_path):
    """Gradio drops the triggers of a "once" listener (its default unless the first trigger is a change) while it
    runs. A pick dropped so is lost: the Runs tab's sweep filter snapped back to "all runs" when it was picked as a
    sweep ended (the pending redraw wrote the old choice back), and a tick in the Data table sent while the previous
    one was pending never reached the selection. Buttons, timers and tabs keep "once": a double click runs once."""
    from app.ui import build_app

    demo = build_app(Studio(runs=tmp_path, preload=False))
    kinds = {c["id"]: c["type"] for c in demo.config["components"]}
    dropping = [[(kinds.get(target), event) for target, event in dep["targets"]]
                for dep in demo.config["dependencies"]
                if dep["trigger_mode"] == "once" and any(
                    event in ("input", "select", "change") and kinds.get(target) not in ("button", "tabitem")
                    for target, event in dep["targets"])]
    assert not dropping
    assert len(demo.config["dependencies"]) > 40  # every tab was wired


def test_a_redraw_leaves_a_dropdown_value_alone_unless_it_is_gone():
    """The Runs tab's redraw after a run ends must not write back the sweep it was called with: the user may have
    picked another one meanwhile. Only a value that is no longer a choice (a deleted sweep) is reset."""
    from app.tabs.runs import ALL_RUNS, keep_or_reset

    value, kept = keep_or_reset("sweep-a", [ALL_RUNS, "sweep-b", "sweep-a"])
    assert value == "sweep-a" and kept["choices"] == [ALL_RUNS, "sweep-b", "sweep-a"] and "value" not in kept
    value, reset = keep_or_reset("sweep-gone", [ALL_RUNS, "sweep-b"])
    assert value == reset["value"] == ALL_RUNS


def test_one_story_the_run_tab_names_the_retain_group_the_verdict_names_and_the_kept_step(tmp_path):
    from app.tabs.common import run_header
    from app.views import finish_summary

    before = read_report(report({("f1", "forget"): 1.0, ("r1", "retain"): 1.0}))
    after = read_report(report({("f1", "forget"): 0.0, ("r1", "retain"): 0.5}))
    for row, task in zip(before.rows + after.rows, ["Task2", "Task1"] * 2):  # two retain groups: Task1 falls, Task2 is low
        row["task"] = task
    before.rows[0].update(split="retain", official=0.3)
    after.rows[0].update(split="retain", official=0.3)
    for r in (before, after):
        r.metrics["official"] = sample_summary(r.rows, "official")
    html = finish_summary(before, after)
    # the lowest group after is Task2 questions (0.30, unchanged); the one that fell is Task1 questions, as the verdict says
    assert "the group that fell most (Task1 questions)" in html and "Task1 questions 1.00 → 0.50" in html
    store = RunStore(tmp_path)
    run_id = fake_run(store, "kept", "npo", GOOD_AFTER)
    store.set_status(run_id, "completed", "", kept={"step": 8, "why": "w", "bytes": 1})
    assert "12 steps (the state of step 8 kept)" in run_header(_StoreOnly(store), run_id)


class _StoreOnly:
    """What run_header reads of a studio: its run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store


def test_the_data_tab_loads_a_part_of_a_lume_folder_and_says_what_a_run_would_cut(tmp_path, tiny, monkeypatch):
    from app.tabs import data as data_tab_module
    from tests.test_data import LUME_VALIDATION, write_both_parts

    if not LUME_VALIDATION.is_dir():
        pytest.skip(f"{LUME_VALIDATION} not present")
    folder = str(write_both_parts(tmp_path / "lume", LUME_VALIDATION))
    studio = Studio(runs=tmp_path / "runs", model="tiny", preload=False)
    with gr.Blocks():
        tab = data_tab_module.DataTab(studio, session_states())
    monkeypatch.setattr(studio, "facts", lambda source: model_facts(tiny))  # as if the session's model had loaded here
    monkeypatch.setattr(data_tab_module, "cached_model", lambda source: tiny)
    out = tab.load_source("lume", folder, None, "tiny", "train")
    about = out[9]
    assert out[0] == f"{folder}#train" and about.startswith("**lume-train** · 20 samples")
    assert about.endswith("Every sample fits the 1024 tokens a run trains on, whole.")
    monkeypatch.setattr(data_tab_module, "sample_length", lambda model: 300)  # a model with a shorter context
    about = tab.load_source("lume", folder, None, "tiny", "validation")[9]
    assert "**lume-validation** · 532 samples" in about
    assert re.search(r"\*\*Long samples:\*\* \d+ of 532 samples are longer than 300 tokens: their prompts lose their "
                     r"first tokens, their answers are whole", about)


def test_exports_leave_no_temporary_folder_behind(store, tmp_path, monkeypatch):
    """Issue 21.4: each export's zip is served, then its temp folder goes (the Runs tab's export and what follows it)."""
    from app.tabs.runs import ALL_RUNS, RunsTab

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    studio = Studio(runs=store.root, preload=False)
    with gr.Blocks() as demo:
        tab = RunsTab(studio, session_states())
        tab.wire()
    export, report = [f for f in demo.fns.values() if tab.file in f.outputs]  # the zip, and the HTML report
    for handler, args in ((export, [store.ids()[0]]), (report, [store.ids()[0], ALL_RUNS])):
        after = [f for f in demo.fns.values() if f.trigger_after == handler._id]
        for _ in range(5):
            update, path = handler.fn(*args)
            assert Path(update["value"]).is_file()  # there to be served
            for step in after:
                step.fn(*([path] if step.inputs else []))
    assert list(temp.iterdir()) == []


def test_polling_an_empty_runs_folder_logs_nothing(tmp_path, caplog):
    """Issue 21.8: with no run yet, every timer tick of every open page raised in the Run tab's poll (643 tracebacks
    in one session). Each poll and page load runs a few times on an empty runs folder: no error, nothing logged."""
    from app.ui import build_app

    demo = build_app(Studio(runs=tmp_path, model="tiny", preload=False))
    timers = {c["id"] for c in demo.config["components"] if c["type"] == "timer"}
    polls = [f for f in demo.fns.values() if any(target in timers or event == "load" for target, event in f.targets)]
    assert len(polls) >= 3
    for _ in range(3):
        for poll in polls:
            poll.fn(*[c.default_value if isinstance(c, gr.BrowserState) else c.value for c in poll.inputs])
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info] == []


def test_null_scores_and_probabilities_draw_without_a_crash():
    """A model with non-finite weights stores NaN as null (issue 21.2): the token view and Compare still draw."""
    after = read_report(report({("f1", "forget"): 0.0, ("r1", "retain"): 1.0}))
    for row in after.rows:
        row["official"], row["token_probs"] = None, [None, None]
    assert 'data-p="0.0000"' in token_view_html(read_report(BEFORE), after, "f1")
    assert "1.00 → –" in compare_html(read_report(BEFORE), after, "forget")
