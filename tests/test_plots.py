"""Plot builders and the word diff on hand-made data: the figures' real contents, not just that they build."""
import pytest

from app.diff import EMPTY, changed_share, word_diff
from unlearning import plots

# ------------------------------------------------------------------------------------------------------ loss curves

STEPS = [
    {"step": 1, "loss": -2.0, "forget_nll": 2.0, "retain_nll": 1.0, "forget_term": -2.0, "grad_norm": 3.0, "seconds": 0.1, "tokens": 40},
    {"step": 2, "loss": -3.0, "forget_nll": 3.5, "retain_nll": 1.1, "forget_term": -3.5, "grad_norm": 2.0, "seconds": 0.1, "tokens": 40},
    {"step": 3, "loss": -5.0, "forget_nll": 6.0, "retain_nll": 1.2, "forget_term": -6.0, "grad_norm": 1.0, "seconds": 0.1, "tokens": 40},
]


def trace(fig, name_start):
    matches = [t for t in fig.data if t.name and t.name.startswith(name_start)]
    assert len(matches) == 1, [t.name for t in fig.data]
    return matches[0]


def test_loss_curves_plot_every_term_but_bookkeeping():
    fig = plots.loss_curves(STEPS, total_steps=8)
    assert len(fig.data) == 4  # forget NLL, retain NLL, total loss, forget_term; not grad_norm/seconds/tokens
    forget, retain = trace(fig, "forget NLL"), trace(fig, "retain NLL")
    assert list(forget.x) == [1, 2, 3] and list(forget.y) == [2.0, 3.5, 6.0]
    assert list(retain.y) == [1.0, 1.1, 1.2]
    assert forget.xaxis == "x" and trace(fig, "forget_term").xaxis == "x2"  # story on top, method terms below
    assert list(trace(fig, "total loss").y) == [-2.0, -3.0, -5.0]
    assert list(fig.layout.xaxis.range) == [0.5, 8.5]  # fixed range: the curve grows across the plot


def test_loss_curves_without_steps_say_so():
    fig = plots.loss_curves([])
    assert len(fig.data) == 0
    assert "first training step" in fig.layout.annotations[0].text


# ---------------------------------------------------------------------------------------------------- directions


@pytest.mark.parametrize("direction, before, after, expected", [
    ("lower", 0.8, 0.2, "good"), ("lower", 0.2, 0.8, "bad"), ("higher", 0.5, 0.9, "good"), ("higher", 0.9, 0.5, "bad"),
    ("higher", 0.5, 0.502, "same"), ("0.5", 0.95, 0.55, "good"), ("0.5", 0.5, 0.1, "bad"), ("0.5", 0.2, 0.8, "same"),
    (None, 0.1, 0.9, "same"), ("lower", None, 0.3, "same"),
])
def test_moved_reads_the_direction(direction, before, after, expected):
    assert plots.moved(direction, before, after) == expected


def test_group_direction_comes_from_the_split():
    assert plots.group_direction("Task1/sc/forget") == "lower"
    assert plots.group_direction("Task2/qa/retain") == "higher"
    assert plots.group_direction("Task2/qa/holdout") is None


def test_before_after_bars_colour_after_by_direction():
    groups = {"Task1/sc/forget": (0.8, 0.2), "Task1/sc/retain": (0.9, 0.5), "Task1/qa/holdout": (0.3, 0.1)}
    fig = plots.before_after_bars(groups)
    before, after, *key = fig.data
    assert [t.name for t in key] == ["after: better", "after: worse", "after: about the same"]
    assert list(before.y) == [0.8, 0.9, 0.3] and list(after.y) == [0.2, 0.5, 0.1]
    assert before.marker.color == plots.BEFORE
    # forget went down (good), retain went down (bad), holdout has no direction (grey)
    assert list(after.marker.color) == [plots.GOOD, plots.BAD, plots.SAME]
    assert "lower is better" in before.x[0] and "higher is better" in before.x[1]


def test_mia_histograms_overlay_members_and_nonmembers_before_and_after():
    before = {"auc": 0.9, "score": 0.2, "member_losses": [1.0, 1.2], "nonmember_losses": [3.0, 3.1, 2.9]}
    after = {"auc": 0.55, "score": 0.9, "member_losses": [2.8, 3.2], "nonmember_losses": [3.0, 3.1, 2.9]}
    fig = plots.mia_histograms(before, after)
    assert len(fig.data) == 4
    assert [t.type for t in fig.data] == ["histogram"] * 4
    assert list(fig.data[0].x) == [1.0, 1.2] and list(fig.data[2].x) == [2.8, 3.2]
    assert [t.xaxis for t in fig.data] == ["x", "x", "x2", "x2"]
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    assert len({(t.xbins.start, t.xbins.size) for t in fig.data}) == 1  # the same bins everywhere: shifts are visible
    assert fig.layout.xaxis2.matches == "x"
    titles = [a.text for a in fig.layout.annotations]
    assert "Before: AUC 0.90 (score 0.20)" in titles and "After: AUC 0.55 (score 0.90)" in titles


def test_final_parts_bars_show_the_three_parts_and_the_mean():
    before = {"task_aggregate": 0.5, "mia_score": 0.2, "utility": 0.6, "final": 0.433}
    after = {"task_aggregate": 0.0, "mia_score": 0.95, "utility": 0.25, "final": 0.4}
    fig = plots.final_parts_bars(before, after)
    assert list(fig.data[0].x) == ["task aggregate", "MIA score", "utility", "final (mean)"]
    assert list(fig.data[1].y) == [0.0, 0.95, 0.25, 0.4]
    assert list(fig.data[1].marker.color) == [plots.BAD, plots.GOOD, plots.BAD, plots.BAD]


# ------------------------------------------------------------------------------------------------------- trade-off

POINTS = [(0.1, 0.5), (0.2, 0.9), (0.3, 0.8), (0.05, 0.2), (0.5, 0.95), (0.2, 0.9)]


def test_pareto_front_matches_the_hand_computed_one():
    # (0.3, 0.8) is beaten by (0.2, 0.9); every other point wins on one axis; the duplicate is kept with its twin
    assert plots.pareto_front(POINTS) == [3, 0, 1, 5, 4]
    assert plots.pareto_front([]) == []
    assert plots.pareto_front([(0.5, 0.5)]) == [0]
    # when both axes are "higher is better", (0.5, 0.95) dominates everything but nothing else
    assert plots.pareto_front(POINTS, x_better="higher") == [4]


def test_tradeoff_scatter_marks_the_front_and_hovers_method_and_steps():
    runs = [{"id": f"r{i}", "label": f"run {i}", "method": "npo" if i % 2 else "grad_diff", "steps": 10 * (i + 1),
             "lr": 1e-5, "forget": x, "retain_worst": y, "final": 0.5} for i, (x, y) in enumerate(POINTS)]
    runs.append({"id": "unfinished", "method": "npo", "steps": 5, "lr": 1e-5, "forget": None, "retain_worst": None})
    fig = plots.tradeoff_scatter(runs, originals=[{"label": "original tiny", "forget": 0.9, "retain_worst": 0.9}])
    names = [t.name for t in fig.data]
    assert names == ["original model", "grad_diff", "npo", "Pareto front"]
    front = trace(fig, "Pareto front")
    assert list(zip(front.x, front.y)) == [POINTS[i] for i in [3, 0, 1, 5, 4]]
    npo = trace(fig, "npo")
    assert len(npo.x) == 3  # the unfinished run has no point
    assert npo.customdata[0][0] == "r1" and npo.customdata[0][2] == 20 and npo.customdata[0][5] == "npo"
    assert "steps %{customdata[2]}" in npo.hovertemplate and "<b>%{customdata[5]}</b>" in npo.hovertemplate
    assert "lowest group" in fig.layout.yaxis.title.text


def test_tradeoff_scatter_reads_the_chosen_retain_axis():
    runs = [{"id": "a", "method": "npo", "forget": 0.2, "retain": 0.8, "retain_worst": 0.3}]
    assert list(trace(plots.tradeoff_scatter(runs), "npo").y) == [0.3]
    assert list(trace(plots.tradeoff_scatter(runs, retain="retain"), "npo").y) == [0.8]


def test_tradeoff_scatter_draws_broken_runs_as_red_crosses_off_the_front():
    runs = [{"id": "a", "method": "npo", "forget": 0.2, "retain_worst": 0.8},
            {"id": "b", "method": "npo", "forget": 0.0, "retain_worst": 0.85, "broken": True,
             "what_broke": ["Retain damaged: Task2 completions 0.94 → 0.31."]}]
    fig = plots.tradeoff_scatter(runs)
    assert [t.name for t in fig.data] == ["npo", "broken run", "Pareto front"]
    npo, broken = trace(fig, "npo"), trace(fig, "broken run")
    assert list(npo.x) == [0.2] and npo.marker.symbol == "circle"
    # the red cross is its own legend entry, not the method's: the hover says which run and method it is, and why
    assert list(broken.x) == [0.0] and broken.marker.symbol == "x" and broken.marker.color == plots.BAD
    assert broken.customdata[0][0] == "b" and broken.customdata[0][5] == "npo"
    assert "Task2 completions" in broken.customdata[0][6]
    assert list(trace(fig, "Pareto front").x) == [0.2]  # b would dominate a, but a broken run is no trade-off


def test_tradeoff_scatter_coloured_by_a_setting_keeps_each_group_its_colour():
    runs = [{"id": "a", "method": "npo", "params": {"lr": 1e-3}, "forget": 0.2, "retain_worst": 0.8, "broken": True},
            {"id": "b", "method": "npo", "params": {"lr": 2e-3}, "forget": 0.3, "retain_worst": 0.7}]
    fig = plots.tradeoff_scatter(runs, colour="lr")
    assert [t.name for t in fig.data] == ["lr=0.002", "broken run", "Pareto front"]
    assert trace(fig, "lr=0.002").marker.color == plots.PALETTE[1]  # second of the two groups, though the first broke
    assert trace(fig, "broken run").customdata[0][5] == "npo · lr=0.001"


def test_final_bar_of_a_broken_model_is_red_even_when_it_rose():
    before, after = {"final": 0.3}, {"final": 0.42}
    assert list(plots.final_parts_bars(before, after).data[1].marker.color) == [plots.GOOD]
    assert list(plots.final_parts_bars(before, after, broken=True).data[1].marker.color) == [plots.BAD]


def test_utility_bars_per_family_with_the_chance_line():
    fig = plots.utility_bars({"capitals": 0.9, "facts": 0.8}, {"capitals": 0.3, "facts": 0.8}, chance=0.25)
    assert list(fig.data[1].x) == ["capitals", "facts"]
    assert list(fig.data[1].marker.color) == [plots.BAD, plots.SAME]
    assert fig.layout.shapes[0].y0 == fig.layout.shapes[0].y1 == 0.25
    assert any("chance" in a.text for a in fig.layout.annotations)


def test_tradeoff_scatter_without_runs_explains_itself():
    fig = plots.tradeoff_scatter([])
    assert len(fig.data) == 0 and "No finished runs" in fig.layout.annotations[0].text


# ------------------------------------------------------------------------------------------------------- word diff


def test_word_diff_marks_removed_and_added_words():
    before, after = word_diff("Alice lives in Paris.", "Alice lives in Rome now.")
    assert before == "Alice lives in <del>Paris.</del>"
    assert after == "Alice lives in <mark>Rome</mark> <mark>now.</mark>"


def test_word_diff_of_identical_text_marks_nothing():
    assert word_diff("same words here", "same words here") == ("same words here", "same words here")


def test_word_diff_escapes_markup_and_keeps_whitespace():
    before, after = word_diff("<b>secret</b>\nline two", "<script>x</script>\nline two")
    assert "<b>" not in before and "&lt;b&gt;secret&lt;/b&gt;" in before
    assert "<script>" not in after and "<mark>&lt;script&gt;x&lt;/script&gt;</mark>" in after
    assert after.endswith("\nline two")


def test_word_diff_of_an_empty_generation():
    before, after = word_diff("phone 555-0100", "")
    assert before == "<del>phone</del> <del>555-0100</del>"
    assert after == EMPTY


def test_changed_share():
    assert changed_share("a b c d", "a b c d") == 0.0
    assert changed_share("a b", "c d") == 1.0
    assert changed_share("", "") == 0.0


# --------------------------------------------------------------------------------------------------- in-run scores

SCORED = [
    {"step": 0, "scores": {"forget_em": 0.9, "retain_em": 0.95, "forgotten": 0, "forget_total": 3}},
    {"step": 1, "loss": -1.0, "forget_nll": 1.0, "retain_nll": 0.5},
    {"step": 2, "loss": -2.0, "forget_nll": 2.0, "retain_nll": 0.6,
     "scores": {"forget_em": 0.4, "retain_em": 0.9, "forgotten": 1, "forget_total": 3, "best": True}},
    {"step": 4, "loss": -4.0, "forget_nll": 5.0, "retain_nll": 0.9,
     "scores": {"forget_em": 0.1, "retain_em": 0.5, "forgotten": 3, "forget_total": 3, "best": False}},
]


def test_score_curves_plot_scored_steps_the_forgotten_count_and_the_best_state():
    fig = plots.score_curves(SCORED, total_steps=4)
    forget, retain = trace(fig, "forget (exact"), trace(fig, "retain (exact")
    assert list(forget.x) == [0, 2, 4] and list(forget.y) == [0.9, 0.4, 0.1] and list(retain.y) == [0.95, 0.9, 0.5]
    assert list(trace(fig, "forget samples forgotten").y) == [0, 1, 3]
    assert any("best kept: step 2" in a.text for a in fig.layout.annotations)
    stopped = plots.score_curves(SCORED, alarm="stopped: retain fell below 70%")
    assert any("stopped: retain fell" in a.text for a in stopped.layout.annotations)
    assert "No scores yet" in plots.score_curves(SCORED[1:2]).layout.annotations[0].text


def test_trajectory_walks_the_plane_and_marks_start_best_and_stop():
    fig = plots.trajectory(SCORED, alarm="stopped")
    path = trace(fig, "run")
    assert list(zip(path.x, path.y)) == [(0.9, 0.95), (0.4, 0.9), (0.1, 0.5)]
    assert list(trace(fig, "original").x) == [0.9] and list(trace(fig, "best kept").x) == [0.4]
    assert list(trace(fig, "stopped by the guard").y) == [0.5]


def test_loss_curves_leave_out_the_step_zero_scores():
    fig = plots.loss_curves(SCORED)
    assert list(trace(fig, "forget NLL").x) == [1, 2, 4]


# ------------------------------------------------------------------------------------------------------------ probes

PROBE_BARS = {"official": {"title": "Official score", "original": 0.9, "unlearned": 0.1,
                           "probed": {"8-bit": 0.12, "4-bit": 0.61}, "recovery": {"8-bit": 0.025, "4-bit": 0.6375}},
              "exact_memorization": {"title": "Exact memorization", "original": 0.95, "unlearned": 0.5,
                                     "probed": {"8-bit": 0.55, "4-bit": 0.7}, "recovery": {"8-bit": None, "4-bit": 0.44}}}


def test_probe_bars_colour_each_probed_setting_by_how_much_came_back():
    fig = plots.probe_bars(PROBE_BARS)
    assert [t.name for t in fig.data] == ["original", "unlearned", "8-bit", "4-bit", "held (<20% back)",
                                          "partly back", "came back (≥50%)", "no recovery to read"]
    # each bar is named on the axis: (metric, setting)
    assert [list(level) for level in fig.data[0].y] == [["Official score", "Exact memorization"], ["original"] * 2]
    assert list(fig.data[3].y[1]) == ["4-bit", "4-bit"] and list(fig.data[1].x) == [0.1, 0.5]
    assert list(fig.data[2].marker.color) == [plots.GOOD, plots.SAME]  # held; no recovery to read
    assert list(fig.data[3].marker.color) == [plots.BAD, plots.WARN]  # came back; partly
    assert [c[0] for c in fig.data[3].customdata] == ["64%", "44%"]
    assert not fig.data[2].showlegend and not fig.data[3].showlegend  # their colours are the recovery, keyed below
    assert "No probe result" in plots.probe_bars({}).layout.annotations[0].text


def legend_colours(fig) -> set[str]:
    return {t.marker.color for t in fig.data if t.showlegend is not False and isinstance(t.marker.color, str)}


def bar_colours(fig) -> set[str]:
    out = set()
    for t in fig.data:
        if t.type == "bar":
            out |= {t.marker.color} if isinstance(t.marker.color, str) else set(t.marker.color)
    return out


@pytest.mark.parametrize("build", [
    lambda: plots.probe_bars(PROBE_BARS),
    lambda: plots.before_after_bars({"Task1/sc/forget": (0.9, 0.2), "Task1/sc/retain": (0.9, 0.5)}),
    lambda: plots.utility_bars({"capitals": 0.9, "facts": 0.8}, {"capitals": 0.3, "facts": 0.8}),
    lambda: plots.final_parts_bars({"utility": 0.6, "final": 0.3}, {"utility": 0.61, "final": 0.42}, broken=True),
], ids=["probe", "before-after", "utility", "final"])
def test_every_bar_colour_is_in_the_legend(build):
    """Issue 22.4: a probed bar's colour (its recovery) was in no legend entry; nor was a red "after" bar."""
    fig = build()
    assert bar_colours(fig) <= legend_colours(fig), (bar_colours(fig), legend_colours(fig))
    assert len([t for t in fig.data if t.showlegend is not False]) == len(legend_colours(fig))  # one entry per colour


def test_final_parts_key_says_red_may_mean_broken():
    fig = plots.final_parts_bars({"final": 0.3}, {"final": 0.42}, broken=True)
    assert [t.name for t in fig.data if t.showlegend is not False] == ["before", "after: worse, or the model broke"]


@pytest.mark.parametrize("fig", [
    plots.probe_bars(PROBE_BARS, "Asked differently: forget set"), plots.tradeoff_scatter(
        [{"id": "a", "method": "npo", "forget": 0.2, "retain_worst": 0.8}]), plots.loss_curves(STEPS),
    plots.before_after_bars({"a/forget": (0.9, 0.2)}), plots.relearn_curve(
        {"unlearned": [{"step": 0, "held_out_em": 0.1, "trained_em": 0.1}]}),
], ids=["probe", "trade-off", "loss", "before-after", "relearn"])
def test_the_legend_sits_at_the_foot_of_the_figure_not_under_the_title(fig):
    """Issue 22.4: a legend above the plot wrapped into the title; at the foot plotly grows the margin to fit it."""
    legend = fig.layout.legend
    assert (legend.yref, legend.y, legend.yanchor, legend.orientation) == ("container", 0, "bottom", "h")


def test_relearn_curve_sets_the_unlearned_model_beside_the_control():
    point = lambda step, held, trained: {"step": step, "held_out_em": held, "trained_em": trained}  # noqa: E731
    curve = {"unlearned": [point(0, 0.1, 0.1), point(2, 0.5, 0.9)], "control": [point(0, 0.2, 0.2), point(2, 0.25, 0.8)],
             "reference": {"original": 0.8, "unlearned": 0.1}}
    fig = plots.relearn_curve(curve)
    assert list(trace(fig, "unlearned model: held-out").y) == [0.1, 0.5]
    assert list(trace(fig, "control (never saw the data): held-out").y) == [0.2, 0.25]
    assert trace(fig, "unlearned model: trained").line.dash == "dot"
    assert fig.layout.shapes[0].y0 == 0.8 and "0.80" in fig.layout.annotations[-1].text
    only = plots.relearn_curve({**curve, "control": []})
    assert [t.name for t in only.data] == ["unlearned model: held-out half", "unlearned model: trained half"]
    assert "No relearning" in plots.relearn_curve({}).layout.annotations[0].text


def test_tradeoff_scatter_stars_the_oracle():
    runs = [{"id": "a", "method": "npo", "forget": 0.2, "retain_worst": 0.8}]
    fig = plots.tradeoff_scatter(runs, oracles=[{"label": "oracle (run a)", "forget": 0.05, "retain_worst": 0.9}])
    oracle = trace(fig, "oracle")
    assert list(oracle.x) == [0.05] and list(oracle.y) == [0.9] and oracle.marker.symbol == "star"
