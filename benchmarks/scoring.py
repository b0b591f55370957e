"""Section "scoring": what the in-run scores (unlearning.monitor) cost a default run.

A default run trains all weights for TrainConfig's default steps and, every `score_every` steps (and before the first
and after the last), scores the forget selection and the fixed retain-eval sample in one teacher-forced no-grad pass.
Both costs are measured in this process on the bundled data's six forget completions and 40 retain rows: the seconds
of a training step (the median over a short run) and of a scoring pass (the median of three). The overhead of a whole
run at each interval follows from them: passes x pass seconds / (steps x step seconds). A last-k run's pass, which
reads the frozen-prefix cache, is timed too.
"""
from __future__ import annotations

import statistics
import time

from benchmarks.common import Context, meets, table, verdict
from unlearning.data import bundled_dataset
from unlearning.engine import TrainConfig, train
from unlearning.evaluation import EvalConfig
from unlearning.plan import selection
from unlearning.monitor import Monitor
from unlearning.prefix import PrefixCache, tail

GOAL = 0.15  # issue 13.3: at most 15% of training time at the default interval
INTERVALS = (5, 10, 20)
LAST_K = 8  # the SemEval winner's choice, the presets' too


def passes(steps: int, every: int) -> int:
    """Scoring passes in a run: step 0, every `every` steps, and the last step."""
    return len({0, steps, *range(every, steps + 1, every)})


def run(ctx: Context) -> dict:
    loaded, data = ctx.model, bundled_dataset()
    forget = [r for r in data.split("forget") if r.kind == "sc"][:6]
    sel = selection(data, forget, [r for r in data.split("retain")], EvalConfig())
    steps = 3 if ctx.quick else 5
    config = TrainConfig(steps=steps, score_every=0, batch_size=ctx.batch_size)
    history = train(loaded.model, loaded.tokenizer, sel.forget, sel.retain, config).history
    step_seconds = statistics.median(log["seconds"] for log in history[1:])  # the first step pays for the set-up
    monitor = Monitor(loaded.tokenizer, sel.forget, sel.retain_eval, TrainConfig(), loaded.model, holdout=sel.holdout)
    monitor.score(loaded.model, 0)  # step 0 also measures the holdout level once: not the per-pass cost

    def median_pass(tail: tuple | None = None) -> float:
        seconds = []
        for step in (1,) if ctx.quick else (1, 2, 3):  # --quick: one pass of each kind, a smoke run
            start = time.perf_counter()
            monitor.score(loaded.model, step, tail)
            seconds.append(time.perf_counter() - start)
        return statistics.median(seconds)

    pass_s = median_pass()
    # a last-k run scores through the frozen-prefix cache: the same pass on its last k blocks (unlearning.engine);
    # passes after step 0 read only the forget and retain-eval samples
    cache = PrefixCache()
    cache.fill(loaded.model, loaded.model, LAST_K, None, monitor.features)
    last_k_pass_s = median_pass((tail(loaded.model, LAST_K), cache))
    default_steps, default_every = TrainConfig.steps, TrainConfig.score_every
    overheads = {every: passes(default_steps, every) * pass_s / (default_steps * step_seconds) for every in INTERVALS}
    return {"step_seconds": step_seconds, "pass_seconds": pass_s, "last_k": LAST_K,
            "last_k_pass_seconds": last_k_pass_s, "scored_samples": len(sel.forget) + len(sel.retain_eval),
            "steps": default_steps, "default_every": default_every, "overheads": overheads,
            "default_overhead": overheads.get(default_every, passes(default_steps, default_every) * pass_s
                                              / (default_steps * step_seconds)), "goal": GOAL}


def show(result: dict) -> None:
    table(f"In-run scores on a default run ({result['steps']} full-weight steps; {result['scored_samples']} samples "
          f"scored per pass, teacher forced)",
          [{"score every": every, "passes": passes(result["steps"], every), "overhead": f"{overhead:.1%}"}
           for every, overhead in result["overheads"].items()])
    print(f"  a training step {result['step_seconds']:.2f} s, a scoring pass {result['pass_seconds']:.2f} s; at the default "
          f"interval ({result['default_every']}) the overhead is {result['default_overhead']:.1%}: "
          f"{verdict(result['default_overhead'], result['goal'], higher_is_better=False)}")
    print(f"  a run training the last {result['last_k']} blocks scores through the frozen-prefix cache: a pass "
          f"{result['last_k_pass_seconds']:.2f} s, {result['last_k_pass_seconds'] / result['pass_seconds']:.0%} of the "
          f"whole model's")


def headline(result: dict) -> list[dict]:
    return [{"figure": f"in-run scores every {result['default_every']} steps, share of training time",
             "value": f"{result['default_overhead']:.1%}", "goal": f"<= {result['goal']:.0%}",
             "verdict": meets(result["default_overhead"], result["goal"], higher_is_better=False),
             "same results": "scores only read the model"}]
