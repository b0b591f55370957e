"""Metrics tab: every score of the current run before and after, coloured by which way is better, and alarms."""
from __future__ import annotations

import gradio as gr

from app import plots
from app.state import Studio
from app.tabs.common import Shared, run_choices, run_header
from app.views import alerts_html, is_collapsed, metric_rows, metrics_table_html, score_cards_html
from unlearning.evaluate import CHANCE


class MetricsTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        with gr.Tab("Metrics", id="metrics"):
            with gr.Row(equal_height=True):
                self.run = gr.Dropdown([], label="Run", scale=3, elem_id="metrics-run")
                self.header = gr.Markdown(scale=5)
            self.alerts = gr.HTML(elem_id="metrics-alerts")
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
        before = studio.store.read_json(run_id, "before.json") if run_id else None
        after = studio.store.read_json(run_id, "after.json") if run_id else None
        if not after:
            note = plots.empty_figure("This run has no 'after' evaluation (yet)")
            missing = '<p class="us-muted">No scores for this run yet: it is still running, or it stopped early.</p>'
            return (choices, run_header(studio, run_id), "", missing, "", note, note, note,
                    plots.mia_histograms(before and before.get("mia"), None))
        parts_before = {**before["final_parts"], "final": before["final"]} if before else None
        parts_after = {**after["final_parts"], "final": after["final"]}
        groups = {name: ((before or {}).get("group_means", {}).get(name), value)
                  for name, value in after["group_means"].items()}
        utility_before = (before or {}).get("utility") or {}
        utility_after = after.get("utility") or {}
        return (
            choices, run_header(studio, run_id), alerts_html(before, after), score_cards_html(before, after),
            metrics_table_html(metric_rows(before, after)),
            plots.final_parts_bars(parts_before, parts_after, collapsed=is_collapsed(before, after)),
            plots.utility_bars(utility_before.get("accuracy"), utility_after.get("accuracy"),
                               utility_after.get("chance", CHANCE), utility_after.get("name", "utility")),
            plots.before_after_bars(groups, title="Scores per task, kind and split",
                                    y_title="mean score"),
            plots.mia_histograms(before and before.get("mia"), after.get("mia")),
        )

    def wire(self) -> None:
        outputs = [self.run, self.header, self.alerts, self.cards, self.table, self.final, self.utility, self.groups,
                   self.mia]
        gr.on([self.shared.current_run.change, self.shared.runs_changed.change], self.draw, self.shared.current_run,
              outputs, show_progress="hidden")
        self.run.input(lambda run_id: run_id, self.run, self.shared.current_run)
