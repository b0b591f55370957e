"""Issue 12.2: a full disk leaves no temporary files, no half-saved weights, and a run state the next reader trusts.

A FullDisk fills up at one chosen write: that write and every later one that needs new space fails with ENOSPC,
part-way, as a real disk does (overwriting an existing file in place still works). It is tried at each kind of
write a run makes, at the weights, and for real on a 2 MB tmpfs where the machine lets us mount one.
"""
import errno
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from transformers import PreTrainedModel

import unlearning.atomic as atomic
import unlearning.experiment as experiment
from tests.test_reliability import quick_config
from unlearning.cli import main
from unlearning.evaluation import EvalConfig
from unlearning.experiment import run_experiment
from unlearning.plan import make_plan
from unlearning.runs import RunStore

DISK_FULL = "The disk is full (no space left on device"
WRITE = atomic._write  # the real one, before any test replaces it


class FullDisk:
    def __init__(self, monkeypatch, at: int | None = None, in_place_too: bool = False) -> None:
        self.at, self.in_place_too, self.names = at, in_place_too, []

        def write(path, text, mode):
            self.names.append(Path(path).name)
            if self.at is not None and len(self.names) > self.at and (mode != "r+" or self.in_place_too):
                if mode != "r+":  # a new file gets a part written before the disk refuses more; a status rewritten
                    with open(path, mode, encoding="utf-8") as f:  # in place is one write within its own block
                        f.write(text[: len(text) // 2])
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            WRITE(path, text, mode)

        monkeypatch.setattr(atomic, "_write", write)


def leftovers(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def plan(bundled, **train):
    """A quick run, quicker to evaluate: 6 samples scored, no MIA."""
    config = quick_config(bundled, **train)
    config.eval = EvalConfig(max_new_tokens=2, utility="none", mia=False)
    return make_plan(replace(config, eval=replace(config.eval, retain_rows=4)))


@pytest.fixture(scope="module")
def names(bundled, tmp_path_factory) -> list[str]:
    """The files a run writes, in order; after a first run, so the original model's scores are cached (as they are
    for every run but the first of its kind) and the list is the same each time."""
    root = tmp_path_factory.mktemp("count")
    run_experiment(plan(bundled), RunStore(root / "warm"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        counter = FullDisk(monkeypatch)
        run_experiment(plan(bundled), RunStore(root / "count"))
    return counter.names


def test_each_kind_of_write_failing_leaves_an_honest_failed_run_and_no_temporary_file(bundled, names, tmp_path, monkeypatch):
    kinds = {}  # the first write of each file, and the last write of all (the final status)
    for index, name in enumerate(names):
        kinds.setdefault(re.sub(r"^\.(.+)\.[0-9a-f]{8}\.tmp$", r"\1", name), index)  # ".after.json.1a2b3c4d.tmp"
    # creation writes config and status; then the run's status, before.json, metrics, after.json, the final status
    assert {"config.json", "status.json", "before.json", "metrics.jsonl", "after.json"} <= set(kinds)
    first_running = next(i for i, n in enumerate(names) if "status.json" in n and i > kinds["config.json"] + 1)
    for at in sorted({*kinds.values(), first_running, len(names) - 1}):
        root = tmp_path / f"full-{at}"
        FullDisk(monkeypatch, at=at)
        store = RunStore(root)
        try:
            run_experiment(plan(bundled), store)
            failed = False
        except OSError:
            failed = True
        assert leftovers(root) == [], (at, names[at])
        if at < 2:  # the run's folder could not be made: nothing is left of it
            assert failed and store.ids() == [], (at, names[at])
            continue
        [run_id] = store.ids()
        status = RunStore(root).status(run_id)
        if at == len(names) - 1:  # only the last status did not fit: it went over the old one, in place
            assert not failed and status["status"] == "completed", status
        else:
            assert failed and status["status"] == "failed" and status["message"].startswith(DISK_FULL), (at, names[at])
        assert RunStore(root).read(run_id).problems == []  # every file it has is whole


def test_when_nothing_at_all_can_be_written_the_last_stage_stays_readable(bundled, names, tmp_path, monkeypatch):
    """Not even in place: status.json keeps the stage the run reached (whole, never half-written), and once the
    process that ran it is gone every reader sees it interrupted at that stage."""
    FullDisk(monkeypatch, at=next(i for i, n in enumerate(names) if "after.json" in n), in_place_too=True)
    store = RunStore(tmp_path / "runs")
    with pytest.raises(OSError):
        run_experiment(plan(bundled), store)
    [run_id] = store.ids()
    status = store.read_json(run_id, "status.json")
    assert status["status"] == "running" and status["message"].startswith("evaluating after")
    # its owner is this process, alive: "running" for now; once the owner is gone (a pid reused by another process):
    (store.path(run_id) / "status.json").write_text(json.dumps({**status, "owner": {**status["owner"], "started": 0.0}}))
    seen = RunStore(tmp_path / "runs").status(run_id)
    assert seen["status"] == "interrupted" and "last stage: evaluating after" in seen["message"]


def test_weights_appear_only_when_complete(bundled, tmp_path, monkeypatch):
    def fail(model, folder, *args, **kwargs):  # a config and half the weights, then the disk is full
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "config.json").write_text("{}")
        (Path(folder) / "model.safetensors").write_bytes(b"half of the weights")
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(folder) / "model.safetensors"))

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", fail)
    store = RunStore(tmp_path / "runs")
    with pytest.raises(OSError):
        run_experiment(replace(plan(bundled), config=replace(plan(bundled).config, save_weights=True)), store)
    [run_id] = store.ids()
    assert not (store.path(run_id) / "model").exists() and leftovers(store.root) == []
    assert store.status(run_id)["message"].startswith(DISK_FULL)


def test_a_lora_adapter_appears_only_when_complete(bundled, tmp_path, monkeypatch):
    def fail(tensors, filename):
        Path(filename).write_bytes(b"half an adapter")
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(experiment, "save_file", fail)
    store = RunStore(tmp_path / "runs")
    lora = plan(bundled, params="lora")
    with pytest.raises(OSError):
        run_experiment(replace(lora, config=replace(lora.config, save_weights=True)), store)
    [run_id] = store.ids()
    assert (store.path(run_id) / "model" / "model.safetensors").exists()  # saved whole before the adapter
    assert not (store.path(run_id) / "adapter.safetensors").exists() and leftovers(store.root) == []
    assert store.status(run_id)["status"] == "failed"


def test_the_cli_says_the_disk_is_full_with_exit_code_1(bundled, tmp_path, monkeypatch, capsys):
    FullDisk(monkeypatch, at=0)  # the run folder cannot even be made
    code = main(["run", "--model", "tiny", "--forget-n", "2", "--batch-size", "2", "--steps", "2", "--lr", "1e-3",
                 "--runs", str(tmp_path / "runs")])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["error"].startswith(DISK_FULL) and "config.json" in out["error"]
    assert list((tmp_path / "runs").iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB filesystem (tmpfs), where this machine lets us mount one (root); skipped elsewhere."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_saving_weights_on_a_really_full_disk(small_disk, capsys):
    """The tiny model's weights (13 MB) do not fit on 2 MB: the run fails, says why, and leaves nothing half-made."""
    code = main(["run", "--model", "tiny", "--forget-n", "2", "--batch-size", "2", "--steps", "2", "--lr", "1e-3",
                 "--max-new-tokens", "2", "--save-weights", "--runs", str(small_disk)])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["status"] == "failed" and out["error"].startswith(DISK_FULL)
    run_dir = small_disk / out["run_id"]
    assert not (run_dir / "model").exists() and leftovers(small_disk) == []
    assert main(["runs", "--runs", str(small_disk)]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["status"] == "failed" and listed["problems"] == [] and listed["steps"] == 2
