import json

import pytest

from tests.test_engine import ExplodesAtStep3
from unlearning.cli import main, parser
from unlearning.methods import METHODS
from unlearning.options import options
from unlearning.run_config import RunConfig
from unlearning.runs import RunStore
from unlearning.target import TargetConfig


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_methods_lists_every_unlearning_method_but_not_finetune(capsys):
    code, methods = run_cli(capsys, "methods")
    names = {m["name"] for m in methods}
    assert code == 0 and {"grad_ascent", "grad_diff"} <= names and "finetune" not in names


def test_run_saves_a_run_that_lists_and_reloads(capsys, tmp_path):
    runs = str(tmp_path / "runs")
    code, out = run_cli(capsys, "run", "--model", "tiny", "--forget-n", "2", "--batch-size", "2", "--steps", "2", "--lr", "1e-3",
                        "--max-new-tokens", "4", "--runs", runs, "--set", "alpha=2")
    assert code == 0 and out["status"] == "completed" and out["steps"] == 2
    assert out["config"]["train"]["method_options"] == {"gamma": 1.0, "alpha": 2.0, "retain_loss": "nll", "nll_cap": 0.0}
    assert out["config"]["train"]["compile"] is False
    parts = lambda report: set(report["metrics"]["task_aggregate"]["parts"])  # noqa: E731
    assert parts(out["before"]) == parts(out["after"]) and out["after"]["mode"] == "fast"
    assert {f["aspect"] for f in out["verdict"]["findings"]} == {"forgot", "output", "kept", "fluent", "utility", "privacy", "robust"}
    code, listed = run_cli(capsys, "runs", "--runs", runs)
    assert [r["run_id"] for r in listed] == [out["run_id"]] and listed[0]["method"] == "grad_diff"
    code, shown = run_cli(capsys, "runs", out["run_id"], "--runs", runs)
    assert shown["after"]["metrics"]["final"] == out["after"]["metrics"]["final"]


def test_bad_input_gives_an_error_message_not_a_traceback(capsys, tmp_path):
    code, out = run_cli(capsys, "run", "--model", "tiny", "--lr", "-1", "--runs", str(tmp_path))
    assert code == 2 and "learning rate" in out["error"]
    code, out = run_cli(capsys, "run", "--model", "/no/such/model", "--runs", str(tmp_path))
    assert code == 2 and "does not exist" in out["error"]
    code, out = run_cli(capsys, "runs", "../../etc", "--runs", str(tmp_path))
    assert code == 2 and "not a run id" in out["error"]


TINY_RUN = ["run", "--model", "tiny", "--forget-n", "2", "--batch-size", "2", "--steps", "2", "--lr", "1e-3",
            "--max-new-tokens", "2"]


@pytest.mark.parametrize("extra, words", [
    (["--set", "alpha=abc"], "alpha must be a number (got 'abc')"),
    (["--set", "alpha=NaN"], "alpha must be a finite number (got 'NaN')"),
    (["--set", "alpha=1e309"], "alpha must be a finite number (got '1e309')"),
    (["--set", "beta=0.5"], "unknown option 'beta'"),
    (["--method", "rmu", "--set", "layer=5"], "layer 5 does not exist: the model has blocks 0..1"),
    (["--params", "last_k", "--last-k", "3"], "k = 3 last layers to train, but the model has only 2"),
    (["--max-new-tokens", "5000"], "max new tokens must be >= 1 and <= 1024 (got '5000')"),
    (["--lr", "1e309"], "learning rate must be a finite number"),
    (["--steps", "ten"], "steps must be a whole number (got 'ten')"),
    (["--forget-ids", "bio-001sc1,bio-001sc1"], "forget ids listed more than once: bio-001sc1"),
])
def test_bad_options_exit_2_and_create_nothing(capsys, tmp_path, extra, words):
    code, out = run_cli(capsys, *TINY_RUN, "--runs", str(tmp_path / "runs"), *extra)
    assert code == 2 and words in out["error"], out
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_a_diverged_run_exits_3_and_writes_standard_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "explodes", ExplodesAtStep3)
    ExplodesAtStep3.calls = 0
    code, out = run_cli(capsys, *TINY_RUN, "--steps", "10", "--method", "explodes", "--runs", str(tmp_path))
    assert code == 3 and out["status"] == "diverged" and out["steps"] == 2
    for file in (tmp_path / out["run_id"]).glob("*.json*"):  # NaN or Infinity would not parse here
        for line in file.read_text().splitlines() if file.suffix == ".jsonl" else [file.read_text()]:
            json.loads(line, parse_constant=lambda name: pytest.fail(f"{file.name} holds {name}"))


def test_help_documents_the_exit_codes():
    for text in (parser().format_help(), parser()._subparsers._group_actions[0].choices["run"].format_help()):
        assert all(line in text for line in ("0  completed", "1  failed", "2  bad input", "3  diverged", "4  cancelled"))


def test_delete_takes_damaged_runs_and_refuses_live_ones(capsys, tmp_path):
    store = RunStore(tmp_path)
    damaged, live = store.create(RunConfig()), store.create(RunConfig())
    store.set_status(damaged, "completed")
    (tmp_path / damaged / "config.json").write_bytes(b"\x00\x01")
    code, out = run_cli(capsys, "runs", "--runs", str(tmp_path))
    assert code == 0 and {r["run_id"]: r["status"] for r in out} == {damaged: "damaged", live: "queued"}
    code, out = run_cli(capsys, "delete", damaged, "--runs", str(tmp_path))
    assert code == 0 and store.ids() == [live]
    code, out = run_cli(capsys, "delete", live, "--runs", str(tmp_path))  # queued by this (live) process
    assert code == 2 and "stop it before deleting it" in out["error"] and store.ids() == [live]


def test_a_preset_fills_the_run_and_explicit_flags_override_it(capsys, tmp_path):
    runs = str(tmp_path / "runs")
    code, out = run_cli(capsys, "run", "--model", "tiny", "--method", "seq_grad_diff", "--preset", "SemEval-2025 winner",
                        "--last-k", "2", "--steps", "2", "--forget-n", "2", "--max-new-tokens", "2", "--runs", runs)
    train = out["config"]["train"]
    assert code == 0 and train["params"] == "last_k" and train["learning_rate"] == 1e-5  # from the preset
    assert train["last_k"] == 2 and train["steps"] == 2  # the flags given win (the tiny model has 2 layers, not 8)
    assert train["method_options"] == {"chunk_size": 32, "retain_ratio": 7, "retain_weight": 0.5}
    code, out = run_cli(capsys, "run", "--model", "tiny", "--preset", "nope", "--runs", runs)
    assert code == 2 and "'grad_diff' has no preset 'nope'" in out["error"]
    code, methods = run_cli(capsys, "methods")
    listed = {m["name"]: m for m in methods}
    assert listed["seq_grad_diff"]["presets"][0]["train"]["last_k"] == 8
    assert listed["grad_diff"]["options"]["alpha"]["default"] == 30.0  # the working point is the default, not 1


def test_part_picks_a_part_of_a_lume_folder_holding_both(capsys, tmp_path, monkeypatch, tiny):
    from tests.test_data import LUME_VALIDATION, write_both_parts

    if not LUME_VALIDATION.is_dir():
        pytest.skip(f"{LUME_VALIDATION} not present")
    monkeypatch.setenv("UNLEARNING_CACHE", str(tmp_path / "cache"))  # the target's; the tiny model is loaded already
    monkeypatch.setattr("unlearning.cli.cached_model", lambda source: tiny)
    folder = str(write_both_parts(tmp_path / "lume", LUME_VALIDATION))
    commands = parser()._subparsers._group_actions[0].choices
    for name, sub in commands.items():  # every command that takes --data (and subset) takes --part
        flags = {flag for action in sub._actions for flag in action.option_strings}
        assert "--part" in flags or ("--data" not in flags and name != "subset"), name
    code, out = run_cli(capsys, "subset", folder, "--part", "train", "--per-group", "1", "--out", str(tmp_path / "sub"))
    assert code == 0 and out["part"] == "train" and out["forget"] + out["retain"] > 0
    assert sorted(p.name for p in (tmp_path / "sub").glob("*.parquet")) == ["forget_train.parquet", "retain_train.parquet"]
    code, out = run_cli(capsys, "prepare-target", "--model", "tiny", "--data", folder, "--part", "train", "--epochs", "1",
                        "--target-batch-size", "20")
    assert code == 0 and out["records"] == 20 and out["steps"] == 1  # the train part's 10 + 10 rows, not 532


@pytest.mark.parametrize("n", ["0", "-1", "abc"])
def test_a_forget_count_of_zero_or_less_is_refused(capsys, tmp_path, n):
    """Issue 21.5: --forget-n 0 used to forget the whole forget split."""
    code, out = run_cli(capsys, *TINY_RUN[:3], f"--forget-n={n}", *TINY_RUN[5:], "--runs", str(tmp_path))
    assert code == 2 and "forget n must be" in out["error"] and RunStore(tmp_path).ids() == []


def test_a_forget_count_beyond_the_split_is_noted(capsys, tmp_path):
    code, out = run_cli(capsys, *TINY_RUN[:3], "--forget-n", "100000", *TINY_RUN[5:], "--steps", "1", "--runs", str(tmp_path))
    assert code == 0 and len(out["config"]["forget_ids"]) == 26
    assert out["notes"] == ["There are only 26 forget samples: all 26 are forgotten (100000 were asked for)."]


@pytest.mark.parametrize("command", [["runs"], ["delete", "20261125-035149-35d7ad6b"], TINY_RUN])
def test_a_runs_folder_that_is_a_file_is_bad_input(capsys, tmp_path, command):
    """Issue 21.9: --runs naming a file (or a path under one) exits 2 with a sentence, not 1 with a raw errno."""
    (tmp_path / "afile").write_text("x")
    for runs in (tmp_path / "afile", tmp_path / "afile" / "runs"):
        code, out = run_cli(capsys, *command, "--runs", str(runs))
        assert code == 2 and out["error"] == f"the runs folder {str(runs)!r} is not a folder: a file is in the way"


def test_the_target_flags_are_target_configs_options():
    """TargetConfig's defaults, bounds and help are declared once, in unlearning/target.py: prepare-target (and
    run --target) make a flag of each option that is not advanced, under the flag names it always had."""
    for command in ("prepare-target", "run"):
        sub = parser()._subparsers._group_actions[0].choices[command]
        actions = {a.dest: a for a in sub._actions}
        for o in options(TargetConfig):
            action = actions.get(f"target_{o.name}")
            assert (action is None) == o.advanced, o.name
            if action is not None:
                assert action.help.startswith(o.help) and f"default {o.default})" in action.help and o.bounds() in action.help
        assert [actions[f"target_{n}"].option_strings for n in ("epochs", "memorised", "learning_rate", "batch_size")] == [
            ["--epochs"], ["--memorised"], ["--target-lr"], ["--target-batch-size"]]
    assert actions["learning_rate"].option_strings == ["--learning-rate", "--lr"]  # the run's own rate, beside it


def test_a_target_flag_out_of_its_bounds_is_bad_input(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNING_CACHE", str(tmp_path / "cache"))
    code, out = run_cli(capsys, "prepare-target", "--model", "tiny", "--target-lr", "0")
    assert code == 2 and out["error"] == "learning rate must be > 0 and <= 1 (got '0')"
