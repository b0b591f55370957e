"""The verdict: the scenario that fooled a new user (gibberish forget answers, one retain group wrecked behind a fine
mean, utility at chance, MIA AUC far below 0.5) must be called out; a clean run must be called good."""
from unlearning.evaluation import EvalReport, judge
from unlearning.evaluation.report import sample_summary
from unlearning.evaluation.verdict import tradeoff_point

PROSE = "She moved to Denver in 2015 and works as a nurse at the city hospital."


def make_report(samples: list[tuple], utility: float | None = 0.85, families: dict | None = None,
                auc: float | None = 0.5) -> EvalReport:
    """samples: (id, task, kind, split, official score, generation, gibberish flag)."""
    rows = [{"id": i, "task": t, "kind": k, "split": s, "input": "p", "output": "o", "generation": g, "official": x,
             "gibberish": flag} for i, t, k, s, x, g, flag in samples]
    metrics = {name: sample_summary(rows, name) for name in ("official", "gibberish")}
    if utility is not None:
        metrics["utility"] = {"value": utility, "chance": 0.25, "families": families or {"capitals": utility}}
    if auc is not None:
        metrics["mia_auc"] = {"value": auc}
    return EvalReport(rows=rows, metrics=metrics, skipped={}, unofficial={}, mode="fast", seconds=1.0, config={})


def scenario(forget_bios: float, forget_bio_text: str, gibberish: float, task2_sc: float, task2_text: str,
             task2_flag: float, qa: float, utility: float, auc: float, families=None) -> EvalReport:
    """Four forget biographies, two forget stories, and retain completions and questions of two tasks."""
    samples = [(f"bio{i}sc1", "Task2", "sc", "forget", forget_bios, forget_bio_text, gibberish) for i in range(4)]
    samples += [(f"story{i}sc1", "Task1", "sc", "forget", 0.2, PROSE, 0.0) for i in range(2)]
    samples += [(f"rbio{i}sc1", "Task2", "sc", "retain", task2_sc, task2_text, task2_flag) for i in range(4)]
    samples += [(f"rstory{i}sc1", "Task1", "sc", "retain", 1.0, PROSE, 0.0) for i in range(2)]
    samples += [(f"rq{i}qa0", "Task2", "qa", "retain", qa, "Denver", 0.0) for i in range(8)]
    return make_report(samples, utility=utility, auc=auc, families=families)


BEFORE = scenario(0.94, PROSE, 0.0, 0.94, PROSE, 0.0, 0.75, 0.86, 1.0, families={"capitals": 0.96, "opposites": 1.0})


def test_the_scenario_that_looked_ideal_is_called_broken():
    after = scenario(0.0, "angel angel angel angel angel", 1.0, 0.31, "2222222222", 1.0, 1.0, 0.86, 0.08,
                     families={"capitals": 0.96, "opposites": 1.0})
    assert after.split("official", "retain") > 0.75  # the mean alone still looks fine
    verdict = judge(BEFORE, after)
    found = {f.aspect: f for f in verdict.findings}
    assert found["output"].status == "warn" and "gibberish" in found["output"].text  # forgotten = broken output
    assert found["kept"].status == "bad" and "Task2 completions 0.94 → 0.31" in found["kept"].text
    assert "hides it" in found["kept"].text
    assert found["fluent"].status == "bad" and "4 of 6 forget answers turned into gibberish; 4 of 14 retain" in found["fluent"].text
    assert found["privacy"].status == "bad" and "Over-unlearned" in found["privacy"].text
    assert found["utility"].status == "good"
    assert verdict.broken and len(verdict.what_broke()) == 2
    assert tradeoff_point(after)["retain_worst"] == 0.31  # the Pareto plot's default axis sees the damage


def test_a_clean_run_is_called_good():
    after = scenario(0.1, PROSE, 0.0, 0.9, PROSE, 0.0, 0.75, 0.84, 0.55, families={"capitals": 0.95, "opposites": 0.97})
    verdict = judge(BEFORE, after)
    # forget mean (4 x 0.1 + 2 x 0.2) / 6 = 0.13 against (4 x 0.94 + 2 x 0.2) / 6 = 0.69: 81% lower
    assert {f.aspect: f.status for f in verdict.findings} == {
        "forgot": "unknown", "output": "good", "kept": "good", "fluent": "good", "utility": "good", "privacy": "good",
        "robust": "unknown"}  # no teacher-forced scores, no probes: unknown, not good
    assert "0.69 → 0.13 (81% lower) (fixed thresholds" in verdict.findings[1].text and not verdict.broken


def test_forgetting_thresholds_and_the_least_forgotten_group():
    after = scenario(0.0, PROSE, 0.0, 0.94, PROSE, 0.0, 0.75, 0.86, 0.5)
    found = {f.aspect: f for f in judge(BEFORE, after).findings}
    assert found["output"].status == "good" and "Least forgotten: Task1 completions, 0.20 → 0.20" in found["output"].text
    unchanged = judge(BEFORE, BEFORE).findings[1]
    assert unchanged.status == "bad" and "Hardly forgotten" in unchanged.text


def test_utility_collapse_and_under_forgetting():
    after = scenario(0.0, PROSE, 0.0, 0.94, PROSE, 0.0, 0.75, 0.27, 0.9, families={"capitals": 0.25, "opposites": 0.3})
    found = {f.aspect: f for f in judge(BEFORE, after).findings}
    assert found["utility"].status == "bad" and "Worst family: capitals 0.96 → 0.25" in found["utility"].text
    assert found["privacy"].status == "bad" and "Under-forgotten" in found["privacy"].text
    assert judge(BEFORE, after).broken


def test_nothing_to_forget_and_missing_measurements_are_unknown_not_good():
    blank = make_report([("f", "Task1", "sc", "forget", 0.0, PROSE, 0.0), ("r", "Task1", "sc", "retain", 0.0, PROSE, 0.0)],
                        utility=0.25, auc=None)
    found = {f.aspect: f for f in judge(blank, blank).findings}
    assert found["output"].status == "unknown" and "nothing to forget" in found["output"].text
    assert found["utility"].status == "unknown" and "already at chance" in found["utility"].text
    assert found["privacy"].status == "unknown"
    old = make_report([("a", "Task1", "sc", "forget", 0.5, PROSE, None)], auc=None)
    del old.metrics["gibberish"]
    assert {f.aspect: f for f in judge(None, old).findings}["fluent"].status == "unknown"  # saved before fluency existed


# ------------------------------------------------------------------------------- knowledge, against the oracle

IDS = [f"bio-00{i}sc1" for i in range(1, 5)] + ["story-001sc1", "story-003sc1"]
REFUSAL = "I don't know."


def knowing(em: float, official: float, generation: str, later: float | None = None, refusal: float = 0.0,
            auc: float = 0.5, empty: float = 0.0) -> EvalReport:
    """Six forget completions and two retain questions, every forget sample at the same exact memorization."""
    rows = [{"id": i, "task": "Task1" if "story" in i else "Task2", "kind": "sc", "split": "forget", "input": "p",
             "output": "o", "generation": generation, "official": official, "exact_memorization": em,
             "later_memorization": em if later is None else later, "gibberish": 0.0, "refusal": refusal,
             "empty": empty} for i in IDS]
    rows += [{"id": f"r{i}qa0", "task": "Task2", "kind": "qa", "split": "retain", "input": "q", "output": "a",
              "generation": "a", "official": 1.0, "exact_memorization": 1.0, "later_memorization": None,
              "gibberish": 0.0, "refusal": 0.0, "empty": 0.0} for i in range(2)]
    metrics = {name: sample_summary(rows, name) for name in ("official", "exact_memorization", "later_memorization",
                                                              "gibberish", "refusal", "empty")}
    metrics["utility"] = {"value": 0.86, "chance": 0.25, "families": {"capitals": 0.86}}
    metrics["mia_auc"] = {"value": auc}
    return EvalReport(rows=rows, metrics=metrics, skipped={}, unofficial={}, mode="fast", seconds=1.0, config={})


def asked(original: float, unlearned: float, oracle: float | None, n: int = 6) -> list[dict]:
    em = {"original": original, "unlearned": unlearned} | ({"oracle": oracle} if oracle is not None else {})
    return [{"id": f"bio-00{i}qa0", "rewords": f"bio-00{i}sc1", "task": "Task2", "kind": "qa", "prompt": "q",
             "answer": "a", "exact_memorization": em} for i in range(n)]


TARGET = knowing(0.96, 0.92, "James Brown can be reached at ...", auc=1.0)
ORACLE = knowing(0.64, 0.50, "Mary Smith can be reached at ...", auc=0.27)


def with_reference(report: EvalReport, oracle: EvalReport | None, checks: dict) -> EvalReport:
    report.reference, report.checks = (oracle.to_dict() if oracle else None), checks
    return EvalReport.from_dict(report.to_dict())  # as the run store reads it back


def test_refusing_at_token_one_is_hidden_not_forgotten():
    """The IdK preset's run on the bundled target: all refusals, but the answers still predicted past token one and
    answered when asked as a question; the oracle (retain only) answers these prompts and predicts less."""
    after = with_reference(knowing(0.78, 0.0, REFUSAL, later=0.85, refusal=1.0, auc=0.28), ORACLE,
                           {"question_form": asked(0.96, 0.96, 0.30, n=6)[:4] + asked(0.96, 0.2, 0.3, n=2)})
    verdict = judge(TARGET, after)
    found = {f.aspect: f for f in verdict.findings}
    assert found["forgot"].status == "hidden" and verdict.hidden
    assert found["forgot"].text.startswith("Hidden, not forgotten")
    assert "6 of 6 forget samples still predicted above the oracle's level" in found["forgot"].text
    assert "exact memorization 0.78 against the oracle's 0.64; past the first tokens 0.85" in found["forgot"].text
    assert "asked as a question, 4 of 6 answered" in found["forgot"].text
    assert found["output"].status == "warn" and "far below the oracle's 0.50" in found["output"].text
    assert "6 of 6 forget answers are refusals where the oracle answers: the refusal itself reveals" in found["output"].text
    # AUC 0.28 against the oracle's 0.27: PrivLeak +4%, as private as the oracle (0.5 would have called it over-unlearned)
    assert found["privacy"].status == "good" and "PrivLeak +4% against the oracle" in found["privacy"].text
    assert not verdict.broken


def test_the_oracle_judged_as_a_run_from_the_target_is_forgotten_and_private():
    oracle = with_reference(knowing(0.64, 0.50, "Mary Smith can be reached at ...", auc=0.27), ORACLE,
                            {"question_form": asked(0.96, 0.3, 0.3), "paraphrase": asked(0.9, 0.5, 0.5)})
    found = {f.aspect: f for f in judge(TARGET, oracle).findings}
    assert found["forgot"].status == "good" and "0 of 6 forget samples" in found["forgot"].text
    assert "asked as a question, 0 of 6 answered" in found["forgot"].text and "paraphrased, 0 of 6" in found["forgot"].text
    assert found["output"].status == "good" and "at the oracle's level (0.50)" in found["output"].text
    assert found["privacy"].status == "good" and "PrivLeak +0%" in found["privacy"].text


def test_answers_gone_from_the_prompt_but_not_from_the_question_are_hidden():
    """Gradient difference with alpha 1 on the bundled target: every forget completion at the oracle's level, but all
    ten questions on the same people still answered (measured 2026-12-06, docs/forgetting.md)."""
    after = with_reference(knowing(0.40, 0.15, "Lisa can be reached at 67667", auc=0.21), ORACLE,
                           {"question_form": asked(0.96, 0.96, 0.30, n=10), "paraphrase": asked(0.9, 0.3, 0.5, n=11)})
    forgot = judge(TARGET, after).findings[0]
    assert forgot.status == "hidden" and "0 of 6 forget samples still predicted" in forgot.text
    assert "asked as a question, 10 of 10 answered; paraphrased, 0 of 11 answered" in forgot.text


def test_still_predicted_and_still_printed_is_still_known():
    after = with_reference(knowing(0.95, 0.90, "James Brown can be reached at ...", auc=0.95), ORACLE, {})
    found = {f.aspect: f for f in judge(TARGET, after).findings}
    assert found["forgot"].status == "bad" and found["forgot"].text.startswith("Still known")
    assert found["output"].status == "bad" and "above the oracle's 0.50" in found["output"].text
    # (0.95 - 0.27) / 0.27 = +252%
    assert found["privacy"].status == "bad" and "+252%" in found["privacy"].text


def test_without_an_oracle_the_holdout_level_then_fixed_thresholds():
    holdout = with_reference(knowing(0.78, 0.0, REFUSAL, refusal=1.0), None, {"holdout_level": {"Task2/sc": 0.6, "Task1/sc": 0.6}})
    forgot = judge(TARGET, holdout).findings[0]
    assert forgot.status == "hidden" and "above the holdout's level" in forgot.text and "Fixed" not in forgot.text
    fixed = judge(TARGET, knowing(0.30, 0.0, REFUSAL, refusal=1.0)).findings
    # half the original's 0.96 is 0.48: 0.30 is below it, so forgotten, and the text says which thresholds it read
    assert fixed[0].status == "good" and "Fixed thresholds" in fixed[0].text
    assert "6 of 6 forget answers are refusals." in fixed[1].text and "fixed thresholds" in fixed[1].text
    assert "Read against 0.5" in fixed[5].text


def test_every_damaged_retain_group_is_named_and_empty_answers_apart_from_gibberish():
    after = scenario(0.0, "", 0.0, 0.31, PROSE, 0.0, 0.55, 0.86, 0.5)
    for row in after.rows:
        row["empty"] = float(not row["generation"])
    after.metrics["empty"] = sample_summary(after.rows, "empty")
    before = EvalReport.from_dict(BEFORE.to_dict())
    for row in before.rows:
        row["empty"] = 0.0
    found = {f.aspect: f for f in judge(before, after).findings}
    assert "Task2 completions 0.94 → 0.31, Task2 questions 0.75 → 0.55" in found["kept"].text
    assert found["fluent"].status == "bad" and "4 of 6 forget answers empty" in found["fluent"].text
    assert "gibberish" not in found["fluent"].text


def test_relearning_and_quantisation_update_the_robust_finding():
    after = knowing(0.3, 0.0, "x")
    came_back = {"relearn": {"result": {"headline": {"value": 0.62},
                                        "control": {"metrics": {"official": {"gain": 0.11}}}}}}
    found = judge(TARGET, after, came_back).findings[-1]
    # 62% recovered where the control gains 11%: 51 points beyond it, from CAME_BACK (0.5) on: came back
    assert found.status == "bad" and "relearning brought back 62%, where a model that never saw them gains 11%" in found.text
    held = {"relearn": {"result": {"headline": {"value": 0.25}, "control": {"metrics": {"official": {"gain": 0.11}}}}},
            "quantize": {"result": {"headline": {"status": "good", "text": "held: 3% recovered at 4 bits"}}}}
    assert judge(TARGET, after, held).findings[-1].status == "good"
    for garbage in ("garbage", {"value": 10**400}, {"value": float("nan")}):
        assert judge(TARGET, after, {"relearn": {"result": {"headline": garbage}}}).findings[-1].status == "unknown"


def test_the_learn_tab_describes_every_finding_from_the_library():
    from app.tabs.learn import verdict_chapter
    from unlearning.evaluation.verdict import ASPECTS, RULES

    assert RULES.keys() == ASPECTS.keys()
    chapter = verdict_chapter()
    assert all(f"| **{title}** | {RULES[a][0]} |" in chapter for a, title in ASPECTS.items())
    assert {f.aspect for f in judge(TARGET, ORACLE).findings} == set(ASPECTS)


def test_empty_answers_the_oracle_gives_too_are_not_held_against_the_run():
    empty_oracle = knowing(0.64, 0.50, "", auc=0.27, empty=1.0)
    same = with_reference(knowing(0.64, 0.50, "", auc=0.27, empty=1.0), empty_oracle, {})
    assert judge(TARGET, same).findings[1].status == "good"  # what a model that never saw them says
    unlike = with_reference(knowing(0.64, 0.50, "", auc=0.27, empty=1.0), ORACLE, {})
    output = judge(TARGET, unlike).findings[1]
    assert output.status == "warn" and "6 of 6 forget answers are now gibberish or empty" in output.text
