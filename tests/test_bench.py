"""The benchmark's measurements are sound: same losses, same scores, ratios the right way round. Speed is not asserted."""
import pytest

from unlearning import bench
from unlearning.batching import IGNORE, encode


def answer_lengths(tokenizer, records):
    return {sum(label != IGNORE for label in encode(tokenizer, r.input, r.output, 256)["labels"]) for r in records}


def test_step_batch_answers_all_have_one_length(tiny):
    forget, retain = bench.step_batch(tiny, 3, answer_tokens=12)
    assert len(forget) == len(retain) == 3
    assert answer_lengths(tiny.tokenizer, forget) == answer_lengths(tiny.tokenizer, retain) == {12}  # EOS included
    assert all(r.kind == "sc" for r in forget + retain)


def test_reference_and_engine_agree_on_the_first_step(tiny):
    forget, retain = bench.step_batch(tiny, 2, answer_tokens=12)
    result = bench.step_benchmark(tiny, forget, retain, rounds=1, steps=2, learning_rate=1e-3, peaks={"float32": 1e12, "bfloat16": 1e12})
    for prefix in ("", "compiled_"):  # the plain and the torch.compile'd engine
        loss = result[f"{prefix}first_step_loss"]
        assert loss["same_loss"], loss
        for side in ("engine", "reference"):  # gradient difference: -NLL(forget) + NLL(retain), both terms really present
            terms = loss[side]
            assert terms["loss"] == pytest.approx(terms["retain_nll"] - terms["forget_nll"], abs=1e-4)
            assert terms["forget_nll"] > 1 and terms["retain_nll"] > 1  # a random model: ~ln(vocabulary) per token
        assert loss["reference"]["forget_nll"] == pytest.approx(loss["engine"]["forget_nll"], rel=bench.LOSS_TOLERANCE)
    assert result["timed_steps_per_side"] == 1  # the first step of each call is the untimed warm-up
    engine, compiled, reference = result["engine"], result["compiled"], result["reference"]
    assert result["speedup"] > 0
    assert result["speedup"] == pytest.approx(reference["mean_step_seconds"] / engine["mean_step_seconds"])
    assert result["compiled_speedup"] == pytest.approx(reference["mean_step_seconds"] / compiled["mean_step_seconds"])
    assert result["compile_seconds"] > 0  # the first compiled step pays for torch.compile
    assert engine["tokens_per_second"] == pytest.approx(result["tokens_per_step"] / engine["mean_step_seconds"])
    assert 0 < engine["share_of_peak"] and 0 < reference["share_of_peak"]
    assert result["tokens_per_step"] <= result["padded_tokens_per_step"]


def test_batched_and_one_at_a_time_evaluation_score_the_same(tiny):
    records = bench.eval_records(6)
    assert {r.kind for r in records} == {"sc", "qa"}
    result = bench.eval_benchmark(tiny, records, max_new_tokens=6, batch_size=4)
    assert result["differing_generations"] == 0 and result["differing_scores"] == 0
    assert result["max_score_diff"] == 0 and result["aggregate_diff"] == 0
    assert result["batched_deterministic"]
    assert result["speedup"] > 0
    assert result["speedup"] == pytest.approx(result["one_at_a_time_seconds"] / result["mean_batched_seconds"])


def test_memory_model_counts_what_the_engine_keeps():
    n = bench.olmo_params(16)
    assert n == 1_279_787_008  # OLMo-1B-0724's parameter count
    # full fine-tuning with bf16 weights: original + copy + gradient + 2 moments = 5 x 2 bytes, no autocast casts
    assert bench.needed_1b("full", "bfloat16") == pytest.approx(10 * n + 2 * bench.GIB)
    assert bench.needed_1b("lora", "bfloat16") < bench.needed_1b("lora", "float32") < bench.needed_1b("full", "float32")


def test_unknown_section_is_refused():
    with pytest.raises(SystemExit):
        bench.main(["--sections", "step,warp"])
