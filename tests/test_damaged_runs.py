"""Issue 12.1: nothing one run's files contain can stop the store's readers, the CLI listing, the app or another run.

Each of the store's files is damaged in turn (random bytes, truncation at every length, valid JSON of the wrong
shape), then every reader runs on the store: the store itself, its recovery at app start, the CLI's `runs`, and
the app's Runs, Run, Metrics and Compare views. None may raise; the damaged run must say which file is damaged;
the other run must read exactly as before.
"""
import argparse
import json
import shutil
import zipfile
from pathlib import Path

import gradio as gr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.state import Studio
from app.tabs.common import run_choices, run_header
from app.tabs.compare import CompareTab
from app.tabs.method import MethodTab
from app.tabs.metrics import MetricsTab
from app.tabs.probe import ProbeTab
from app.tabs.run import RunTab
from app.tabs.runs import RunsTab
from tests.fake_runs import BEFORE, GOOD_AFTER, fake_run, session_states
from unlearning import cli
from unlearning.jobs import Job
from unlearning.runs import CHECKS, STATUSES, RunStore

FILES = ("config.json", "status.json", "metrics.jsonl", "before.json", "after.json")
# A relearning probe's entry as unlearning.probes writes it: every part a reader reads
POINT = {"step": 1, "held_out_em": 0.1, "trained_em": 0.2}
PROBE = {"title": "Relearning", "asks": "does it come back?", "date": "2026-12-06 10:00", "seconds": 3.5,
         "options": {"steps": 4}, "result": {
             "headline": {"value": 0.25, "status": "good", "text": "25%", "unit": ""},
             "curve": {"unlearned": [POINT], "control": [POINT], "reference": {"original": 0.9}},
             "bars": {"em": {"title": "exact memorization", "original": 0.9, "unlearned": 0.1, "probed": {"4 steps": 0.3},
                             "recovery": {"4 steps": 0.25}}},
             "tradeoff": {"forget": 0.2, "retain": 0.9, "retain_worst": 0.8}}}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


class Readers:
    """A store with a damaged run and a good one, and every reader of it (the app's views built once)."""

    def __init__(self, root: Path) -> None:
        self.store = RunStore(root)
        self.victim = fake_run(self.store, "victim", "npo", GOOD_AFTER)
        self.good = fake_run(self.store, "good", "grad_diff", GOOD_AFTER)
        self.store.save_probe(self.victim, "relearn", PROBE)
        self.originals = {name: (root / self.victim / name).read_bytes() for name in FILES + ("probes.json",)}
        self.good_run = self.store.read(self.good)
        self.drawn: set[str] = set()  # what the views were given so far: they are pure functions of the store's reading
        self.studio = Studio(runs=root, preload=False)
        with gr.Blocks():
            shared = session_states()
            self.runs_tab, self.run_tab = RunsTab(self.studio, shared), RunTab(self.studio, shared)
            self.metrics, self.compare = MetricsTab(self.studio, shared), CompareTab(self.studio, shared)
            MethodTab(self.studio, shared)
            self.probe = ProbeTab(self.studio, shared)

    def document(self, name: str):
        """The victim's original file `name` as JSON (metrics.jsonl: the list of its lines)."""
        text = self.originals[name].decode()
        return [json.loads(line) for line in text.splitlines()] if name == "metrics.jsonl" else json.loads(text)

    def damage(self, name: str, content: bytes) -> None:
        """The victim's `name` holds `content`, its other files are whole (writes only what changes: disks are slow)."""
        folder = self.store.root / self.victim
        for other, data in self.originals.items():
            if other != name and (not (folder / other).exists() or (folder / other).read_bytes() != data):
                (folder / other).write_bytes(data)
        (folder / name).write_bytes(content)

    def read_all(self):
        """Every reader, as the app start, the CLI and the tabs call them; returns the damaged run as read.

        Everything past the store sees only what the store read, so it runs once per distinct reading (the plots
        take ~0.2 s, and most damage reads alike: the file is left out, with a message)."""
        store = RunStore(self.store.root)
        run = store.read(self.victim)
        # the message differs with each damage ("line 1, column 7"); every reader shows it as text
        status = {k: v for k, v in run.status.items() if k != "message"}
        reading = json.dumps([run.config and run.config.to_dict(), status, run.steps, run.before, run.after],
                             sort_keys=True, default=str)
        if reading not in self.drawn:
            self.drawn.add(reading)
            self.read_everywhere(store, run)
        return run

    def read_everywhere(self, store: RunStore, run) -> None:
        assert store.ids() == sorted([self.victim, self.good], reverse=True)
        store.recover()
        listed = cli.cmd_runs(argparse.Namespace(runs=str(store.root), run_id=None))
        shown = cli.cmd_runs(argparse.Namespace(runs=str(store.root), run_id=self.victim))
        json.dumps([listed, shown], default=str)
        assert {r["run_id"]: r["status"] for r in listed}[self.victim] == run.status["status"]
        summaries = self.studio.summaries()
        assert len(summaries) == 2 and {s["id"]: s["status"] for s in summaries}[self.victim] == run.status["status"]
        self.draw_views()
        again = store.read(self.good)  # the other run reads exactly as before
        assert again.problems == [] and again.after == self.good_run.after and again.steps == self.good_run.steps

    def draw_views(self) -> None:
        self.runs_tab.draw_list()
        self.runs_tab.draw_run(self.victim)
        self.metrics.draw(self.victim)
        self.compare.draw(self.victim)
        self.probe.draw(self.victim)
        run_header(self.studio, self.victim), run_choices(self.studio)
        job = Job(1, "a run", lambda job: None, state="done", run_id=self.victim)
        self.run_tab._result(job), self.run_tab._total_steps(job)


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    return Readers(tmp_path_factory.mktemp("runs"))


def whole(name: str, content: bytes) -> bool:
    """Whether `content` is a file the store should read without complaint (the expectation, computed apart)."""
    try:
        if name == "metrics.jsonl":
            *lines, _ = content.split(b"\n")
            return all(isinstance(json.loads(line), dict) and type(json.loads(line).get("step")) is int
                       for line in lines if line.strip())
        return CHECKS[name](json.loads(content.decode("utf-8"))) is None
    except (ValueError, RecursionError):
        return False


def check(readers: Readers, name: str, content: bytes):
    readers.damage(name, content)
    run = readers.read_all()
    if whole(name, content):
        assert not any(p.startswith(name) for p in run.problems), run.problems
    else:
        assert run.status["status"] == "damaged" and any(p.startswith(name) for p in run.problems), run.problems
        assert name in run.status["message"]
    return run


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("name", FILES)
@settings(max_examples=25, **SETTINGS)
@given(content=st.binary(max_size=200))
def test_random_bytes_in_any_file(readers, name, content):
    check(readers, name, content)


@pytest.mark.parametrize("name", FILES)
@settings(max_examples=25, **SETTINGS)
@given(value=json_values)
def test_valid_json_of_the_wrong_shape_in_any_file(readers, name, value):
    text = json.dumps(value) + ("\n" if name == "metrics.jsonl" else "")
    check(readers, name, text.encode())


@pytest.mark.parametrize("name", ["config.json", "status.json", "before.json", "after.json"])
@settings(max_examples=25, **SETTINGS)
@given(data=st.data(), value=json_values)
def test_one_field_of_the_wrong_shape(readers, name, data, value):
    """A whole file with one field replaced (the config's training options too): the subtle kind of damage."""
    content = json.loads(readers.originals[name])
    target = content["train"] if name == "config.json" and data.draw(st.booleans()) else content
    target[data.draw(st.sampled_from(sorted(target)))] = value
    check(readers, name, json.dumps(content).encode())


@settings(max_examples=40, **SETTINGS)
@given(content=st.binary(max_size=120) | json_values.map(lambda v: json.dumps(v).encode()) | st.dictionaries(
    st.sampled_from(["relearn", "quantize"]), st.fixed_dictionaries({"result": st.fixed_dictionaries({
        "headline": st.dictionaries(st.sampled_from(["value", "status", "text", "unit"]), json_values)})},
        optional={"title": json_values, "seconds": json_values})).map(lambda v: json.dumps(v).encode()))
def test_a_damaged_probes_file_reads_as_not_probed(readers, content):
    """probes.json is optional: damage in it loses the probes' results, never the run or a reader."""
    from app.tabs.probe import ProbeTab

    readers.damage("probes.json", content)
    probes = RunStore(readers.store.root).probes(readers.victim)
    assert all(isinstance(entry["result"], dict) for entry in probes.values())
    listed = cli.cmd_runs(argparse.Namespace(runs=str(readers.store.root), run_id=None))
    assert {r["run_id"]: r["probes"] for r in listed}[readers.victim] == list(probes)
    cli.cmd_runs(argparse.Namespace(runs=str(readers.store.root), run_id=readers.victim))
    readers.studio.summaries(), readers.runs_tab.draw_list()
    with gr.Blocks():
        shared = session_states()
        ProbeTab(readers.studio, shared).draw(readers.victim)


GIANT = "\0giant"  # written as an integer of 5000 digits: valid JSON that Python's json refuses to read
# Any JSON value: numbers of any size and sign (a pid of -1, a step count of 10**30), NaN and infinities as Python's
# json reads them, text, lists, objects.
any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
    | st.sampled_from([-1, 0, 2**31, 2**64, -10**30, 10**400, 1e308, -1e308, 5e-324, "running", GIANT]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=4,
)


def places(value, path=()):
    """Every place in a JSON document where a value can be put, as the path of keys and indices to it."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from places(inner, (*path, key))


def get(document, path):
    for key in path:
        document = document[key]
    return document


def put(document, path, value):
    if not path:
        return value
    get(document, path[:-1])[path[-1]] = value
    return document


@settings(max_examples=40, **SETTINGS)  # ~6 s; 1500 examples (300 on probes.json alone) passed too
@given(data=st.data(), value=any_values)
def test_any_value_in_any_field_of_any_file(readers, data, value):
    """Issue 21.1: any JSON value in any field of any file of a run (status and its owner, config, the curve's lines,
    before and after, probes): every reader survives, the damaged run says what is wrong, it can be deleted."""
    name = data.draw(st.sampled_from([*FILES, "probes.json"]))
    document = readers.document(name)
    status = data.draw(st.sampled_from(STATUSES)) if name == "status.json" else None  # an active run's owner is read
    path = data.draw(st.sampled_from([p for p in places(document) if p or name != "metrics.jsonl"]))
    survives(readers, name, path, value, status)


@pytest.mark.parametrize("name, path, value, status", [
    ("status.json", ("owner", "pid"), -1, "running"),  # psutil's ValueError stopped `python -m app`
    ("status.json", ("owner", "started"), 10**400, "running"),
    ("config.json", ("train", "learning_rate"), 10**400, None),  # an OverflowError in every reader of the config
    ("config.json", ("train", "steps"), GIANT, None),  # valid JSON that Python's json will not read
    ("after.json", ("metrics", "utility", "chance"), {}, None),  # the verdict's arithmetic
    ("after.json", ("metrics", "mia_score", "value"), None, None),  # a NaN score, read back: the MIA plot's title
    ("probes.json", ("relearn", "result", "curve", "unlearned"), [{"step": 1}], None),  # the Probe tab's curve
])
def test_the_values_that_broke_a_reader(readers, name, path, value, status):
    survives(readers, name, path, value, status)


def survives(readers: Readers, name: str, path: tuple, value, status: str | None) -> None:
    """The victim's file `name` with `value` at `path` (and its status set to `status`): every reader survives it, and
    the run is listed as damaged when the file is; a copy of the run can be deleted unless it reads as active."""
    document = put(readers.document(name), path, value)
    if status and isinstance(document, dict):  # a status.json that is not an object has no status to set
        document["status"] = status
    lines = document if name == "metrics.jsonl" else [document]
    content = ("\n".join(map(json.dumps, lines)) + "\n").replace(json.dumps(GIANT), "9" * 5000)
    if name == "probes.json":
        readers.damage(name, content.encode())
        readers.read_everywhere(RunStore(readers.store.root), readers.store.read(readers.victim))
    else:
        check(readers, name, content.encode())
    copy = "20000101-000000-0000c0de"
    shutil.copytree(readers.store.root / readers.victim, readers.store.root / copy)
    try:
        active = readers.store.status(copy)["status"] in ("queued", "running")
        code = cli.main(["delete", copy, "--runs", str(readers.store.root)])
        assert code == (2 if active else 0) and (readers.store.root / copy).exists() == active
    finally:
        shutil.rmtree(readers.store.root / copy, ignore_errors=True)


@pytest.mark.parametrize("name", FILES)
def test_truncation_at_every_length(readers, name):
    original = readers.originals[name]
    for length in range(len(original)):
        run = check(readers, name, original[:length])
        if name == "metrics.jsonl":  # a cut-off last line is a crash mid-write, not damage: the steps before it stay
            *lines, tail = original[:length].split(b"\n")
            assert not run.damaged and len(run.steps) == len(lines) + (bool(tail) and whole(name, tail + b"\n"))


def test_the_damaged_run_keeps_what_can_still_be_read(readers):
    """A config cut in half: the run is listed as damaged, with its curve, status, before and after."""
    run = check(readers, "config.json", readers.originals["config.json"][:100])
    assert run.config is None and run.status["was"] == "completed"
    assert [s["step"] for s in run.steps] == [1, 2] and run.before == BEFORE and run.after == GOOD_AFTER
    summary = {s["id"]: s for s in readers.studio.summaries()}[readers.victim]
    assert summary["forget"] == 0.0 and summary["retain"] == 1.0  # the scores still show in the Runs table
    table, _, count, *_ = readers.runs_tab.draw_list()
    row = table[table["run"] == readers.victim].iloc[0]
    assert row["status"].startswith("damaged: config.json: not valid JSON")
    assert "2 runs, 1 completed, **1 damaged**" in count


def test_the_issue_cases(tmp_path):
    """The cases the issue found: binary status, an empty run folder, a config with an unknown key."""
    store = RunStore(tmp_path)
    binary, empty, unknown = (fake_run(store, n, "npo", GOOD_AFTER) for n in ("binary", "empty", "unknown"))
    (tmp_path / binary / "status.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    shutil.rmtree(tmp_path / empty)
    (tmp_path / empty).mkdir()
    config = json.loads((tmp_path / unknown / "config.json").read_text())
    (tmp_path / unknown / "config.json").write_text(json.dumps({**config, "train": {**config["train"], "epochs": 3}}))
    studio = Studio(runs=tmp_path, preload=False)
    assert studio.recovered == []
    problems = {r: store.read(r).status["message"] for r in store.ids()}
    assert problems == {
        binary: "damaged: status.json: not text (binary data)",
        empty: "damaged: config.json is missing; status.json is missing",
        unknown: "damaged: config.json: unknown option 'epochs'; the options are " + ", ".join(config["train"])
                 .replace("method, method_options, ", ""),
    }
    assert len(studio.summaries()) == 3
    with zipfile.ZipFile(studio.export(binary)) as archive:  # a damaged run can be exported, to look inside
        assert archive.read(f"{binary}/status.json") == b"\x89PNG\r\n\x1a\n\x00\xff"
    for run_id in (binary, empty, unknown):  # and deleted
        studio.delete(run_id)
    assert store.ids() == []
