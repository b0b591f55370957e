"""Section "last_k": a step that trains only the last 8 decoder blocks (as the SemEval-2025 winner does), the engine
with its frozen-prefix cache (unlearning.prefix) against the same Trainer reference with the same blocks frozen.

Same fixed batch, sides alternated as in the step section. The engine runs with the cache (its default) and
without it, so the table shows what the cache itself buys; the cache's one-off cost (computing the frozen blocks for
the batch's samples, inside the first step's time) and its memory are reported apart.
"""
from __future__ import annotations

import time

from benchmarks.common import Context, meets, step_batch, verdict
from benchmarks.step import compare_steps, engine_dtype, engine_run, reference_run, show_steps
from unlearning.engine import TrainConfig, train
from unlearning.prefix import PrefixCache

GOAL = 3.0  # issue 13: reference s/step over engine s/step, last 8 blocks training
K = 8


def cache_cost(ctx: Context, forget, retain) -> dict:
    """Seconds to fill a fresh cache for the batch's samples and the memory it then holds."""
    cache, marks = PrefixCache(), []
    config = TrainConfig(method="grad_diff", method_options={"alpha": 1.0}, steps=1, learning_rate=1e-5,
                         batch_size=len(forget), params="last_k", last_k=K)
    train(ctx.model.model, ctx.model.tokenizer, forget, retain, config, progress=lambda *a: marks.append(time.perf_counter()), prefix=cache)
    tokens = sum(len(s) for s in cache.states)
    return {"fill_seconds": marks[-1] - marks[0], "samples": len(cache.states), "tokens": tokens, "bytes": cache.nbytes,
            "bytes_per_token": cache.nbytes / tokens}


def run(ctx: Context) -> dict:
    loaded = ctx.model
    forget, retain = step_batch(loaded, ctx.batch_size)
    rounds, steps = (1, 3) if ctx.quick else (1, 6)  # one round: `make bench` must fit in 10 minutes
    lr, length = 1e-5, 256
    sides = {
        "cached": lambda n: engine_run(loaded, forget, retain, n, lr, length, params="last_k", last_k=K),
        "uncached": lambda n: engine_run(loaded, forget, retain, n, lr, length, params="last_k", last_k=K, prefix_cache=False),
        "reference": lambda n: reference_run(loaded, forget, retain, n, lr, length, last_k=K),
    }
    dtypes = {"cached": engine_dtype(), "uncached": engine_dtype(), "reference": "float32"}
    result = compare_steps(loaded, forget, retain, sides, rounds, steps, dtypes)
    cached, uncached = result["sides"]["cached"], result["sides"]["uncached"]
    # the cache changes which blocks run, not the maths: its first-step loss is the uncached engine's to rounding
    result["cached_vs_uncached_rel_diff"] = abs(cached["first_step_loss"]["forget_nll"] - uncached["first_step_loss"]["forget_nll"]) / abs(uncached["first_step_loss"]["forget_nll"])
    layers = loaded.model.config.num_hidden_layers
    return result | {"last_k": K, "layers": layers, "goal": GOAL, "cache": cache_cost(ctx, forget, retain)}


def show(result: dict) -> None:
    k, n = result["last_k"], result["layers"]
    labels = {
        "reference": f"Trainer reference, blocks 0-{n - k - 1} frozen (fp32)",
        "uncached": f"studio engine, last {k} blocks, no cache (auto)",
        "cached": f"studio engine, last {k} blocks, prefix cache (auto)",
    }
    show_steps(f"Unlearning step, last {k} of {n} blocks training", result, labels)
    cache = result["cache"]
    print(
        f"  prefix cache: {cache['samples']} samples, {cache['tokens']} tokens, {cache['bytes'] / 2**20:.2f} MiB "
        f"({cache['bytes_per_token'] / 1024:.2f} KiB per token), filled in {cache['fill_seconds']:.2f} s once per run "
        f"(once per sweep for the same model and k); first-step NLL with and without it differ by {result['cached_vs_uncached_rel_diff']:.1e} (relative)"
    )
    ratio = result["sides"]["cached"]["speedup"]
    print(f"  speedup, cached engine: {ratio:.2f}x, {verdict(ratio, result['goal'])}")


def headline(result: dict) -> list[dict]:
    s = result["sides"]["cached"]
    return [{
        "figure": f"last-{result['last_k']} step, cached engine vs Trainer", "value": f"{s['speedup']:.2f}x", "goal": f">= {result['goal']:g}x",
        "verdict": meets(s["speedup"], result["goal"]),
        "same results": "same first-step loss" if s["same_loss"] else "DIFFERENT LOSS",
    }]
