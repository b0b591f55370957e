"""Run tab: start an unlearning run (a background job), watch its progress and live curves, stop it.

Start only submits to the Studio's job runner and returns. The page then polls once a second (the shared
gr.Timer): it reads the job the runner is working on, so a reload or a second tab picks up the same job.
"""
from __future__ import annotations

import dataclasses
import html
import re

import gradio as gr

from app import selection as sel
from app.plots import empty_figure, loss_curves, score_curves, trajectory
from app.state import Studio
from app.tabs.common import SKIP, Shared, friendly, progress_html
from app.tabs.method import MethodTab
from app.views import finish_summary, run_reports
from unlearning.engine import check_data
from unlearning.evaluation import EvalConfig
from unlearning.experiment import select
from unlearning.jobs import FINISHED, Job
from unlearning.methods import METHODS
from unlearning.runs import RunConfig
from unlearning.sweep import new_sweep_id, parse_grid, points

UTILITY = [("bundled multiple choice (6 families, offline)", "items"),
           ("MMLU subset (needs the hub; falls back to the bundled items)", "mmlu"), ("none", "none")]


class RunTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        with gr.Tab("Run", id="run") as self.tab:
            gr.Markdown("### 4 · Unlearn\nEvaluate the original, train a copy, evaluate the copy, save it all in "
                        "Runs. It goes on in the background: reload or close the page freely.")
            with gr.Row():
                with gr.Column(scale=3):
                    self.plan = gr.Markdown(elem_id="run-plan", elem_classes="us-plan")
                    with gr.Row():
                        self.start = gr.Button("Start unlearning", variant="primary", elem_id="start-run", scale=3)
                        self.stop = gr.Button("Stop", variant="stop", elem_id="stop-run", scale=1)
                        self.cancel_queued = gr.Button("Drop queued", scale=1, min_width=120)
                    with gr.Accordion("Sweep: run a grid of settings as one job", open=False, elem_id="sweep-box"):
                        self.grid = gr.Textbox(label="Settings to vary", elem_id="sweep-grid", lines=2,
                                               placeholder="lr=1e-5,3e-5; alpha=10,30; seed=0,1",
                                               info="name=value1,value2 separated by ';' or new lines: any training "
                                                    "setting (lr, steps, params, last_k, seed...), method, or a method "
                                                    "option (alpha, beta...). Every other setting is the one above.")
                        self.sweep_plan = gr.Markdown(elem_id="sweep-plan")
                        self.start_sweep = gr.Button("Start sweep", elem_id="start-sweep")
                    self.progress = gr.HTML(progress_html(None), elem_id="run-progress")
                    self.queue = gr.Markdown(elem_id="run-queue", elem_classes="us-muted")
                with gr.Column(scale=2):
                    with gr.Accordion("Run settings: name, weights, evaluation", open=False, elem_id="run-settings"):
                        self.name = gr.Textbox(label="Run name (optional)", placeholder="e.g. npo-beta-0.5")
                        self.save = gr.Checkbox(False, label="Save the unlearned weights",
                                                info="Needed to chat with this run's model after a restart; costs disk.")
                        self.official = gr.Checkbox(False, label="Official SemEval protocol", elem_id="official-mode",
                                                    info="One prompt at a time in bf16, 256 new tokens, every retain row, "
                                                         "the data's own MIA files, MMLU when reachable. Several times "
                                                         "slower; the settings below are then ignored.")
                        self.max_new = gr.Number(EvalConfig.max_new_tokens, label="max new tokens per generation",
                                                 precision=0, minimum=1, maximum=1024, elem_id="max-new-tokens",
                                                 info="The official setting is 256; fewer is faster on a CPU.")
                        self.utility = gr.Radio(UTILITY, value=EvalConfig.utility, label="Utility benchmark")
                        self.mia = gr.Checkbox(True, label="Membership inference attack (MIA)")
            with gr.Row():
                with gr.Column(scale=3):
                    self.scores = gr.Plot(empty_figure("No run yet: press Start"), elem_id="run-scores", show_label=False)
                with gr.Column(scale=2):
                    self.trajectory = gr.Plot(empty_figure("No run yet"), elem_id="run-trajectory", show_label=False)
            with gr.Row():
                with gr.Column(scale=3):
                    self.curves = gr.Plot(empty_figure("No run yet: press Start"), elem_id="run-curves", show_label=False)
                with gr.Column(scale=2):
                    self.result = gr.HTML(elem_id="run-result")
            self.seen = gr.State({})

    # -------------------------------------------------------------------------------------------------- helpers

    def _config(self, values: dict, method_tab: MethodTab) -> RunConfig:
        """The run the controls describe, checked as the library will check it, so mistakes show before it queues."""
        selected = values[self.shared.selection]
        if not selected:
            raise ValueError("No forget samples selected: tick some in the Data tab first (or use a shortcut there).")
        data = self.studio.data()
        train = method_tab.train_config(values)
        if train.batch_size > len(selected):  # a batch cannot hold more samples than there are: shrink it, not fail
            train = dataclasses.replace(train, batch_size=len(selected))
        max_new = values[self.max_new]
        evaluation = EvalConfig(mode="official" if values[self.official] else "fast", max_new_tokens=int(max_new or 0),
                                utility=values[self.utility], mia=bool(values[self.mia]))
        config = RunConfig(model=self.studio.model_source, data=self.studio.data_source, forget_ids=list(selected),
                           retain_ids=sel.retain_ids(data, selected), train=train, eval=evaluation,
                           save_weights=bool(values[self.save]), name=(values[self.name] or "").strip())
        chosen = select(data, config)  # ids from another dataset, overlapping sets
        check_data(chosen.forget, chosen.retain, train)  # empty retain set for a method that needs one, ...
        return config

    def _plan(self, values: dict, method_tab: MethodTab) -> str:
        try:
            config = self._config(values, method_tab)
        except (ValueError, KeyError) as error:
            text = error.args[0] if isinstance(error, KeyError) else str(error)
            return f"**Not ready:** {html.escape(str(text))}"
        t = config.train
        retain = "the whole retain split" if config.retain_ids is None else f"{len(config.retain_ids)} retain samples"
        text = (f"**Plan:** forget **{len(config.forget_ids)}** samples (keep {retain}) of `{config.data}` from model "
                f"`{config.model}` with **{METHODS[t.method].title}**: {t.steps} steps, lr {t.learning_rate:g}, "
                f"batch {t.batch_size}, {t.params}.")
        e = config.eval
        text += (" Evaluation: **official SemEval protocol** (one prompt at a time in bf16, slow on a CPU)."
                 if e.mode == "official" else f" Evaluation: fast mode ({e.max_new_tokens} new tokens, {e.retain_rows} retain rows).")
        if t.batch_size < (values[method_tab.batch] or 0):
            text += f" The batch size is lowered to {t.batch_size}: there are only {t.batch_size} forget samples."
        return text

    def _result(self, job: Job | None) -> str:
        if job is None or not job.finished or not job.run_id:
            return ""
        status = self.studio.store.status(job.run_id)
        state, text = status["status"], status.get("message", "")
        if job.state == "failed" or state == "failed":
            return f'<div class="us-alert"><div class="us-alert-title">The run failed</div><p>{html.escape(job.error or text)}</p></div>'
        if state == "diverged":
            return f'<div class="us-alert"><div class="us-alert-title">The run diverged</div><p>{html.escape(text)}</p></div>'
        if state == "cancelled" or job.state == "cancelled":
            return f'<div class="us-box">Stopped: {html.escape(text or "cancelled")}. The curve so far is kept in Runs.</div>'
        before, after = run_reports(self.studio.store, job.run_id)
        notes = []
        if state == "stopped":
            notes.append(f'<div class="us-alert"><div class="us-alert-title">Stopped by the guard</div><p>{html.escape(text)}. '
                         "The curve is kept; the model evaluated is the best state kept, or the state at the stop.</p></div>")
        elif text:
            notes.append(f"<p>{html.escape(text)}.</p>")
        kept = status.get("kept")
        if kept:
            notes.append(f"<p id='run-kept'>Kept the state of <b>step {kept['step']}</b>: {html.escape(kept['why'])} "
                         f"(a {kept['bytes'] / 2**20:.0f} MiB copy of the trained weights).</p>")
        return (f'<div class="us-box done"><b>Run {html.escape(job.run_id)} finished.</b> See <b>Compare</b> for the '
                f"generations and <b>Metrics</b> for every score.{''.join(notes)}</div>{finish_summary(before, after)}")

    def _queue(self) -> str:
        waiting = [q for q in self.studio.queue() if q["state"] == "queued"]
        if not waiting:
            return "Queue: empty."
        items = ", ".join(f"#{q['id']} {html.escape(q['title'])} (position {q['position']})" for q in waiting)
        return f"Queue: {items}."

    # ------------------------------------------------------------------------------------------------------ wire

    def wire(self, method_tab: MethodTab) -> None:
        studio, shared = self.studio, self.shared
        inputs = method_tab.inputs | {shared.selection, self.name, self.save, self.official, self.max_new, self.utility,
                                      self.mia, shared.runs_changed}

        @friendly
        def start(values: dict):
            busy = [j for j in studio.jobs("model", "target") if not j.finished]
            if busy:
                raise gr.Error(f"Wait until '{busy[0].title}' (job #{busy[0].id}) finishes: the run needs to know "
                               "which model it unlearns.")
            job = studio.start_run(self._config(values, method_tab))
            ahead = studio.runner.position(job) - 1
            gr.Info(f"Run {job.run_id} queued behind {ahead} job(s)." if ahead > 0 else f"Run {job.run_id} started.")
            return values[shared.runs_changed] + 1

        self.start.click(start, inputs, shared.runs_changed, show_progress="hidden", concurrency_limit=None)

        def sweep_points(values: dict) -> list[RunConfig]:
            grid = parse_grid([item for item in re.split(r"[;\n]", values[self.grid] or "") if item.strip()])
            return points(self._config(values, method_tab), grid, new_sweep_id())

        def sweep_plan(values: dict) -> str:
            try:
                configs = sweep_points(values)
            except (ValueError, KeyError) as error:
                return f"**Not ready:** {html.escape(str(error.args[0] if error.args else error))}"
            names = ", ".join(f"`{c.name}`" for c in configs[:8]) + (" ..." if len(configs) > 8 else "")
            return f"**{len(configs)} points**, each a run of its own in Runs: {names}"

        @friendly
        def start_sweep(values: dict):
            configs = sweep_points(values)
            job = studio.start_sweep(configs)
            gr.Info(f"Sweep {configs[0].sweep} of {len(configs)} points queued (job #{job.id}).")
            return values[shared.runs_changed] + 1

        sweep_inputs = inputs | {self.grid}
        self.grid.change(sweep_plan, sweep_inputs, self.sweep_plan, show_progress="hidden")
        self.start_sweep.click(start_sweep, sweep_inputs, shared.runs_changed, show_progress="hidden",
                               concurrency_limit=None)
        self.tab.select(lambda values: self._plan(values, method_tab), inputs, self.plan, show_progress="hidden")

        def stop():
            job = studio.watched_run_job()
            if job is not None and not job.finished:
                studio.cancel(job.id)
                gr.Info("Stopping after the current step...")

        self.stop.click(stop, None, None, show_progress="hidden")

        def cancel_queued():
            for q in studio.queue():
                if q["state"] == "queued" and q["run_id"]:
                    studio.cancel(q["id"])

        self.cancel_queued.click(cancel_queued, None, None, show_progress="hidden")

        def poll(seen: dict, runs_changed: int):
            job = studio.watched_run_job()
            states = [[j.id, j.state] for j in studio.jobs("run")]
            signature = [job.id, job.state, len(job.steps), round(job.progress, 3), job.stage] if job else None
            queue = self._queue()
            if seen.get("sig") == signature and seen.get("queue") == queue and seen.get("states") == states:
                return (SKIP(),) * 9
            first = "sig" not in seen
            same_job = job is not None and seen.get("job") == job.id
            # evaluation restarts its own count: never let the bar run backwards while the job runs
            shown = job.progress if job else 0.0
            if same_job and job.state == "running":
                shown = max(shown, seen.get("shown", 0.0))
            redraw = job is not None and (not same_job or seen.get("n") != len(job.steps) or first
                                          or seen.get("state") != job.state)
            total, alarm = self._total_steps(job), self._alarm(job)
            plot = loss_curves(job.steps, total, f"Training curves · run {job.run_id}") if redraw else SKIP()
            scores = score_curves(job.steps, total, alarm) if redraw else SKIP()
            path = trajectory(job.steps, alarm) if redraw else SKIP()
            ended = same_job and job.finished and seen.get("state") not in FINISHED
            current = job.run_id if ended and job.run_id else SKIP()
            bump = runs_changed + 1 if (not first and states != seen.get("states")) else SKIP()
            finished = [j for j in studio.jobs("run") if j.finished]
            latest = finished[-1] if finished else None  # the last run to end, even when the next one has started
            result = self._result(latest) if (first or states != seen.get("states")) else SKIP()
            new_seen = {"sig": signature, "queue": queue, "states": states, "job": job.id if job else None,
                        "n": len(job.steps) if job else 0, "state": job.state if job else None, "shown": shown}
            return progress_html(job, shown), queue, plot, scores, path, result, current, bump, new_seen

        shared.timer.tick(poll, [self.seen, shared.runs_changed],
                          [self.progress, self.queue, self.curves, self.scores, self.trajectory, self.result,
                           shared.current_run, shared.runs_changed, self.seen], show_progress="hidden")

    def _alarm(self, job: Job) -> str:
        """The guard's message once it stopped the run, for the plots' alarm."""
        if not job.finished or not job.run_id:
            return ""
        status = self.studio.store.status(job.run_id)
        return status.get("message", "") if status.get("status") == "stopped" else ""

    def _total_steps(self, job: Job) -> int | None:
        try:
            return self.studio.store.config(job.run_id).train.steps if job.run_id else None
        except (OSError, ValueError, TypeError):
            return None
