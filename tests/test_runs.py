import copy
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fake_runs import report
from tests.test_damaged_runs import get, places, put
from unlearning.atomic import atomic_path, to_json
from unlearning.engine import TrainConfig
from unlearning.evaluation import EvalConfig, EvalReport, evaluate
from unlearning.run_config import RunConfig
from unlearning.runs import RunStore, check_run_id


def test_config_round_trips_through_json(tmp_path):
    store = RunStore(tmp_path)
    config = RunConfig(model="tiny", forget_ids=["a", "b"], train=TrainConfig(method="npo", method_options={"beta": 0.2}, steps=7))
    run_id = store.create(config)
    assert store.config(run_id) == RunConfig.from_dict(config.to_dict())
    # the stored config names every method option, defaults included: a later change of default changes no old run
    assert store.config(run_id).train.method_options == {"gamma": 1.0, "alpha": 1.0, "retain_loss": "nll", "beta": 0.2}
    assert store.status(run_id)["status"] == "queued"
    assert json.loads((tmp_path / run_id / "config.json").read_text())["train"]["steps"] == 7


def test_partial_last_metrics_line_is_ignored(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(RunConfig())
    store.append_step(run_id, {"step": 1, "loss": 2.0})
    store.append_step(run_id, {"step": 2, "loss": 2.5})
    with open(tmp_path / run_id / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # the process died mid-write
    assert [s["loss"] for s in store.steps(run_id)] == [2.0, 2.5]


def test_recover_marks_cut_off_runs_interrupted_and_keeps_the_rest(tmp_path):
    store = RunStore(tmp_path)
    done, cut = store.create(RunConfig()), store.create(RunConfig())
    store.set_status(done, "completed")
    store.set_status(cut, "running")
    store.append_step(cut, {"step": 1, "loss": 1.0})
    assert RunStore(tmp_path).recover() == []  # its process (this one) still runs it
    status = store.read_json(cut, "status.json")
    store.write_json(cut, "status.json", {**status, "owner": {**status["owner"], "started": 0.0}})  # a reused pid
    assert RunStore(tmp_path).recover() == [cut]  # a new store, as after a restart
    assert store.status(cut)["status"] == "interrupted" and store.steps(cut) == [{"step": 1, "loss": 1.0}]
    assert store.status(done)["status"] == "completed"
    assert store.ids() == sorted([done, cut], reverse=True)


def test_writes_leave_no_temporary_files(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(RunConfig())
    for i in range(5):
        store.write_json(run_id, "after.json", {"i": i})
    assert sorted(p.name for p in (tmp_path / run_id).iterdir()) == ["after.json", "config.json", "status.json"]


@pytest.mark.parametrize("bad", ["../etc", "20261125-035149-35d7ad6b/../../x", "", "20261125-035149-35D7AD6B", "x" * 24, None])
def test_run_ids_cannot_be_paths(tmp_path, bad):
    with pytest.raises(ValueError):
        RunStore(tmp_path).path(bad)


def test_run_ids_are_unique_and_not_sequential(tmp_path):
    store = RunStore(tmp_path)
    ids = {store.create(RunConfig()) for _ in range(20)}
    assert len(ids) == 20 and all(check_run_id(i) for i in ids)
    assert len({i.rsplit("-", 1)[1] for i in ids}) == 20


def test_a_report_of_a_model_with_nan_weights_reads_back(tiny, bundled, tmp_path):
    """Issue 21.2: a model with non-finite weights scores NaN; stored as null, it reads back, and the run is not
    'damaged' (its status says what happened)."""
    model = copy.deepcopy(tiny.model)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    records = bundled.split("forget")[:2] + bundled.split("retain")[:2]
    report = evaluate(model, tiny.tokenizer, records, [records[0].id], [records[2].id],
                      EvalConfig(max_new_tokens=2, utility="none"))
    store = RunStore(tmp_path)
    run_id = store.create(RunConfig())
    store.write_json(run_id, "before.json", report.to_dict())
    store.set_status(run_id, "diverged", "the loss became nan at step 1")
    run = store.read(run_id)
    assert run.problems == [] and run.status["status"] == "diverged"
    assert None in run.before["rows"][0]["token_probs"]  # the NaN really was there
    assert EvalReport.from_dict(run.before).to_dict() == json.loads(to_json(report.to_dict()))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_report_the_engine_can_produce_reads_back_unchanged(data):
    """Issue 21.2: NaN or an infinity in any number, empty generations, metrics left out: what is written reads back."""
    written = report({("f1", "forget"): 1.0, ("r1", "retain"): 0.5}, generation=data.draw(st.sampled_from(["", "A"])))
    numbers = [path for path in places(written) if type(get(written, path)) is float and path[0] != "seconds"]
    for path in data.draw(st.lists(st.sampled_from(numbers), max_size=6)):
        put(written, path, data.draw(st.sampled_from([math.nan, math.inf, -math.inf])))
    for name in data.draw(st.lists(st.sampled_from(sorted(written["metrics"])), unique=True)):
        del written["metrics"][name]
    stored = json.loads(to_json(written))
    assert EvalReport.from_dict(stored).to_dict() == stored


@pytest.mark.parametrize("bad", [b"{not json", b"[1, 2]", b'{"step": "5"}', b"\xff\xfe", b'{"loss": 1.0}'])
def test_every_readable_metrics_line_counts(tmp_path, bad):
    """Issue 21.3: a bad line in the middle of the curve is skipped, the lines after it are kept, and the run says how
    many were skipped."""
    store = RunStore(tmp_path)
    run_id = store.create(RunConfig())
    lines = [json.dumps({"step": step, "loss": -step}).encode() for step in range(1, 9)]
    lines[3:3] = [bad]
    lines[6:6] = [bad]
    (tmp_path / run_id / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    run = store.read(run_id)
    assert [s["step"] for s in run.steps] == list(range(1, 9)) == [s["step"] for s in store.steps(run_id)]
    assert run.problems == ["metrics.jsonl: 2 line(s) are not step records and were skipped (lines 4, 7)"]


@pytest.mark.parametrize("status", ["completed", "stopped"])
@pytest.mark.parametrize("missing", ["before.json", "after.json"])
def test_a_finished_run_without_an_evaluation_is_damaged(tmp_path, status, missing):
    """Issue 21.9: a run that finished was evaluated before and after; a missing file read as completed."""
    store = RunStore(tmp_path)
    run_id = store.create(RunConfig())
    store.write_json(run_id, "before.json" if missing == "after.json" else "after.json", report({("f1", "forget"): 1.0}))
    store.set_status(run_id, status)
    run = store.read(run_id)
    assert run.problems == [f"{missing} is missing"] and run.status["status"] == "damaged"
    cancelled = store.create(RunConfig())
    store.set_status(cancelled, "cancelled", "cancelled before it started")
    assert store.read(cancelled).problems == []  # a run that never got so far lacks them rightly


def test_a_cache_folder_made_by_two_processes_at_once_keeps_the_first(tmp_path):
    """Two sessions (or test workers) preparing the same target: each saves under its own name; the second to finish
    keeps the first's folder and leaves nothing behind, where a plain atomic path refuses to replace it."""
    target = tmp_path / "entry"
    with atomic_path(target, shared=True) as first, atomic_path(target, shared=True) as second:
        for folder, who in ((first, "first"), (second, "second")):
            folder.mkdir()
            (folder / "weights").write_text(who)
    assert (target / "weights").read_text() == "second"  # the inner block ends, and is renamed, first
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]
    with pytest.raises(OSError), atomic_path(target) as again:
        again.mkdir()
        (again / "weights").write_text("third")
    assert (target / "weights").read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["entry"]
