"""Run tab: start an unlearning run (a background job), watch its progress and live curves, stop it.

Start only submits to the Studio's job runner and returns. The page then polls once a second (the shared
gr.Timer): it reads the job the runner is working on, so a reload or a second tab picks up the same job.
"""
from __future__ import annotations

import html
import re

import gradio as gr

from app.state import Studio
from app.tabs.common import SKIP, Shared, friendly, progress_html
from app.tabs.method import MethodTab, knob
from app.views import finish_summary
from unlearning.engine import trains
from unlearning.evaluation import EvalConfig
from unlearning.jobs import FINISHED, Job
from unlearning.methods import METHODS
from unlearning.options import options
from unlearning.plan import Plan, PlanError, make_plan
from unlearning.plots import empty_figure, loss_curves, score_curves, trajectory
from unlearning.summary import run_reports
from unlearning.sweep import new_sweep_id, parse_grid, points


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
                                                    "option (lr, steps, params, last_k, seed...), method, or a method "
                                                    "option (alpha, beta...). Every other setting is the one above.")
                        self.sweep_plan = gr.Markdown(elem_id="sweep-plan")
                        self.start_sweep = gr.Button("Start sweep", elem_id="start-sweep")
                    self.progress = gr.HTML(progress_html(None), elem_id="run-progress")
                    self.queue = gr.Markdown(elem_id="run-queue", elem_classes="us-muted")
                with gr.Column(scale=2):
                    with gr.Accordion("Run settings: name, weights, evaluation", open=False, elem_id="run-settings"):
                        self.name = gr.Textbox(label="Run name (optional)", placeholder="e.g. npo-beta-0.5")
                        # on: a newcomer's next step is the Probe tab, which needs the model once it left memory
                        self.save = gr.Checkbox(True, label="Save the unlearned weights", elem_id="save-weights",
                                                info="Keeps the run's model in its folder (the model's size on disk). "
                                                "The probes and your own prompts in Compare need it after a restart, or "
                                                f"once {studio.keep_after} newer runs have pushed it out of memory; the "
                                                "scores, generations and verdict are saved either way.")
                        # every evaluation control is generated from its option: the CLI's flags say the same
                        self.evaluation = {o.name: knob(o, elem_id=f"eval-{o.name.replace('_', '-')}")
                                           for o in options(EvalConfig) if not o.advanced}
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

    def _request(self, values: dict, method_tab: MethodTab) -> dict:
        """The run the controls describe, with this session's own model and data, as the run plan takes it."""
        return {"model": values[self.shared.model_source], "data": values[self.shared.data_source],
                "forget_ids": list(values[self.shared.selection] or []), "train": method_tab.request(values),
                "eval": {name: values[control] for name, control in self.evaluation.items()},
                "save_weights": bool(values[self.save]), "name": (values[self.name] or "").strip()}

    def _checked(self, values: dict, method_tab: MethodTab) -> Plan:
        """The checked plan, or PlanError; a model this session is still loading is not ready to plan with."""
        watched = self.studio.runner.get(values[self.shared.model_job]["id"] or 0)
        if watched is not None and watched.state in ("queued", "running"):
            raise PlanError([f"wait until '{watched.title}' (job #{watched.id}) finishes: the run needs to know "
                             "which model it unlearns"])
        return make_plan(self._request(values, method_tab))

    def _plan(self, values: dict, method_tab: MethodTab) -> str:
        try:
            plan = self._checked(values, method_tab)
        except PlanError as error:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in error.problems)
            return f"**Not ready:**<ul>{items}</ul>"
        config, t, e = plan.config, plan.config.train, plan.config.eval
        retain = "the retain split" if config.retain_ids is None else f"{len(config.retain_ids)} retain samples"
        text = (f"**Plan:** forget **{len(config.forget_ids)}** samples (keep {retain}) of `{config.data}` from model "
                f"`{config.model}` with **{METHODS[t.method].title}**: {t.steps} steps, lr {t.learning_rate:g}, "
                f"batch {t.batch_size}, training {trains(t)}.")
        text += (" Evaluation: **official SemEval protocol** (one prompt at a time in bf16, slow on a CPU)."
                 if e.mode == "official" else f" Evaluation: fast mode ({e.max_new_tokens} new tokens, {e.retain_rows} retain rows).")
        return text + "".join(f" {html.escape(note)}" for note in plan.notes)

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
                f"generations and <b>Metrics</b> for every score.{''.join(notes)}</div>{finish_summary(before, after, self.studio.store.probes(job.run_id))}")

    def _queue(self) -> str:
        waiting = [q for q in self.studio.queue() if q["state"] == "queued"]
        if not waiting:
            return "Queue: empty."
        items = ", ".join(f"#{q['id']} {html.escape(q['title'])} (position {q['position']})" for q in waiting)
        return f"Queue: {items}."

    # ------------------------------------------------------------------------------------------------------ wire

    def wire(self, method_tab: MethodTab) -> None:
        studio, shared = self.studio, self.shared
        inputs = method_tab.inputs | set(self.evaluation.values()) | {
            shared.selection, self.name, self.save, shared.runs_changed, shared.model_source, shared.data_source,
            shared.model_job}

        @friendly
        def start(values: dict):
            job = studio.start_run(self._checked(values, method_tab))
            ahead = studio.runner.position(job) - 1
            gr.Info(f"Run {job.run_id} queued behind {ahead} job(s)." if ahead > 0 else f"Run {job.run_id} started.")
            return values[shared.runs_changed] + 1

        self.start.click(start, inputs, shared.runs_changed, show_progress="hidden", concurrency_limit=None)

        def sweep_plans(values: dict) -> list[Plan]:
            self._checked(values, method_tab)  # the base run's own problems first, said once
            grid = parse_grid([item for item in re.split(r"[;\n]", values[self.grid] or "") if item.strip()])
            return points(self._request(values, method_tab), grid, new_sweep_id())

        def sweep_plan(values: dict) -> str:
            try:
                plans = sweep_plans(values)
            except PlanError as error:
                return "**Not ready:**<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in error.problems) + "</ul>"
            except ValueError as error:
                return f"**Not ready:** {html.escape(str(error))}"
            names = ", ".join(f"`{p.config.name}`" for p in plans[:8]) + (" ..." if len(plans) > 8 else "")
            weights = " Each point saves its weights (untick *Save the unlearned weights* to spare the disk)." \
                if values[self.save] else ""
            return f"**{len(plans)} points**, each a run of its own in Runs: {names}.{weights}"

        @friendly
        def start_sweep(values: dict):
            plans = sweep_plans(values)
            job = studio.start_sweep(plans)
            gr.Info(f"Sweep {plans[0].config.sweep} of {len(plans)} points queued (job #{job.id}).")
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
            # only a redraw reads them, and there is none without a job (a fresh runs folder has none)
            total, alarm = (self._total_steps(job), self._alarm(job)) if redraw else (None, "")
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
