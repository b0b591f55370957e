"""A run as every view of runs reads it: its reports, where it sits on the forget/retain plane, the library's verdict.

The app's Runs table and trade-off plot, and the HTML report, build on `run_summary`; the CLI prints `run_details`
(`runs RUN_ID`, a run's result), `run_listing` (`runs`) and `sweep_point` (a sweep's result). A damaged run keeps
what could still be read. No gradio here.
"""
from __future__ import annotations

from collections.abc import Mapping

from unlearning.evaluation import EvalReport, judge
from unlearning.evaluation.verdict import tradeoff_point
from unlearning.probes import probe_summary
from unlearning.runs import Run, RunStore


def read_report(data: Mapping | None) -> EvalReport | None:
    """A saved report as an EvalReport; None when it is missing or unreadable (shown as absent, never a crash)."""
    if not data:
        return None
    try:
        return EvalReport.from_dict(dict(data))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def run_reports(store: RunStore, run_id: str) -> tuple[EvalReport | None, EvalReport | None]:
    return read_report(store.read_json(run_id, "before.json")), read_report(store.read_json(run_id, "after.json"))


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def mode_label(report: EvalReport | None) -> str:
    if report is None:
        return "–"
    return "official" if report.mode == "official" and not report.unofficial else f"{report.mode}*" if report.mode == "official" else "fast"


def run_summary(store: RunStore, run_id: str) -> dict:
    """One run as the Runs table and the trade-off plot need it, with the library's verdict; a damaged run keeps what
    could still be read."""
    run = store.read(run_id)
    config, status = run.config, run.status
    before, after = read_report(run.before), read_report(run.after)
    probes = store.probes(run_id)
    start = tradeoff_point(before) if before else {}
    end = tradeoff_point(after) if after else {}
    verdict = judge(before, after, probes) if after else None
    train = config.train if config else None
    return {
        "id": run_id, "name": config.name if config else "", "label": (config.name if config else "") or run_id,
        "method": train.method if train else "?", "sweep": config.sweep if config else "",
        "params": {"method": train.method, "lr": train.learning_rate, "steps": train.steps, "params": train.params,
                   "seed": train.seed, **train.method_options} if train else {},
        "steps": train.steps if train else sum("loss" in log for log in run.steps),
        "lr": train.learning_rate if train else None, "status": status["status"],
        "message": status.get("message", ""), "model": config.model if config else "?",
        "data": config.data if config else "?", "forget_ids": len(config.forget_ids) if config else 0,
        "mode": mode_label(after or before),
        "forget_before": _round(start.get("forget")), "retain_before": _round(start.get("retain")),
        "retain_worst_before": _round(start.get("retain_worst")),
        "forget": _round(end.get("forget")), "retain": _round(end.get("retain")),
        "retain_worst": _round(end.get("retain_worst")),
        "final": _round(after.value("final")) if after else None,
        "broken": bool(verdict and verdict.broken), "hidden": bool(verdict and verdict.hidden),
        "verdict": {f.aspect: f.status for f in verdict.findings} if verdict else {},
        "what_broke": verdict.what_broke() if verdict else [],
        "probes": {name: entry.get("result", {}).get("headline", {}) for name, entry in probes.items()},
        "oracle": probes.get("oracle", {}).get("result", {}).get("tradeoff"),
    }


def originals(summaries: list[dict]) -> list[dict]:
    """The distinct "before" points (one per model and forget set), for the trade-off plot."""
    seen: dict[tuple, dict] = {}
    for s in summaries:
        if s["forget_before"] is not None and s["retain_before"] is not None:
            key = (s["model"], s["forget_before"], s["retain_before"])
            seen.setdefault(key, {"label": f"original {s['model']}", "forget": s["forget_before"],
                                  "retain": s["retain_before"], "retain_worst": s["retain_worst_before"]})
    return list(seen.values())


def oracles(summaries: list[dict]) -> list[dict]:
    """The oracle's point for each distinct forget set probed (the oracle probe's trade-off point), for the plot."""
    seen: dict[tuple, dict] = {}
    for s in summaries:
        point = s.get("oracle")
        if point and point.get("forget") is not None:
            key = tuple(round(point.get(k) or 0.0, 3) for k in ("forget", "retain", "retain_worst"))
            seen.setdefault(key, {**point, "label": f"oracle (run {s['id']})"})
    return list(seen.values())


# ------------------------------------------------------------------------------------------------------------ CLI


def sweep_point(store: RunStore, run_id: str) -> dict:
    """One sweep point: its settings, where it started and ended on the forget/retain plane, and the verdict."""
    out = run_details(store, run_id)
    point = {"run_id": run_id, "name": (out["config"] or {}).get("name"), "status": out["status"],
             "message": out["message"], "verdict": {}, "broken": False}
    run = store.read(run_id)
    for name, report in (("before", run.before), ("after", run.after)):
        if report:
            point |= {f"{name}_{axis}": value for axis, value in tradeoff_point(EvalReport.from_dict(report)).items()}
    if "verdict" in out:
        point["verdict"] = {f["aspect"]: f["status"] for f in out["verdict"]["findings"]}
        point["broken"] = out["verdict"]["broken"]
    return point


def run_details(store: RunStore, run_id: str) -> dict:
    """A run as the CLI shows it (`runs RUN_ID`, and what `run` prints): status, config, both evaluations (every
    metric, without the per-sample rows), the verdict, and the last training step."""
    run = store.read(run_id)
    out = {**run_listing(run), "config": run.config.to_dict() if run.config else None}
    reports = {name: EvalReport.from_dict(report) for name, report in (("before", run.before), ("after", run.after)) if report}
    for name, report in reports.items():
        out[name] = {k: v for k, v in report.to_dict().items() if k not in ("rows", "reference")}
    probes = store.probes(run_id)
    if "after" in reports:
        out["verdict"] = judge(reports.get("before"), reports["after"], probes).to_dict()
    trained = [log for log in run.steps if "loss" in log]  # the step-0 log holds only the original's scores
    out["last_step"] = trained[-1] if trained else None
    out["probes"] = {name: probe_summary(entry) for name, entry in probes.items()}
    return out


def run_listing(run: Run) -> dict:
    """One line of `runs`: a damaged run is listed too, with what is wrong and what could still be read."""
    return {"run_id": run.id, **run.status, "method": run.config.train.method if run.config else None,
            "name": run.config.name if run.config else None, "sweep": run.config.sweep if run.config else None,
            "steps": sum("loss" in log for log in run.steps), "problems": run.problems}
