"""Section "eval": `evaluate.generate` (batched, sorted by length, left padding) against one prompt at a time as the
official SemEval script does, on the same prompts, with the per-sample scores of both compared."""
from __future__ import annotations

import statistics
import time

import torch

from benchmarks.common import Context, meets, table, verdict
from unlearning.data import bundled_dataset
from unlearning.data.records import Record
from unlearning.evaluation import EvalConfig, generate
from unlearning.evaluation.official import score, task_aggregate
from unlearning.models import LoadedModel

GOAL = 5.0  # one-at-a-time seconds over batched seconds


@torch.inference_mode()
def one_at_a_time(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The official SemEval-2025 script's loop: one prompt, no padding, greedy, KV cache, new tokens decoded."""
    generations = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt").to(model.device)
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True, pad_token_id=tokenizer.eos_token_id
        )
        generations.append(tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)[0])
    return generations


def eval_records(n: int = 40) -> list[Record]:
    """n bundled forget/retain records, half sentence completions and half questions, interleaved."""
    pool = [r for r in bundled_dataset().records if r.split != "holdout"]
    sc, qa = [r for r in pool if r.kind == "sc"], [r for r in pool if r.kind == "qa"]
    return [r for pair in zip(sc[: n // 2], qa[: n - n // 2]) for r in pair]


def compare(loaded: LoadedModel, records: list[Record], max_new_tokens: int = 64, batch_size: int = EvalConfig.generation_batch_size) -> dict:
    """Batched `generate` vs one at a time on the same prompts; batched runs before and after, sharing the noise."""
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    prompts = [r.input for r in records]
    generate(model, tokenizer, prompts[:1], max_new_tokens=2)  # warm-up: first-call allocations and kernel choice

    def timed(fn):
        start = time.perf_counter()
        return fn(), time.perf_counter() - start

    batched, first = timed(lambda: generate(model, tokenizer, prompts, max_new_tokens, batch_size))
    single, single_seconds = timed(lambda: one_at_a_time(model, tokenizer, prompts, max_new_tokens))
    again, second = timed(lambda: generate(model, tokenizer, prompts, max_new_tokens, batch_size))
    batched_seconds = (first + second) / 2
    scores = {"batched": [score(r, g) for r, g in zip(records, batched)], "one_at_a_time": [score(r, g) for r, g in zip(records, single)]}
    rows = {k: [{**r.to_dict(), "official": s} for r, s in zip(records, v)] for k, v in scores.items()}
    aggregates = {k: task_aggregate(v)[0] for k, v in rows.items()}
    ratio = single_seconds / batched_seconds
    return {
        "model": loaded.source, "prompts": len(prompts), "kinds": {k: sum(r.kind == k for r in records) for k in ("sc", "qa")},
        "max_new_tokens": max_new_tokens, "batch_size": batch_size,
        "batched_seconds": [first, second], "mean_batched_seconds": batched_seconds, "one_at_a_time_seconds": single_seconds,
        "batched_deterministic": batched == again,
        "differing_generations": sum(a != b for a, b in zip(batched, single)),
        "differing_scores": sum(a != b for a, b in zip(scores["batched"], scores["one_at_a_time"])),
        "max_score_diff": max(abs(a - b) for a, b in zip(scores["batched"], scores["one_at_a_time"])),
        "mean_score": {k: statistics.fmean(v) for k, v in scores.items()},
        "task_aggregate": aggregates, "aggregate_diff": abs(aggregates["batched"] - aggregates["one_at_a_time"]),
        "speedup": ratio, "goal": GOAL,
    }


def run(ctx: Context) -> dict:
    return compare(ctx.model, eval_records(12 if ctx.quick else 24), ctx.max_new_tokens or (16 if ctx.quick else 64), ctx.eval_batch_size)


def show(result: dict) -> None:
    table(
        f"Evaluation: {result['model']}, {result['prompts']} prompts ({result['kinds']['sc']} sc, {result['kinds']['qa']} qa), "
        f"greedy, max_new_tokens={result['max_new_tokens']}",
        [
            {"implementation": "one at a time (official loop)", "seconds": result["one_at_a_time_seconds"],
             "mean score": result["mean_score"]["one_at_a_time"], "task aggregate": result["task_aggregate"]["one_at_a_time"]},
            {"implementation": f"evaluate.generate (batch {result['batch_size']})", "seconds": result["mean_batched_seconds"],
             "mean score": result["mean_score"]["batched"], "task aggregate": result["task_aggregate"]["batched"]},
        ],
    )
    print(
        f"  differing generations: {result['differing_generations']} of {result['prompts']}, differing scores: "
        f"{result['differing_scores']}, max per-sample score difference {result['max_score_diff']:.3g}, aggregate "
        f"difference {result['aggregate_diff']:.3g}"
    )
    print(f"  speedup (one-at-a-time s / batched s): {result['speedup']:.2f}x, {verdict(result['speedup'], result['goal'])}")


def headline(result: dict) -> list[dict]:
    same = result["differing_generations"] == 0 and result["aggregate_diff"] == 0
    return [{
        "figure": "evaluation, batched vs one at a time", "value": f"{result['speedup']:.2f}x", "goal": f">= {result['goal']:g}x",
        "verdict": meets(result["speedup"], result["goal"]),
        "same results": "identical generations and scores" if same else f"{result['differing_generations']} generations differ",
    }]
