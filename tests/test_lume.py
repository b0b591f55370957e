"""LUME as it is (issue 20): the shared real rows with the longest documents, trained, scored and generated whole.

The rows come from ../shared/data/lume-validation; every test here skips when it is absent.
"""
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from unlearning.batching import IGNORE, encode, encode_records, sample_length
from unlearning.data import load_lume
from unlearning.engine import TrainConfig, train
from unlearning.evaluation.memorisation import teacher_forced
from unlearning.evaluation.metrics import Context
from unlearning.evaluation.report import EvalConfig, bf16_copy, evaluate
from unlearning.plan import make_plan

LUME = Path(__file__).resolve().parents[2] / "shared/data/lume-validation"


@pytest.fixture(scope="module")
def lume():
    if not LUME.is_dir():
        pytest.skip(f"{LUME} not present")
    return load_lume(LUME)


@pytest.fixture(scope="module")
def longest(lume, tiny):
    """The four rows whose prompt and answer are longest in tokens: Task3 biographies, prompts of 276-307 tokens."""
    length = lambda r: len(encode(tiny.tokenizer, r.input, r.output, 10**6)["input_ids"])  # noqa: E731
    return sorted(lume.records, key=length, reverse=True)[:4]


def answer_ids(tokenizer, record) -> list[int]:
    return tokenizer(record.output, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def test_the_longest_rows_are_trained_and_scored_on_every_answer_token(tiny, longest):
    tok = tiny.tokenizer
    # what the old 256-token cut from the end lost: these rows' answers, wholly or in part
    assert all(len(tok(r.input)["input_ids"]) + len(answer_ids(tok, r)) > 256 for r in longest)
    assert max(len(tok(r.input)["input_ids"]) for r in longest) >= 256
    features = encode_records(tok, longest, TrainConfig.max_length)
    for record, f in zip(longest, features):
        assert [t for t in f["labels"] if t != IGNORE] == answer_ids(tok, record)
        assert f["input_ids"] == tok(record.input)["input_ids"] + answer_ids(tok, record)  # the prompt is whole too

    logs = []
    config = TrainConfig(method="finetune", steps=1, batch_size=4, params="full", learning_rate=1e-3, score_every=0)
    train(tiny.model, tok, longest, [], config, logs.append)
    assert logs[0]["answered"] == 4  # every row had answer tokens in its batch
    assert logs[0]["tokens"] == sum(len(f["input_ids"]) for f in features)

    scored = teacher_forced(Context(tiny.model, tok, longest, EvalConfig()))
    assert scored.token_ids == [answer_ids(tok, r) for r in longest]


def test_a_sample_longer_than_max_length_loses_its_prompt_start_never_its_answer(tiny, longest, lume):
    tok, record = tiny.tokenizer, longest[0]
    prompt, answer = tok(record.input)["input_ids"], answer_ids(tok, record)
    f = encode(tok, record.input, record.output, 200)
    assert len(f["input_ids"]) == 200 and f["input_ids"] == prompt[len(prompt) - (200 - len(answer)):] + answer
    assert [t for t in f["labels"] if t != IGNORE] == answer
    # an answer longer than max_length alone keeps one prompt token, so its first token is still predicted
    short = encode(tok, record.input, record.output, 16)
    assert short["input_ids"] == prompt[-1:] + answer[:15] and short["labels"][1:] == answer[:15]

    ids = [r.id for r in longest]
    plan = make_plan({"model": "tiny", "data": str(LUME), "forget_ids": ids[:2], "retain_ids": ids[2:],
                      "train": {"method": "grad_diff", "max_length": "300", "steps": "1"}})
    over = [r.id for r in longest if len(tok(r.input)["input_ids"]) + len(answer_ids(tok, r)) > 300]
    assert over and any(note.startswith(f"Training and in-run scores: {len(over)} of 4 samples are longer than 300 "
                                         "tokens: their prompts lose their first tokens, their answers are whole")
                        for note in plan.notes)
    assert sample_length(tiny.model) == min(TrainConfig.max_length, tiny.model.config.max_position_embeddings)


def organisers_generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 256) -> list[str]:
    """The organisers' loop as the shared README and their evaluation script describe it: one prompt at a time, its
    input ids alone (no attention mask), greedy with the KV cache, only the new tokens decoded with
    skip_special_tokens=True (their clean_up_tokenization_spaces=True is a no-op for BPE tokenizers)."""
    generations = []
    for prompt in prompts:
        input_ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(input_ids, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                 pad_token_id=tokenizer.eos_token_id)
        generations.append(tokenizer.batch_decode(out[:, len(input_ids[0]):], skip_special_tokens=True)[0])
    return generations


def test_official_mode_generates_as_the_organisers_loop_on_the_longest_rows(tiny, longest, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()  # as their script loads it
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    tokenizer.pad_token = tokenizer.eos_token
    rows = longest[:2]
    config = EvalConfig(mode="official")
    # 16 new tokens, no utility or MIA: bf16 decoding is slow on a CPU; the prompts, dtype and loop stay official
    config.max_new_tokens, config.utility, config.mia = 16, "none", False
    report = evaluate(tiny.model, tiny.tokenizer, rows, [], [], config)
    assert [row["generation"] for row in report.rows] == organisers_generate(theirs, tokenizer, [r.input for r in rows], 16)
    assert tiny.model.dtype == torch.float32  # evaluated on a copy
    # the same numbers, not only the same greedy picks: official mode's bf16 copy computes their model's logits bit for
    # bit over whole documents (a copy cast with .to(bfloat16) rounds the rotary frequencies and does not)
    ours = bf16_copy(tiny.model).eval()
    with torch.no_grad():
        for r in rows:
            ids = tokenizer(r.text, return_tensors="pt").input_ids
            assert torch.equal(ours(ids).logits, theirs(ids).logits)
