"""The Studio: jobs, runs and sessions shared by every browser tab; recovery, cancelling, exports."""
import tempfile
import threading
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from app.state import Studio
from tests.fake_runs import fake_run, orphan, session_states
from unlearning.engine import TrainConfig
from unlearning.evaluation import EvalConfig
from unlearning.plan import make_plan
from unlearning.run_config import RunConfig


def test_studio_refuses_to_probe_a_cancelled_run_before_queueing(store):
    studio = Studio(runs=store.root, preload=False)
    cancelled = fake_run(store, "stopped early", "npo", None, status="cancelled")
    with pytest.raises(ValueError, match="was cancelled"):
        studio.probe(cancelled, ["relearn"])
    completed = next(r for r in store.ids() if store.status(r)["status"] == "completed")
    with pytest.raises(ValueError, match="Save the unlearned weights"):  # completed, but its model is not at hand
        studio.probe(completed, ["relearn"])
    assert studio.jobs("probe") == []


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


def test_export_names_come_from_checked_run_ids(store):
    with pytest.raises(ValueError, match="not a run id"):
        Studio(runs=store.root, preload=False).export("../../etc")


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
