"""The benchmark's measurements are sound: same losses, same scores, ratios the right way round. Speed is not asserted."""
import pytest

from benchmarks import evaluation, last_k, one_b, step
from benchmarks.__main__ import main
from benchmarks.common import LOSS_TOLERANCE, GIB, step_batch
from unlearning.batching import IGNORE, encode
from unlearning.evaluation.verdict import ASPECTS

PEAKS = {"float32": 1e12, "bfloat16": 1e12}


def answer_lengths(tokenizer, records):
    return {sum(label != IGNORE for label in encode(tokenizer, r.input, r.output, 256)["labels"]) for r in records}


def test_step_batch_answers_all_have_one_length(tiny):
    forget, retain = step_batch(tiny, 3, answer_tokens=12)
    assert len(forget) == len(retain) == 3
    assert answer_lengths(tiny.tokenizer, forget) == answer_lengths(tiny.tokenizer, retain) == {12}  # EOS included
    assert all(r.kind == "sc" for r in forget + retain)


def check_sides(result, engine_sides):
    reference = result["sides"][result["reference"]]
    for side in engine_sides:
        s = result["sides"][side]
        assert s["same_loss"], s
        for terms in (s["first_step_loss"], reference["first_step_loss"]):  # -NLL(forget) + NLL(retain), both terms present
            assert terms["loss"] == pytest.approx(terms["retain_nll"] - terms["forget_nll"], abs=1e-4)
            assert terms["forget_nll"] > 1 and terms["retain_nll"] > 1  # a random model: ~ln(vocabulary) per token
        assert reference["first_step_loss"]["forget_nll"] == pytest.approx(s["first_step_loss"]["forget_nll"], rel=LOSS_TOLERANCE)
        assert s["speedup"] == pytest.approx(reference["mean_step_seconds"] / s["mean_step_seconds"])
        assert s["tokens_per_second"] == pytest.approx(result["tokens_per_step"] / s["mean_step_seconds"])
    assert result["timed_steps_per_side"] == 1  # the first step of each call is the untimed warm-up
    assert result["tokens_per_step"] <= result["padded_tokens_per_step"]


def test_reference_and_engine_agree_on_the_first_step(tiny):
    forget, retain = step_batch(tiny, 2, answer_tokens=12)
    lr, length = 1e-3, 256
    sides = {
        "engine": lambda n: step.engine_run(tiny, forget, retain, n, lr, length),
        "compiled": lambda n: step.engine_run(tiny, forget, retain, n, lr, length, compile=True),
        "reference": lambda n: step.reference_run(tiny, forget, retain, n, lr, length),
    }
    dtypes = {"engine": step.engine_dtype(), "compiled": step.engine_dtype(), "reference": "float32"}
    result = step.compare_steps(tiny, forget, retain, sides, rounds=1, steps=2, dtypes=dtypes, peaks=PEAKS)
    check_sides(result, ("engine", "compiled"))
    assert 0 < result["sides"]["engine"]["share_of_peak"] and 0 < result["sides"]["reference"]["share_of_peak"]
    # the compiled engine's first step pays for torch.compile
    assert result["sides"]["compiled"]["first_step_seconds"] > result["sides"]["engine"]["first_step_seconds"]


def test_last_k_sides_give_the_references_loss(tiny):
    forget, retain = step_batch(tiny, 2, answer_tokens=12)
    lr, length = 1e-3, 256
    sides = {
        "cached": lambda n: step.engine_run(tiny, forget, retain, n, lr, length, params="last_k", last_k=1),
        "uncached": lambda n: step.engine_run(tiny, forget, retain, n, lr, length, params="last_k", last_k=1, prefix_cache=False),
        "reference": lambda n: step.reference_run(tiny, forget, retain, n, lr, length, last_k=1),
    }
    dtypes = dict.fromkeys(sides, "float32")
    result = step.compare_steps(tiny, forget, retain, sides, rounds=1, steps=2, dtypes=dtypes)
    check_sides(result, ("cached", "uncached"))


def test_last_k_cache_cost_counts_every_sample_once(tiny, monkeypatch):
    monkeypatch.setattr(last_k, "K", 1)
    forget, retain = step_batch(tiny, 2, answer_tokens=12)
    ctx = type("Ctx", (), {"model": tiny})()
    cost = last_k.cache_cost(ctx, forget, retain)
    lengths = [len(encode(tiny.tokenizer, r.input, r.output, 256)["input_ids"]) for r in forget + retain]
    assert cost["samples"] == 4 and cost["tokens"] == sum(lengths)
    assert cost["bytes"] == sum(lengths) * tiny.model.config.hidden_size * 4 and cost["fill_seconds"] > 0


def test_batched_and_one_at_a_time_evaluation_score_the_same(tiny):
    records = evaluation.eval_records(6)
    assert {r.kind for r in records} == {"sc", "qa"}
    result = evaluation.compare(tiny, records, max_new_tokens=6, batch_size=4)
    assert result["differing_generations"] == 0 and result["differing_scores"] == 0
    assert result["max_score_diff"] == 0 and result["aggregate_diff"] == 0
    assert result["batched_deterministic"]
    assert result["speedup"] > 0
    assert result["speedup"] == pytest.approx(result["one_at_a_time_seconds"] / result["mean_batched_seconds"])


def test_memory_model_counts_what_the_engine_keeps():
    n = one_b.olmo_params(16)
    assert n == 1_279_787_008  # OLMo-1B-0724's parameter count
    # full fine-tuning with bf16 weights: original + copy + gradient + 2 moments = 5 x 2 bytes, no autocast casts
    assert one_b.needed_1b("full", "bfloat16") == pytest.approx(10 * n + 2 * GIB)
    assert one_b.needed_1b("lora", "bfloat16") < one_b.needed_1b("lora", "float32") < one_b.needed_1b("full", "float32")


def test_unknown_section_is_refused():
    with pytest.raises(SystemExit):
        main(["--sections", "step,warp"])


def test_gpu_section_runs_a_whole_studio_run_on_cpu():
    """Without CUDA the GPU script runs the same end-to-end path on the tiny model: both configurations complete,
    their figures are consistent with each other, and the verdict is read with the quantisation probe."""
    from benchmarks import gpu
    from benchmarks.common import Context

    result = gpu.run(Context(quick=True))
    assert [r["trains"] for r in result["configs"]] == ["lora", "last_k"]
    for r in result["configs"]:
        assert r["status"] == "completed" and r["steps"] == 4
        assert r["tokens_per_second"] == pytest.approx(r["tokens_per_step"] / r["seconds_per_step"])
        assert 0 < r["peak_share"] < 1
        assert r["before_eval_seconds"] > 0 and r["after_eval_seconds"] > 0
        assert r["probed"] == ["quantize"] and set(r["verdict"]) == set(ASPECTS)


def test_the_first_verdict_clock_lists_the_gaps_between_updates_longest_first():
    from benchmarks.first_verdict import Clock
    clock = Clock()
    clock.events = [(0.0, "a", "A"), (1.0, "b", "B"), (4.0, "c", "C"), (4.5, "d", "D")]
    assert clock.gaps() == [(3.0, "B", "C"), (1.0, "A", "B"), (0.5, "C", "D")]


def test_the_official_section_compares_official_mode_with_the_organisers_loop(tiny):
    """On the tiny model: official mode's generations are the organisers' loop's, and every stage is timed."""
    from benchmarks import official

    records, members, nonmembers = official.lume_rows(4)
    result = official.compare(tiny, records, members, nonmembers, max_new_tokens=4)
    assert result["prompts"] == 4 and result["differing_generations"] == result["differing_in_evaluation"] == 0
    assert {"generate", "teacher-forced", "fluency"} <= set(result["official_stages"])
    assert result["generation_ratio"] == pytest.approx(result["studio_generation_seconds"] / result["organisers_seconds"])
    stages = result["official_stages"]
    assert result["extra_seconds"] == pytest.approx(result["official_seconds"] - stages["generate"] - stages.get("mia", 0))
    assert 0 <= result["equal_length_batches_differing"] <= result["equal_length_prompts"] <= 4
