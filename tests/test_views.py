"""What the tabs show, from saved runs: run tables, metric tables and cards, the verdict, comparisons, probes."""
import json

import gradio as gr

from app.state import Studio
from app.views import (compare_html, metric_rows, metrics_table_html, probe_cards_html, robust_marks, runs_frame,
                       score_cards_html, token_view_html, verdict_html)
from tests.fake_runs import BEFORE, COLLAPSED, GOOD_AFTER, ORACLE, RELEARN, fake_run, report, session_states
from unlearning.evaluation.report import sample_summary
from unlearning.run_config import RunConfig
from unlearning.runs import RunStore
from unlearning.summary import oracles, originals, read_report, run_summary


def test_runs_table_rows_from_a_store_with_two_runs(store):
    summaries = [run_summary(store, r) for r in store.ids()]
    frame = runs_frame(summaries)
    assert len(frame) == 2
    rows = {row["name"]: row for row in frame.to_dict("records")}
    assert rows["good"]["method"] == "npo" and rows["good"]["steps"] == 12 and rows["good"]["lr"] == "0.001"
    assert rows["good"]["status"] == "completed" and rows["good"]["mode"] == "fast"
    assert rows["good"]["forget ↓"] == "0.000" and rows["good"]["retain ↑ (lowest group)"] == "1.000"
    assert rows["good"]["verdict"] == "? forgot  ✓ output  ✓ kept  ✓ fluent  ✓ utility  ✓ privacy  ? robust"
    assert rows["broken"]["status"] == "completed ⚠ broken"  # flagged in the list, not only in Metrics
    assert "✗ kept  ✗ fluent  ✗ utility" in rows["broken"]["verdict"]
    assert originals(summaries) == [{"label": "original tiny", "forget": 1.0, "retain": 1.0, "retain_worst": 1.0}]


def test_metric_rows_follow_the_registry_directions():
    rows = {r["key"]: r for r in metric_rows(read_report(BEFORE), read_report(GOOD_AFTER))}
    assert rows["official:forget"]["moved"] == "good" and rows["official:forget"]["change"] == -1.0
    assert rows["official:forget"]["direction"] == "lower" and rows["official:retain"]["direction"] == "higher"
    assert rows["official:retain"]["moved"] == "same"
    assert rows["answer_nll:forget"]["direction"] == "higher"  # forgetting raises the NLL
    assert rows["mia_auc"]["moved"] == "good"  # 0.8 -> 0.5
    assert rows["official:Task2/qa/forget"]["sub"] and rows["utility:capitals"]["sub"]
    assert "exact_memorization:forget" not in rows  # not measured in these reports: absent, not zero
    html = metrics_table_html(list(rows.values()))
    assert 'data-metric="final"' in html and 'class="num good" data-metric="official:forget">0.000<' in html


def test_the_metrics_tab_draws_utility_against_the_runs_own_chance_level(tmp_path):
    """The guessing line is the evaluation's own (its items' 1/choices), not a fixed 0.25."""
    from app.tabs.metrics import MetricsTab

    after = json.loads(json.dumps(GOOD_AFTER))
    after["metrics"]["utility"]["chance"] = 0.2
    studio = Studio(runs=tmp_path / "runs", model="tiny", preload=False)
    run_id = fake_run(studio.store, "own chance", "npo", after)
    with gr.Blocks():
        tab = MetricsTab(studio, session_states())
    utility = tab.draw(run_id)[6]
    assert [shape.y0 for shape in utility.layout.shapes] == [0.2]


def test_a_broken_run_is_loud_and_a_good_run_is_quiet():
    good = verdict_html(read_report(BEFORE), read_report(GOOD_AFTER))
    assert "broke something" not in good and good.count('class="us-finding good"') == 5
    assert "fast mode" in good.lower()  # the mode that produced the numbers is always said
    box = verdict_html(read_report(BEFORE), read_report(COLLAPSED))
    assert "broke something" in box and 'data-aspect="kept"' in box and "Retain damaged" in box


def test_a_broken_model_never_gets_a_green_final_score():
    before, broken = read_report(BEFORE), read_report(COLLAPSED)
    rows = {r["key"]: r for r in metric_rows(before, broken)}
    assert broken.value("final") > before.value("final")  # the mean went up...
    assert rows["final"]["moved"] == "bad" and "broken" in rows["final"]["label"]  # ...and is still shown red
    assert 'us-card bad"><div class="us-card-label">SemEval final score ⚠ broken model' in score_cards_html(before, broken)


def test_a_model_that_never_knew_the_data_is_not_called_broken():
    blank = read_report(report({("f1", "forget"): 0.0, ("r1", "retain"): 0.0}, generation="", utility=0.25))
    box = verdict_html(blank, blank)
    assert "nothing to forget" in box and "broke something" not in box
    assert "⚠" not in score_cards_html(blank, blank)


def test_compare_html_pairs_samples_and_escapes_text():
    after = json.loads(json.dumps(COLLAPSED))
    after["rows"][0]["generation"] = "<img src=x onerror=alert(1)> gone"
    html = compare_html(read_report(BEFORE), read_report(after), "forget")
    assert html.count("<tr>") == 3  # header + two forget samples
    assert "<img" not in html and "&lt;img" in html
    assert "1.00 → 0.00" in html and "score good" in html and "us-gibberish" in html
    assert "no before/after" in compare_html(read_report(BEFORE), None, "forget")


def test_compare_pages_filters_flagged_answers_and_sorts_by_change():
    """Issue 22.3: every retain sample can be reached, flagged answers found, the largest moves seen first."""
    scores = {(f"r{i:02d}", "retain"): 1.0 for i in range(30)}
    before, after = read_report(report(scores)), read_report(report(scores))
    for i, row in enumerate(after.rows):
        row["official"] = 1.0 - i / 100  # r29 moved most
    after.rows[3].update(generation="", empty=1.0)
    after.rows[7].update(generation="I don't know.", refusal=1.0)
    page1 = compare_html(before, after, "retain", 25)
    page2 = compare_html(before, after, "retain", 25, page=2)
    assert "Showing 1-25 of 30 retain samples (page 1 of 2)" in page1 and "<code>r25</code>" in page2
    assert all(f"<code>r{i:02d}</code>" in page1 + page2 for i in range(30))
    flagged = compare_html(before, after, "retain", 25, show="flagged")
    assert flagged.count("<tr>") == 3 and ">empty</span>" in flagged and ">refusal</span>" in flagged
    changed = compare_html(before, after, "retain", 25, show="changed")
    assert changed.index("<code>r29</code>") < changed.index("<code>r28</code>") < changed.index("<code>r05</code>")
    assert "<code>r00</code>" not in changed  # it moved least: on the second page
    assert "No retain answer is flagged" in compare_html(before, before, "retain", 25, show="flagged")


def test_token_view_colours_each_answer_token_by_its_probability():
    html = token_view_html(read_report(BEFORE), read_report(GOOD_AFTER), "f1")
    assert html.count('class="us-tok"') == 4  # two answer tokens, before and after
    assert 'data-p="1.0000"' in html and 'data-p="0.0100"' in html and "“A” 1.00→0.01" in html
    assert "no per-token" in token_view_html(read_report(BEFORE), read_report(GOOD_AFTER), "missing")


def test_an_old_run_still_opens_in_every_view(tmp_path):
    from tests.test_metrics import OLD_REPORT

    store = RunStore(tmp_path)
    run_id = store.create(RunConfig.from_dict({"model": "tiny", "forget_ids": ["a1sc1"], "eval": {"utility": "probe"}}))
    assert store.config(run_id).eval.utility == "items"  # a config of the first sessions, with the retired probe
    store.write_json(run_id, "before.json", OLD_REPORT)
    store.write_json(run_id, "after.json", OLD_REPORT)
    summary = run_summary(store, run_id)
    assert summary["forget"] == 0.5 and summary["verdict"]["fluent"] == "unknown"
    before, after = read_report(OLD_REPORT), read_report(OLD_REPORT)
    assert "Hardly forgotten" in verdict_html(before, after) and metric_rows(before, after)
    assert "no per-token" in token_view_html(before, after, "a1sc1")


def test_runs_table_says_how_robust_each_probed_run_is(store):
    probed = store.ids()[0]
    store.save_probe(probed, "relearn", RELEARN)
    store.save_probe(probed, "oracle", ORACLE)
    summaries = [run_summary(store, r) for r in store.ids()]
    column = dict(zip(runs_frame(summaries)["run"], runs_frame(summaries)["robust?"]))
    assert column[probed] == "✗ relearn 64%  ✓ oracle p = 0.41"
    assert column[store.ids()[1]] == "–"  # never probed
    assert robust_marks({"variants": {"value": None, "status": "unknown"}}) == "? variants"
    assert oracles(summaries) == [{"forget": 0.05, "retain": 0.9, "retain_worst": 0.85, "label": f"oracle (run {probed})"}]
    (store.path(probed) / "probes.json").write_text("{not json")  # a damaged file shows as not probed, never a crash
    assert run_summary(store, probed)["probes"] == {}


def test_the_oracle_becomes_a_column_of_the_metric_table():
    rows = {r["key"]: r for r in metric_rows(read_report(BEFORE), read_report(COLLAPSED), read_report(GOOD_AFTER))}
    assert rows["official:forget"]["oracle"] == 0.0 and rows["official:retain"]["oracle"] == 1.0
    assert rows["mia_auc"]["oracle"] == 0.5 and rows["utility:capitals"]["oracle"] == 0.6
    html = metrics_table_html(list(rows.values()))
    assert "<th title=" in html and 'data-oracle="official:retain">1.000<' in html
    assert "oracle" not in metrics_table_html(metric_rows(read_report(BEFORE), read_report(COLLAPSED)))


def test_probe_cards_show_one_number_and_the_verdict():
    html = probe_cards_html({"relearn": RELEARN, "oracle": ORACLE})
    assert html.count('class="us-card ') == 2 and 'us-card bad" data-probe="relearn"' in html
    assert ">64%<" in html and ">p = 0.41<" in html and "recovered" in html and "forget quality" in html
    assert "came back: 64% recovered after 10 steps &lt;b&gt;" in html and "12 s" in html
    assert "No probe has run" in probe_cards_html({})


def test_one_story_the_run_tab_names_the_retain_group_the_verdict_names_and_the_kept_step(tmp_path):
    from app.tabs.common import run_header
    from app.views import finish_summary

    before = read_report(report({("f1", "forget"): 1.0, ("r1", "retain"): 1.0}))
    after = read_report(report({("f1", "forget"): 0.0, ("r1", "retain"): 0.5}))
    for row, task in zip(before.rows + after.rows, ["Task2", "Task1"] * 2):  # two retain groups: Task1 falls, Task2 is low
        row["task"] = task
    before.rows[0].update(split="retain", official=0.3)
    after.rows[0].update(split="retain", official=0.3)
    for r in (before, after):
        r.metrics["official"] = sample_summary(r.rows, "official")
    html = finish_summary(before, after)
    # the lowest group after is Task2 questions (0.30, unchanged); the one that fell is Task1 questions, as the verdict says
    assert "the group that fell most (Task1 questions)" in html and "Task1 questions 1.00 → 0.50" in html
    store = RunStore(tmp_path)
    run_id = fake_run(store, "kept", "npo", GOOD_AFTER)
    store.set_status(run_id, "completed", "", kept={"step": 8, "why": "w", "bytes": 1})
    assert "12 steps (the state of step 8 kept)" in run_header(_StoreOnly(store), run_id)


class _StoreOnly:
    """What run_header reads of a studio: its run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store


def test_null_scores_and_probabilities_draw_without_a_crash():
    """A model with non-finite weights stores NaN as null (issue 21.2): the token view and Compare still draw."""
    after = read_report(report({("f1", "forget"): 0.0, ("r1", "retain"): 1.0}))
    for row in after.rows:
        row["official"], row["token_probs"] = None, [None, None]
    assert 'data-p="0.0000"' in token_view_html(read_report(BEFORE), after, "f1")
    assert "1.00 → –" in compare_html(read_report(BEFORE), after, "forget")
