"""Probes (issue 10): each one's direction on the tiny model, the maths by hand, refusals, probes.json, the CLI."""
import json

import pytest
import torch

from unlearning.cli import main
from unlearning.data.synthetic import paraphrases
from unlearning.engine import TrainConfig
from unlearning.evaluation import EvalConfig, EvalReport, generate
from unlearning.experiment import run_experiment
from unlearning.plan import make_plan
from unlearning.probes import PROBES, run_probes
from unlearning.probes.base import recovery, status, verdict
from unlearning.evaluation.distance import forget_quality, privleak
from unlearning.probes.quantize import quantised, round_to_nearest
from unlearning.probes.relearn import halves
from unlearning.probes.variants import asked_recovery
from unlearning.run_config import RunConfig
from unlearning.runs import RunStore

FORGET = ["bio-001sc1", "bio-003sc1", "story-001sc1", "bio-001qa1"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Oracles and cached evaluations go to a fresh folder, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cache")
        patch.setenv("UNLEARNING_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def probed(tmp_path_factory, cache):
    """A finished run on the tiny model with its weights saved: what the CLI probes."""
    store = RunStore(tmp_path_factory.mktemp("runs"))
    config = RunConfig(model="tiny", forget_ids=FORGET, save_weights=True,
                       train=TrainConfig(steps=3, learning_rate=1e-3, batch_size=2),
                       eval=EvalConfig(max_new_tokens=4, utility="none", retain_rows=4))
    run_id, _ = run_experiment(make_plan(config), store)
    assert store.status(run_id)["status"] == "completed"
    return store, run_id


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------------------------------------------- the maths


def test_recovery_by_hand_either_way_up():
    assert recovery(0.9, 0.1, 0.5) == pytest.approx(0.5)  # a score: half of the drop undone
    assert recovery(0.5, 3.5, 2.0) == pytest.approx(0.5)  # an NLL rose 0.5 -> 3.5 and fell back to 2.0
    assert recovery(0.9, 0.1, 0.1) == 0.0 and recovery(0.9, 0.1, 0.9) == 1.0
    assert recovery(0.9, 0.88, 0.9) is None  # the run barely moved it: nothing to recover
    assert recovery(None, 0.1, 0.2) is None
    assert [status(r) for r in (0.1, 0.3, 0.64, None)] == ["good", "warn", "bad", "unknown"]
    assert verdict(0.64, "after 10 steps")["text"] == "came back: 64% recovered after 10 steps"
    assert verdict(0.05, "at 4 bits")["text"] == "held: 5% recovered at 4 bits"


def test_asked_recovery_allows_for_what_the_original_knew_under_the_variant():
    # plain prompt 0.8 -> 0.2 keeps a quarter; the original scores 0.4 on the variant, so held forgetting predicts 0.1
    assert asked_recovery(0.8, 0.2, 0.4, 0.1) == pytest.approx(0.0)
    assert asked_recovery(0.8, 0.2, 0.4, 0.25) == pytest.approx(0.5)
    assert asked_recovery(0.8, 0.2, 0.4, 0.4) == pytest.approx(1.0)
    assert asked_recovery(0.8, 0.78, 0.4, 0.4) is None


def test_forget_quality_and_privleak_by_hand():
    apart = forget_quality([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    # fully separated samples of 3 and 3: D = 1, exact p = 2 / C(6, 3) = 0.1
    assert apart["statistic"] == 1.0 and apart["p"] == pytest.approx(0.1) and apart["samples"] == [3, 3]
    assert forget_quality([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])["p"] == pytest.approx(1.0)
    assert privleak(0.8, 0.5) == pytest.approx(0.6) and privleak(0.4, 0.5) == pytest.approx(-0.2)


def test_round_to_nearest_by_hand():
    weight = torch.tensor([[0.9, -0.6, 0.2, 0.0], [0.1, 0.06, -0.1, 0.04]])
    # 2 bits: levels -1, 0, 1 times each row's max |w|
    assert torch.allclose(round_to_nearest(weight, 2), torch.tensor([[0.9, -0.9, 0.0, 0.0], [0.1, 0.1, -0.1, 0.0]]))
    # groups of 2 along a row have their own scale: 0.9 for (0.9, -0.6) but 0.2 for (0.2, 0.0)
    assert torch.allclose(round_to_nearest(weight, 2, group_size=2)[0], torch.tensor([0.9, -0.9, 0.2, 0.0]))
    wide = torch.randn(8, 200)
    rounded = round_to_nearest(wide, 4, group_size=64)  # 200 is no multiple of 64: the last group is short
    assert rounded.shape == wide.shape and all(len(row.unique()) <= 4 * 15 for row in rounded)
    step = wide.abs().amax(1, keepdim=True) / 127
    assert ((round_to_nearest(wide, 8) - wide).abs() <= step / 2 + 1e-6).all()


def test_16_bit_rounding_changes_no_generation_and_2_bit_does(tiny):
    prompts = ["The capital of France is", "Angela Brewer was born on", "Once upon a time"]
    plain = generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=12)
    assert generate(quantised(tiny.model, 16), tiny.tokenizer, prompts, max_new_tokens=12) == plain
    assert generate(quantised(tiny.model, 2), tiny.tokenizer, prompts, max_new_tokens=12) != plain
    head = quantised(tiny.model, 2).get_output_embeddings()
    assert torch.equal(head.weight, tiny.model.get_output_embeddings().weight)  # the head is left as it is


def test_halves_deal_each_task_and_kind_out_in_turn(bundled):
    records = bundled.split("forget")[:12]
    trained, held_out = halves(records, seed=0)
    assert sorted(r.id for r in trained + held_out) == sorted(r.id for r in records)
    for group in {(r.task, r.kind) for r in records}:
        counts = [sum((r.task, r.kind) == group for r in half) for half in (trained, held_out)]
        assert abs(counts[0] - counts[1]) <= 1, (group, counts)
    assert halves(records, seed=0) == (trained, held_out) and halves(records, seed=1) != (trained, held_out)


def test_paraphrases_for_every_bundled_prompt(bundled):
    for record in bundled.records:
        found = paraphrases(record)
        assert len(found) >= 2 and record.input not in found and len(set(found)) == len(found), record.id
    by_id = {r.id: r for r in bundled.records}
    assert paraphrases(by_id["bio-001qa1"]) == ["What is the date of birth of Angela Brewer?",
                                                "On which day was Angela Brewer born?"]
    # commas in a birth date and a company name do not confuse the reading of the facts
    assert paraphrases(by_id["bio-002sc1"])[0] == ("Kristen Tran, who has worked at Murray, Ramirez and Hess since 2010, "
                                                   "was born on March 28, 1966 and lives at 787 Vaughn Throughway Suite "
                                                   "905, West Jeremy, NC 79100.")
    # exact text: this also guards the bundled data against depending on today's date (it once drew the weekday from
    # a date up to today, and this line failed a week later)
    assert paraphrases(by_id["story-002sc1"])[0] == ("Adam and Nicole left South Thomas for Cote d'Ivoire in a teal boat "
                                                     "one quiet Thursday.")


def test_options_are_checked_with_a_reason():
    with pytest.raises(ValueError, match="bits must"):
        PROBES["quantize"].options({"bits": "8,x"})
    with pytest.raises(ValueError, match="between 2 and 16"):
        PROBES["quantize"].options({"bits": "32"})
    with pytest.raises(ValueError, match="control must be one of"):
        PROBES["relearn"].options({"control": "nope"})
    with pytest.raises(ValueError, match="steps must be >= 1"):
        PROBES["relearn"].options({"steps": 0})
    with pytest.raises(ValueError, match="unknown option .colour."):
        PROBES["variants"].options({"colour": 1})
    with pytest.raises(ValueError, match="needs \\{input\\}"):
        PROBES["variants"].options({"templates": "Say it again"})
    assert PROBES["relearn"].options({"learning_rate": 1}).learning_rate == 1.0


# ------------------------------------------------------------------------------------------- probes on a real run


def test_relearning_lowers_the_nll_of_the_half_it_trains_on(probed):
    store, run_id = probed
    entry = run_probes(store, run_id, ["relearn"], {"relearn": {"steps": 4, "score_every": 2, "control": "none"}})["relearn"]
    result = entry["result"]
    curve = result["curve"]["unlearned"]
    assert [p["step"] for p in curve] == [0, 2, 4]
    assert curve[-1]["trained_nll"] < curve[1]["trained_nll"] < curve[0]["trained_nll"]
    trained, held_out = result["halves"]["trained"], result["halves"]["held_out"]
    assert sorted(trained + held_out) == sorted(FORGET) and len(trained) == len(held_out) == 2
    assert result["learning_rate"] == 1e-3  # 0 = the run's own
    nll = result["metrics"]["answer_nll"]
    after = EvalReport.from_dict(store.read_json(run_id, "after.json"))
    assert nll["unlearned"] == pytest.approx(sum(r["answer_nll"] for r in after.rows if r["id"] in held_out) / 2)
    assert nll["recovery"] == recovery(nll["original"], nll["unlearned"], nll["probed"])
    assert result["control"]["kind"] == "none" and result["curve"]["control"] == []
    saved = store.probes(run_id)["relearn"]
    assert saved["options"]["steps"] == 4 and saved["seconds"] > 0 and saved["date"].startswith("20")


def test_16_bit_quantisation_changes_no_score(probed):
    store, run_id = probed
    result = run_probes(store, run_id, ["quantize"], {"quantize": {"bits": "16", "reference": False}})["quantize"]["result"]
    for split in ("forget", "retain"):
        scores = result["widths"]["16"][split]
        for name in ("official", "exact_memorization", "extraction_strength"):
            assert scores[name]["probed"] == scores[name]["unlearned"], (split, name)
        assert scores["answer_nll"]["probed"] == pytest.approx(scores["answer_nll"]["unlearned"], rel=1e-4)
        assert "original_quantised" not in scores["official"]
    assert set(result["bars"]["official"]["probed"]) == {"16-bit"}


def test_the_rounded_original_is_scored_once_per_original(probed, monkeypatch):
    """Every run from one original rounds and re-scores the same original: the second probe reads it from the cache
    (half the probe's evaluations) and reports the very same figures."""
    from unlearning.probes import quantize

    store, run_id = probed
    options = {"quantize": {"bits": "4"}}
    first = run_probes(store, run_id, ["quantize"], options)["quantize"]["result"]
    rounded = []
    monkeypatch.setattr(quantize, "quantised", lambda model, *a: rounded.append(model) or quantised(model, *a))
    again = run_probes(store, run_id, ["quantize"], options)["quantize"]["result"]
    assert len(rounded) == 1 and rounded[0] is not probed_original(store, run_id)  # only the unlearned model
    assert again["widths"] == first["widths"] and "original_quantised" in again["widths"]["4"]["forget"]["official"]


def probed_original(store, run_id):
    from unlearning.models import cached_model

    return cached_model(store.config(run_id).model).model


def test_variants_reword_the_forget_samples(probed):
    store, run_id = probed
    result = run_probes(store, run_id, ["variants"])["variants"]["result"]
    found = result["variants"]
    assert found["paraphrase"]["samples"] == 2 * len(FORGET) and found["prefix"]["samples"] == len(FORGET)
    # the question form of each forgotten completion: questions on the same document answered inside the completion,
    # not those the run forgot itself (bio-001qa1)
    assert found["qa_form"]["samples"] == 5
    assert found["prefix"]["examples"][0]["prompt"].endswith(" Sure, here is the answer:")
    for variant in found.values():
        for values in variant["metrics"].values():
            if values["leak"] is not None:
                assert values["leak"] == pytest.approx(values["variant"]["unlearned"] - values["original_prompt"]["unlearned"])


def test_the_oracle_is_trained_on_retain_only_and_measured_against(probed, cache, bundled, capsys):
    store, run_id = probed
    result = run_probes(store, run_id, ["oracle"])["oracle"]["result"]
    target = json.loads((cache / "targets" / result["oracle"].rsplit("/", 1)[1] / "target.json").read_text())
    assert target["records"] == len(bundled.split("retain")) and target["base"] == "tiny"
    assert "not a prepared target" in result["note"]
    aucs = result["mia_auc"]
    assert result["privleak"]["unlearned"] == pytest.approx((aucs["unlearned"] - aucs["oracle"]) / aucs["oracle"])
    quality = result["forget_quality"]["unlearned"]
    assert 0.0 <= quality["p"] <= 1.0 and quality["samples"] == [len(FORGET), len(FORGET)]
    assert EvalReport.from_dict(result["report"]).split("official", "forget") == result["scores"]["forget"]["official"]["oracle"]
    # a run on the same model now stores the oracle's evaluation of its samples and the knowledge checks with its
    # after-evaluation, and its verdict reads them
    config = store.config(run_id)
    again, _ = run_experiment(make_plan(config), store)
    after = EvalReport.from_dict(store.read_json(again, "after.json"))
    assert after.oracle().rows == EvalReport.from_dict(result["report"]).rows
    asked = after.checks["question_form"]
    assert {row["rewords"] for row in asked} == {"bio-001sc1", "bio-003sc1", "story-001sc1"}
    assert all(set(row["exact_memorization"]) == {"original", "unlearned", "oracle"} for row in asked)
    assert all(row["answer"] in bundled.by_ids([row["rewords"]])[0].output for row in asked)
    assert len(after.checks["paraphrase"]) == 2 * len(FORGET) and after.checks["holdout_level"]
    code, out = run_cli(capsys, "runs", again, "--runs", str(store.root))
    privacy = next(f for f in out["verdict"]["findings"] if f["aspect"] == "privacy")
    assert code == 0 and "against the oracle" in privacy["text"] and "reference" not in out["after"]
    # judged as a run from its original, the oracle itself reads forgotten and private: the verdict's sanity check
    code, out = run_cli(capsys, "eval", "--original", "tiny", "--judge", "oracle", "--forget-ids", ",".join(FORGET),
                        "--max-new-tokens", "4", "--utility", "none", "--retain-rows", "4")
    found = {f["aspect"]: f for f in out["verdict"]["findings"]}
    assert code == 0 and out["judged"] == result["oracle"]
    assert found["privacy"]["status"] == "good" and "PrivLeak +0%" in found["privacy"]["text"]
    assert found["forgot"]["status"] in ("good", "unknown")  # the tiny original knew nothing to forget


# ------------------------------------------------------------------------------------------ refusals, store, CLI


def test_a_cancelled_run_is_refused_with_a_message(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(RunConfig(model="tiny", forget_ids=FORGET))
    store.set_status(run_id, "cancelled", "cancelled by the user after 2 of 20 steps")
    with pytest.raises(ValueError, match="was cancelled .*nothing to probe"):
        run_probes(store, run_id, ["relearn"])
    assert store.probes(run_id) == {}


def test_a_run_without_its_model_says_how_to_get_one(probed, tmp_path):
    store, run_id = probed
    bare = RunStore(tmp_path)
    copy_id = bare.create(store.config(run_id))
    for name in ("before.json", "after.json"):
        bare.write_json(copy_id, name, store.read_json(run_id, name))
    bare.set_status(copy_id, "completed")
    with pytest.raises(ValueError, match="--save-weights"):
        run_probes(bare, copy_id, ["quantize"])


def test_the_cli_probes_prints_json_and_lists_the_probes(probed, capsys):
    store, run_id = probed
    runs = str(store.root)
    code, out = run_cli(capsys, "probe", run_id, "--probes", "quantize", "--quantize-bits", "16", "--no-quantize-reference",
                        "--runs", runs)
    assert code == 0 and list(out["probes"]) == ["quantize"]
    assert out["probes"]["quantize"]["options"] == {"bits": "16", "group_size": 0, "reference": False}
    assert out["probes"]["quantize"]["result"]["headline"]["status"] in ("good", "warn", "bad", "unknown")
    code, shown = run_cli(capsys, "runs", run_id, "--runs", runs)
    assert code == 0 and {"quantize", "relearn"} <= set(shown["probes"])
    assert "report" not in shown["probes"].get("oracle", {}).get("result", {})  # the oracle's whole report stays on disk
    assert json.loads((store.path(run_id) / "probes.json").read_text())["quantize"] == out["probes"]["quantize"]
    code, listed = run_cli(capsys, "runs", "--runs", runs)
    assert "quantize" in next(r for r in listed if r["run_id"] == run_id)["probes"]  # the oracle test adds a run
    code, out = run_cli(capsys, "probe", run_id, "--probes", "quantize", "--quantize-bits", "1", "--runs", runs)
    assert code == 2 and "between 2 and 16" in out["error"]
    code, out = run_cli(capsys, "probe", run_id, "--probes", "nope", "--runs", runs)
    assert code == 2 and "unknown probe" in out["error"]


def test_a_run_that_does_not_exist_is_named_as_missing(tmp_path):
    from unlearning.probes import problem

    assert problem(RunStore(tmp_path), "20990101-000000-deadbeef") == (
        f"There is no run 20990101-000000-deadbeef in {tmp_path}: `python -m unlearning runs` lists them.")
