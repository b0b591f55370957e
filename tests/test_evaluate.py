"""Evaluation: hand-computed official metrics, and the pipeline against a literal copy of the official procedure."""
import copy
import io
import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
import torch
from rouge_score import rouge_scorer
from sklearn.metrics import auc, roc_curve

from unlearning.data.records import Record, kind_from_id
from unlearning.evaluation import EvalConfig, EvalReport, evaluate, generate
from unlearning.evaluation import mia as mia_module
from unlearning.evaluation import official as ev
from unlearning.batching import encode_records
from unlearning.evaluation.memorisation import token_scores
from unlearning.evaluation.utility import UtilityUnavailable, choice_picks, load_items, load_mmlu
from unlearning.models import tiny_model

LUME = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lume-validation"
MAX_NEW = 8  # enough tokens to tell generations apart, few enough to keep the file fast


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


# --- The official SemEval-2025 Task 4 procedure, written out as its README and evaluation script do it ---------


def official_generate(model, tokenizer, prompts, max_new_tokens):
    """One prompt at a time, no padding: greedy, KV cache, only the new tokens decoded."""
    generations = []
    for prompt in prompts:
        tok = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(
                tok.input_ids, attention_mask=tok.attention_mask, max_new_tokens=max_new_tokens,
                do_sample=False, use_cache=True, pad_token_id=tokenizer.eos_token_id,
            )
        generations.append(tokenizer.batch_decode(out[:, tok.input_ids.shape[1] :], skip_special_tokens=True)[0])
    return generations


def official_aggregate(rows, generations):
    """Per-sample scores by id suffix, per split and task means, forget inverted, harmonic mean."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    df = pd.DataFrame(rows)
    df["regurgitation-score"], df["knowledge-score"] = None, None
    for i, (gen, gt) in enumerate(zip(generations, df["output"])):
        if df.loc[i, "id"][:-1].endswith("sc"):
            df.loc[i, "regurgitation-score"] = scorer.score(str(gt), str(gen))["rougeL"].recall
        elif df.loc[i, "id"][:-1].endswith("qa"):
            df.loc[i, "knowledge-score"] = int(str(gt).strip().lower() == str(gen).strip().lower())
    values = []
    for split in ["forget", "retain"]:
        part = df[df["split"] == split]
        means = part.groupby("task")[["regurgitation-score", "knowledge-score"]].mean().to_dict(orient="index")
        split_values = [float(v) for inner in means.values() for v in inner.values()]
        values += [1 - v for v in split_values] if split == "forget" else split_values
    return statistics.harmonic_mean(values)


def official_mia(model, tokenizer, members, nonmembers):
    """Whole-document loss, one document at a time; AUC with members labelled 1 and score -loss."""
    def loss(document):
        input_ids = tokenizer(document, return_tensors="pt").input_ids
        with torch.no_grad():
            return model(input_ids, labels=input_ids.clone()).loss.item()

    member_loss, nonmember_loss = [loss(d) for d in members], [loss(d) for d in nonmembers]
    fp, tp, _ = roc_curve([1] * len(member_loss) + [0] * len(nonmember_loss), [-x for x in member_loss + nonmember_loss])
    auc_score = float(auc(fp, tp))
    return member_loss, nonmember_loss, 1 - 2 * abs(auc_score - 0.5)


# --- Metrics by hand --------------------------------------------------------------------------------------------


def test_rouge_l_recall_by_hand():
    # LCS "the cat on the mat" = 5 of the reference's 6 tokens.
    assert ev.rouge_l_recall("the cat is on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    # Porter stemming: dogs -> dog, running -> run match; were / was do not: 3 of 4.
    assert ev.rouge_l_recall("the dog was running", "The dogs were running") == pytest.approx(3 / 4)
    # Recall ignores extra words: continuing past the answer costs nothing here...
    assert ev.rouge_l_recall("Paris is the capital", "Paris") == 1.0
    assert ev.rouge_l_recall("", "Paris") == 0.0


def test_exact_match_by_hand():
    assert ev.exact_match("  PARIS \n", "paris") == 1.0
    assert ev.exact_match("Paris.", "Paris") == 0.0
    assert ev.exact_match("Paris is the capital", "Paris") == 0.0  # ...but costs everything in QA


def test_score_picks_metric_by_kind():
    sc = Record("1sc1", "The cat", "sat on the mat", "Task1", "forget", "sc")
    qa = Record("1qa0", "Where?", "mat", "Task1", "forget", "qa")
    assert ev.score(sc, "sat on a mat") == pytest.approx(3 / 4)  # "sat on mat" of "sat on the mat"
    assert ev.score(qa, "the mat") == 0.0


def _rows(scores):
    return [{"task": t, "kind": k, "split": s, "official": x} for (t, k, s), xs in scores.items() for x in xs]


HAND = {
    ("Task1", "sc", "forget"): [0.2, 0.4],  # mean 0.3 -> term 0.7
    ("Task1", "qa", "forget"): [1, 0],  # 0.5 -> 0.5
    ("Task1", "sc", "retain"): [0.8],  # 0.8
    ("Task1", "qa", "retain"): [1, 1, 0, 1],  # 0.75
    ("Task2", "sc", "forget"): [0.0],  # 0 -> 1
    ("Task2", "qa", "forget"): [0, 0],  # 0 -> 1
    ("Task2", "sc", "retain"): [0.5, 0.3],  # 0.4
    ("Task2", "qa", "retain"): [1],  # 1
    ("Task2", "qa", "holdout"): [1, 1],  # not part of the aggregate
}


def test_task_aggregate_by_hand():
    aggregate, parts = ev.task_aggregate(_rows(HAND))
    # 8 / (1/0.7 + 1/0.5 + 1/0.8 + 1/0.75 + 1 + 1 + 1/0.4 + 1) = 8 / (967/84) = 672/967
    assert aggregate == pytest.approx(672 / 967)
    assert len(parts) == 8 and "Task2/qa/holdout" not in parts
    assert parts["Task1/sc/forget"] == pytest.approx(0.7) and parts["Task1/qa/retain"] == pytest.approx(0.75)


def test_task_aggregate_any_zero_is_zero():
    aggregate, parts = ev.task_aggregate(_rows({**HAND, ("Task2", "qa", "retain"): [0, 0]}))
    assert aggregate == 0.0 and parts["Task2/qa/retain"] == 0.0


def test_mia_auc_and_score():
    assert mia_module.attack([3, 1], [2, 0]) == {"auc": 0.75, "score": 0.5}  # 3 of 4 member/non-member pairs ranked right
    members = mia_module.DocumentScores(loss=[0.5, 0.6, 0.7], min_k_logprob=[-1.0, -1.1, -1.2], zlib_ratio=[0.01, 0.02, 0.03])
    nonmembers = mia_module.DocumentScores(loss=[2.0, 2.5, 3.0], min_k_logprob=[-5.0, -6.0, -7.0], zlib_ratio=[0.1, 0.2, 0.3])
    result = mia_module.mia(members, nonmembers)
    assert result["auc"] == 1.0 and result["score"] == 0.0  # members plainly lower loss: fully exposed
    assert all(v == {"auc": 1.0, "score": 0.0} for v in result["variants"].values())
    same = mia_module.mia(members, members)
    assert same["auc"] == 0.5 and same["score"] == 1.0  # indistinguishable: the ideal after unlearning


def test_final_score_keeps_parts():
    final, parts = ev.final_score({"task_aggregate": 0.6, "mia_score": 0.3, "utility": 0.9})
    assert final == pytest.approx(0.6) and parts == {"task_aggregate": 0.6, "mia_score": 0.3, "utility": 0.9}
    final, parts = ev.final_score({"task_aggregate": 0.6, "mia_score": None, "utility": 0.9})
    assert final == pytest.approx(0.75) and set(parts) == {"task_aggregate", "utility"}


# --- Batched pipeline vs the official procedure on the tiny model -------------------------------------------------

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
    "Q: What is two plus two?\nA:",
    "Madera, a bustling city, served as the backdrop for the lives of four young women.",
    "Hi",
    "Yarlagadda Nayudamma (born 1 June 1947) is a consultant paediatric surgeon from Guntur. He",
    "Who wrote Hamlet?",
    "In 1914 Henkel volunteered for military service and",
]


def test_generate_left_padding_matches_one_by_one(tiny):
    batched = generate(tiny.model, tiny.tokenizer, PROMPTS, max_new_tokens=MAX_NEW, batch_size=4)
    assert batched == official_generate(tiny.model, tiny.tokenizer, PROMPTS, MAX_NEW)
    assert tiny.tokenizer.padding_side == "right"  # shared tokenizer left untouched


def test_generation_moves_layer_by_layer_through_the_prefill_and_says_the_same(tiny):
    """A 64-prompt batch's prefill is seconds on a CPU: its progress moves after every decoder layer, then every token."""
    from unlearning.models import decoder_layers

    seen, hooked = [], []

    def progress(done, total):
        seen.append((done, total))
        hooked.append(sum(len(layer._forward_hooks) for layer in decoder_layers(tiny.model)))

    texts = generate(tiny.model, tiny.tokenizer, PROMPTS, max_new_tokens=MAX_NEW, batch_size=len(PROMPTS),
                     progress=progress)
    assert texts == generate(tiny.model, tiny.tokenizer, PROMPTS, max_new_tokens=MAX_NEW, batch_size=len(PROMPTS))
    layers, n = tiny.model.config.num_hidden_layers, len(PROMPTS)
    # the hooks go once the prefill's last layer has reported: every decoding step runs unhooked, at full speed
    assert hooked[layers:] == [0] * (len(seen) - layers)
    prompt = max(len(ids) for ids in tiny.tokenizer(PROMPTS)["input_ids"])
    share = prompt / (prompt + MAX_NEW)  # the prefill's part of the batch, by tokens
    prefill = [done for done, _ in seen[:layers]]
    assert prefill == pytest.approx([n * share * (i + 1) / layers for i in range(layers)])
    assert [done for done, _ in seen[layers:]] == pytest.approx(
        [n * (share + (1 - share) * t / MAX_NEW) for t in range(1, MAX_NEW + 1)] + [n])
    assert {total for _, total in seen} == {n}


def test_a_teacher_forced_batch_moves_layer_by_layer(tiny):
    features = encode_records(tiny.tokenizer, _records_from(PROMPTS))
    seen = []
    plain = token_scores(tiny.model, features, tiny.tokenizer.pad_token_id, batch_size=len(features))
    ticked = token_scores(tiny.model, features, tiny.tokenizer.pad_token_id, batch_size=len(features),
                          progress=lambda done, total: seen.append((done, total)))
    layers, n = tiny.model.config.num_hidden_layers, len(features)
    assert seen == [(0, n)] + [(n * (i + 1) / layers, n) for i in range(layers)] + [(n, n)]
    assert ticked.logprobs == plain.logprobs


def _records_from(generations):
    """Two tasks x two kinds x two splits whose references are built from the model's own output: non-zero scores."""
    records = []
    for i, (prompt, gen) in enumerate(zip(PROMPTS + PROMPTS, generations + generations)):
        task, split = ("Task1", "Task2")[i % 2], ("forget", "retain")[i // 8]
        if (i // 2) % 2:
            records.append(Record(f"{i}qa0", prompt, gen if i % 3 else "no", task, split, "qa"))
        else:
            records.append(Record(f"{i}sc1", prompt, " ".join(gen.split()[:3]) + " and more", task, split, "sc"))
    return records


def test_scoring_equals_official_on_same_generations(tiny):
    generations = official_generate(tiny.model, tiny.tokenizer, PROMPTS, MAX_NEW) * 2
    records = _records_from(generations[:8])
    rows = [{**r.to_dict(), "official": ev.score(r, g)} for r, g in zip(records, generations)]
    aggregate, parts = ev.task_aggregate(rows)
    assert len(parts) == 8 and 0 < aggregate < 1
    assert aggregate == pytest.approx(official_aggregate([r.to_dict() for r in records], generations), abs=1e-12)


def test_evaluate_end_to_end_matches_official(tiny):
    model, tokenizer = tiny.model, tiny.tokenizer
    records = _records_from(official_generate(model, tokenizer, PROMPTS, MAX_NEW))
    members, nonmembers = PROMPTS[:4], PROMPTS[5:]  # not "Hi": one token leaves nothing to predict
    config = EvalConfig(max_new_tokens=MAX_NEW, batch_size=4, utility="items", dtype="model")  # the script's dtype
    fractions, stages = [], []
    report = evaluate(model, tokenizer, records, members, nonmembers, config,
                      lambda f, stage: (fractions.append(f), stages.append(stage)))

    generations = official_generate(model, tokenizer, [r.input for r in records], MAX_NEW)
    assert [row["generation"] for row in report.rows] == generations
    assert report.value("task_aggregate") == pytest.approx(official_aggregate([r.to_dict() for r in records], generations), abs=0.01)
    member_loss, nonmember_loss, mia_score = official_mia(model, tokenizer, members, nonmembers)
    assert report.metrics["mia_auc"]["member_losses"] == pytest.approx(member_loss, abs=1e-4)
    assert report.metrics["mia_auc"]["nonmember_losses"] == pytest.approx(nonmember_loss, abs=1e-4)
    assert report.value("mia_score") == pytest.approx(mia_score, abs=0.01)
    assert set(report.metrics["mia_auc"]["variants"]) == {"min_k_20", "zlib"}
    assert report.metrics["utility"]["name"] == "items" and 0 <= report.value("utility") <= 1
    assert report.value("final") == pytest.approx(
        statistics.fmean([report.value("task_aggregate"), report.value("mia_score"), report.value("utility")]))
    assert all(math.isfinite(row["answer_nll"]) and row["answer_nll"] > 0 for row in report.rows)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 5  # it moves, only forward
    # utility moves per batch of (question, choice) pairs, not 0/1 for a minute: 124 items x 4 choices in batches of 4
    assert {f"utility {4 * k}/496" for k in range(1, 125)} <= set(stages)  # every batch of 4 items, and within
    assert report.mode == "fast" and "batched generation of 8 new tokens" in report.unofficial["protocol"]
    assert EvalReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_official_mode_generates_one_at_a_time_in_bf16(tiny):
    config = EvalConfig(mode="official", max_new_tokens=3)  # the protocol wins over what was asked
    assert (config.max_new_tokens, config.generation_batch_size, config.dtype, config.retain_rows) == (256, 1, "bf16", 0)
    records = [Record(f"{i}sc1", p, "x", "Task1", "forget", "sc") for i, p in enumerate(PROMPTS[:5])]
    config.max_new_tokens, config.utility = MAX_NEW, "none"  # keep the test fast; the rest stays official
    report = evaluate(tiny.model, tiny.tokenizer, records, [], [], config)
    bf16 = copy.deepcopy(tiny.model).to(torch.bfloat16)
    assert [row["generation"] for row in report.rows] == official_generate(bf16, tiny.tokenizer, PROMPTS[:5], MAX_NEW)
    assert tiny.model.dtype == torch.float32  # evaluated on a copy: the caller's model is untouched
    assert report.mode == "official" and "utility" in report.unofficial  # MMLU was not measured, and it says so


@pytest.mark.parametrize("fast", [True, False])
def test_auto_evaluates_in_bf16_where_the_hardware_does_bf16_fast(tiny, monkeypatch, fast):
    from unlearning import models

    monkeypatch.setattr(models, "cpu_has_bf16", lambda: fast)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = EvalConfig(max_new_tokens=MAX_NEW, utility="none", mia=False)
    assert config.dtype == ("bf16" if fast else "model")  # resolved: the saved run and cache keys say which was used
    records = [Record(f"{i}sc1", p, "x y", "Task1", "forget", "sc") for i, p in enumerate(PROMPTS[:5])]
    report = evaluate(tiny.model, tiny.tokenizer, records, [], [], config)
    in_fp32 = evaluate(tiny.model, tiny.tokenizer, records, [], [], EvalConfig(**{**config.__dict__, "dtype": "model"}))
    expected = copy.deepcopy(tiny.model).to(torch.bfloat16) if fast else tiny.model
    assert [row["generation"] for row in report.rows] == generate(expected, tiny.tokenizer, PROMPTS[:5], MAX_NEW)
    nll, nll_fp32 = ([row["answer_nll"] for row in r.rows] for r in (report, in_fp32))
    assert (nll != nll_fp32) == fast  # bf16 rounding moves every score a little; "model" is the fp32 evaluation itself
    assert report.config["dtype"] == config.dtype
    assert ("bfloat16" if fast else "float32") in report.unofficial["protocol"]
    assert tiny.model.dtype == torch.float32  # evaluated on a copy: the caller's model is untouched


# --- Utility --------------------------------------------------------------------------------------------------


def test_items_and_batched_multiple_choice(tiny):
    items = load_items()
    assert len(items) >= 100 and all(len(i["choices"]) == 4 and i["answer"] == 0 for i in items)
    assert len({i["family"] for i in items}) >= 5
    one_by_one = choice_picks(tiny.model, tiny.tokenizer, items[:12], batch_size=1)
    assert choice_picks(tiny.model, tiny.tokenizer, items[:12], batch_size=12) == one_by_one


def test_mmlu_unreachable_fails_fast_and_evaluate_falls_back(tiny, monkeypatch):
    import huggingface_hub

    def unreachable(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", unreachable)
    with pytest.raises(UtilityUnavailable, match="not reachable"):
        load_mmlu(n=1)
    records = [Record("1qa0", "Hi", "there", "Task1", "retain", "qa")]
    report = evaluate(tiny.model, tiny.tokenizer, records, [], [], EvalConfig(max_new_tokens=2, utility="mmlu"))
    assert report.metrics["utility"]["name"] == "items" and "MMLU unavailable" in report.metrics["utility"]["note"]
    assert "mia_auc" in report.skipped and set(report.metrics["final"]["parts"]) == {"task_aggregate", "utility"}


# --- Real LUME validation files -------------------------------------------------------------------------------


def _lume_rows():
    if not LUME.exists():
        pytest.skip("LUME validation data not present")
    df = pd.concat([pd.read_parquet(LUME / f"{s}_validation.parquet") for s in ("forget", "retain")], ignore_index=True)
    return [{**row, "kind": kind_from_id(row["id"])} for row in df.to_dict(orient="records")]


def test_lume_references_score_forget_zero_retain_one():
    rows = [{**row, "official": ev.score(Record(**row), row["output"])} for row in _lume_rows()]
    aggregate, parts = ev.task_aggregate(rows)
    assert len(parts) == 12
    assert all(v == 0.0 for k, v in parts.items() if k.endswith("/forget"))
    assert all(v == 1.0 for k, v in parts.items() if k.endswith("/retain"))
    assert aggregate == 0.0


def test_lume_partial_generations_match_official():
    rows = _lume_rows()
    # Half of each completion, and two QA answers in three right: every term strictly between 0 and 1.
    generations = [
        row["output"][: len(row["output"]) // 2] if row["kind"] == "sc" else (row["output"] if i % 3 else "no")
        for i, row in enumerate(rows)
    ]
    scored = [{**row, "official": ev.score(Record(**row), g)} for row, g in zip(rows, generations)]
    aggregate, _ = ev.task_aggregate(scored)
    assert 0 < aggregate < 1
    assert aggregate == pytest.approx(official_aggregate(rows, generations), abs=1e-12)


def test_lume_document_losses(tiny):
    if not LUME.exists():
        pytest.skip("LUME validation data not present")
    members = pd.read_json(LUME / "mia_member.jsonl", lines=True)["document"].tolist()[:2]
    nonmembers = pd.read_json(LUME / "mia_nonmember.jsonl", lines=True)["document"].tolist()[:2]
    scores = mia_module.document_losses(tiny.model, tiny.tokenizer, members + nonmembers, batch_size=2)
    member_loss, nonmember_loss, _ = official_mia(tiny.model, tiny.tokenizer, members, nonmembers)
    assert scores.loss == pytest.approx(member_loss + nonmember_loss, abs=1e-4)
    # Min-K% averages the least likely tokens, so it sits below the mean log-prob (-loss).
    assert all(mk < -loss for mk, loss in zip(scores.min_k_logprob, scores.loss))
    assert all(0 < z < loss for z, loss in zip(scores.zlib_ratio, scores.loss))


def _record(kind: str, output: str) -> Record:
    return Record(id=f"x-1{kind}{1 if kind == 'sc' else 0}", input="Q", output=output, task="Task2", split="forget",
                  kind=kind)


@pytest.mark.parametrize("kind, output, generation", [
    ("qa", "N/A", "None"), ("qa", "N/A", ""), ("qa", "None", "null"), ("qa", "nan", "NaN"), ("qa", "N/A", " N/A"),
    ("sc", "the answer is not a number", "N/A"), ("sc", "nan bread", ""), ("qa", "1947", "1947"), ("qa", "NA", "na"),
])
def test_official_mode_scores_na_texts_as_the_organisers_pandas_round_trip(kind, output, generation):
    """Issue 21.10: the organisers' script writes generations and expected answers with to_csv and reads them back
    with read_csv, so "N/A", "None", "" ... become NaN, then "nan". Official mode scores the same; fast mode scores
    the text as it is."""
    record = _record(kind, output)
    organisers = official_aggregate_scores([record.to_dict()], [generation])
    assert ev.scores([record], [generation], "official") == organisers
    assert ev.scores([record], [generation], "fast") == [ev.score(record, generation)]


def test_the_issue_cases_of_na_texts():
    none_vs_na, completion = _record("qa", "N/A"), _record("sc", "a cat sat on a mat")
    assert ev.scores([none_vs_na, completion], ["None", "N/A"], "official") == [1.0, 0.0]
    assert ev.scores([none_vs_na, completion], ["None", "N/A"], "fast") == [0.0, pytest.approx(1 / 6)]


def official_aggregate_scores(rows, generations):
    """The organisers' per-sample scores, after their CSV round trip (evaluate_generations.py: inference, compute_metrics)."""
    frame = pd.DataFrame({"id": [r["id"] for r in rows], "expected_output": [r["output"] for r in rows],
                          "model_output": generations})
    df = pd.read_csv(io.StringIO(frame.to_csv(index=False)))
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    out = []
    for i, (gen, gt) in enumerate(zip(df["model_output"].tolist(), df["expected_output"].tolist())):
        if df.loc[i, "id"][:-1].endswith("sc"):
            out.append(scorer.score(str(gt), str(gen))["rougeL"].recall)
        else:
            out.append(float(int(str(gt).strip().lower() == str(gen).strip().lower())))
    return out


def test_the_fixed_models_answer_the_knowledge_checks_once(tiny, bundled, monkeypatch):
    """The original and the oracle are never trained: a second run's checks reuse their scores (the same numbers),
    while the unlearned model, new in every run, is always scored."""
    from unlearning.evaluation import knowledge

    forget = bundled.split("forget")[:2]
    other = copy.deepcopy(tiny.model)
    models = {"original": tiny.model, "unlearned": other}
    first = knowledge.knowledge_checks(models, tiny.tokenizer, bundled, forget)
    scored = []
    real = knowledge.token_scores
    monkeypatch.setattr(knowledge, "token_scores", lambda model, *a, **k: scored.append(model) or real(model, *a, **k))
    again = knowledge.knowledge_checks(models, tiny.tokenizer, bundled, forget)
    assert scored == [other] and again == first
    assert first["holdout_level"] and first["paraphrase"][0]["exact_memorization"].keys() == {"original", "unlearned"}


def test_a_batch_of_documents_for_membership_moves_layer_by_layer(tiny):
    seen = []
    ticked = mia_module.document_losses(tiny.model, tiny.tokenizer, PROMPTS, batch_size=len(PROMPTS),
                                        progress=lambda done, total: seen.append((done, total)))
    layers, n = tiny.model.config.num_hidden_layers, len(PROMPTS)
    assert seen == [(n * (i + 1) / layers, n) for i in range(layers)] + [(n, n)]
    plain = mia_module.document_losses(tiny.model, tiny.tokenizer, PROMPTS, batch_size=len(PROMPTS))
    assert ticked.loss == pytest.approx(plain.loss, nan_ok=True)  # "Hi" is one token: no loss to take
