"""Issue 12.3: every reader, in any process, tells a live run from a dead one, and sees the stage it is at.

Real CLI runs in subprocesses: while they train, this process (the CLI's `runs`, an app starting on the same
folder) must see them running and leave them alone; a run killed with SIGKILL reads as interrupted, with the
stage it reached; SIGTERM stops a run as cancelled at the next step, with exit code 4 and its curve kept.
"""
import argparse
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from app.state import Studio
from tests.test_reliability import quick_config
from unlearning import cli
from unlearning.experiment import run_experiment
from unlearning.plan import make_plan
from unlearning.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]


def start_cli_run(runs: Path) -> subprocess.Popen:
    """A CLI run on the tiny model, long enough to be caught training."""
    return subprocess.Popen(
        [sys.executable, "-m", "unlearning", "run", "--model", "tiny", "--forget-n", "2", "--batch-size", "2",
         "--steps", "100000", "--lr", "1e-3", "--max-new-tokens", "2", "--runs", str(runs)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_until_training(runs: Path, proc: subprocess.Popen, steps: int = 2, timeout: float = 240) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        store = RunStore(runs)
        for run_id in store.ids():
            if len(store.steps(run_id)) >= steps:
                return run_id
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no step logged within {timeout} s: {proc.communicate()}")


def test_live_and_dead_cli_runs_read_the_same_to_every_process(tmp_path):
    killed, stopped = tmp_path / "killed", tmp_path / "stopped"
    procs = {killed: start_cli_run(killed), stopped: start_cli_run(stopped)}  # in parallel: each takes seconds to start
    try:
        run_ids = {runs: wait_until_training(runs, proc) for runs, proc in procs.items()}

        # alive: the CLI's `runs` and an app starting on the folder see it running, at its step, and leave it be
        run_id, proc = run_ids[killed], procs[killed]
        status = RunStore(killed).status(run_id)
        assert status["status"] == "running" and status["owner"]["pid"] == proc.pid
        assert status["message"].startswith("unlearning: step ") and status["message"].endswith("/100000")
        assert Studio(runs=killed, preload=False).recovered == []
        [listed] = cli.cmd_runs(argparse.Namespace(runs=str(killed), run_id=None))
        assert listed["status"] == "running" and RunStore(killed).read_json(run_id, "status.json")["status"] == "running"

        # killed with SIGKILL: nothing of it can say so, yet every reader now sees it interrupted where it stopped
        proc.kill()
        proc.wait(30)
        steps = sum("loss" in log for log in RunStore(killed).steps(run_id))  # training steps, not the step-0 scores
        status = RunStore(killed).status(run_id)
        assert status["status"] == "interrupted" and f"pid {proc.pid}" in status["message"]
        assert "last stage: unlearning: step" in status["message"]
        [listed] = cli.cmd_runs(argparse.Namespace(runs=str(killed), run_id=None))
        assert listed["status"] == "interrupted" and listed["steps"] == steps
        assert Studio(runs=killed, preload=False).recovered == [run_id]  # and an app starting writes it down
        assert RunStore(killed).read_json(run_id, "status.json")["status"] == "interrupted"

        # SIGTERM: the CLI stops the run itself, says cancelled, exit code 4, the curve kept
        run_id, proc = run_ids[stopped], procs[stopped]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 4, err[-2000:]
        result = json.loads(out)
        assert result["status"] == "cancelled" and result["message"].startswith("cancelled by the user after")
        assert "Traceback" not in err and result["steps"] >= 2
        assert RunStore(stopped).status(run_id)["status"] == "cancelled"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_status_follows_the_run_stage_by_stage(bundled, tmp_path):
    store = RunStore(tmp_path)
    plan = make_plan(quick_config(bundled))
    plan = replace(plan, config=replace(plan.config, save_weights=True))
    run_id = store.create(plan.config)
    seen = []
    run_experiment(plan, store, lambda fraction, stage: seen.append((stage, store.status(run_id))), run_id=run_id)
    *during, (_, final) = seen
    assert all(status["status"] == "running" and status["message"] == stage for stage, status in during)
    stages = [stage for stage, _ in during]
    # (the original model's scores come from the cache here: no "evaluating before" stage)
    for expected in ("loading tiny", "unlearning: step 0/2", "unlearning: step 1/2",
                     "unlearning: step 2/2", "evaluating after: generate", "evaluating after: done",
                     "saving the unlearned weights"):
        assert any(stage.startswith(expected) for stage in stages), (expected, stages)
    assert final["status"] == "completed"


def test_the_work_between_steps_and_the_knowledge_checks_report_batch_by_batch(bundled, tmp_path):
    """Scoring before step 1 and between steps, and asking each model the reworded questions, took up to a minute
    on a CPU with the bar standing still: each pass now reports its batches."""
    store = RunStore(tmp_path)
    plan = make_plan(quick_config(bundled, score_every=1, generate_every=1))
    seen = []
    run_experiment(plan, store, lambda fraction, stage: seen.append(stage))
    start = seen.index("unlearning: step 0/2")
    first = next(i for i, stage in enumerate(seen) if stage.startswith("unlearning: step 1/2"))
    between = seen[start + 1 : first]
    for stage in ("scoring: teacher-forced", "scoring: the holdout level", "scoring: generating", "scoring: fluency"):
        assert any(s.startswith(f"unlearning: step 0/2, {stage}") for s in between), (stage, between)
    scored = len(plan.selection.forget) + len(plan.selection.retain_eval)  # the teacher-forced pass counts samples
    assert f"unlearning: step 0/2, scoring: teacher-forced {scored}/{scored}" in between
    assert any(s.startswith("unlearning: step 1/2, scoring: teacher-forced") for s in seen)  # after step 1 too
    asked = [s for s in seen if "asking the unlearned model in other words" in s]
    assert asked[0].endswith(", 0/" + asked[-1].split("/")[-1]) and asked[-1].split(", ")[-1].split("/")[0] != "0"
