"""What the tabs show, computed from saved runs: table rows, metric tables and comparison HTML. No gradio here.

Reports are the dicts runs store on disk (EvalReport.to_dict()), so an old run from a previous session draws exactly
like a fresh one. All model text is escaped before it becomes HTML.
"""
from __future__ import annotations

import html
import statistics
from collections.abc import Mapping

import pandas as pd

from app.diff import word_diff
from app.plots import group_direction, verdict
from unlearning.evaluate import CHANCE, METRIC_DIRECTION, EvalReport, collapse_warnings
from unlearning.runs import RunStore

RUN_COLUMNS = ["run", "name", "method", "steps", "lr", "status", "forget ↓ after", "retain ↑ after", "final ↑ after"]


def split_mean(report: Mapping | None, split: str) -> float | None:
    """Mean per-sample score (ROUGE-L recall or exact match) over one split's rows."""
    if not report:
        return None
    scores = [row["score"] for row in report["rows"] if row["split"] == split]
    return statistics.fmean(scores) if scores else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------------------------------------------------ runs


def run_summary(store: RunStore, run_id: str) -> dict:
    """One run as the Runs table and the trade-off plot need it; a damaged run keeps what could still be read."""
    run = store.read(run_id)
    config, status, before, after = run.config, run.status, run.before, run.after
    return {
        "id": run_id,
        "name": config.name if config else "",
        "label": (config.name if config else "") or run_id,
        "method": config.train.method if config else "?",
        "steps": config.train.steps if config else len(run.steps),
        "lr": config.train.learning_rate if config else None,
        "status": status["status"],
        "message": status.get("message", ""),
        "model": config.model if config else "?",
        "data": config.data if config else "?",
        "forget_ids": len(config.forget_ids) if config else 0,
        "forget_before": _round(split_mean(before, "forget")),
        "retain_before": _round(split_mean(before, "retain")),
        "forget": _round(split_mean(after, "forget")),
        "retain": _round(split_mean(after, "retain")),
        "final": _round(after["final"]) if after else None,
        "collapsed": is_collapsed(before, after),
    }


def runs_frame(summaries: list[dict]) -> pd.DataFrame:
    rows = [
        [s["id"], s["name"], s["method"], s["steps"], "–" if s["lr"] is None else f"{s['lr']:g}",
         s["message"] if s["status"] == "damaged" else s["status"] + (" ⚠" if s["collapsed"] else ""),
         _num(s["forget"]), _num(s["retain"]), _num(s["final"])]
        for s in summaries
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def originals(summaries: list[dict]) -> list[dict]:
    """The distinct "before" points (one per model and forget set), for the trade-off plot."""
    seen: dict[tuple, dict] = {}
    for s in summaries:
        if s["forget_before"] is not None and s["retain_before"] is not None:
            key = (s["model"], s["forget_before"], s["retain_before"])
            seen.setdefault(key, {"label": f"original {s['model']}", "forget": s["forget_before"],
                                  "retain": s["retain_before"]})
    return list(seen.values())


# --------------------------------------------------------------------------------------------------------- metrics


def _metric(label: str, key: str, direction: str | None, before: float | None, after: float | None) -> dict:
    change = None if before is None or after is None else after - before
    return {"label": label, "key": key, "direction": direction, "before": before, "after": after, "change": change,
            "verdict": verdict(direction, before, after)}


def _get(report: Mapping | None, *path: str) -> float | None:
    value = report
    for part in path:
        if not isinstance(value, Mapping) or value.get(part) is None:
            return None
        value = value[part]
    return value


def metric_rows(before: Mapping | None, after: Mapping | None) -> list[dict]:
    """Every number worth comparing, each with its direction and whether it moved the good way.

    When the model collapsed, the final score's verdict is "bad" whichever way it moved: its rise is an artefact.
    """
    rows = [
        _metric("Forget score (mean)", "forget", "lower", split_mean(before, "forget"), split_mean(after, "forget")),
        _metric("Retain score (mean)", "retain", "higher", split_mean(before, "retain"), split_mean(after, "retain")),
    ]
    groups = sorted(set((before or {}).get("group_means", {})) | set((after or {}).get("group_means", {})))
    for name in groups:
        rows.append(_metric(f"  {name.replace('/', ' · ')}", f"group:{name}", group_direction(name),
                            _get(before, "group_means", name), _get(after, "group_means", name)))
    rows += [
        _metric("Task aggregate (harmonic mean)", "task_aggregate", METRIC_DIRECTION["task_aggregate"],
                _get(before, "aggregate"), _get(after, "aggregate")),
        _metric("MIA AUC", "mia_auc", METRIC_DIRECTION["mia_auc"], _get(before, "mia", "auc"), _get(after, "mia", "auc")),
        _metric("MIA score", "mia_score", METRIC_DIRECTION["mia_score"], _get(before, "mia", "score"),
                _get(after, "mia", "score")),
        _metric("Utility (accuracy)", "utility", METRIC_DIRECTION["utility"], _get(before, "utility", "accuracy"),
                _get(after, "utility", "accuracy")),
        _metric("SemEval final score", "final", METRIC_DIRECTION["final"], _get(before, "final"), _get(after, "final")),
    ]
    if is_collapsed(before, after):
        rows[-1]["verdict"] = "bad"
        rows[-1]["label"] += " ⚠ collapsed model"
    return [r for r in rows if r["before"] is not None or r["after"] is not None]


_BETTER = {"lower": "↓ lower", "higher": "↑ higher", "0.5": "→ 0.5", None: "–"}


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def metrics_table_html(rows: list[dict]) -> str:
    body = []
    for r in rows:
        change = "–" if r["change"] is None else f"{r['change']:+.3f}"
        sub = " sub" if r["label"].startswith("  ") else ""
        body.append(
            f'<tr class="{sub.strip()}"><td>{html.escape(r["label"].strip())}</td><td class="dir">{_BETTER[r["direction"]]}</td>'
            f'<td class="num">{_num(r["before"])}</td>'
            f'<td class="num {r["verdict"]}" data-metric="{html.escape(r["key"])}">{_num(r["after"])}</td>'
            f'<td class="num {r["verdict"]}">{change}</td></tr>'
        )
    return ('<table class="us-table metrics-table"><thead><tr><th>metric</th><th>better</th><th>before</th>'
            f'<th>after</th><th>change</th></tr></thead><tbody>{"".join(body)}</tbody></table>')


def score_cards_html(before: Mapping | None, after: Mapping | None) -> str:
    """The final score and its three parts as four cards, so the mean is never read without its parts."""
    cards = []
    collapsed = is_collapsed(before, after)
    for key, label, value_b, value_a in (
        ("final", "SemEval final", _get(before, "final"), _get(after, "final")),
        ("task_aggregate", "Task aggregate", _get(before, "aggregate"), _get(after, "aggregate")),
        ("mia_score", "MIA score", _get(before, "mia", "score"), _get(after, "mia", "score")),
        ("utility", "Utility", _get(before, "utility", "accuracy"), _get(after, "utility", "accuracy")),
    ):
        state = "bad" if collapsed and key == "final" else verdict(METRIC_DIRECTION[key], value_b, value_a)
        if collapsed and key == "final":
            label += " ⚠ collapsed model"
        cards.append(
            f'<div class="us-card {state}"><div class="us-card-label">{label}</div>'
            f'<div class="us-card-value">{_num(value_a)}</div><div class="us-card-was">before {_num(value_b)}</div></div>'
        )
    note = ('<div class="us-cards-note">final = mean(task aggregate, MIA score, utility): read the parts, '
            "a broken model can still reach a respectable mean.</div>")
    return f'<div class="us-cards">{"".join(cards)}</div>{note}'


NOTHING_KNOWN = 0.05  # a "before" score under this: the original model never reproduced that split


def is_collapsed(before: Mapping | None, after: Mapping | None) -> bool:
    """Collapse warnings fired, and the original did reproduce its retain data (else nothing was there to break)."""
    retain_before = split_mean(before, "retain")
    return bool(alerts(before, after)) and not (retain_before is not None and retain_before < NOTHING_KNOWN)


def alerts(before: Mapping | None, after: Mapping | None) -> list[str]:
    """Collapse warnings for the "after" model, judged against "before" when there is one."""
    if not after:
        return []
    if before:
        found = collapse_warnings(EvalReport.from_dict(dict(after)), EvalReport.from_dict(dict(before)))
    else:
        found = list(after.get("warnings", []))
    retain = split_mean(after, "retain")
    utility = _get(after, "utility", "accuracy")
    if not found and retain is not None and retain < 0.05:
        found.append(f"Retain score is {retain:.3f}: the model no longer reproduces what it should keep.")
    if not found and utility is not None and utility <= CHANCE + 0.05 and (_get(before, "utility", "accuracy") or 1) > CHANCE + 0.05:
        found.append(f"Utility is {utility:.2f}, at chance level ({CHANCE:.2f}).")
    return found




def alerts_html(before: Mapping | None, after: Mapping | None) -> str:
    """A red box when the model collapsed; a plainer note when the original knew nothing of the data to begin with."""
    found = alerts(before, after)
    notes = []
    forget_before, retain_before = split_mean(before, "forget"), split_mean(before, "retain")
    if forget_before is not None and forget_before < NOTHING_KNOWN:
        notes.append(f"The original model did not reproduce the forget samples to begin with (forget score "
                     f"{forget_before:.2f} before): there was nothing to forget. Prepare a target in the Model tab first, "
                     "so the model has memorised the data.")
    if not found:
        return _box("note", "Note", notes) if notes else ""
    final = _get(after, "final")
    tail = (f"The SemEval final score after is {final:.2f}. A collapsed model can still reach about 0.4: the inverted "
            "forget terms and the MIA score reward a model that says nothing useful. Never read it alone."
            if final is not None else "")
    if retain_before is not None and retain_before < NOTHING_KNOWN:
        return _box("note", "Check: the original model did not know this data either", notes + found)
    return _box("alert", "⚠ Collapse detected: this model broke rather than forgot selectively", found, tail)


def _box(kind: str, title: str, items: list[str], tail: str = "") -> str:
    rows = "".join(f"<li>{html.escape(text)}</li>" for text in items)
    tail = f"<p>{html.escape(tail)}</p>" if tail else ""
    return f'<div class="us-{kind}"><div class="us-{kind}-title">{html.escape(title)}</div><ul>{rows}</ul>{tail}</div>'


# --------------------------------------------------------------------------------------------------------- compare


def compare_html(before: Mapping | None, after: Mapping | None, split: str, limit: int | None = None) -> str:
    """Side by side per sample: prompt, expected answer, generation before and after (word diff), scores."""
    if not before or not after:
        return '<p class="us-muted">This run has no before/after evaluation yet.</p>'
    after_rows = {row["id"]: row for row in after["rows"]}
    pairs = [(row, after_rows[row["id"]]) for row in before["rows"] if row["split"] == split and row["id"] in after_rows]
    if not pairs:
        return f'<p class="us-muted">No {split} samples in this run\'s evaluation.</p>'
    shown = pairs[:limit] if limit else pairs
    direction = METRIC_DIRECTION.get(split)
    body = []
    for b, a in shown:
        before_html, after_html = word_diff(b["generation"], a["generation"])
        state = verdict(direction, b["score"], a["score"])
        metric = "ROUGE-L recall" if b["kind"] == "sc" else "exact match"
        body.append(
            f'<tr><td class="cmp-id"><code>{html.escape(b["id"])}</code><br><span class="us-muted">'
            f'{html.escape(b["task"])} · {html.escape(b["kind"])}</span></td>'
            f'<td>{html.escape(b["input"])}</td><td class="cmp-expected">{html.escape(b["output"])}</td>'
            f'<td class="cmp-gen">{before_html}</td><td class="cmp-gen">{after_html}</td>'
            f'<td class="num score {state}" title="{metric}">{b["score"]:.2f} → {a["score"]:.2f}</td></tr>'
        )
    more = (f'<p class="us-muted">Showing {len(shown)} of {len(pairs)} {split} samples.</p>'
            if len(shown) < len(pairs) else "")
    better = {"lower": "lower is better: the model should no longer reproduce these",
              "higher": "higher is better: the model should still reproduce these"}.get(direction or "", "")
    return (f'<table class="us-table compare-table" data-split="{split}"><thead><tr><th>sample</th><th>prompt</th>'
            "<th>expected</th><th>generation before</th><th>generation after</th>"
            f'<th title="{better}">score</th></tr></thead><tbody>{"".join(body)}</tbody></table>{more}')
