"""A run, or a comparison of runs, as one self-contained HTML page to share: it opens offline, with nothing beside it.

The page holds the verdict, the forget/retain table, the training curves and the trade-off plot (interactive plotly,
plotly.js inlined once), selected generations before and after, the probes and the exact settings of each run. It is
built from the run folders alone (no model is loaded), with the library's own verdict (evaluation.judge), plots
(unlearning.plots) and summaries (unlearning.summary). `python -m unlearning report` and the Runs tab write it.
"""
from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from unlearning import plots
from unlearning.atomic import write_atomic
from unlearning.engine import trains
from unlearning.evaluation import METRICS, EvalReport, judge
from unlearning.evaluation.metrics import better_words
from unlearning.evaluation.verdict import ASPECTS, group_label
from unlearning.methods import METHODS
from unlearning.probes import PROBES
from unlearning.runs import RunStore
from unlearning.summary import oracles, originals, read_report, run_summary

SHOWN = 5  # generations per split and run: the first forget samples, and the retain samples whose score fell most
HEADLINES = ("final", "task_aggregate", "mia_auc", "utility")  # model-level scores in the table, after the groups

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 24px auto; padding: 0 16px; color: #1e293b; }
h1 { margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 2px solid #e2e8f0; padding-bottom: 4px; }
.muted { color: #64748b; font-size: 0.92em; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0 16px; }
th { text-align: left; background: #f1f5f9; padding: 6px 8px; border-bottom: 2px solid #cbd5e1; }
td { padding: 6px 8px; border-bottom: 1px solid #e2e8f0; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.finding { padding: 3px 0 3px 10px; border-left: 5px solid #94a3b8; margin: 4px 0; }
.finding.good { border-left-color: #16a34a; } .finding.warn { border-left-color: #f59e0b; }
.finding.bad { border-left-color: #dc2626; } .finding.unknown { border-left-color: #cbd5e1; }
.finding.hidden { border-left-color: #7c3aed; }
.broken { border: 2px solid #dc2626; background: #fef2f2; color: #7f1d1d; border-radius: 8px; padding: 8px 14px; }
.gibberish { background: #fee2e2; color: #991b1b; border-radius: 4px; padding: 0 5px; font-size: 0.85em; }
pre { background: #f8fafc; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px; overflow-x: auto; }
"""


def _figure(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _verdict(before: EvalReport | None, after: EvalReport | None, status: dict, probes: dict) -> str:
    if after is None:
        return (f'<p class="verdict">No verdict: the run has no after-evaluation (it is {html.escape(status["status"])}'
                f'{": " + html.escape(status["message"]) if status.get("message") else ""}).</p>')
    verdict = judge(before, after, probes)
    lines = "".join(f'<div class="finding {f.status}" data-aspect="{f.aspect}"><b>{ASPECTS[f.aspect]}</b>: '
                    f"{html.escape(f.text)}</div>" for f in verdict.findings)
    broken = ('<div class="broken"><b>Broken</b>: ' + html.escape(" ".join(verdict.what_broke())) + "</div>"
              if verdict.broken else "")
    return f'<div class="verdict">{broken}{lines}</div>'


def _scores(before: EvalReport | None, after: EvalReport | None) -> str:
    """The official score per forget and retain group, then the model-level scores, before and after."""
    reports = [r for r in (before, after) if r is not None]
    if not reports:
        return '<p class="muted">No evaluation.</p>'
    official = METRICS["official"]
    rows = []
    for split in ("forget", "retain"):
        groups = sorted({g for r in reports for g in r.groups("official", split)})
        rows.append((f"{official.title} · {split} ({better_words(official.better_on(split))})",
                     *(r.split("official", split) if r else None for r in (before, after))))
        rows += [(f"&nbsp;&nbsp;{html.escape(group_label(g))}", *(r.groups("official").get(g) if r else None
                                                                    for r in (before, after))) for g in groups]
    rows += [(html.escape(METRICS[name].title), *(r.value(name) if r else None for r in (before, after)))
             for name in HEADLINES if any(name in r.metrics for r in reports)]
    body = "".join(f'<tr><td>{label}</td><td class="num">{_num(b)}</td><td class="num">{_num(a)}</td></tr>'
                   for label, b, a in rows)
    return f'<table class="scores"><thead><tr><th>score</th><th>before</th><th>after</th></tr></thead><tbody>{body}</tbody></table>'


def _generations(before: EvalReport | None, after: EvalReport | None) -> str:
    if before is None or after is None:
        return ""
    after_rows = {row["id"]: row for row in after.rows}
    pairs = {split: [(b, after_rows[b["id"]]) for b in before.rows if b["split"] == split and b["id"] in after_rows]
             for split in ("forget", "retain")}
    chosen = pairs["forget"][:SHOWN] + sorted(pairs["retain"], key=lambda p: p[1]["official"] - p[0]["official"])[:SHOWN]
    rows = []
    for b, a in chosen:
        flag = ' <span class="gibberish">gibberish</span>' if a.get("gibberish") else ""
        rows.append(f'<tr><td><code>{html.escape(b["id"])}</code><br><span class="muted">{b["split"]}</span></td>'
                    f'<td>{html.escape(b["input"])}</td><td>{html.escape(b["output"])}</td>'
                    f'<td>{html.escape(b["generation"])}</td><td>{html.escape(a["generation"])}{flag}</td>'
                    f'<td class="num">{_num(b["official"])} → {_num(a["official"])}</td></tr>')
    return ("<h3>Generations before and after</h3>"
            f'<p class="muted">The first {SHOWN} forget samples, and the {SHOWN} retain samples whose official score '
            "fell most.</p><table><thead><tr><th>sample</th><th>prompt</th><th>expected</th><th>before</th>"
            f"<th>after</th><th>score</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _probes(probes: dict[str, dict]) -> str:
    if not probes:
        return '<p class="muted">Not probed.</p>'
    lines = []
    for name, entry in probes.items():
        headline = entry.get("result", {}).get("headline", {})
        title = PROBES[name].title if name in PROBES else name
        lines.append(f'<div class="finding {headline.get("status", "unknown")}" data-probe="{html.escape(name)}">'
                     f'<b>{html.escape(title)}</b>: {html.escape(headline.get("text", ""))}</div>')
    return "".join(lines)


def _run(store: RunStore, run_id: str) -> str:
    run = store.read(run_id)
    before, after = read_report(run.before), read_report(run.after)
    title = f"Run {run_id}" + (f" · {run.config.name}" if run.config and run.config.name else "")
    if run.config is None:
        about = f"Damaged: {html.escape(run.status.get('message', ''))}. What could be read is shown."
        settings = ""
    else:
        t = run.config.train
        method = METHODS[t.method].title if t.method in METHODS else t.method
        about = (f"{html.escape(method)}, {t.steps} steps at lr {t.learning_rate:g}, batch {t.batch_size}, training "
                 f"{html.escape(trains(t))}; {len(run.config.forget_ids)} forget samples of "
                 f"<code>{html.escape(run.config.data)}</code>, model <code>{html.escape(run.config.model)}</code>; "
                 f"evaluation: {html.escape((after or before).mode if (after or before) else run.config.eval.mode)} "
                 f"mode; status: {html.escape(run.status['status'])}")
        settings = ("<h3>Exact settings (config.json)</h3>"
                    f"<pre>{html.escape(json.dumps(run.config.to_dict(), indent=2))}</pre>")
    total = run.config.train.steps if run.config else None
    curves = _figure(plots.loss_curves(run.steps, total, "Training curves"))
    if any(s.get("scores") for s in run.steps):
        curves += _figure(plots.score_curves(run.steps, total))
    probes = store.probes(run_id)
    return (f'<section class="run" id="run-{html.escape(run_id)}"><h2>{html.escape(title)}</h2><p>{about}</p>'
            f"<h3>Verdict</h3>{_verdict(before, after, run.status, probes)}<h3>Forget and retain</h3>"
            f"{_scores(before, after)}<h3>Curves</h3>{curves}{_generations(before, after)}<h3>Probes</h3>{_probes(probes)}"
            f"{settings}</section>")


def build(store: RunStore, run_ids: list[str]) -> str:
    """The page for these runs of `store`; ValueError names a run that does not exist."""
    if not run_ids:
        raise ValueError("name at least one run")
    for run_id in run_ids:
        if not store.path(run_id).is_dir():
            raise ValueError(f"no run {run_id} in {store.root}")
    summaries = [run_summary(store, run_id) for run_id in run_ids]
    tradeoff = plots.tradeoff_scatter(summaries, originals(summaries), oracles=oracles(summaries))
    what = f"run {run_ids[0]}" if len(run_ids) == 1 else f"{len(run_ids)} runs: {', '.join(run_ids)}"
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Unlearning report: {html.escape(what)}'
            f"</title><style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>"
            f"<h1>Unlearning report</h1><p class=\"muted\">{html.escape(what)} · made {made} by Unlearning Studio from "
            f"the saved run folders.</p><h2>Forget / retain trade-off</h2>{_figure(tradeoff)}"
            f"{''.join(_run(store, run_id) for run_id in run_ids)}</body></html>")


def write_report(store: RunStore, run_ids: list[str], out: str | Path) -> Path:
    """Write the page for these runs to `out` (whole or not at all) and return its path."""
    out = Path(out)
    write_atomic(out, build(store, run_ids))
    return out
