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
    assert found["forgot"].status == "warn" and "gibberish" in found["forgot"].text  # forgotten = broken output
    assert found["kept"].status == "bad" and "Task2 completions 0.94 → 0.31" in found["kept"].text
    assert "hides it" in found["kept"].text
    assert found["fluent"].status == "bad" and "4 of 6 forget answers and 4 of 14 retain answers" in found["fluent"].text
    assert found["privacy"].status == "bad" and "Over-unlearned" in found["privacy"].text
    assert found["utility"].status == "good"
    assert verdict.broken and len(verdict.what_broke()) == 2
    assert tradeoff_point(after)["retain_worst"] == 0.31  # the Pareto plot's default axis sees the damage


def test_a_clean_run_is_called_good():
    after = scenario(0.1, PROSE, 0.0, 0.9, PROSE, 0.0, 0.75, 0.84, 0.55, families={"capitals": 0.95, "opposites": 0.97})
    verdict = judge(BEFORE, after)
    # forget mean (4 x 0.1 + 2 x 0.2) / 6 = 0.13 against (4 x 0.94 + 2 x 0.2) / 6 = 0.69: 81% lower
    assert {f.aspect: f.status for f in verdict.findings} == {
        "forgot": "good", "kept": "good", "fluent": "good", "utility": "good", "privacy": "good"}
    assert "0.69 → 0.13 (81% lower)" in verdict.findings[0].text and not verdict.broken


def test_forgetting_thresholds_and_the_least_forgotten_group():
    after = scenario(0.0, PROSE, 0.0, 0.94, PROSE, 0.0, 0.75, 0.86, 0.5)
    found = {f.aspect: f for f in judge(BEFORE, after).findings}
    assert found["forgot"].status == "good" and "Least forgotten: Task1 completions, 0.20 → 0.20" in found["forgot"].text
    unchanged = judge(BEFORE, BEFORE).findings[0]
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
    assert found["forgot"].status == "unknown" and "nothing to forget" in found["forgot"].text
    assert found["utility"].status == "unknown" and "already at chance" in found["utility"].text
    assert found["privacy"].status == "unknown"
    old = make_report([("a", "Task1", "sc", "forget", 0.5, PROSE, None)], auc=None)
    del old.metrics["gibberish"]
    assert judge(None, old).findings[2].status == "unknown"  # a run saved before fluency existed
