"""Section "first_verdict": wall time from a loaded default model, with nothing cached, to a first trustworthy verdict,
the way a new user gets one: the bundled data's target and its oracle, a run of the IdK preset on every forget
sample (both evaluations, the oracle's evaluation and the knowledge checks), then the verdict's training-free
robustness check (the quantisation probe). Every progress update is timed: the time goes to the stage that the next
update names, and the longest gap between two updates is the figure for "every stage moves".

--quick uses 16 records, a 4-step run and one epoch: a smoke run of the whole path, not a measurement.
"""
from __future__ import annotations

import re
import tempfile
import time
from collections import defaultdict

from benchmarks.common import Context, cache_at, meets, table, verdict
from unlearning.data import bundled_dataset, cached_data
from unlearning.models import cpu_has_bf16
from unlearning.evaluation.verdict import judge
from unlearning.experiment import run_experiment
from unlearning.methods import get_method
from unlearning.models import cached_model
from unlearning.oracle import prepare_oracle
from unlearning.plan import make_plan
from unlearning.probes.runner import run_probes
from unlearning.runs import RunStore
from unlearning.summary import run_reports
from unlearning.target import TargetConfig, prepare_target, target_records

GOAL_SECONDS = {True: 90.0, False: 180.0}  # with bf16 matmuls, without
GOAL_GAP_SECONDS = 2.0


def stage_of(phase: str, text: str) -> str:
    """A progress text without its counts: 'evaluating after: generate 3/8 prompts' -> 'run: evaluating after: generate'."""
    words = re.sub(r"\(.*?\)|[-+]?\d[\d.,/%]*\s*\w*", "", text).split(":")
    return ": ".join([phase] + [w.strip(" ,;") for w in words[:2] if w.strip(" ,;")])


class Clock:
    """Every progress update of every phase, with its time since the start."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.events: list[tuple[float, str, str]] = []  # (seconds, stage, text)

    def progress(self, phase: str):
        return lambda fraction, text: self.events.append((time.perf_counter() - self.start, stage_of(phase, text), text))

    def mark(self, phase: str, text: str) -> None:
        self.events.append((time.perf_counter() - self.start, phase, text))

    def stages(self) -> list[dict]:
        seconds: dict[str, float] = defaultdict(float)
        updates: dict[str, int] = defaultdict(int)
        previous = 0.0
        for at, stage, _ in self.events:
            seconds[stage] += at - previous
            updates[stage] += 1
            previous = at
        return [{"stage": s, "seconds": seconds[s], "updates": updates[s]} for s in seconds]

    def gaps(self) -> list[tuple[float, str, str]]:
        """Every gap between two updates, (seconds, the update before, the update after), longest first."""
        return sorted(((b[0] - a[0], a[2], b[2]) for a, b in zip(self.events, self.events[1:])), reverse=True)


def run(ctx: Context) -> dict:
    model = cached_model("default")  # loaded before the clock starts (the goal counts from a loaded model), and the
    # one the oracle's preparation finds in memory, as in the CLI and the app
    data = bundled_dataset()
    records = target_records(data)[: 16 if ctx.quick else None]
    config = TargetConfig(epochs=1) if ctx.quick else TargetConfig()
    preset = get_method("idk").presets[0]
    train = {**preset.train, "method": "idk", "method_options": dict(preset.options)}
    if ctx.quick:
        train.update(steps=4, score_every=2)
    with tempfile.TemporaryDirectory(prefix="unlearning-bench-verdict-") as tmp, cache_at(tmp) as cache:
        clock = Clock()
        folder, target = prepare_target(model, records, config, clock.progress("target"))
        clock.mark("target", "ready")
        prepare_oracle(str(folder), cached_data("bundled"), clock.progress("oracle"))
        clock.mark("oracle", "ready")
        forget = [r.id for r in data.split("forget")][: 4 if ctx.quick else None]
        plan = make_plan({"model": str(folder), "data": "bundled", "forget_ids": forget, "train": train})
        store = RunStore(cache / "runs")
        run_id, unlearned = run_experiment(plan, store, clock.progress("run"))
        clock.mark("run", "done")
        run_probes(store, run_id, ["quantize"], unlearned=unlearned, progress=clock.progress("quantize probe"))
        clock.mark("quantize probe", "done")
        before, after = run_reports(store, run_id)
        found = judge(before, after, store.probes(run_id))
        seconds = time.perf_counter() - clock.start
        status = store.status(run_id)["status"]
    gaps = clock.gaps() or [(0.0, "", "")]
    gap, gap_from, gap_to = gaps[0]
    return {
        "model": model.source, "records": len(records), "forget": len(forget), "steps": train["steps"],
        "seconds": seconds, "goal_seconds": GOAL_SECONDS[cpu_has_bf16()], "status": status,
        "target_epochs": target["epochs"], "target_recall": target["rouge_l_recall"],
        "findings": {f.aspect: f.status for f in found.findings},
        "stages": clock.stages(), "longest_gap_seconds": gap, "longest_gap_between": [gap_from, gap_to],
        "goal_gap_seconds": GOAL_GAP_SECONDS, "progress_updates": len(clock.events),
        "gaps_over_goal": [list(g) for g in gaps if g[0] > GOAL_GAP_SECONDS][:10],
    }


def show(result: dict) -> None:
    stages = sorted(result["stages"], key=lambda s: -s["seconds"])
    table(f"First verdict: {result['model']}, bundled data ({result['records']} target records, {result['forget']} "
          f"forget samples, IdK preset {result['steps']} steps), empty cache; time per stage, largest first",
          [{**s, "share": s["seconds"] / result["seconds"]} for s in stages], floats="{:.3g}")
    print(f"  wall time to the first verdict {result['seconds']:.0f} s: "
          f"{verdict(result['seconds'], result['goal_seconds'], higher_is_better=False)} s; run {result['status']}; "
          f"target {result['target_epochs']} epochs, ROUGE-L {result['target_recall']:.2f}; verdict "
          + ", ".join(f"{a} {s}" for a, s in result["findings"].items()))
    a, b = result["longest_gap_between"]
    print(f"  {result['progress_updates']} progress updates, the longest gap {result['longest_gap_seconds']:.1f} s "
          f"(goal <= {result['goal_gap_seconds']:g} s), between {a!r} and {b!r}")
    for seconds, a, b in result.get("gaps_over_goal", [])[1:]:
        print(f"    also over the goal: {seconds:.1f} s between {a!r} and {b!r}")


def headline(result: dict) -> list[dict]:
    return [
        {"figure": "first verdict from a loaded model, nothing cached", "value": f"{result['seconds']:.0f} s",
         "goal": f"<= {result['goal_seconds']:g} s", "verdict": meets(result["seconds"], result["goal_seconds"] + 1e-9, False),
         "same results": "verdict " + " ".join(f"{a}:{s}" for a, s in result["findings"].items())},
        {"figure": "longest gap between progress updates", "value": f"{result['longest_gap_seconds']:.1f} s",
         "goal": f"<= {result['goal_gap_seconds']:g} s",
         "verdict": meets(result["longest_gap_seconds"], result["goal_gap_seconds"] + 1e-9, False), "same results": ""},
    ]
