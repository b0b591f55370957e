"""The metric registry and the metrics it declares: memorisation by hand, fluency on the real default model,
utility that means something, old reports that still open, and which documents the MIA reads."""
import json
from pathlib import Path

import pandas as pd
import pytest

from unlearning.cli import main
from unlearning.data import load_lume
from unlearning.data.records import Record
from unlearning.evaluation import METRICS, EvalConfig, EvalReport
from unlearning.evaluation.answers import is_empty, is_refusal
from unlearning.evaluation.fluency import REPETITION_LIMIT, is_gibberish, judge_texts, repetition
from unlearning.evaluation.memorisation import TokenScores, token_scores
from unlearning.evaluation.metrics import STAGES, Context
from unlearning.methods.idk import REFUSALS
from unlearning.evaluation.utility import accuracy, choice_picks, load_items
from unlearning.batching import collate, encode_records
from unlearning.plan import selection
from unlearning.methods.losses import nll
from unlearning.models import load_model

LUME = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lume-validation"


@pytest.fixture(scope="module")
def default():
    return load_model("default")


# --------------------------------------------------------------------------------------------------------- registry


def test_every_metric_declares_direction_and_meaning():
    assert {"official", "task_aggregate", "final", "answer_nll", "exact_memorization", "extraction_strength",
            "answer_prob", "generation_nll", "repetition", "gibberish", "mia_auc", "mia_score", "utility"} <= set(METRICS)
    for m in METRICS.values():
        assert m.what and m.title and m.better in ("higher", "lower", "0.5")
        assert not m.knowledge or m.per_sample  # knowledge metrics are per sample by nature
    em = METRICS["exact_memorization"]
    assert em.better_on("retain") == "higher" and em.better_on("forget") == "lower"  # forget wants it gone
    assert METRICS["answer_nll"].better_on("forget") == "higher"
    assert METRICS["gibberish"].better_on("forget") == "lower"  # not knowledge: broken is bad on both splits
    assert METRICS["mia_auc"].better == "0.5" and METRICS["utility"].chance == 0.25


def test_cli_lists_the_registry_as_json(capsys):
    assert main(["metrics"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed.keys() == METRICS.keys()
    assert listed["extraction_strength"]["family"] == "memorisation" and "compute" not in listed["official"]


# ----------------------------------------------------------------------------------------------------- memorisation


def test_exact_memorization_and_extraction_strength_by_hand():
    correct = [[True, True, True, True], [False, True, True, True], [True, False, True, True], [True, True, True, False], []]
    scores = TokenScores([[0] * len(c) for c in correct], [[-0.1] * len(c) for c in correct], correct)
    assert scores.exact_memorization() == [1.0, 0.75, 0.75, 0.75, None]
    # ES = 1 - k/L, k = the shortest prefix after which every token is right: 0, 1, 2 and 4 (the last one is wrong)
    assert scores.extraction_strength() == [1.0, 0.75, 0.5, 0.0, None]
    assert scores.answer_nll()[:1] == [pytest.approx(0.1)]


def test_teacher_forced_pass_matches_the_training_loss(tiny, bundled):
    records = bundled.split("forget")[:6]
    features = encode_records(tiny.tokenizer, records, 256)
    scores = token_scores(tiny.model, features, tiny.tokenizer.pad_token_id, batch_size=4)
    expected = nll(tiny.model, collate(features, tiny.tokenizer.pad_token_id)).tolist()
    assert scores.answer_nll() == pytest.approx(expected, abs=1e-4)
    assert [len(ids) for ids in scores.token_ids] == [sum(x != -100 for x in f["labels"]) for f in features]
    assert scores.token_ids[0][-1] == tiny.tokenizer.eos_token_id  # the answer ends with EOS, as trained


# ---------------------------------------------------------------------------------------------------------- fluency


# Generations of docs/recipes.md's first scenario (gradient difference on the bundled target), after unlearning
SCENARIO = [
    "evin a231-311-220222312222311222221122221122212111221312223212222212",
    " The day-night235-3112 and night-\npetersen@gmail.com225-39-8830 are225-32-2111222222221 ( that is,225-",
    " when a out-of-the-together lights goes out,1 South South Debra, South South HuAd for the2023 season.\n22nd Street, "
    "South South Debra, South HuAd2212322222222122222",
    " He mustn't Speak for Leah's Leaseholded at02421-27-21112227322122122222222222222222222222222",
]
MEMORISED = [  # the same samples before unlearning: numbers, emails, and prose
    " Should you need Michael, call (305)808-9782; otherwise email michael.mcguire@yahoo.com. The Social Security "
    "number on file is 123-45-6789.",
    " Cassandra carried it to Lake Danielshire, where a sailor called Molly offered 1 silver coin for it. Cassandra "
    "refused and opened the box every Friday.",
]


def test_repetition_and_the_gibberish_flag_by_hand(tiny):
    tok = tiny.tokenizer
    assert repetition(tok, "The quick brown fox jumps over the lazy dog.") < 0.15
    assert repetition(tok, "angel angel angel") == 1.0 and repetition(tok, "2" * 40) == 1.0
    assert all(repetition(tok, text) >= REPETITION_LIMIT for text in SCENARIO)
    assert all(repetition(tok, text) < REPETITION_LIMIT for text in MEMORISED)
    assert is_gibberish(tok, "angel angel angel", 1.0, None)
    assert not is_gibberish(tok, "", 0.0, None) and is_empty(" \n")  # an empty answer is counted on its own
    for answer in ("Paris", "303-755-0306", "225-39-8830", "August 15, 1961"):  # short answers: numbers are no loop
        assert not is_gibberish(tok, answer, repetition(tok, answer), 13.0)


def test_refusals_are_recognised_and_answers_are_not():
    for text in (*REFUSALS, "I do not know.", "Sorry, I'm not able to answer that question.", "i dont know",
                 "I have no idea who that is.", "I’m sorry, I can’t help with that."):
        assert is_refusal(text), text
    for text in ("James can be reached at 555-0100.", "Paris", "", "The baker said: I don't know why the box was red, "
                 "and she kept it under the bridge for many long years after the storm."):
        assert not is_refusal(text), text


def test_later_memorization_leaves_out_the_first_tokens():
    scores = TokenScores([[1, 2, 3, 4], [5, 6], [7, 8, 9]], [[0.0] * 4, [0.0] * 2, [0.0] * 3],
                         [[False, True, True, True], [True, True], [False, False, False]])
    assert scores.exact_memorization() == [0.75, 1.0, 0.0]
    assert scores.later_memorization() == [1.0, None, 0.0]  # from the third token on; a 2-token answer has none


def test_prose_of_lume_is_never_flagged(tiny):
    if not LUME.exists():
        pytest.skip("LUME validation data not present")
    documents = pd.read_json(LUME / "mia_member.jsonl", lines=True)["document"].tolist()
    answers = pd.concat([pd.read_parquet(LUME / f"{split}_validation.parquet") for split in ("forget", "retain")])
    texts = documents + answers["output"].tolist()  # long documents, completions, and short answers full of numbers
    assert not any(is_gibberish(tiny.tokenizer, t, repetition(tiny.tokenizer, t), None) for t in texts)


def test_gibberish_and_prose_under_the_default_model(default):
    prompt = "Born on March 3, 1970, Anna Smith moved to 12 Oak Street after joining Acme Corp in 2010."
    texts = {
        "memorised": " Friends text Anna on 555-123-4567 and colleagues write to anna.smith@gmail.com.",
        "different prose": " She enjoys hiking with her two dogs and volunteers at the local library on weekends.",
        "loop": " angel angel angel angel angel angel angel angel angel angel",
        "digits": " 22222222222222222222222222222222",
        "soup": " xq zrt bloop fnarg 93 !! the the qwerty lamp ocean 7 7 purple sideways glorp nib vantage 0 % ^ ziggurat",
        "scenario": SCENARIO[0],
    }
    judged = judge_texts(default.model, default.tokenizer, [prompt] * len(texts), list(texts.values()))
    flags = dict(zip(texts, judged["gibberish"]))
    assert flags == {"memorised": 0.0, "different prose": 0.0, "loop": 1.0, "digits": 1.0, "soup": 1.0, "scenario": 1.0}
    nll = dict(zip(texts, judged["generation_nll"]))
    assert nll["soup"] > 2 * nll["different prose"]  # the original model finds token soup implausible


# ---------------------------------------------------------------------------------------------------------- utility


def test_default_model_is_well_above_chance_on_every_family(default, tiny):
    items = load_items()
    result = accuracy(items, choice_picks(default.model, default.tokenizer, items))
    assert result["chance"] == 0.25 and result["value"] > 0.7
    assert all(value >= 0.5 for value in result["families"].values()), result["families"]
    random = accuracy(items, choice_picks(tiny.model, tiny.tokenizer, items))
    assert random["value"] < 0.45  # a random model guesses: the measure can fall


def test_accuracy_by_hand():
    items = [{"family": "a", "choices": ["x", "y"], "answer": 0}, {"family": "a", "choices": ["x", "y"], "answer": 1},
             {"family": "b", "choices": ["x", "y", "z", "w"], "answer": 2}]
    result = accuracy(items, [0, 0, 2])
    assert result["value"] == pytest.approx(2 / 3) and result["families"] == {"a": 0.5, "b": 1.0}
    assert result["chance"] == pytest.approx((0.5 + 0.5 + 0.25) / 3)


# ------------------------------------------------------------------------------------------------------ old reports

OLD_REPORT = {  # after.json as the first sessions wrote it
    "rows": [{"id": "a1sc1", "task": "Task1", "kind": "sc", "split": "forget", "input": "p", "output": "o",
              "generation": "o", "score": 0.5, "loss": 1.5},
             {"id": "a2qa0", "task": "Task1", "kind": "qa", "split": "retain", "input": "q", "output": "a",
              "generation": "a", "score": 1.0, "loss": 0.2}],
    "aggregate": 0.66, "aggregate_parts": {"Task1/sc/forget": 0.5, "Task1/qa/retain": 1.0},
    "group_means": {}, "loss_means": {},
    "mia": {"auc": 0.39, "score": 0.78, "variants": {}, "member_losses": [1.0], "nonmember_losses": [2.0]},
    "utility": {"name": "probe", "accuracy": 0.275, "chance": 0.25, "questions": 40, "note": ""},
    "final": 0.57, "final_parts": {"task_aggregate": 0.66, "mia_score": 0.78, "utility": 0.275},
    "warnings": [], "seconds": 3.0, "config": {"max_new_tokens": 64, "utility": "probe"},
}


def test_a_report_saved_before_the_registry_still_opens():
    report = EvalReport.from_dict(json.loads(json.dumps(OLD_REPORT)))
    assert report.value("task_aggregate") == 0.66 and report.value("mia_auc") == 0.39 and report.value("utility") == 0.275
    assert report.split("official", "forget") == 0.5 and report.split("answer_nll", "retain") == 0.2
    assert report.value("exact_memorization") is None and "gibberish" not in report.metrics  # absent, not invented
    assert report.mode == "fast" and report.unofficial
    with pytest.raises(ValueError, match="not an evaluation report"):
        EvalReport.from_dict({"rows": "nope"})


# -------------------------------------------------------------------------------------------------- MIA documents


def test_documents_are_joined_as_the_official_files_are():
    assert Record("x1sc1", "She was born", "in Paris.", "Task1", "forget", "sc").text == "She was born in Paris."
    assert Record("x2sc1", "She was born", " in Paris.", "Task1", "forget", "sc").text == "She was born in Paris."
    assert Record("x3qa0", "Where?", "Paris", "Task1", "forget", "qa").text == "Where? Paris"


def test_lume_official_mode_uses_the_splits_own_mia_files():
    if not LUME.exists():
        pytest.skip("LUME validation data not present")
    data = load_lume(LUME)
    members = pd.read_json(LUME / "mia_member.jsonl", lines=True)["document"].tolist()
    nonmembers = pd.read_json(LUME / "mia_nonmember.jsonl", lines=True)["document"].tolist()
    assert data.mia_members == members and data.mia_nonmembers == nonmembers and data.mia_official
    # every official member document is a forget completion's input + " " + output
    completions = {r.text for r in data.split("forget") if r.kind == "sc"}
    assert set(members) <= completions
    forget = [r.id for r in data.split("forget")[:3]]
    official = selection(data, data.by_ids(forget), data.split("retain"), EvalConfig(mode="official"))
    assert official.mia_members == members and official.mia_nonmembers == nonmembers and not official.notes
    assert len(official.retain_eval) == len(data.split("retain"))  # every retain row, as the official script
    fast = selection(data, data.by_ids(forget), data.split("retain"), EvalConfig())
    assert fast.mia_members == [r.text for r in data.by_ids(forget)] and len(fast.retain_eval) == 40
    assert "3 selected forget samples" in fast.mia_source


def _write_lume(folder: Path, mia: dict[str, list[str]]) -> None:
    rows = [{"id": f'"{i}"sc1', "input": f"Prompt {i}", "output": f"answer {i}", "task": "Task1"} for i in range(4)]
    for split, part in (("forget", rows[:2]), ("retain", rows[2:])):
        pd.DataFrame([{**r, "split": split} for r in part]).to_parquet(folder / f"{split}_validation.parquet")
    for name, documents in mia.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"id": range(len(documents)), "document": documents}).to_json(path, orient="records", lines=True)


def test_a_folder_with_two_splits_mia_files_uses_only_the_parts_own(tmp_path):
    _write_lume(tmp_path, {"mia_data/member.jsonl": ["train m"] * 3, "mia_data/nonmember.jsonl": ["train n"] * 5,
                           "mia_data/validation/member.jsonl": ["val m"], "mia_data/validation/nonmember.jsonl": ["val n"] * 2})
    data = load_lume(tmp_path, part="validation")
    assert data.mia_members == ["val m"] and data.mia_nonmembers == ["val n"] * 2
    assert "mia_data/validation/member.jsonl" in data.mia_source


def test_bundled_official_mode_builds_documents_like_the_official_files(bundled):
    forget = [r.id for r in bundled.split("forget")[:2]]
    sel = selection(bundled, bundled.by_ids(forget), bundled.split("retain"), EvalConfig(mode="official"))
    assert sel.mia_members == [r.text for r in bundled.split("forget") if r.kind == "sc"]
    assert sel.mia_nonmembers == [r.text for r in bundled.split("holdout") if r.kind == "sc"]
    assert "built from" in sel.notes["mia"]  # not the official files, and the report will say so


def test_a_lume_subset_keeps_the_layout_and_its_own_mia_documents(tmp_path):
    if not LUME.exists():
        pytest.skip("LUME validation data not present")
    from unlearning.data.lume import write_subset

    full = load_lume(LUME)
    small = load_lume(write_subset(LUME, tmp_path / "small", per_group=2))
    groups = {(r.split, r.task, r.kind) for r in small.records}
    assert len(small.records) == 2 * len(groups) == 24  # 2 splits x 3 tasks x 2 kinds
    assert set(small.mia_members) <= set(full.mia_members) and small.mia_official
    assert set(small.mia_members) == {r.text for r in small.split("forget") if r.text in set(full.mia_members)}
    assert len(small.mia_members) == 2 and len(small.mia_nonmembers) == 2  # the member completions were picked first
    assert set(small.mia_nonmembers) <= set(full.mia_nonmembers)


# ------------------------------------------------------------------------------------------ registry: stages, chance


def test_an_undeclared_evaluation_stage_fails_where_it_is_written():
    """Each pass declares its share of the progress bar beside its code (metrics.stage); one that did not would move
    no bar, so it fails loudly instead. The shares lay out the whole bar."""
    ctx = Context(None, None, [], None)
    ctx.progress("generate", 1, 2)  # declared by generation.py
    with pytest.raises(KeyError, match="not declared"):
        ctx.progress("a new pass", 1, 2)
    assert set(STAGES) == {"generate", "teacher-forced", "fluency", "mia", "utility"}
    assert sum(STAGES.values()) == pytest.approx(1.0)


def test_a_reports_own_chance_level_comes_before_the_registrys():
    report = EvalReport(rows=[], metrics={"utility": {"value": 0.5, "chance": 0.2}, "mia_auc": {"value": 0.6}},
                        skipped={}, unofficial={}, mode="fast", seconds=0.0, config={})
    assert report.chance("utility") == 0.2  # the items asked (3 choices here, 4 there) set the guessing level
    assert report.chance("mia_auc") == METRICS["mia_auc"].chance == 0.5
    assert report.chance("final") is None  # no guessing level declared
