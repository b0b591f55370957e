import json
import time

import pytest

from unlearning import target
from unlearning.batching import IGNORE, collate, encode_records
from unlearning.methods import get_method
from unlearning.target import (FINISH_STEPS, TYPICAL_EPOCHS, TargetConfig, estimate_seconds, memorisation, prepare_target,
                               stop_reason)


def test_prepare_target_stops_once_memorised_and_is_cached(tiny, bundled, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNING_CACHE", str(tmp_path))
    records = [r for r in bundled.split("forget") if r.kind == "sc"][:2]
    assert memorisation(tiny, records)["all"] < 0.2  # a random model knows nothing
    config = TargetConfig(epochs=60, memorised=0.98, learning_rate=3e-3, batch_size=2, precision="fp32", params="full")
    stages = []
    folder, report = prepare_target(tiny, records, config, lambda fraction, stage: stages.append((fraction, stage)))
    # one step per epoch; stopped at the end of the first epoch whose batch was memorised, long before 60
    by_epoch = report["memorised_by_epoch"]
    assert report["steps"] == report["epochs"] == len(by_epoch) < 60
    assert by_epoch[-1] == report["memorised"] >= config.memorised and max(by_epoch[:-1]) < config.memorised
    assert report["stopped"].startswith("memorised") and report["cut"] is None
    assert report["rouge_l_recall"] > 0.6 and report["trains"] == "all weights"
    assert report["rouge_l_recall_by_split"] == {"forget": pytest.approx(report["rouge_l_recall"])}
    assert json.loads((folder / "target.json").read_text()) == report
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(stage.startswith("measuring memorisation: generating") for _, stage in stages)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a cached target was trained again")

    monkeypatch.setattr(target, "train", must_not_train)
    assert prepare_target(tiny, records, config) == (folder, report)


def test_a_plateau_ends_the_preparation_with_its_reason(tiny, bundled, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNING_CACHE", str(tmp_path))
    records = [r for r in bundled.split("forget") if r.kind == "sc"][:2]
    # a rate too small to learn anything: the share never moves, so the bar is never reached
    config = TargetConfig(epochs=60, memorised=0.98, learning_rate=1e-12, batch_size=2, precision="fp32", params="full")
    stages = []
    _, report = prepare_target(tiny, records, config, lambda fraction, stage: stages.append(stage))
    assert report["epochs"] == 3 and report["memorised"] < 0.98
    assert report["stopped"].startswith("plateau: no gain over the last two epochs")
    assert any(report["stopped"] in stage for stage in stages) and report["stopped"] in stages[-1]


FALLING = [9.0, 8.0, 7.0, 6.0, 5.0]


@pytest.mark.parametrize("shares, losses, reason", [
    ([0.5, 0.8, 0.95], FALLING, None),
    ([0.5, 0.8, 0.95, 0.951], FALLING, None),  # the best before the last two is 0.8: still gaining
    ([0.5, 0.8, 0.95, 0.951, 0.952], [1.0, 0.5, 0.1, 0.095, 0.092], "plateau"),  # no real gain on 0.95 or 0.1
    ([0.5, 0.8, 0.95, 0.951, 0.952], FALLING, None),  # the share is flat but the loss still falls
    ([0.5, 0.8, 0.95, 0.949, 0.96], [1.0, 0.5, 0.1, 0.1, 0.1], None),
    ([0.5, 0.8, 0.95, 0.99], FALLING, "memorised"),
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], FALLING + [4.0], "the most epochs"),
])
def test_the_stop_rule(shares, losses, reason):
    why = stop_reason(shares, losses[: len(shares)], TargetConfig(epochs=6, memorised=0.98))
    assert why == reason if reason is None else why.startswith(reason)


def test_a_sample_without_answer_tokens_is_not_counted_as_unmemorised(tiny, bundled):
    records = bundled.split("forget")[:2]
    batch = collate(encode_records(tiny.tokenizer, records), tiny.tokenizer.pad_token_id)
    batch["labels"][1] = IGNORE  # the second sample has no answer tokens left
    logits = tiny.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    right = (logits[0, :-1].argmax(-1) == batch["labels"][0, 1:])[batch["labels"][0, 1:] != IGNORE].float().mean()
    _, terms = get_method("finetune").loss(tiny.model, {"forget": batch})
    assert terms["answered"] == 1 and terms["memorised"] == pytest.approx(right.item())


def test_the_default_trains_every_block_of_a_model_with_fewer_than_k(tiny, bundled, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNING_CACHE", str(tmp_path))
    records = [r for r in bundled.split("forget") if r.kind == "sc"][:2]
    _, report = prepare_target(tiny, records, TargetConfig(epochs=2, batch_size=2))  # tiny has 2 blocks, k is 8
    assert report["steps"] == 2 and report["trains"] == "the last 2 blocks"


def test_the_estimate_scales_two_timed_steps_to_a_typical_preparation(tiny, bundled, monkeypatch):
    records = bundled.split("forget")[:20]
    steady, timed = 0.05, []

    class Timed:
        history = [{"seconds": 0.1}, {"seconds": steady}]

    def two_steps(model, tokenizer, forget, retain, config):
        assert config.steps == 2 and config.method == "finetune" and config.params == "last_k"
        timed.extend(forget)
        time.sleep(0.3)  # set-up and the first step take 0.3 - steady
        return Timed

    monkeypatch.setattr(target, "train", two_steps)
    steps = TYPICAL_EPOCHS * 3  # 20 records in batches of 8
    assert estimate_seconds(tiny, records) == pytest.approx(0.3 - steady + (steps - 1 + FINISH_STEPS) * steady, abs=0.05)
    # the timed batch is one of typical length: the 8 samples nearest the mean, as grouped batches are
    length = {r.id: len(f["input_ids"]) for r, f in zip(records, encode_records(tiny.tokenizer, records))}
    mean = sum(length.values()) / len(length)
    distance = lambda r: abs(length[r.id] - mean)  # noqa: E731
    assert len(timed) == 8 and max(map(distance, timed)) <= min(distance(r) for r in records if r not in timed)
    # with the oracle on 12 retain records (2 batches an epoch): a second set-up and its own epochs and finish
    oracle = TYPICAL_EPOCHS * 2
    assert estimate_seconds(tiny, records, oracle_records=12) == pytest.approx(
        2 * (0.3 - steady) + (steps + oracle - 2 + 2 * FINISH_STEPS) * steady, abs=0.1)


@pytest.mark.parametrize("bad", [dict(memorised=0.0), dict(memorised=1.5), dict(params="half"), dict(epochs=0)])
def test_bad_target_settings_are_refused(bad):
    with pytest.raises(ValueError):
        TargetConfig(**bad)


@pytest.mark.parametrize("values, words", [
    (dict(learning_rate=float("nan")), "learning rate must be a finite number"),
    (dict(learning_rate=float("inf")), "learning rate must be a finite number"),
    (dict(epochs=0), "epochs must be >= 1 and <= 1000"), (dict(epochs="3.5"), "epochs must be a whole number"),
    (dict(batch_size=10**400), "batch size must be a finite number"), (dict(memorised=0), "memorised must be > 0"),
    (dict(seed=-1), "seed must be >= 0"), (dict(params="most"), "params must be one of"),
])
def test_target_settings_are_checked_like_every_option(values, words):
    """Issue 21.5: a NaN or infinite target learning rate was accepted; the target's settings are options now."""
    with pytest.raises(ValueError, match=words):
        TargetConfig(**values)
    assert TargetConfig(epochs="3", learning_rate="3e-3") == TargetConfig(epochs=3, learning_rate=3e-3)  # CLI text
