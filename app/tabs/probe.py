"""Probe tab: try to bring a finished run's forgotten answers back, and read how far it is from the oracle.

The probes come from the library's registry (unlearning.probes): one checkbox and one group of options each, built
from the probe's Options dataclass. Running them is one background job through the Studio's job runner, so it queues
with training, shows its progress and can be stopped; the results are read back from the run's probes.json.
It draws when it is opened (and when its own run or job changes), and polls its job on a timer of its own that ticks
only while a probe job is live: drawing five plots at every page load, and a poll every second on every page for a job
that is rarely there, slowed the whole app.
"""
from __future__ import annotations

import gradio as gr

from app.state import Studio
from app.tabs.common import SKIP, Shared, friendly, progress_html, run_choices, run_header
from app.tabs.method import knob
from app.views import probe_cards_html
from unlearning import plots
from unlearning.options import options
from unlearning.probes import PROBES, probe_summary

DEFAULT_PROBES = ["relearn", "quantize", "variants"]  # the oracle trains a model (minutes): ticked on purpose

INTRO = """### Forgotten, or only hidden?
Each probe attacks a finished run's unlearned model and scores its forget samples again: **recovered** is the share of
the forgetting the attack undid (0% = it held, 100% = back to the original). The run's model must be at hand: in
memory for recent runs, or saved with the run."""


class ProbeTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        self.knobs: dict[str, dict[str, gr.components.Component]] = {}
        self.bars: dict[str, gr.Plot] = {}
        with gr.Tab("Probe", id="probe") as self.tab:
            gr.Markdown(INTRO)
            with gr.Row(equal_height=True):
                self.run = gr.Dropdown([], label="Run", scale=3, elem_id="probe-run")
                self.header = gr.Markdown()
            with gr.Row():
                with gr.Column(scale=2):
                    self.choice = gr.CheckboxGroup([(f"{p.title}: {p.asks}", name) for name, p in PROBES.items()],
                                                   value=[n for n in DEFAULT_PROBES if n in PROBES], label="Probes",
                                                   elem_id="probe-choice")
                    with gr.Row():
                        self.start = gr.Button("Run probes", variant="primary", elem_id="run-probes", scale=2)
                        self.stop = gr.Button("Stop", variant="stop", scale=1)
                    self.oracle = gr.Button("Prepare the oracle (cached; minutes on a CPU)", elem_id="prepare-oracle")
                    self.progress = gr.HTML(progress_html(None), elem_id="probe-progress")
                    for name, p in PROBES.items():
                        if options(p.Options):
                            with gr.Accordion(f"Options: {p.title}", open=False, elem_id=f"probe-options-{name}"):
                                self.knobs[name] = {o.name: knob(o) for o in options(p.Options)}
                with gr.Column(scale=3):
                    self.cards = gr.HTML(probe_cards_html({}), elem_id="probe-results")
                    self.curve = gr.Plot(show_label=False, elem_id="probe-curve")
            names = list(PROBES)
            for i in range(0, len(names), 2):
                with gr.Row():
                    for name in names[i : i + 2]:
                        self.bars[name] = gr.Plot(show_label=False, elem_id=f"probe-bars-{name}")
            with gr.Accordion("Everything the probes saved (probes.json)", open=False):
                self.details = gr.JSON(show_label=False)
            self.seen = gr.State({})
            self.timer = gr.Timer(1.0, active=False)

    def draw(self, run_id: str | None):
        studio = self.studio
        choices = gr.update(choices=run_choices(studio), value=run_id)
        probes = studio.store.probes(run_id) if run_id else {}
        bars = [plots.probe_bars(probes[name]["result"].get("bars", {}), f"{PROBES[name].title}: forget set")
                if name in probes else plots.empty_figure(f"{PROBES[name].title}: not run yet") for name in self.bars]
        relearn = probes.get("relearn", {}).get("result", {})
        details = {name: probe_summary(entry) for name, entry in probes.items()}
        return (choices, run_header(studio, run_id), probe_cards_html(probes), *bars,
                plots.relearn_curve(relearn.get("curve", {})), details)

    def options(self, values: dict, names: list[str]) -> dict[str, dict]:
        """The chosen probes' option values from their controls, checked by the library (a readable error if not)."""
        out = {}
        for name in names:
            probe = PROBES[name]
            given = {o: values[control] for o, control in self.knobs.get(name, {}).items()}
            out[name] = {o: getattr(probe.options(given), o) for o in given}
        return out

    def wire(self) -> None:
        studio, shared = self.studio, self.shared
        outputs = [self.run, self.header, self.cards, *self.bars.values(), self.curve, self.details]
        gr.on([self.tab.select, shared.runs_changed.change], self.draw, shared.current_run, outputs,
              show_progress="hidden", trigger_mode="always_last")  # a run that ends during a redraw is not missed
        self.run.input(lambda run_id: run_id, self.run, shared.current_run, trigger_mode="always_last").then(
            self.draw, shared.current_run, outputs, show_progress="hidden")
        inputs = {shared.current_run, self.choice} | {c for knobs in self.knobs.values() for c in knobs.values()}

        @friendly
        def start(values: dict):
            run_id, names = values[shared.current_run], list(values[self.choice] or [])
            if not run_id:
                raise ValueError("Pick a run first.")
            if not names:
                raise ValueError("Tick at least one probe.")
            job = studio.probe(run_id, names, self.options(values, names))
            ahead = studio.runner.position(job) - 1
            gr.Info(f"Probing run {run_id} behind {ahead} job(s)." if ahead > 0 else f"Probing run {run_id} (job #{job.id}).")
            return gr.Timer(active=True)

        self.start.click(start, inputs, self.timer, show_progress="hidden", concurrency_limit=None)

        @friendly
        def oracle(run_id: str | None):
            if not run_id:
                raise ValueError("Pick a run first: its oracle starts from the model its target was prepared from.")
            job = studio.prepare_oracle(run_id)
            gr.Info(f"Preparing the oracle in the background (job #{job.id}); it is cached for every later probe.")
            return gr.Timer(active=True)

        self.oracle.click(oracle, shared.current_run, self.timer, show_progress="hidden", concurrency_limit=None)

        def stop():
            job = studio.latest_job("probe", "oracle")
            if job is not None and not job.finished:
                studio.cancel(job.id)
                gr.Info("Stopping; finished probes are kept.")

        self.stop.click(stop, None, None, show_progress="hidden")

        def poll(seen: dict, runs_changed: int):
            job = studio.latest_job("probe", "oracle")
            live = job is not None and not job.finished
            signature = [job.id, job.state, round(job.progress, 3), job.stage] if job else None
            if seen.get("sig") == signature:
                return SKIP(), SKIP(), SKIP(), gr.Timer(active=live)
            # a probe job that just ended wrote probes.json: every view of runs redraws (cards, Runs' robust? column)
            ended = job is not None and job.finished and seen.get("job") == job.id and seen.get("state") not in (
                "done", "failed", "cancelled")
            new_seen = {"sig": signature, "job": job.id if job else None, "state": job.state if job else None}
            return progress_html(job), runs_changed + 1 if ended else SKIP(), new_seen, gr.Timer(active=live)

        self.timer.tick(poll, [self.seen, shared.runs_changed], [self.progress, shared.runs_changed, self.seen, self.timer],
                        show_progress="hidden")
        self.tab.select(lambda: gr.Timer(active=True), None, self.timer, show_progress="hidden")  # re-attach to a job
