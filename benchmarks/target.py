"""Section "target": wall time from the loaded default model to a ready memorised target of the bundled data, as the
Model tab's button and `prepare-target` do it (train until memorised, measure, save), from an empty target cache.

The bar is the one the default must pass: ROUGE-L recall >= 0.8 on the forget completions, from greedy generations.
--quick memorises 16 records for one epoch: a smoke run of the whole path, not a measurement.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time

from benchmarks.common import Context, cache_at, meets, table, verdict
from unlearning.data import bundled_dataset
from unlearning.target import TargetConfig, prepare_target, target_records

GOAL_SECONDS = 90.0
BAR = 0.8  # ROUGE-L recall on the forget completions


def run(ctx: Context) -> dict:
    records = target_records(bundled_dataset())[: 16 if ctx.quick else None]
    config = TargetConfig(epochs=1) if ctx.quick else TargetConfig()
    stages: list[tuple[float, float, str]] = []
    model = ctx.model  # loaded before the clock starts and before the cache moves: the goal counts from a loaded model
    with tempfile.TemporaryDirectory(prefix="unlearning-bench-target-") as cache, cache_at(cache):
        start = time.perf_counter()  # an empty target cache: the target is really prepared
        _, report = prepare_target(model, records, config, lambda f, s: stages.append((time.perf_counter() - start, f, s)))
        seconds = time.perf_counter() - start
    forget = report["rouge_l_recall_by_split"]["forget"]
    return {
        "model": model.source, "records": len(records), "config": dataclasses.asdict(config), "seconds": seconds,
        "report": report, "forget_recall": forget, "passes_bar": forget >= BAR, "goal_seconds": GOAL_SECONDS, "bar": BAR,
        "progress_updates": len(stages), "longest_progress_gap_seconds": max(b[0] - a[0] for a, b in zip(stages, stages[1:])),
    }


def show(result: dict) -> None:
    r = result["report"]
    table(
        f"Target: {result['model']} memorising the bundled data ({result['records']} forget + retain records), empty cache",
        [{
            "what trains": r["trains"], "epochs": r["epochs"], "steps": r["steps"], "memorised (teacher-forced)": r["memorised"],
            "ROUGE-L forget": result["forget_recall"], "ROUGE-L retain": r["rouge_l_recall_by_split"].get("retain"),
            "train s": r["seconds"], "wall s": result["seconds"],
        }],
    )
    bar = "passes" if result["passes_bar"] else "FAILS"
    print(
        f"  wall time to a ready target {result['seconds']:.1f} s: {verdict(result['seconds'], result['goal_seconds'], higher_is_better=False)} s; "
        f"forget completions ROUGE-L recall {result['forget_recall']:.2f}: {bar} the {result['bar']:g} bar; "
        f"progress updated {result['progress_updates']} times, never more than {result['longest_progress_gap_seconds']:.1f} s apart"
    )


def headline(result: dict) -> list[dict]:
    return [{
        "figure": "wall time to a ready target", "value": f"{result['seconds']:.0f} s", "goal": f"< {result['goal_seconds']:g} s",
        "verdict": meets(result["seconds"], result["goal_seconds"], higher_is_better=False),
        "same results": f"forget ROUGE-L {result['forget_recall']:.2f} ({'passes' if result['passes_bar'] else 'FAILS'} the {result['bar']:g} bar)",
    }]
