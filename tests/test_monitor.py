"""Scores during the run, per-sample balance, the best checkpoint and the guard, on a tiny model that memorised some
samples (a random one knows nothing, so nothing could be forgotten or kept)."""
import copy

import pytest
import torch

from unlearning.batching import collate, encode, encode_records
from unlearning.engine import TrainConfig, train
from unlearning.methods import METHODS, get_method
from unlearning.methods.base import Method
from unlearning.methods.losses import nll
from unlearning.monitor import Monitor

MEMORISE = TrainConfig(method="finetune", steps=160, learning_rate=5e-3, batch_size=3, score_every=0)


@pytest.fixture(scope="module")
def setting(tiny, bundled):
    """A tiny model that memorised one forget question and six retain questions; two forget questions it never saw."""
    # fixed ids: which questions these are decides how fast retain falls in the best-checkpoint test
    forget = bundled.by_ids([f"bio-001qa{i}" for i in range(3)])
    retain = bundled.by_ids([f"bio-00{p}qa{i}" for p in (7, 8) for i in range(3)])
    model = train(tiny.model, tiny.tokenizer, forget[:1] + retain, [], MEMORISE).model
    return model, tiny.tokenizer, forget, retain


class RecordsForgetBatches(Method):
    """Gradient ascent that remembers which forget rows each step saw (by their first answer token row)."""

    name, title, formula, intuition, paper = "spy_ascent", "spy", "", "", ""
    views = ("forget",)
    seen: list[list[int]] = []

    def loss(self, model, batch, reference=None):
        RecordsForgetBatches.seen.append(batch["forget"]["input_ids"].sum(1).tolist())
        forget_nll = nll(model, batch["forget"]).mean()
        return -forget_nll, {"forget_nll": forget_nll.item()}


def run(setting, logs=None, **overrides):
    model, tokenizer, forget, retain = setting
    config = TrainConfig(**({"method": "grad_ascent", "steps": 12, "learning_rate": 1e-2, "batch_size": 3,
                             "score_every": 1} | overrides))
    monitor = Monitor(tokenizer, forget, retain, config)
    return train(model, tokenizer, forget, retain, config, (logs.append if logs is not None else None), monitor=monitor)


def test_the_start_is_scored_per_sample(setting):
    logs = []
    run(setting, logs, steps=1)
    start = logs[0]
    assert start["step"] == 0 and "loss" not in start
    per_sample = list(start["scores"]["per_sample"].values())
    assert per_sample[0] > 0.9 and max(per_sample[1:]) < 0.25  # the one memorised forget sample, and two never seen
    assert start["scores"]["forgotten"] == 2 and start["scores"]["retain_em"] > 0.9
    assert logs[1]["scores"]["forget_total"] == 3  # every step carries scores at score_every=1


def test_forgotten_samples_get_no_forget_gradient_and_the_run_ends_when_all_are_forgotten(setting, monkeypatch):
    monkeypatch.setitem(METHODS, "spy_ascent", RecordsForgetBatches)
    RecordsForgetBatches.seen = []
    model, tokenizer, forget, _ = setting
    memorised_row = sum(encode(tokenizer, forget[0].input, forget[0].output, 256)["input_ids"])  # rows told apart by sum
    logs = []
    result = run(setting, logs, method="spy_ascent", steps=60, skip_forgotten=True, learning_rate=5e-3)
    # only the one sample not yet forgotten is pushed, every step, until it is forgotten too
    assert RecordsForgetBatches.seen and all(rows == [memorised_row] for rows in RecordsForgetBatches.seen)
    assert result.status == "completed" and result.message.startswith("ended early: all 3 forget samples")
    assert len(result.history) < 60 and logs[-1]["scores"]["forgotten"] == 3


def test_without_skipping_every_forget_sample_is_pushed(setting, monkeypatch):
    monkeypatch.setitem(METHODS, "spy_ascent", RecordsForgetBatches)
    RecordsForgetBatches.seen = []
    result = run(setting, method="spy_ascent", steps=3, learning_rate=1e-4)
    assert all(len(rows) == 3 for rows in RecordsForgetBatches.seen) and result.status == "completed"


def test_pick_and_focus_by_hand(setting):
    model, tokenizer, forget, retain = setting
    config = TrainConfig(skip_forgotten=True, batch_size=2)
    monitor = Monitor(tokenizer, forget, retain, config)
    monitor.forgotten, monitor.memorised = [True, False, False], [0.1, 0.9, 0.5]
    generator = torch.Generator().manual_seed(0)
    assert sorted(monitor.pick([0, 1], generator)) == [1, 2]  # 0 leaves, a not-yet-forgotten sample fills its place
    monitor.config = TrainConfig(focus_unforgotten=True, batch_size=1)
    monitor.forgotten = [False] * 3
    draws = [monitor.pick([0], generator)[0] for _ in range(600)]
    share = [draws.count(i) / 600 for i in range(3)]
    assert share[1] > share[2] > share[0]  # drawn in proportion to what is still memorised (0.95 : 0.55 : 0.15)


def test_capped_forget_term_stops_pushing_a_sample_past_the_cap(tiny, bundled):
    batch_records = bundled.split("forget")[:2]
    batch = {"forget": collate(encode_records(tiny.tokenizer, batch_records), tiny.tokenizer.pad_token_id)}
    model = copy.deepcopy(tiny.model)
    for cap, expect_zero in ((0.0, False), (1.0, True)):  # a random model's NLL (~10.8) is far past a cap of 1
        model.zero_grad()
        loss, _ = get_method("grad_ascent", nll_cap=cap).loss(model, batch)
        loss.backward()
        grad = sum(p.grad.abs().sum() for p in model.parameters() if p.grad is not None)
        assert (grad == 0) == expect_zero
    assert get_method("grad_diff", nll_cap=2.0).config.nll_cap == 2.0


def test_best_checkpoint_is_kept_and_is_what_the_run_returns(setting):
    logs = []
    result = run(setting, logs, steps=10, learning_rate=5e-3, keep_best=True, retain_floor=0.8)
    kept = result.kept
    assert kept is not None and 1 <= kept["step"] < 10 and kept["bytes"] > 0  # retain falls later: not the last step
    scored = {log["step"]: log["scores"] for log in logs}
    qualifying = [s for s, e in scored.items() if s > 0 and e["retain_em"] >= 0.8 * scored[0]["retain_em"]]
    assert kept["step"] == min(qualifying, key=lambda s: scored[s]["forget_em"])
    assert "floor 80%" in kept["why"]
    # the returned model is the kept state, not the last one: rescoring it gives the kept step's scores
    model, tokenizer, forget, retain = setting
    monitor = Monitor(tokenizer, forget, retain, TrainConfig())
    again = monitor.score(result.model, 0)
    assert again["forget_em"] == pytest.approx(scored[kept["step"]]["forget_em"], abs=0.02)


def test_the_guard_stops_a_run_that_breaks_retain(setting):
    logs = []
    result = run(setting, logs, steps=40, learning_rate=5e-2, stop_below=0.7)
    assert result.status == "stopped" and "retain fell below 70%" in result.message
    assert len(result.history) < 40
    last = logs[-1]["scores"]
    assert last["retain_em"] < 0.7 * logs[0]["scores"]["retain_em"]


def test_options_that_need_scores_refuse_without_them():
    with pytest.raises(ValueError, match="need scores during the run"):
        TrainConfig(score_every=0, keep_best=True)
    with pytest.raises(ValueError, match="retain floor must be >= 0 and <= 1"):
        TrainConfig(retain_floor=1.5)


def test_forgotten_means_down_to_the_level_of_unseen_holdout_samples(setting, bundled):
    from unlearning.evaluation.memorisation import token_scores

    model, tokenizer, forget, retain = setting
    holdout = [r for r in bundled.split("holdout") if r.kind == "qa"]
    monitor = Monitor(tokenizer, forget, retain, TrainConfig(forgotten_em=0.01), holdout=holdout)
    entry = monitor.score(model, 0)
    same = [r for r in holdout if (r.task, r.kind) == (forget[0].task, forget[0].kind)]
    em = token_scores(model, encode_records(tokenizer, same), tokenizer.pad_token_id).exact_memorization()
    assert monitor.thresholds[0] == pytest.approx(sum(em) / len(em)) != 0.01
    assert entry["never_seen_em"][f"{forget[0].task}/qa"] == pytest.approx(monitor.thresholds[0])
    assert monitor.forgotten == [x <= t for x, t in zip(monitor.memorised, monitor.thresholds)]


def test_the_guard_stops_a_cli_run_with_exit_code_5(setting, tmp_path, capsys):
    """The guard through the CLI: an aggressive run on a model that knows its retain samples stops before it ends,
    is still evaluated, and says why (issue 11.3)."""
    import json

    from unlearning.cli import main

    model, tokenizer, forget, retain = setting
    folder = tmp_path / "memorised"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    code = main(["run", "--model", str(folder), "--forget-ids", ",".join(r.id for r in forget),
                 "--retain-ids", ",".join(r.id for r in retain), "--method", "grad_ascent", "--lr", "5e-2",
                 "--steps", "40", "--batch-size", "3", "--score-every", "1", "--stop-below", "0.7",
                 "--max-new-tokens", "2", "--utility", "none", "--no-mia", "--runs", str(tmp_path / "runs")])
    out = json.loads(capsys.readouterr().out)
    assert code == 5 and out["status"] == "stopped" and "retain fell below 70%" in out["message"]
    assert out["steps"] < 40 and out["after"]["metrics"]  # stopped early, and still evaluated


def test_runs_from_the_same_original_score_it_once_before_the_first_step(setting, bundled, monkeypatch):
    """A sweep's points and a session's runs share the original's step-0 scores; other samples are scored afresh."""
    import unlearning.monitor as monitor_module

    model, tokenizer, forget, retain = setting
    holdout = [r for r in bundled.split("holdout") if r.kind == "qa"]
    passes = []
    real = monitor_module.token_scores
    monkeypatch.setattr(monitor_module, "token_scores", lambda *a, **kw: passes.append(1) or real(*a, **kw))
    original = copy.deepcopy(model)  # a model no other test has scored
    first = Monitor(tokenizer, forget, retain, TrainConfig(), original, holdout=holdout)
    start = first.score(model, 0)
    assert len(passes) == 2  # the samples, then the holdout level
    second = Monitor(tokenizer, forget, retain, TrainConfig(), original, holdout=holdout)
    assert second.score(model, 0) == start and second.thresholds == first.thresholds and len(passes) == 2
    second.score(model, 1)  # later steps are always scored
    fewer = Monitor(tokenizer, forget[:2], retain, TrainConfig(), original, holdout=holdout)
    fewer.score(model, 0)
    assert len(passes) == 5 and fewer.start["forget_total"] == 2
