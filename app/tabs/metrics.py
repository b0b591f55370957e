"""Metrics tab: the verdict, then every registered metric of the current run before and after, and their plots."""
from __future__ import annotations

import gradio as gr

from app.state import Studio
from app.tabs.common import Shared, run_choices, run_header
from app.views import metric_rows, metrics_table_html, score_cards_html, verdict_html
from unlearning import plots
from unlearning.evaluation import EvalReport, judge
from unlearning.summary import read_report, run_reports


class MetricsTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        with gr.Tab("Metrics", id="metrics"):
            with gr.Row(equal_height=True):
                self.run = gr.Dropdown([], label="Run", scale=3, elem_id="metrics-run")
                self.header = gr.Markdown(scale=5)
            self.verdict = gr.HTML(elem_id="metrics-verdict")
            self.cards = gr.HTML(elem_id="metrics-cards")
            with gr.Row():
                with gr.Column(scale=5):
                    self.table = gr.HTML(elem_id="metrics-table")
                with gr.Column(scale=4):
                    self.final = gr.Plot(show_label=False)
                    self.utility = gr.Plot(show_label=False)
            self.groups = gr.Plot(show_label=False, elem_id="metrics-groups")
            self.mia = gr.Plot(show_label=False)

    def draw(self, run_id: str | None):
        studio = self.studio
        choices = gr.update(choices=run_choices(studio), value=run_id)
        before, after = run_reports(studio.store, run_id) if run_id else (None, None)
        if after is None:
            note = plots.empty_figure("This run has no 'after' evaluation (yet)")
            missing = '<p class="us-muted">No scores for this run yet: it is still running, or it stopped early.</p>'
            return choices, run_header(studio, run_id), "", missing, "", note, note, note, plots.mia_histograms(_mia(before), None)
        groups = {name: ((before.groups("official").get(name) if before else None), value)
                  for name, value in after.groups("official").items()}
        return (
            choices, run_header(studio, run_id), verdict_html(before, after, studio.store.probes(run_id)),
            score_cards_html(before, after),
            metrics_table_html(metric_rows(before, after, after.oracle() or _oracle(studio, run_id))),
            plots.final_parts_bars(_final_parts(before), _final_parts(after), broken=judge(before, after).broken),
            plots.utility_bars(_families(before), _families(after), after.chance("utility"),
                               after.metrics.get("utility", {}).get("name", "utility")),
            plots.before_after_bars(groups, title="Official score per task, kind and split", y_title="mean score"),
            plots.mia_histograms(_mia(before), _mia(after)),
        )

    def wire(self) -> None:
        outputs = [self.run, self.header, self.verdict, self.cards, self.table, self.final, self.utility, self.groups,
                   self.mia]
        gr.on([self.shared.current_run.change, self.shared.runs_changed.change], self.draw, self.shared.current_run,
              outputs, show_progress="hidden")
        self.run.input(lambda run_id: run_id, self.run, self.shared.current_run, trigger_mode="always_last")


def _oracle(studio: Studio, run_id: str) -> EvalReport | None:
    """The oracle probe's evaluation on this run's samples: the table's reference column for a run saved without one."""
    return read_report(studio.store.probes(run_id).get("oracle", {}).get("result", {}).get("report"))


def _final_parts(report: EvalReport | None) -> dict | None:
    if report is None or report.value("final") is None:
        return None
    return {**report.metrics["final"].get("parts", {}), "final": report.value("final")}


def _families(report: EvalReport | None) -> dict | None:
    """Utility per item family; runs saved before families existed show their one overall accuracy."""
    if report is None or report.value("utility") is None:
        return None
    return report.metrics["utility"].get("families") or {"all": report.value("utility")}


def _mia(report: EvalReport | None) -> dict | None:
    """The MIA result as the histogram plot reads it: AUC, score and both sides' document losses."""
    if report is None or report.value("mia_auc") is None:
        return None
    return {**report.metrics["mia_auc"], "auc": report.value("mia_auc"), "score": report.value("mia_score")}
