"""Choosing what to forget: the Data tab's filters, ticks and shortcuts, and the rules it shares with the run plan."""
import gradio as gr
import pandas as pd
import pytest

from app import selection as sel
from app.state import Studio
from tests.fake_runs import session_states
from unlearning.plan import make_plan


def test_shortcuts_pick_the_right_ids_on_the_bundled_data(bundled):
    forget = bundled.split("forget")
    assert len(sel.whole_forget_ids(bundled)) == len(forget) == 26
    # one story of each of the two templates is forget (drawn at random): one completion and two questions each
    assert sel.task_forget_ids(bundled, "Task1") == [
        f"story-0{i}{suffix}" for i in ("03", "10") for suffix in ("sc1", "qa0", "qa1")
    ]
    assert len(sel.task_forget_ids(bundled, "Task2")) == 20  # 5 people x 4 records
    assert sel.task_forget_ids(bundled, sel.ALL) == sel.whole_forget_ids(bundled)
    picked = bundled.sample_forget(5, seed=1)
    assert len(set(picked)) == 5 and set(picked) <= {r.id for r in forget}
    assert picked == bundled.sample_forget(5, seed=1)  # seeded: the same draw again
    assert picked == [r.id for r in forget if r.id in picked]  # kept in dataset order
    assert len(bundled.sample_forget(1000)) == 26  # N larger than the split: all of it
    assert bundled.sample_forget(1000, kind="sc") == [r.id for r in forget if r.kind == "sc"]  # the CLI's --forget-kind


def test_filters_and_search(bundled):
    qa_retain = sel.filter_records(bundled.records, kind="qa", split="retain")
    assert qa_retain and all(r.kind == "qa" and r.split == "retain" for r in qa_retain)
    hits = sel.filter_records(bundled.records, query="EMAIL address")  # case-insensitive, every word must match
    assert hits and all("email address" in r.input.lower() for r in hits)
    assert sel.filter_records(bundled.records, task="Task1", query="bio-001") == []
    listed = sel.filter_records(bundled.records)  # the forget split first: what a user came to pick from
    assert [r.split for r in listed] == sorted((r.split for r in bundled.records), key=("forget", "retain", "holdout").index)
    assert [r.id for r in listed[:4]] == ["bio-006sc1", "bio-006qa0", "bio-006qa1", "bio-006qa2"]


def test_ticks_in_the_shown_table_update_only_shown_rows(bundled):
    shown = bundled.split("forget")[:4]
    frame = sel.table(shown, selected=[shown[0].id, "story-010sc1"])
    assert list(frame.columns) == list(sel.COLUMNS) and frame[sel.TICK].tolist() == [True, False, False, False]
    frame.loc[0, sel.TICK] = False  # untick the first, tick the third
    frame.loc[2, sel.TICK] = True
    extra = pd.DataFrame([[True, "typed-in", "", "", "", "", ""]], columns=list(sel.COLUMNS))  # a row the user added
    frame = pd.concat([frame, extra], ignore_index=True)
    known = {r.id for r in bundled.records}
    # a hidden row stays selected, the typed-in one is ignored
    assert sel.apply_ticks([shown[0].id, "story-010sc1"], frame, known) == ["story-010sc1", shown[2].id]


def test_summary_says_which_samples_leave_the_retain_split(bundled):
    forget_id, retain_id = bundled.split("forget")[0].id, bundled.split("retain")[0].id
    assert retain_id not in {r.id for r in bundled.retain_set([forget_id, retain_id])}
    text = sel.summary(bundled, [forget_id, retain_id])
    assert "2 samples selected to forget" in text and "1 of them taken out of the retain split" in text
    # the Data tab counts the retain set by the plan's own rule: the run keeps exactly what the tab says it keeps
    plan = make_plan({"model": "tiny", "data": "bundled", "forget_ids": [forget_id, retain_id]})
    assert plan.selection.retain == bundled.retain_set([forget_id, retain_id])
    assert f"**Retain set** {len(plan.selection.retain)} samples" in text


def test_the_run_tab_says_the_plans_own_words_when_nothing_is_selected(tmp_path):
    """No forget samples is one of the plan's rules: the Run tab shows the plan's problem, not a check of its own."""
    from app.tabs.method import MethodTab
    from app.tabs.run import RunTab
    from unlearning.plan import PlanError

    studio = Studio(runs=tmp_path / "runs", model="tiny", preload=False)
    with gr.Blocks():
        shared = session_states()
        method, run = MethodTab(studio, shared), RunTab(studio, shared)
    values = {c: c.value for c in [*method.inputs, *run.evaluation.values(), run.save, run.name]}
    values |= {shared.selection: [], shared.model_source: "tiny", shared.data_source: "bundled",
               shared.model_job: {"id": None, "mine": False}}
    with pytest.raises(PlanError) as raised:
        run._checked(values, method)
    with pytest.raises(PlanError) as planned:
        make_plan(run._request(values, method))
    assert raised.value.problems == planned.value.problems
    assert any(p.startswith("No forget samples selected") for p in raised.value.problems)
