"""Plot builders: plain data in, a plotly Figure out. No gradio, no files, no models, so each one is testable alone;
the app's tabs and the HTML report (unlearning.html_report) draw with them.

Colours read metric directions from the metric registry (unlearning.evaluation.METRICS): an "after" value is green
when it moved the good way (forget down, retain up, MIA AUC towards 0.5), red when it moved the bad way, grey when it
barely moved. Whether a run as a whole broke something is the library's verdict; plots only draw it.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from unlearning.evaluation import METRICS
from unlearning.evaluation.metrics import better_words, gain
from unlearning.probes.base import CAME_BACK, HELD
from unlearning.probes.base import status as recovery_status

GOOD, BAD, SAME, WARN = "#16a34a", "#dc2626", "#64748b", "#f59e0b"
UNLEARNED, ORACLE = "#6366f1", "#0d9488"
BEFORE = "#94a3b8"
FORGET, RETAIN, TOTAL = "#e11d48", "#2563eb", "#334155"
PALETTE = ("#7c3aed", "#0891b2", "#ea580c", "#65a30d", "#db2777", "#0d9488", "#ca8a04", "#4f46e5", "#b91c1c")
TOLERANCE = 0.005  # moves smaller than this are "about the same": half a percent of a 0..1 score
_NOT_TERMS = {"step", "seconds", "tokens", "grad_norm"}
_TERM_NAMES = {
    "forget_nll": "forget NLL (up = forgetting)",
    "retain_nll": "retain NLL (down = keeping)",
    "loss": "total loss (minimised)",
}


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        height=height,
        margin={"l": 55, "r": 20, "t": 60, "b": 45},
        template="plotly_white",
        # under everything, at the figure's foot: plotly grows the bottom margin to fit it below the axis labels, where
        # a legend above the plot wrapped into the title once it held more than a few entries
        legend={"orientation": "h", "xref": "container", "yref": "container", "yanchor": "bottom", "y": 0,
                "xanchor": "left", "x": 0},
        font={"family": "Inter, system-ui, sans-serif", "size": 12},
    )
    return fig


def empty_figure(message: str, height: int = 320) -> go.Figure:
    """A blank plot that says why it is blank, instead of an empty frame."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 14, "color": SAME})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", height)


# ------------------------------------------------------------------------------------------------------ directions


def group_direction(name: str) -> str | None:
    """Direction of the official score in a "Task1/sc/forget"-style group: lower on forget, higher on retain."""
    split = name.rsplit("/", 1)[-1]
    return METRICS["official"].better_on(split) if split in ("forget", "retain") else None


def moved(direction: str | None, before: float | None, after: float | None, tolerance: float = TOLERANCE) -> str:
    """"good", "bad" or "same" for a move from `before` to `after`; "same" also when either is missing."""
    if direction is None or before is None or after is None:
        return "same"
    better = gain(direction, before, after)
    return "good" if better > tolerance else "bad" if better < -tolerance else "same"


def moved_colour(direction: str | None, before: float | None, after: float | None) -> str:
    return {"good": GOOD, "bad": BAD, "same": SAME}[moved(direction, before, after)]


MOVED_KEY = {GOOD: "after: better", BAD: "after: worse", SAME: "after: about the same"}


def colour_key(fig: go.Figure, labels: Mapping[str, str], used: Sequence[str]) -> None:
    """Legend entries alone, one per colour (`labels`: colour -> meaning) that the bars use: a bar trace whose bars
    differ in colour shows only its first bar's colour in the legend, so its own entry is hidden and these say it."""
    for colour, label in labels.items():
        if colour in used:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=label, hoverinfo="skip",
                                     marker={"symbol": "square", "size": 12, "color": colour}))


# ----------------------------------------------------------------------------------------------------- loss curves


def loss_curves(steps: Sequence[Mapping], total_steps: int | None = None, title: str = "Training curves") -> go.Figure:
    """Top: forget and retain NLL per step (the story); bottom: the method's own terms (what it optimises)."""
    steps = [s for s in steps if "loss" in s]  # the step-0 log holds only the original's scores
    if not steps:
        return empty_figure("Waiting for the first training step...")
    x = [s["step"] for s in steps]
    keys = [k for k in steps[-1] if k not in _NOT_TERMS and isinstance(steps[-1][k], (int, float))]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.6, 0.4],
                        subplot_titles=("Forget vs retain NLL", "Method terms"))
    for key, colour in (("forget_nll", FORGET), ("retain_nll", RETAIN)):
        if key in keys:
            fig.add_trace(go.Scatter(x=x, y=[s.get(key) for s in steps], name=_TERM_NAMES[key], mode="lines+markers",
                                     line={"color": colour, "width": 2.5}, marker={"size": 5}), row=1, col=1)
    others = [k for k in keys if k not in ("forget_nll", "retain_nll")]
    for i, key in enumerate(sorted(others, key=lambda k: (k != "loss", k))):
        colour = TOTAL if key == "loss" else PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=x, y=[s.get(key) for s in steps], name=_TERM_NAMES.get(key, key), mode="lines",
                                 line={"color": colour, "width": 1.8, "dash": "solid" if key == "loss" else "dot"}),
                      row=2, col=1)
    if total_steps:  # a fixed x range: the curve grows across the plot as training goes on
        fig.update_xaxes(range=[0.5, total_steps + 0.5])
    fig.update_xaxes(title_text="step", row=2, col=1)
    return _layout(fig, title, height=480)


# --------------------------------------------------------------------------------------------- before/after bars


def before_after_bars(
    groups: Mapping[str, tuple[float | None, float | None]],
    directions: Mapping[str, str | None] | None = None,
    title: str = "Before and after",
    y_title: str = "score",
    y_range: tuple[float, float] | None = (0, 1.12),
) -> go.Figure:
    """Two bars per group: before in grey, after coloured by whether it moved the group's good way."""
    if not groups:
        return empty_figure("No scores yet")
    names = list(groups)
    directions = directions or {name: group_direction(name) for name in names}
    before = [groups[n][0] for n in names]
    after = [groups[n][1] for n in names]
    labels = [f"{n}<br>({better_words(directions.get(n))})" for n in names]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=before, name="before", marker_color=BEFORE,
                         text=[_fmt(v) for v in before], textposition="outside"))
    colours = [moved_colour(directions.get(n), b, a) for n, b, a in zip(names, before, after)]
    fig.add_trace(go.Bar(x=labels, y=after, name="after", marker_color=colours, showlegend=False,
                         text=[_fmt(v) for v in after], textposition="outside"))
    colour_key(fig, MOVED_KEY, colours)
    fig.update_layout(barmode="group", yaxis_title=y_title)
    if y_range:
        fig.update_yaxes(range=list(y_range))
    return _layout(fig, title)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


# ------------------------------------------------------------------------------------------------------------- MIA


def mia_histograms(before: Mapping | None, after: Mapping | None, bins: int = 24) -> go.Figure:
    """Member (forgotten) vs non-member (never trained) document losses, before and after side by side.

    Unlearning should move the members' losses up until they sit on top of the non-members': then an attacker
    cannot tell them apart (AUC 0.5).
    """
    if not before and not after:
        return empty_figure("MIA was not run for this run")
    titles = [_mia_title("Before", before), _mia_title("After", after)]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=titles, horizontal_spacing=0.06)
    # one set of bins and one x range for all four histograms, so the shift from before to after is visible
    # a loss that was NaN is stored as null: it has no place on the axis
    losses = {(col, k): [v for v in (r or {}).get(k, []) if v is not None]
              for col, r in enumerate((before, after), start=1) for k in ("member_losses", "nonmember_losses")}
    values = [v for side in losses.values() for v in side]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    size = (high - low) / bins or 0.1
    for col, result in enumerate((before, after), start=1):
        if not result:
            continue
        for key, name, colour in (("member_losses", "members (forget set)", FORGET),
                                  ("nonmember_losses", "non-members (never trained on)", SAME)):
            fig.add_trace(go.Histogram(x=losses[col, key], name=name, marker_color=colour, opacity=0.6,
                                       xbins={"start": low, "end": high + size, "size": size},
                                       legendgroup=key, showlegend=col == 1), row=1, col=col)
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(matches="x")
    fig.update_xaxes(title_text="document loss (mean token NLL)")
    fig.update_yaxes(title_text="documents", row=1, col=1)
    return _layout(fig, "Membership inference: loss histograms", height=380)


def _mia_title(label: str, result: Mapping | None) -> str:
    if not result:
        return f"{label}: not measured"
    auc, score = (f"{v:.2f}" if v is not None else "–" for v in (result["auc"], result["score"]))
    return f"{label}: AUC {auc} (score {score})"


# --------------------------------------------------------------------------------------------- utility and final


def utility_bars(before: Mapping[str, float] | None, after: Mapping[str, float] | None, chance: float | None = None,
                 name: str = "utility") -> go.Figure:
    """Accuracy per item family (and overall) before and after, with the guessing line: at chance, knowledge is gone.
    `chance`: the evaluation's own (EvalReport.chance), else the registry's."""
    if not before and not after:
        return empty_figure("Utility was not measured for this run")
    families = list(dict.fromkeys([*(before or {}), *(after or {})]))
    b = [(before or {}).get(f) for f in families]
    a = [(after or {}).get(f) for f in families]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=families, y=b, name="before", marker_color=BEFORE, text=[_fmt(v) for v in b],
                         textposition="outside"))
    colours = [moved_colour(METRICS["utility"].better, x, y) for x, y in zip(b, a)]
    fig.add_trace(go.Bar(x=families, y=a, name="after", text=[_fmt(v) for v in a], textposition="outside",
                         marker_color=colours, showlegend=False))
    colour_key(fig, MOVED_KEY, colours)
    chance = METRICS["utility"].chance if chance is None else chance
    fig.add_hline(y=chance, line_dash="dash", line_color=BAD, annotation_text=f"chance ({chance:.2f})",
                  annotation_position="top left")
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.12], title_text="accuracy")
    return _layout(fig, f"Utility ({name}) per family", height=320)


def final_parts_bars(before: Mapping[str, float] | None, after: Mapping[str, float] | None,
                     broken: bool = False) -> go.Figure:
    """The SemEval final score and its three parts, before and after: the parts say what the mean hides.

    With `broken` (the library's verdict), the final bar is red whatever its value: a broken model's mean is no gain.
    """
    if not before and not after:
        return empty_figure("No scores yet")
    keys = [(k, METRICS[k].short) for k in (*METRICS["final"].parts, "final")
            if (before and k in before) or (after and k in after)]
    b = [before.get(k) if before else None for k, _ in keys]
    a = [after.get(k) if after else None for k, _ in keys]
    labels = [label for _, label in keys]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=b, name="before", marker_color=BEFORE, text=[_fmt(v) for v in b],
                         textposition="outside"))
    colours = [BAD if broken and k == "final" else moved_colour(METRICS[k].better, x, y) for (k, _), x, y in zip(keys, b, a)]
    fig.add_trace(go.Bar(x=labels, y=a, name="after", text=[_fmt(v) for v in a], textposition="outside",
                         marker_color=colours, showlegend=False))
    colour_key(fig, {**MOVED_KEY, BAD: "after: worse, or the model broke"} if broken else MOVED_KEY, colours)
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.12], title_text=f"score ({better_words(METRICS['final'].better)})")
    return _layout(fig, "SemEval final score and its three parts", height=340)


# ---------------------------------------------------------------------------------------------------- trade-off


def pareto_front(points: Sequence[tuple[float, float]], x_better: str = METRICS["official"].better_on("forget"),
                 y_better: str = METRICS["official"].better_on("retain")) -> list[int]:
    """Indices of the points no other point beats on both axes (forget and retain, by default), sorted by x (ties:
    both kept)."""
    sx = [gain(x_better, 0.0, x) for x, _ in points]
    sy = [gain(y_better, 0.0, y) for _, y in points]
    front = [
        i for i in range(len(points))
        if not any(sx[j] >= sx[i] and sy[j] >= sy[i] and (sx[j] > sx[i] or sy[j] > sy[i]) for j in range(len(points)))
    ]
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


RETAIN_AXES = {"retain_worst": "retain, lowest group after (higher = kept)", "retain": "retain, mean after (higher = kept)"}


def _seed_spread(fig: go.Figure, runs: Sequence[Mapping], retain: str) -> None:
    """Mean and standard deviation of runs that share every setting but the seed: how much of a difference is luck."""
    groups: dict[tuple, list[Mapping]] = {}
    for r in runs:
        key = tuple(sorted((k, str(v)) for k, v in r.get("params", {}).items() if k != "seed"))
        groups.setdefault(key, []).append(r)
    spread = [g for k, g in groups.items() if k and len(g) > 1]
    if not spread:
        return
    stats = [(statistics.fmean(xs), statistics.stdev(xs), statistics.fmean(ys), statistics.stdev(ys))
             for g in spread for xs, ys in [([r["forget"] for r in g], [r[retain] for r in g])]]
    fig.add_trace(go.Scatter(
        x=[s[0] for s in stats], y=[s[2] for s in stats], mode="markers", name="mean ± sd over seeds",
        marker={"symbol": "cross-thin", "size": 14, "color": TOTAL, "line": {"width": 2, "color": TOTAL}},
        error_x={"array": [s[1] for s in stats], "color": TOTAL}, error_y={"array": [s[3] for s in stats], "color": TOTAL},
        hoverinfo="skip",
    ))


def _run_points(runs: Sequence[Mapping], retain: str, name: str, head: Callable[[Mapping], str],
                marker: dict) -> go.Scatter:
    """One trace of runs on the trade-off plane; the hover names each run (`head(run)` in bold), its settings and, if
    it is broken, why."""
    return go.Scatter(
        x=[r["forget"] for r in runs], y=[r[retain] for r in runs], mode="markers", name=name, marker=marker,
        customdata=[[r["id"], r.get("label", ""), r.get("steps"), r.get("lr"), r.get("final"), head(r),
                     "<br><b>⚠ broken: " + "; ".join(r.get("what_broke", [])) + "</b>" if r.get("broken") else ""]
                    for r in runs],
        hovertemplate=("<b>%{customdata[5]}</b> %{customdata[1]}<br>run %{customdata[0]}<br>steps %{customdata[2]}, "
                       "lr %{customdata[3]}<br>forget %{x:.2f}, retain %{y:.2f}, final %{customdata[4]}"
                       "%{customdata[6]}<extra></extra>"),
    )


def tradeoff_scatter(runs: Sequence[Mapping], originals: Sequence[Mapping] = (), retain: str = "retain_worst",
                     colour: str = "method", oracles: Sequence[Mapping] = ()) -> go.Figure:
    """Forget score (x, lower = more forgotten) vs retain score (y, higher = kept), one point per run.

    `retain` picks the y axis: the worst retain group (default: one damaged group cannot hide behind the mean) or the
    mean. `colour` groups the points by a setting ("method", or one a sweep varied: "lr", "alpha", ...). `runs`: dicts
    with id, label, method, params, steps, lr, forget, the retain keys, final and broken (the library's verdict); a
    broken run is drawn as a red cross, never a dot that could pass for a good trade-off. Runs that differ only in
    their seed also get their mean with one standard deviation each way. `originals`: the models before unlearning,
    grey diamonds, the point every run starts from. `oracles`: the models trained on the retain set only (the oracle
    probe), teal stars: the point every run aims at.
    """
    runs = [r for r in runs if r.get("forget") is not None and r.get(retain) is not None]
    if not runs and not originals:
        return empty_figure("No finished runs yet: each finished run becomes one point here")
    fig = go.Figure()
    if oracles:
        fig.add_trace(go.Scatter(
            x=[o["forget"] for o in oracles], y=[o.get(retain) for o in oracles], mode="markers",
            name="oracle (never saw the forget set)", marker={"symbol": "star", "size": 16, "color": ORACLE},
            text=[o.get("label", "oracle") for o in oracles], hovertemplate="%{text}<br>forget %{x:.2f}, retain %{y:.2f}<extra></extra>",
        ))
    if originals:
        fig.add_trace(go.Scatter(
            x=[o["forget"] for o in originals], y=[o.get(retain) for o in originals], mode="markers",
            name="original model", marker={"symbol": "diamond", "size": 11, "color": BEFORE},
            text=[o.get("label", "original") for o in originals], hovertemplate="%{text}<br>forget %{x:.2f}, retain %{y:.2f}<extra></extra>",
        ))

    def group(r: Mapping) -> str:  # the legend entry of a sound run
        return r["method"] if colour == "method" else f"{colour}={r.get('params', {}).get(colour)}"

    def head(r: Mapping) -> str:  # what a run's hover starts with
        return r["method"] if colour == "method" else f"{r['method']} · {group(r)}"

    sound = [r for r in runs if not r.get("broken")]
    for i, name in enumerate(sorted({group(r) for r in runs})):  # numbered over every run: a group keeps its colour
        mine = [r for r in sound if group(r) == name]
        if mine:
            fig.add_trace(_run_points(mine, retain, name, head, {
                "size": 12, "symbol": "circle", "color": PALETTE[i % len(PALETTE)], "line": {"width": 1, "color": "white"}}))
    broken = [r for r in runs if r.get("broken")]
    if broken:  # one red cross whatever the method: the legend says what it means, the hover which run it is
        fig.add_trace(_run_points(broken, retain, "broken run", head,
                                  {"size": 15, "symbol": "x", "color": BAD}))
    _seed_spread(fig, runs, retain)
    front = pareto_front([(r["forget"], r[retain]) for r in sound])
    if front:
        fig.add_trace(go.Scatter(
            x=[sound[i]["forget"] for i in front], y=[sound[i][retain] for i in front], mode="lines+markers",
            name="Pareto front", line={"color": TOTAL, "dash": "dash", "width": 1.5},
            marker={"size": 18, "symbol": "circle-open", "color": TOTAL, "line": {"width": 2}}, hoverinfo="skip",
        ))
    fig.add_annotation(x=0.02, y=1.02, xref="x", yref="y", text="ideal: forgotten and kept", showarrow=False,
                       xanchor="left", font={"color": GOOD, "size": 11})
    fig.update_xaxes(range=[-0.06, 1.06], title_text="forget score after (lower = more forgotten)")
    fig.update_yaxes(range=[-0.06, 1.1], title_text=RETAIN_AXES[retain])
    return _layout(fig, "Forget / retain trade-off (one point per run)", height=420)


# ------------------------------------------------------------------------------------------------ in-run scores


def _scored(steps: Sequence[Mapping]) -> list[Mapping]:
    return [s for s in steps if s.get("scores")]


def score_curves(steps: Sequence[Mapping], total_steps: int | None = None, alarm: str = "") -> go.Figure:
    """Forget and retain scores during the run (teacher-forced exact memorization; official scores too when generated),
    the number of forget samples counted as forgotten, the best state kept so far, and where a guard stopped the run."""
    scored = _scored(steps)
    if not scored:
        return empty_figure("No scores yet: the run scores itself every few steps (Method tab: score every N)")
    x = [s["step"] for s in scored]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, name, colour, dash in (("forget_em", "forget (exact memorization)", FORGET, "solid"),
                                    ("retain_em", "retain (exact memorization)", RETAIN, "solid"),
                                    ("forget_official", "forget (official, generated)", FORGET, "dot"),
                                    ("retain_official", "retain (official, generated)", RETAIN, "dot")):
        points = [(xi, s["scores"][key]) for xi, s in zip(x, scored) if s["scores"].get(key) is not None]
        if points:
            fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], name=name, mode="lines+markers",
                                     line={"color": colour, "width": 2.5, "dash": dash}, marker={"size": 6}))
    fig.add_trace(go.Scatter(x=x, y=[s["scores"]["forgotten"] for s in scored], name="forget samples forgotten",
                             mode="lines", line={"color": TOTAL, "width": 1.5, "shape": "hv"}), secondary_y=True)
    best = [s["step"] for s in scored if s["scores"].get("best")]
    if best:
        fig.add_vline(x=best[-1], line_dash="dash", line_color=GOOD, annotation_text=f"best kept: step {best[-1]}",
                      annotation_position="top left")
    if alarm:
        fig.add_vline(x=x[-1], line_color=BAD, line_width=3, annotation_text="⚠ " + alarm[:60],
                      annotation_position="bottom left", annotation_font_color=BAD)
    if total_steps:
        fig.update_xaxes(range=[-0.5, total_steps + 0.5])
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(range=[-0.03, 1.05], title_text="score (0-1)", secondary_y=False)
    fig.update_yaxes(range=[0, scored[-1]["scores"]["forget_total"] + 0.3], title_text="forgotten samples",
                     secondary_y=True, showgrid=False)
    return _layout(fig, "Scores during the run", height=380)


def trajectory(steps: Sequence[Mapping], alarm: str = "") -> go.Figure:
    """The run's path on the forget/retain plane, one point per scored step: it should head for the top-left corner.
    Same orientation as the Runs tab's trade-off plot; the axes here are teacher-forced exact memorization."""
    scored = _scored(steps)
    if not scored:
        return empty_figure("The trajectory appears with the first scores")
    xs = [s["scores"]["forget_em"] for s in scored]
    ys = [s["scores"]["retain_em"] for s in scored]
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="lines+markers", name="run", line={"color": SAME, "width": 1.5},
        marker={"size": 8, "color": [s["step"] for s in scored], "colorscale": "Viridis", "showscale": True,
                "colorbar": {"title": "step", "thickness": 10}},
        text=[f"step {s['step']}, {s['scores']['forgotten']}/{s['scores']['forget_total']} forgotten" for s in scored],
        hovertemplate="%{text}<br>forget %{x:.2f}, retain %{y:.2f}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(x=[xs[0]], y=[ys[0]], mode="markers", name="original", marker={"symbol": "diamond", "size": 13,
                                                                                           "color": BEFORE}))
    best = [(s["scores"]["forget_em"], s["scores"]["retain_em"], s["step"]) for s in scored if s["scores"].get("best")]
    if best:
        fig.add_trace(go.Scatter(x=[best[-1][0]], y=[best[-1][1]], mode="markers", name=f"best kept (step {best[-1][2]})",
                                 marker={"symbol": "star", "size": 18, "color": GOOD, "line": {"width": 1, "color": "white"}}))
    if alarm:
        fig.add_trace(go.Scatter(x=[xs[-1]], y=[ys[-1]], mode="markers", name="stopped by the guard",
                                 marker={"symbol": "x", "size": 16, "color": BAD}))
    fig.add_annotation(x=0.02, y=1.02, xref="x", yref="y", text="ideal: forgotten and kept", showarrow=False,
                       xanchor="left", font={"color": GOOD, "size": 11})
    fig.update_xaxes(range=[-0.05, 1.05], title_text="forget, exact memorization (lower = forgotten)")
    fig.update_yaxes(range=[-0.05, 1.1], title_text="retain, exact memorization (higher = kept)")
    return _layout(fig, "Trajectory: forget vs retain during the run", height=380)


# ----------------------------------------------------------------------------------------------------------- probes

_STATUS_COLOUR = {"good": GOOD, "warn": WARN, "bad": BAD, "unknown": SAME}
_STATUS_KEY = {GOOD: f"held (<{HELD:.0%} back)", WARN: "partly back", BAD: f"came back (≥{CAME_BACK:.0%})",
               SAME: "no recovery to read"}  # a probed bar's colour, in the legend


def probe_bars(bars: Mapping[str, Mapping], title: str = "Forget set: original, unlearned, probed") -> go.Figure:
    """Per metric: the original's score (grey), the unlearned model's (indigo) and each probed setting's, coloured by
    how much of the forgotten came back (green: held, amber: partly, red: came back; grey: no recovery to read).

    Each bar is named on the axis beside its metric (metric, then setting), and the legend lists every colour drawn: a
    probed setting's colour is its recovery, not the setting, so a legend entry per setting could not match its bars.
    `bars`: metric -> {"title", "original", "unlearned", "probed": {label: value}, "recovery": {label: share}}, as a
    probe's result holds it."""
    if not bars:
        return empty_figure("No probe result yet")
    names = list(bars)
    titles = [bars[n].get("title", n) for n in names]
    fig = go.Figure()
    for key, colour in (("original", BEFORE), ("unlearned", UNLEARNED)):
        values = [bars[n].get(key) for n in names]
        fig.add_trace(go.Bar(y=[titles, [key] * len(names)], x=values, name=key, marker_color=colour, orientation="h",
                             text=[_fmt(v) for v in values], textposition="outside"))
    settings = list(dict.fromkeys(label for n in names for label in bars[n].get("probed", {})))
    drawn = []
    for setting in settings:
        values = [bars[n]["probed"].get(setting) for n in names]
        colours = [_STATUS_COLOUR[recovery_status(bars[n].get("recovery", {}).get(setting))] for n in names]
        drawn += colours
        fig.add_trace(go.Bar(
            y=[titles, [setting] * len(names)], x=values, name=setting, showlegend=False, orientation="h",
            text=[_fmt(v) for v in values], textposition="outside", marker_color=colours,
            customdata=[["–" if (r := bars[n].get("recovery", {}).get(setting)) is None else f"{r:.0%}"] for n in names],
            hovertemplate=f"{setting}<br>%{{y}}: %{{x:.3f}}<br>recovered %{{customdata[0]}}<extra></extra>",
        ))
    colour_key(fig, _STATUS_KEY, drawn)
    fig.update_layout(barmode="overlay")  # one bar per (metric, setting) slot: nothing to group or overlap
    fig.update_xaxes(range=[0, 1.15], title_text="mean over the forget samples")
    fig.update_yaxes(autorange="reversed")  # read top to bottom: original, unlearned, then the probed settings
    legend = 2 + len(set(drawn))  # entries; too wide for one row beside the long bar names, so one per line
    return _layout(fig, title, height=140 + 26 * len(names) * (2 + len(settings)) + 20 * legend)


def relearn_curve(curve: Mapping) -> go.Figure:
    """The relearning attack step by step: teacher-forced exact memorization of the held-out half (solid) and of the
    trained half (dotted), for the unlearned model and the control, with the original's level on the held-out half."""
    unlearned, control = curve.get("unlearned") or [], curve.get("control") or []
    if not unlearned:
        return empty_figure("No relearning attack yet")
    fig = go.Figure()
    for points, name, colour in ((unlearned, "unlearned model", FORGET), (control, "control (never saw the data)", SAME)):
        if not points:
            continue
        steps = [p["step"] for p in points]
        fig.add_trace(go.Scatter(x=steps, y=[p["held_out_em"] for p in points], mode="lines+markers",
                                 name=f"{name}: held-out half", line={"color": colour, "width": 2.5}))
        fig.add_trace(go.Scatter(x=steps, y=[p["trained_em"] for p in points], mode="lines",
                                 name=f"{name}: trained half", line={"color": colour, "width": 1.5, "dash": "dot"}))
    original = (curve.get("reference") or {}).get("original")
    if original is not None:
        fig.add_hline(y=original, line_dash="dash", line_color=BEFORE,
                      annotation_text=f"original on the held-out half ({original:.2f})", annotation_position="top left")
    fig.update_xaxes(title_text="attack step")
    fig.update_yaxes(range=[-0.03, 1.05], title_text="exact memorization (teacher forced)")
    return _layout(fig, "Relearning attack: does the held-out half come back?", height=380)
