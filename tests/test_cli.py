import json

from unlearning.cli import main


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
    assert out["config"]["train"]["method_options"] == {"gamma": 1.0, "alpha": 2.0, "retain_loss": "nll"}
    assert out["config"]["train"]["compile"] is False
    assert set(out["before"]["aggregate_parts"]) == set(out["after"]["aggregate_parts"])
    code, listed = run_cli(capsys, "runs", "--runs", runs)
    assert [r["run_id"] for r in listed] == [out["run_id"]] and listed[0]["method"] == "grad_diff"
    code, shown = run_cli(capsys, "runs", out["run_id"], "--runs", runs)
    assert shown["after"]["final"] == out["after"]["final"]


def test_bad_input_gives_an_error_message_not_a_traceback(capsys, tmp_path):
    code, out = run_cli(capsys, "run", "--model", "tiny", "--lr", "-1", "--runs", str(tmp_path))
    assert code == 2 and "learning rate" in out["error"]
    code, out = run_cli(capsys, "run", "--model", "/no/such/model", "--runs", str(tmp_path))
    assert code == 2 and "does not exist" in out["error"]
    code, out = run_cli(capsys, "runs", "../../etc", "--runs", str(tmp_path))
    assert code == 2 and "not a run id" in out["error"]
