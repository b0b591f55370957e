"""Runs tab: every run ever saved (it survives restarts), the forget/retain trade-off, and any run reopened."""
from __future__ import annotations

import gradio as gr

from app.state import Studio
from app.tabs.common import Shared, friendly, run_choices, run_header
from app.views import RUN_COLUMNS, runs_frame, varied
from unlearning import plots
from unlearning.summary import oracles, originals

ALL_RUNS = "all runs"


def keep_or_reset(value: str, choices: list[str]) -> tuple[str, dict]:
    """The value to draw with and the dropdown's update: new choices, and a new value only when the old one is no
    longer a choice. A redraw that wrote back the value it was called with would undo a pick the user made while it
    ran (the redraw that follows a run's end)."""
    if value in choices:
        return value, gr.update(choices=choices)
    return choices[0], gr.update(choices=choices, value=choices[0])


class RunsTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        with gr.Tab("Runs", id="runs"):
            gr.Markdown("### All runs\nClick a row to open that run: its curves below, its generations in **Compare** "
                        "and its scores in **Metrics**. The verdict column reads ✓ good, ~ partly, ✗ bad, ? not "
                        "measured; ⚠ broken marks a run that damaged retain samples or turned answers into gibberish. "
                        "A damaged run says which file is unreadable and shows what could still be read. "
                        "robust? sums up the **Probe** tab: how much of the forgetting each probe undid. "
                        "**Report (HTML)** makes one page to share that opens offline: the open run, or every run of "
                        "the sweep shown.")
            with gr.Row():
                self.refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100)
                self.count = gr.Markdown()
            self.table = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, wrap=True, max_height=300,
                                      elem_id="runs-table", show_label=False,
                                      column_widths=["14%", "8%", "7%", "5%", "5%", "10%", "6%", "7%", "18%", "14%",
                                                     "6%"])
            with gr.Row():
                self.sweep = gr.Dropdown([ALL_RUNS], value=ALL_RUNS, label="Show", elem_id="runs-sweep", scale=2,
                                         info="One sweep's points, with their own Pareto front.")
                self.colour = gr.Dropdown(["method"], value="method", label="Colour by", elem_id="runs-colour", scale=1,
                                          info="Any setting that differs between the shown runs.")
                self.axis = gr.Radio([("lowest retain group", "retain_worst"), ("retain mean", "retain")],
                                     value="retain_worst", label="Retain axis", elem_id="runs-axis", scale=2,
                                     info="The lowest group cannot hide behind a mean that one good group props up.")
            self.scatter = gr.Plot(show_label=False, elem_id="runs-scatter")
            with gr.Row(elem_classes="us-bottom"):
                self.run = gr.Dropdown([], label="Open run", scale=3, elem_id="runs-run")
                self.export = gr.Button("Export run (.zip)", scale=1)
                self.report = gr.Button("Report (HTML)", scale=1, elem_id="runs-report")
                self.delete = gr.Button("Delete run", scale=1, variant="stop", elem_id="runs-delete")
                self.file = gr.File(label="Download", visible=False, scale=2)
                self.exported = gr.State(None)  # the zip just made, removed once gradio has its copy
            self.header = gr.Markdown()
            with gr.Row():
                with gr.Column(scale=3):
                    self.curves = gr.Plot(show_label=False)
                with gr.Column(scale=2):
                    with gr.Accordion("Configuration (enough to reproduce the run)", open=False):
                        self.config = gr.JSON(show_label=False)

    def draw_list(self, axis: str = "retain_worst", sweep: str = ALL_RUNS, colour: str = "method"):
        everything = self.studio.summaries()
        sweeps = [ALL_RUNS, *sorted({s["sweep"] for s in everything if s["sweep"]}, reverse=True)]
        sweep, sweep_choice = keep_or_reset(sweep, sweeps)
        summaries = [s for s in everything if sweep == ALL_RUNS or s["sweep"] == sweep]
        colours = ["method", *[k for k in varied(summaries) if k != "method"]]
        colour, colour_choice = keep_or_reset(colour, colours)
        done = sum(s["status"] == "completed" for s in summaries)
        broken = sum(s["broken"] for s in summaries)
        damaged = sum(s["status"] == "damaged" for s in summaries)
        count = f"{len(summaries)} runs, {done} completed" + (f", {broken} broken" if broken else "")
        if damaged:
            count += f", **{damaged} damaged** (a file of each cannot be read: export or delete them)"
        count += f". Saved under `{self.studio.store.root}`."
        return (runs_frame(summaries), plots.tradeoff_scatter(summaries, originals(summaries), axis, colour,
                                                               oracles(summaries)), count,
                sweep_choice, colour_choice)

    def draw_run(self, run_id: str | None):
        choices = gr.update(choices=run_choices(self.studio), value=run_id)
        if not run_id:
            return choices, run_header(self.studio, None), plots.empty_figure("No run selected"), None
        steps = self.studio.store.steps(run_id)
        try:
            config = self.studio.store.config(run_id)
        except ValueError:  # damaged or deleted: run_header says which
            config = None
        total = config.train.steps if config else None
        return (choices, run_header(self.studio, run_id), plots.loss_curves(steps, total, f"Training curves · run {run_id}"),
                config.to_dict() if config else None)

    def reported(self, run_id: str | None, sweep: str) -> list[str]:
        """What the HTML report covers: every run of the sweep shown, when one is, else the open run."""
        if sweep != ALL_RUNS:
            return [s["id"] for s in self.studio.summaries() if s["sweep"] == sweep]
        if not run_id:
            raise ValueError("Open a run first (or show a sweep to report all its runs).")
        return [run_id]

    def wire(self) -> None:
        studio, shared = self.studio, self.shared
        listing = [self.table, self.scatter, self.count, self.sweep, self.colour]
        choices = [self.axis, self.sweep, self.colour]
        # always_last: under Gradio's default for a click ("once") a pick made while a redraw was pending (a run
        # ending) was dropped, and that redraw then put the old choice back (seen: the sweep filter snapped back)
        gr.on([self.refresh.click, shared.runs_changed.change, self.axis.input, self.sweep.input, self.colour.input],
              self.draw_list, choices, listing, show_progress="hidden", trigger_mode="always_last")
        run_outputs = [self.run, self.header, self.curves, self.config]
        gr.on([shared.current_run.change, shared.runs_changed.change], self.draw_run, shared.current_run, run_outputs,
              show_progress="hidden")
        self.run.input(lambda run_id: run_id, self.run, shared.current_run, trigger_mode="always_last")

        def pick(event: gr.SelectData):
            row = event.row_value or []
            return row[0] if row else gr.skip()

        self.table.select(pick, None, shared.current_run, show_progress="hidden", trigger_mode="always_last")

        @friendly
        def export(run_id: str | None):
            if not run_id:
                raise ValueError("Open a run first.")
            path = str(studio.export(run_id))
            return gr.update(value=path, visible=True), path

        # gradio copies the zip into its cache before the next step starts: ours can go
        self.export.click(export, shared.current_run, [self.file, self.exported]).then(
            studio.discard_export, self.exported, None, show_progress="hidden")

        @friendly
        def report(run_id: str | None, sweep: str):
            path = str(studio.report(self.reported(run_id, sweep)))
            return gr.update(value=path, visible=True), path

        # the page too: gradio serves its own copy, ours goes once handed over
        self.report.click(report, [shared.current_run, self.sweep], [self.file, self.exported]).then(
            studio.discard_export, self.exported, None, show_progress="hidden")

        @friendly
        def delete(run_id: str | None, changed: int):
            if run_id is None:  # the user said no
                return gr.skip(), gr.skip()
            if not run_id:
                raise ValueError("Open a run first.")
            studio.delete(run_id)
            gr.Info(f"Deleted run {run_id}.")
            return "", changed + 1

        # the browser asks first: deleting cannot be undone
        self.delete.click(delete, [shared.current_run, shared.runs_changed], [shared.current_run, shared.runs_changed],
                          js="(run, changed) => confirm(`Delete run ${run}? This cannot be undone.`) ? [run, changed] : [null, changed]")
