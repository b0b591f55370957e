"""Section "official": official mode's evaluation against the organisers' own loop, on the same model and prompts.

The organisers' script loads the model in bf16, generates one prompt at a time (benchmarks.evaluation.one_at_a_time)
and scores the texts; official mode runs the same loop and adds the studio's metrics (teacher-forced answer scores,
fluency, utility, MIA). The section times the two generation loops prompt by prompt in turn (sharing the noise),
compares their texts, times an official evaluation per stage, then tries the one batching that could leave bf16
generations unchanged: prompts of equal token length, together, without padding.
LUME validation rows where ../shared holds them (the issue's 36), else the bundled data.
--quick: 4 prompts, 8 new tokens (a smoke run of the path, not a measurement).
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import torch

from benchmarks.common import Context, meets, table
from benchmarks.evaluation import eval_records, one_at_a_time
from unlearning.data import load_data
from unlearning.data.records import Record
from unlearning.evaluation import EvalConfig, evaluate, generate
from unlearning.evaluation.report import bf16_copy
from unlearning.models import LoadedModel

LUME = Path(__file__).resolve().parents[2] / "shared" / "data" / "lume-validation"


def lume_rows(n: int) -> tuple[list[Record], list[str], list[str]]:
    """n LUME validation rows (half forget, half retain) with the data's MIA documents, or bundled rows without."""
    if not LUME.is_dir():
        return eval_records(n), [], []
    data = load_data(str(LUME))
    return data.split("forget")[: n // 2] + data.split("retain")[: n - n // 2], data.mia_members, data.mia_nonmembers


@torch.inference_mode()
def equal_length_batches(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str | None]:
    """Each prompt generated together with the others of its token length, unpadded (None: no other of its length)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, prompt in enumerate(prompts):
        groups[len(tokenizer(prompt)["input_ids"])].append(i)
    out: list[str | None] = [None] * len(prompts)
    for indices in (g for g in groups.values() if len(g) > 1):
        enc = tokenizer([prompts[i] for i in indices], return_tensors="pt").to(model.device)
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                             pad_token_id=tokenizer.eos_token_id)
        for i, text in zip(indices, tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)):
            out[i] = text
    return out


def compare(loaded: LoadedModel, records: list[Record], members: list[str], nonmembers: list[str],
            max_new_tokens: int) -> dict:
    prompts = [r.input for r in records]
    model = bf16_copy(loaded.model).eval()  # the organisers' from_pretrained(..., dtype=torch.bfloat16)
    one_at_a_time(model, loaded.tokenizer, prompts[:1], 2)  # warm-up: first-call allocations, kernel choice
    # The two loops prompt by prompt, alternating, so they share the machine's noise; ours reports every token as an
    # evaluation's does.
    theirs, ours, seconds = [], [], {"organisers": 0.0, "studio": 0.0}
    for prompt in prompts:
        for side, out in (("organisers", theirs), ("studio", ours)):
            start = time.perf_counter()
            out += (one_at_a_time(model, loaded.tokenizer, [prompt], max_new_tokens) if side == "organisers" else
                    generate(model, loaded.tokenizer, [prompt], max_new_tokens, 1, lambda done, total: None))
            seconds[side] += time.perf_counter() - start

    stages: dict[str, float] = defaultdict(float)
    last = [0.0]

    def progress(fraction: float, text: str) -> None:  # the time goes to the stage the update names
        now = time.perf_counter()
        stages[text.split(" ")[0]] += now - last[0]
        last[0] = now

    config = EvalConfig(mode="official")
    config.max_new_tokens = max_new_tokens  # set after construction, as the quick run needs: the rest stays official
    start = last[0] = time.perf_counter()
    report = evaluate(loaded.model, loaded.tokenizer, records, members, nonmembers, config, progress)
    official_seconds = time.perf_counter() - start
    batched = equal_length_batches(model, loaded.tokenizer, prompts, max_new_tokens)
    tried = [(one, b) for one, b in zip(theirs, batched) if b is not None]
    return {
        "model": loaded.source, "data": "LUME validation" if LUME.is_dir() else "bundled", "prompts": len(prompts),
        "max_new_tokens": max_new_tokens, "organisers_seconds": seconds["organisers"],
        "studio_generation_seconds": seconds["studio"], "generation_ratio": seconds["studio"] / seconds["organisers"],
        "official_seconds": official_seconds, "official_stages": dict(stages),
        "extra_seconds": official_seconds - stages["generate"] - stages["mia"],
        "differing_generations": sum(a != b for a, b in zip(theirs, ours)),
        "differing_in_evaluation": sum(a != row["generation"] for a, row in zip(theirs, report.rows)),
        "equal_length_prompts": len(tried), "equal_length_batches_differing": sum(a != b for a, b in tried),
    }


def run(ctx: Context) -> dict:
    records, members, nonmembers = lume_rows(4 if ctx.quick else 36)
    return compare(ctx.model, records, members, nonmembers, ctx.max_new_tokens or (8 if ctx.quick else 256))


def show(result: dict) -> None:
    stages = result["official_stages"]
    table(f"Official mode against the organisers' loop: {result['model']}, {result['prompts']} {result['data']} rows, "
          f"{result['max_new_tokens']} new tokens, bf16, one prompt at a time",
          [{"side": "generation: the organisers' loop", "seconds": result["organisers_seconds"]},
           {"side": "generation: the studio's, prompt by prompt in turn", "seconds": result["studio_generation_seconds"]},
           {"side": "official mode's whole evaluation", "seconds": result["official_seconds"]}]
          + [{"side": f"  of which {name}", "seconds": seconds} for name, seconds in
             sorted(stages.items(), key=lambda s: -s[1]) if seconds >= 0.05])
    print(f"  generations differing from the organisers': {result['differing_generations']} of {result['prompts']} "
          f"({result['differing_in_evaluation']} in the evaluation); the studio's generation takes "
          f"{result['generation_ratio']:.3f}x the organisers' loop; official mode adds {result['extra_seconds']:.0f} s "
          f"of metrics their script does not compute (teacher-forced scores, fluency, utility) to generation and MIA")
    print(f"  equal-length prompts batched without padding: {result['equal_length_batches_differing']} of "
          f"{result['equal_length_prompts']} generations differ from one at a time (bf16 rounds a batch's products "
          f"differently), so official mode does not batch")


def headline(result: dict) -> list[dict]:
    same = result["differing_generations"] == result["differing_in_evaluation"] == 0
    return [{
        # within 2%: the two loops make the same calls, so what is left between them is the machine's noise
        "figure": "official mode's generation against the organisers' loop", "value": f"{result['generation_ratio']:.3f}x",
        "goal": "<= 1.02x", "verdict": meets(result["generation_ratio"], 1.02 + 1e-9, higher_is_better=False),
        "same results": "identical generations" if same else "generations differ",
    }]
