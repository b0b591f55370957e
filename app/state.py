"""The studio's process-level state: one object shared by every browser tab. No gradio here.

Jobs, runs, loaded models and the unlearned models live in the Studio, not in a browser session, so a page
reload or a second tab sees the same running job, and closing the browser stops nothing. Sessions keep what is
theirs: the model and the dataset they chose, the forget samples they ticked and the run they are looking at; so
one user loading data never changes what another user's run trains on.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from transformers import PreTrainedModel

from unlearning.data import DataError, UnlearningData, cached_data
from unlearning.evaluation import Cancelled, generate
from unlearning.experiment import run_experiment
from unlearning.html_report import write_report
from unlearning.jobs import Job, JobRunner, ticking
from unlearning.models import DEFAULT_MODEL, TINY_MODEL, cached_model, load_model, model_facts
from unlearning.plan import Plan
from unlearning.probes import problem, run_probes
from unlearning.probes.runner import saved_model
from unlearning.oracle import prepare_oracle
from unlearning.runs import ACTIVE, RunStore
from unlearning.summary import run_summary
from unlearning.sweep import run_sweep
from unlearning.target import TargetConfig, estimate_seconds, prepare_target, target_records

EXPORT_PREFIX = "unlearning-export-"
class Studio:
    """The job runner, the run store, what is known of each loaded model, and the unlearned models of recent runs.

    `default_model` and `default_data` are what a new session starts with; each session then keeps its own choice
    (the app holds it in the browser) and passes it in.
    """

    def __init__(self, runs: str | Path = "runs", model: str = DEFAULT_MODEL, data: str = "bundled",
                 keep_after: int = 2, preload: bool = True) -> None:
        self.runner = JobRunner()
        self.store = RunStore(runs)
        # runs whose process is gone (the last shutdown, a killed CLI run): marked interrupted, never lost; runs of
        # live processes (a CLI run, a second app on the same folder) are left alone
        self.recovered = self.store.recover()
        self.default_model, self.default_data = model, data
        self.keep_after = keep_after
        self._facts: dict[str, dict] = {}  # model source -> model_facts, once loaded
        self._targets: dict[str, dict] = {}  # model source -> its target report, for prepared targets
        self._after: OrderedDict[str, PreTrainedModel] = OrderedDict()
        self._kinds: dict[int, str] = {}
        self._summaries: dict[str, tuple[tuple, dict]] = {}
        self._lock = threading.Lock()
        self.preload_job = self.load_model(model) if preload else None

    # ------------------------------------------------------------------------------------------------------ jobs

    def submit(self, kind: str, title: str, fn) -> Job:
        job = self.runner.submit(title, fn)
        self._kinds[job.id] = kind
        return job

    def jobs(self, *kinds: str) -> list[Job]:
        return [j for j in self.runner.jobs() if not kinds or self._kinds.get(j.id) in kinds]

    def latest_job(self, *kinds: str) -> Job | None:
        jobs = self.jobs(*kinds)
        return jobs[-1] if jobs else None

    def watched_run_job(self) -> Job | None:
        """The run a Run tab follows: the one training now, else the next in line, else the latest finished."""
        jobs = self.jobs("run")
        for state in ("running", "queued"):
            live = [j for j in jobs if j.state == state]
            if live:
                return live[0]
        return jobs[-1] if jobs else None

    def queue(self) -> list[dict]:
        return [
            {"id": j.id, "title": j.title, "state": j.state, "position": self.runner.position(j),
             "progress": j.progress, "stage": j.stage, "run_id": j.run_id}
            for j in self.runner.jobs() if not j.finished
        ]

    def cancel(self, job_id: int) -> None:
        job = self.runner.get(job_id)
        if job is None:
            return
        self.runner.cancel(job_id)
        if job.state == "queued" and job.run_id:  # it will never start: say so in its run folder too
            self.store.set_status(job.run_id, "cancelled", "cancelled before it started")

    # ----------------------------------------------------------------------------------------------------- model

    def load_model(self, source: str) -> Job:
        """Load a model in the background; the job's result is its source, which the asking session then uses."""
        def work(job: Job) -> str:
            with ticking(job.report, 0.05, 0.9, f"loading {source} (a first load of the default model converts it once, ~20 s)", 20.0):
                loaded = cached_model(source)
            job.report(0.9, "measuring the model")
            facts = model_facts(loaded)
            target = Path(source) / "target.json"
            report = _read_json(target) if source not in (DEFAULT_MODEL, TINY_MODEL) and target.exists() else None
            data = cached_data(self.default_data)
            records = target_records(data)
            if report is None and records:  # a base model: offer to prepare its target, saying how long that takes here
                job.report(0.92, "timing two training steps, to tell how long preparing a target and its oracle takes")
                try:
                    facts["target_seconds"] = estimate_seconds(loaded, records, oracle_records=len(data.split("retain")))
                except (ValueError, RuntimeError, MemoryError):  # no offer, but the model still loads
                    pass
            with self._lock:
                self._facts[source] = facts
                if report is not None:
                    self._targets[source] = report
            job.report(1.0, f"loaded {source}")
            return source

        return self.submit("model", f"Load model {source}", work)

    def facts(self, source: str) -> dict | None:
        """What model_facts says of a loaded model; None until it has loaded in this process."""
        return self._facts.get(source)

    def target_report(self, source: str) -> dict | None:
        """The memorisation report of a prepared target, None for any other model."""
        return self._targets.get(source)

    def prepare_target(self, base_source: str, data_source: str, config: TargetConfig) -> Job:
        """Memorise a dataset's forget and retain splits into a model, then prepare its oracle (the same base and
        settings on the retain split only: what every verdict reads a run against); the job's result is the target's
        source."""

        def work(job: Job) -> str | None:
            with ticking(job.report, 0.0, 0.02, f"loading {base_source}", expected_seconds=5.0):
                base = cached_model(base_source)
            data = cached_data(data_source)
            try:
                folder, report = prepare_target(base, target_records(data), config,
                                                lambda f, stage: job.report(0.02 + 0.5 * f, f"target: {stage}"), job.cancel)
                oracle, oracle_report, _ = prepare_oracle(str(folder), data,
                                                          lambda f, stage: job.report(0.52 + 0.43 * f, f"oracle: {stage}"),
                                                          job.cancel)
            except (RuntimeError, Cancelled):
                if job.cancel.is_set():
                    return None
                raise
            report = {**report, "oracle": {"folder": str(oracle), **oracle_report}}
            with ticking(job.report, 0.95, 0.99, "loading the target", expected_seconds=3.0):
                loaded = cached_model(str(folder))
            facts = model_facts(loaded)
            with self._lock:
                self._facts[str(folder)] = facts
                self._targets[str(folder)] = {**report, "folder": str(folder), "data": data_source}
            job.report(1.0, f"target ready: ROUGE-L recall {report['rouge_l_recall']:.2f}; its oracle too")
            return str(folder)

        return self.submit("target", f"Prepare target of {base_source} on {data_source}", work)

    # ------------------------------------------------------------------------------------------------------ data

    def data(self, source: str) -> UnlearningData:
        """A dataset (loaded once per process, shared read-only); raises DataError when the source is unusable."""
        return cached_data(source)

    def load_upload(self, path: str | Path) -> str:
        """Keep an uploaded table and return it as a data source; a file that fails to load is not kept, and the
        message names the file as the user knows it, not our copy."""
        saved = self.save_upload(path)
        try:
            self.data(saved)
        except DataError as error:
            Path(saved).unlink(missing_ok=True)
            raise DataError(str(error).replace(saved, Path(path).name)) from error
        return saved

    def save_upload(self, path: str | Path) -> str:
        """Copy an uploaded table next to the runs, named by content, so runs can reload it after a restart."""
        path = Path(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        name = re.sub(r"[^\w.-]", "_", path.name)
        target = self.store.root / "uploads" / f"{digest}-{name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copyfile(path, target)
        return str(target)

    # ------------------------------------------------------------------------------------------------------ runs

    def start_run(self, plan: Plan) -> Job:
        """Create the run folder now (it shows as queued) and hand the checked plan to the job runner."""
        config = plan.config
        run_id = self.store.create(config)

        def work(job: Job) -> str:
            _, model = run_experiment(plan, self.store, job.report, job.steps.append, job.cancel, run_id)
            if model is not None:
                self._remember(run_id, model)
            return run_id

        title = f"Unlearn with {config.train.method}, {config.train.steps} steps" + (f" ({config.name})" if config.name else "")
        job = self.submit("run", title, work)
        job.run_id = run_id
        return job

    def start_sweep(self, plans: list[Plan]) -> Job:
        """A sweep is one job: its points run in turn, each a run of its own; the Run tab follows the current point."""

        def started(job: Job, run_id: str) -> None:
            job.steps.clear()  # the live curves show the point being trained
            job.run_id = run_id

        def work(job: Job) -> list[str]:
            return run_sweep(plans, self.store, job.report, job.cancel, lambda run_id: started(job, run_id),
                             job.steps.append)

        return self.submit("run", f"Sweep of {len(plans)} points ({plans[0].config.sweep})", work)

    def _remember(self, run_id: str, model: PreTrainedModel) -> None:
        with self._lock:
            self._after[run_id] = model
            self._after.move_to_end(run_id)
            while len(self._after) > self.keep_after:  # each is a whole model copy: keep only the latest few
                self._after.popitem(last=False)

    def after_model(self, run_id: str) -> PreTrainedModel | None:
        """The unlearned model of a run: in memory for the latest runs, else from its saved weights, else None."""
        with self._lock:
            if run_id in self._after:
                self._after.move_to_end(run_id)
                return self._after[run_id]
        folder = saved_model(self.store, run_id)
        if folder is None:
            return None
        model = load_model(str(folder)).model
        self._remember(run_id, model)
        return model

    def has_after_model(self, run_id: str) -> bool:
        return run_id in self._after or saved_model(self.store, run_id) is not None

    # ---------------------------------------------------------------------------------------------------- probes

    def probe(self, run_id: str, names: list[str], options: dict[str, dict] | None = None) -> Job:
        """Probe a finished run in the background (one job for all the chosen probes, queued with training).

        A run that cannot be probed (cancelled, or its model neither in memory nor saved) is refused here, before
        anything queues, with the reason."""
        why = problem(self.store, run_id, self.has_after_model(run_id))
        if why:
            raise ValueError(why)

        def work(job: Job) -> dict:
            job.report(0.0, "loading the run's models")
            return run_probes(self.store, run_id, names, options, self.after_model(run_id), job.report, job.cancel)

        job = self.submit("probe", f"Probe run {run_id}: {', '.join(names)}", work)
        job.run_id = run_id
        return job

    def prepare_oracle(self, run_id: str) -> Job:
        """Prepare (and cache) the oracle of a run: its target's base model trained on the retain split only."""
        config = self.store.config(run_id)

        def work(job: Job) -> str | None:
            try:
                folder, report, note = prepare_oracle(config.model, cached_data(config.data), job.report, job.cancel)
            except Cancelled:
                return None
            job.report(1.0, f"oracle ready ({note}): ROUGE-L recall {report['rouge_l_recall']:.2f} on the retain split")
            return str(folder)

        job = self.submit("oracle", f"Prepare the oracle of run {run_id}", work)
        job.run_id = run_id
        return job

    def generate_pair(self, run_id: str, prompt: str, max_new_tokens: int = 48) -> dict:
        """The same prompt through the original model and the run's unlearned model (None when it is not at hand)."""
        config = self.store.config(run_id)
        original = cached_model(config.model)
        before = generate(original.model, original.tokenizer, [prompt], max_new_tokens)[0]
        after_model = self.after_model(run_id)
        after = generate(after_model, original.tokenizer, [prompt], max_new_tokens)[0] if after_model is not None else None
        return {"before": before, "after": after}

    def export(self, run_id: str) -> Path:
        """A zip of the run's folder (config, status, curves, reports, weights if saved) in a fresh temp folder, which
        discard_export removes once the zip has been handed over."""
        folder = self.store.path(run_id)
        out = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX)) / f"run-{run_id}"
        return Path(shutil.make_archive(str(out), "zip", root_dir=folder.parent, base_dir=folder.name))

    def report(self, run_ids: list[str]) -> Path:
        """One self-contained HTML page of these runs (unlearning.html_report) in a fresh temp folder
        (discard_export removes it once served)."""
        name = f"report-{run_ids[0]}" + (f"-and-{len(run_ids) - 1}-more" if len(run_ids) > 1 else "")
        return write_report(self.store, run_ids, Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX)) / f"{name}.html")

    @staticmethod
    def discard_export(path: str | Path | None) -> None:
        """Remove an export's temp folder: gradio serves its own copy of the zip (a zip with weights is as large as
        the model, and every export makes one)."""
        if path and Path(path).parent.name.startswith(EXPORT_PREFIX):
            shutil.rmtree(Path(path).parent, ignore_errors=True)

    def summaries(self) -> list[dict]:
        """Every run, newest first, damaged ones included (unlearning.summary); cached until the run's files change.
        An active run is read afresh each time: its process may have stopped without touching its files."""
        out = []
        for run_id in self.store.ids():
            stamp = _stamp(self.store.path(run_id))
            cached = self._summaries.get(run_id)
            if cached is None or cached[0] != stamp or cached[1]["status"] in ACTIVE:
                try:
                    cached = (stamp, run_summary(self.store, run_id))
                except ValueError:  # deleted while we listed it
                    continue
                self._summaries[run_id] = cached
            out.append(cached[1])
        return out

    def delete(self, run_id: str) -> None:
        """Delete a run, damaged ones too (the store refuses one in progress), and forget what memory holds of it."""
        self.store.delete(run_id)
        with self._lock:
            self._after.pop(run_id, None)
            self._summaries.pop(run_id, None)


RUN_FILES = ("config.json", "status.json", "metrics.jsonl", "before.json", "after.json", "probes.json")


def _stamp(folder: Path) -> tuple:
    """When each of a run's files last changed (0 when missing): a summary is rebuilt when any of them does."""
    stamps = []
    for name in RUN_FILES:
        try:
            stamps.append((folder / name).stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return tuple(stamps)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
