"""What the tabs show, computed from saved runs: table rows, metric tables, the verdict and comparison HTML. No gradio.

Reports are read through the library (EvalReport.from_dict, which also opens runs saved before today's metrics),
every number's name and direction come from the metric registry, and what counts as forgotten, kept or broken comes
from the library's verdict: the views only lay them out. All model text is escaped before it becomes HTML.
"""
from __future__ import annotations

import html
from collections.abc import Mapping

import pandas as pd

from app.diff import word_diff
from unlearning.evaluation import METRICS, EvalReport, judge
from unlearning.evaluation.metrics import FAMILIES, arrow, better_words
from unlearning.evaluation.verdict import ASPECTS, group_label, retain_falls, tradeoff_point
from unlearning.plots import moved

RUN_COLUMNS = ["run", "name", "method", "steps", "lr", "status", "forget ↓", "retain ↑ (lowest group)", "verdict",
               "robust?", "mode"]
MARKS = {"good": "✓", "warn": "~", "bad": "✗", "hidden": "◐", "unknown": "?"}


# ------------------------------------------------------------------------------------------------------------ runs


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def verdict_marks(verdict: Mapping[str, str]) -> str:
    """"✓ forgot ✗ kept ..." in the registry's aspect order, for a table cell."""
    return "  ".join(f"{MARKS[verdict[a]]} {a}" for a in ASPECTS if a in verdict)


def headline_number(headline: Mapping) -> str:
    """A probe's one number as text: a recovery in percent, a forget quality as a p-value, "–" when there is none."""
    value = headline.get("value")
    if value is None:
        return "–"
    return f"p = {value:.2g}" if headline.get("unit") == "p" else f"{value:.0%}"


def robust_marks(probes: Mapping[str, Mapping]) -> str:
    """"✗ relearn 64%  ✓ quantize 3%": each probe's mark and number for the Runs table; "–" before any probe."""
    if not probes:
        return "–"
    return "  ".join(f"{MARKS.get(h.get('status', 'unknown'), '?')} {name} {headline_number(h)}".replace(" –", "")
                     for name, h in probes.items())


def runs_frame(summaries: list[dict]) -> pd.DataFrame:
    rows = [
        [s["id"], s["name"], s["method"], s["steps"], "–" if s["lr"] is None else f"{s['lr']:g}",
         s["message"] if s["status"] == "damaged" else s["status"] + (" ⚠ broken" if s["broken"] else ""),
         _num(s["forget"]), _num(s["retain_worst"]), verdict_marks(s["verdict"]),
         robust_marks(s.get("probes", {})), s["mode"]]
        for s in summaries
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def varied(summaries: list[dict]) -> list[str]:
    """The settings that differ between these runs: what the trade-off plot can colour by."""
    keys = sorted({k for s in summaries for k in s["params"]})
    return [k for k in keys if len({str(s["params"].get(k)) for s in summaries}) > 1]


# --------------------------------------------------------------------------------------------------------- verdict


def verdict_html(before: EvalReport | None, after: EvalReport | None, probes: Mapping | None = None) -> str:
    """The findings as coloured lines, and what broke in a red box when the run broke something; a run that only hid
    its answers says so in the title."""
    if after is None:
        return ""
    verdict = judge(before, after, probes)
    lines = "".join(
        f'<div class="us-finding {f.status}" data-aspect="{f.aspect}"><span class="us-finding-mark">{MARKS[f.status]}</span>'
        f'<b>{ASPECTS[f.aspect]}</b> {html.escape(f.text)}</div>'
        for f in verdict.findings
    )
    head = ('<div class="us-verdict-title broken">⚠ This run broke something: read the generations before any score.</div>'
            if verdict.broken else '<div class="us-verdict-title hidden">◐ Hidden, not forgotten: the model still knows '
                                   'what it no longer says. Read the per-token view.</div>'
            if verdict.hidden else '<div class="us-verdict-title">Verdict</div>')
    return f'<div class="us-verdict{" broken" if verdict.broken else ""}" id="verdict">{head}{lines}{mode_note(after)}</div>'


def mode_note(report: EvalReport | None) -> str:
    """Which protocol produced the numbers, and which parts were not official."""
    if report is None:
        return ""
    parts = "; ".join(f"{name}: {why}" for name, why in report.unofficial.items() if name != "protocol")
    if report.mode != "official":
        text = f"Fast mode ({report.unofficial.get('protocol', 'batched generation')}): not the official protocol."
    elif parts:
        text = f"Official mode, except {parts}."
    else:
        text = "Official mode: every part follows the SemEval-2025 protocol."
    return f'<div class="us-mode" data-mode="{report.mode}">{html.escape(text)}</div>'


def finish_summary(before: EvalReport | None, after: EvalReport | None, probes: Mapping | None = None) -> str:
    """The Run tab's summary of a finished run: forget and the retain group that fell most before/after, and the verdict."""
    if after is None:
        return ""
    start, end = (tradeoff_point(before) if before else {}), tradeoff_point(after)
    official = METRICS["official"]
    lines = [("forget score", start.get("forget"), end.get("forget"), better_words(official.better_on("forget")))]
    falls = retain_falls(before, after)
    if falls:  # the group the verdict names, not the lowest one: one story on every view
        group, was, now = falls[0]
        lines.append((f"retain, the group that fell most ({group_label(group)})", was, now,
                      better_words(official.better_on("retain"))))
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td class='num'>{_num(b)}</td><td class='num'>{_num(a)}</td>"
                   f"<td class='us-muted'>{hint}</td></tr>" for label, b, a, hint in lines)
    table = ("<table class='us-table'><thead><tr><th></th><th>before</th><th>after</th><th></th></tr></thead>"
             f"<tbody>{rows}</tbody></table>")
    return table + verdict_html(before, after, probes)


# --------------------------------------------------------------------------------------------------------- metrics


def _row(label: str, key: str, direction: str | None, before: float | None, after: float | None,
         oracle: float | None = None, what: str = "", sub: bool = False) -> dict:
    change = None if before is None or after is None else after - before
    return {"label": label, "key": key, "direction": direction, "before": before, "after": after, "change": change,
            "moved": moved(direction, before, after), "what": what, "sub": sub, "oracle": oracle}


def metric_rows(before: EvalReport | None, after: EvalReport | None, oracle: EvalReport | None = None) -> list[dict]:
    """Every registered metric before and after, family by family: per-sample ones per split (the official score also
    per task/kind group), model ones once. A broken run's final score is red whichever way it moved. With the oracle's
    report (the oracle probe's), each row also holds the oracle's value: the reference to read `after` against."""

    def _pair(before: EvalReport | None, after: EvalReport | None, read) -> tuple:
        """read(report) of the before, the after and the oracle's report (None for a report that is missing)."""
        return tuple(read(r) if r else None for r in (before, after, oracle))

    rows = []
    reports = [r for r in (before, after) if r is not None]
    for family in FAMILIES:
        for m in (m for m in METRICS.values() if m.family == family and any(m.name in r.metrics for r in reports)):
            if not m.per_sample:
                rows.append(_row(m.title, m.name, m.better, *_pair(before, after, lambda r: r.value(m.name)), what=m.what))
                continue
            for split in ("forget", "retain"):
                rows.append(_row(f"{m.title} · {split}", f"{m.name}:{split}", m.better_on(split),
                                 *_pair(before, after, lambda r: r.split(m.name, split)), what=m.what))
                if m.name == "official":
                    names = sorted({g for r in reports for g in r.groups("official", split)})
                    rows += [_row(group_label(g), f"official:{g}", m.better_on(split),
                                  *_pair(before, after, lambda r: r.groups("official").get(g)), sub=True) for g in names]
    families = sorted({f for r in reports for f in r.metrics.get("utility", {}).get("families", {})})
    at = next((i for i, row in enumerate(rows) if row["key"] == "utility"), len(rows))
    rows[at + 1 : at + 1] = [_row(f, f"utility:{f}", METRICS["utility"].better,
                                  *_pair(before, after, lambda r: r.metrics.get("utility", {}).get("families", {}).get(f)),
                                  sub=True) for f in families]
    if after is not None and judge(before, after).broken:
        for row in rows:
            if row["key"] == "final":
                row["moved"], row["label"] = "bad", row["label"] + " ⚠ broken model"
    return [r for r in rows if r["before"] is not None or r["after"] is not None]


def metrics_table_html(rows: list[dict]) -> str:
    """The metric table; an "oracle" column (the model that never saw the forget set) when any row has its value."""
    with_oracle = any(r.get("oracle") is not None for r in rows)
    body = []
    for r in rows:
        change = "–" if r["change"] is None else f"{r['change']:+.3f}"
        oracle = f'<td class="num oracle" data-oracle="{html.escape(r["key"])}">{_num(r.get("oracle"))}</td>' if with_oracle else ""
        body.append(
            f'<tr class="{"sub" if r["sub"] else ""}" title="{html.escape(r["what"])}"><td>{html.escape(r["label"])}</td>'
            f'<td class="dir">{arrow(r["direction"])}</td><td class="num">{_num(r["before"])}</td>'
            f'<td class="num {r["moved"]}" data-metric="{html.escape(r["key"])}">{_num(r["after"])}</td>'
            f'<td class="num {r["moved"]}">{change}</td>{oracle}</tr>'
        )
    head = "<th title='the model trained on the retain set only (oracle probe)'>oracle</th>" if with_oracle else ""
    return ('<table class="us-table metrics-table"><thead><tr><th>metric</th><th>better</th><th>before</th>'
            f'<th>after</th><th>change</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def score_cards_html(before: EvalReport | None, after: EvalReport | None) -> str:
    """The final score and its three parts as four cards, so the mean is never read without its parts."""
    verdict = judge(before, after) if after is not None else None
    broken = bool(verdict and verdict.broken)
    # the utility card wears the verdict's colour: a move within noise is not a loss
    said = {f.aspect: f.status for f in verdict.findings} if verdict else {}
    cards = []
    final = METRICS["final"]
    for key in ("final", *final.parts):
        value_b, value_a = (before.value(key) if before else None), (after.value(key) if after else None)
        label = METRICS[key].title
        state = ("bad" if broken and key == "final" else _CARD.get(said.get("utility"), "same") if key == "utility"
                 else moved(METRICS[key].better, value_b, value_a))
        if broken and key == "final":
            label += " ⚠ broken model"
        cards.append(
            f'<div class="us-card {state}"><div class="us-card-label">{label}</div>'
            f'<div class="us-card-value">{_num(value_a)}</div><div class="us-card-was">before {_num(value_b)}</div></div>'
        )
    note = (f'<div class="us-cards-note">final = mean({", ".join(METRICS[p].short for p in final.parts)}): read the '
            "parts, a broken model can still reach a respectable mean.</div>")
    return f'<div class="us-cards">{"".join(cards)}</div>{note}'


# --------------------------------------------------------------------------------------------------------- compare


SHOW = {"all": "all, in order", "flagged": "flagged: gibberish, empty or refusal", "changed": "changed most first"}
FLAGS = {"gibberish": "looping or implausible to the original model", "empty": "nothing was generated",
         "refusal": "opens with a refusal"}


def compare_html(before: EvalReport | None, after: EvalReport | None, split: str, limit: int | None = None,
                 show: str = "all", page: int = 1) -> str:
    """Side by side per sample: prompt, expected answer, generation before and after (word diff), scores, and each
    answer's flags. `show` filters to flagged answers or sorts by how much the score moved; `limit` rows a page."""
    if before is None or after is None:
        return '<p class="us-muted">This run has no before/after evaluation yet.</p>'
    after_rows = {row["id"]: row for row in after.rows}
    pairs = [(row, after_rows[row["id"]]) for row in before.rows if row["split"] == split and row["id"] in after_rows]
    if not pairs:
        return f'<p class="us-muted">No {split} samples in this run\'s evaluation.</p>'
    if show == "flagged":
        pairs = [(b, a) for b, a in pairs if any(a.get(flag) for flag in FLAGS)]
    elif show == "changed":
        pairs.sort(key=lambda pair: -abs((pair[1]["official"] or 0.0) - (pair[0]["official"] or 0.0)))
    if not pairs:
        return f'<p class="us-muted">No {split} answer is flagged (gibberish, empty or refusal).</p>'
    pages = -(-len(pairs) // limit) if limit else 1
    page = min(max(int(page or 1), 1), pages)
    first = (page - 1) * limit if limit else 0
    shown = pairs[first : first + limit] if limit else pairs
    direction = METRICS["official"].better_on(split)
    body = []
    for b, a in shown:
        before_html, after_html = word_diff(b["generation"], a["generation"])
        after_html += "".join(f' <span class="us-gibberish" title="{why}">{flag}</span>' for flag, why in FLAGS.items()
                              if a.get(flag))
        state = moved(direction, b["official"], a["official"])
        metric = "ROUGE-L recall" if b["kind"] == "sc" else "exact match"
        body.append(
            f'<tr><td class="cmp-id"><code>{html.escape(b["id"])}</code><br><span class="us-muted">'
            f'{html.escape(b["task"])} · {html.escape(b["kind"])}</span></td>'
            f'<td>{html.escape(b["input"])}</td><td class="cmp-expected">{html.escape(b["output"])}</td>'
            f'<td class="cmp-gen">{before_html}</td><td class="cmp-gen">{after_html}</td>'
            f'<td class="num score {state}" title="{metric}">{_num2(b["official"])} → {_num2(a["official"])}</td></tr>'
        )
    more = (f'<p class="us-muted" data-page="{page}" data-pages="{pages}">Showing {first + 1}-{first + len(shown)} of '
            f"{len(pairs)} {split} samples (page {page} of {pages}).</p>" if pages > 1 else "")
    better = f"{better_words(direction)}: the model should {'no longer' if split == 'forget' else 'still'} reproduce these"
    return (f'<table class="us-table compare-table" data-split="{split}"><thead><tr><th>sample</th><th>prompt</th>'
            "<th>expected</th><th>generation before</th><th>generation after</th>"
            f'<th title="{better}">score</th></tr></thead><tbody>{"".join(body)}</tbody></table>{more}')


def _num2(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def sample_choices(report: EvalReport | None) -> list[tuple[str, str]]:
    """(label, id) of every sample with per-token probabilities, forget first."""
    if report is None:
        return []
    rows = sorted((r for r in report.rows if r.get("token_probs")), key=lambda r: r["split"] != "forget")
    return [(f"{r['split']} · {r['id']} · {r['input'][:50]}", r["id"]) for r in rows]


def _token_spans(tokens: list[str], probs: list[float], reference: list[float] | None = None) -> str:
    spans = []
    for i, (token, p) in enumerate(zip(tokens, probs)):
        # lightness follows probability: a likely token is dark green, an unlikely one pale red
        hue, light = (140, 90 - 55 * p) if p >= 0.5 else (0, 95 - 40 * (0.5 - p))
        change = "" if reference is None else f", was {reference[i]:.2f}"
        text = html.escape(token).replace("\n", "↵") or "·"
        spans.append(f'<span class="us-tok" style="background:hsl({hue},70%,{light:.0f}%)" '
                     f'title="p = {p:.2f}{change}" data-p="{p:.4f}">{text}</span>')
    return "".join(spans)


def token_view_html(before: EvalReport | None, after: EvalReport | None, sample_id: str | None) -> str:
    """The chosen sample's answer, token by token, coloured by the probability each model gives the true token."""
    if before is None or after is None or not sample_id:
        return '<p class="us-muted">Pick a sample to see which answer tokens lost probability.</p>'
    b = next((r for r in before.rows if r["id"] == sample_id), None)
    a = next((r for r in after.rows if r["id"] == sample_id), None)
    if not b or not a or not b.get("token_probs") or not a.get("token_probs"):
        return '<p class="us-muted">This run has no per-token probabilities for that sample (saved before they existed).</p>'
    # a model with non-finite weights stores its probabilities as null: drawn as 0, never a crash
    b, a = ({**r, "token_probs": [p if p is not None else 0.0 for p in r["token_probs"]]} for r in (b, a))
    lost = sorted(range(len(b["tokens"])), key=lambda i: a["token_probs"][i] - b["token_probs"][i])[:5]
    biggest = ", ".join(f"“{html.escape(b['tokens'][i].strip() or b['tokens'][i])}” {b['token_probs'][i]:.2f}→{a['token_probs'][i]:.2f}"
                        for i in lost if a["token_probs"][i] < b["token_probs"][i] - 0.05)
    return (f'<div class="us-tokens" data-sample="{html.escape(sample_id)}">'
            f'<div class="us-muted">{html.escape(b["split"])} sample <code>{html.escape(sample_id)}</code>: '
            f'{html.escape(b["input"])}</div>'
            f'<div class="us-tokrow"><b>before</b> {_token_spans(b["tokens"], b["token_probs"])}</div>'
            f'<div class="us-tokrow" id="tokens-after"><b>after</b> {_token_spans(a["tokens"], a["token_probs"], b["token_probs"])}</div>'
            f'<div class="us-muted">Largest drops: {biggest or "none above 0.05"}. Hover a token for its probability.</div></div>')


# ---------------------------------------------------------------------------------------------------------- probes

_CARD = {"good": "good", "warn": "warn", "bad": "bad", "unknown": "same"}


def probe_cards_html(probes: Mapping[str, Mapping]) -> str:
    """One card per saved probe: its one number, the plain verdict, when it ran and how long it took."""
    if not probes:
        return '<p class="us-muted">No probe has run on this run yet: pick some above and press Run probes.</p>'
    cards = []
    for name, entry in probes.items():
        headline = entry.get("result", {}).get("headline", {})
        label = "forget quality (KS p-value)" if headline.get("unit") == "p" else "recovered"
        cards.append(
            f'<div class="us-card {_CARD.get(headline.get("status"), "same")}" data-probe="{html.escape(name)}">'
            f'<div class="us-card-label">{html.escape(entry.get("title", name))}</div>'
            f'<div class="us-card-value">{headline_number(headline)}</div><div class="us-card-was">{label}</div>'
            f'<div class="us-probe-text">{html.escape(headline.get("text", ""))}</div>'
            f'<div class="us-card-was">{html.escape(entry.get("asks", ""))} Ran {html.escape(str(entry.get("date", "")))}, '
            f'{entry.get("seconds", 0):.0f} s.</div></div>'
        )
    return f'<div class="us-cards" id="probe-cards">{"".join(cards)}</div>'
