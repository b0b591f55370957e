"""Section "1b": peak memory and seconds per step of a random OLMo-1B-0724 through the engine, full fine-tuning and
LoRA, each configuration in its own process (so its peak is its own) after checking it fits in free memory."""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import GIB, Context, available_memory, table
from unlearning.data import bundled_dataset
from unlearning.engine import TrainConfig, train
from unlearning.models import cpu_has_bf16, memory_estimate

# allenai/OLMo-1B-0724-hf's config.json as fine-tunes of it carry it (its own hub page cannot be reached from here):
# untied embeddings and clip_qkv=8, unlike the first OLMo-1B (tied, no clipping).
OLMO_1B_0724 = dict(
    hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=16,
    vocab_size=50304, max_position_embeddings=4096, tie_word_embeddings=False, clip_qkv=8.0, rope_theta=10000.0,
    attention_bias=False, hidden_act="silu", pad_token_id=1, eos_token_id=50279,
)
EMBEDDINGS_1B = 2 * 50304 * 2048  # input and output embeddings, untied
BLOCK_1B = 4 * 2048 * 2048 + 3 * 2048 * 8192  # attention + MLP; OLMo's LayerNorms have no weights
LORA_BLOCK_1B = 4 * 8 * (2048 + 2048) + 3 * 8 * (2048 + 8192)  # rank 8 on the 7 linear layers of a block
# (params, weight dtype, layers). Full fine-tuning in fp32 needs ~31 GiB (see needed_1b), so full runs with bf16
# weights; the 4-layer full run checks the memory model on a model that fits beside other work, for extrapolation.
CONFIGS_1B = (
    ("full", "float32", 16), ("full", "bfloat16", 16), ("full", "bfloat16", 4), ("lora", "float32", 16), ("lora", "bfloat16", 16),
)


def olmo_params(layers: int = 16) -> int:
    return EMBEDDINGS_1B + layers * BLOCK_1B  # 1,279,787,008 at 16 layers


def needed_1b(params: str, weight_dtype: str, layers: int = 16) -> float:
    """Bytes to have free before trying a configuration: models.memory_estimate plus 2 GiB of activations and runtime."""
    n, w = olmo_params(layers), 4 if weight_dtype == "float32" else 2
    trainable = n if params == "full" else layers * LORA_BLOCK_1B
    return memory_estimate(n, trainable, w)["total (excluding activations)"] * GIB + 2 * GIB


def child(params: str, weight_dtype: str, layers: int, steps: int, batch_size: int, max_length: int) -> dict:
    """One configuration, run in its own process so ru_maxrss is this configuration's peak alone."""
    from transformers import AutoModelForCausalLM, OlmoConfig

    from unlearning.models import default_tokenizer

    # If memory runs out after all, the kernel must kill this benchmark, not someone else's work.
    Path("/proc/self/oom_score_adj").write_text("1000")
    tokenizer = default_tokenizer()  # OLMo's tokenizer cannot be downloaded here; any ids below 50304 do for timing
    torch.manual_seed(0)
    start = time.perf_counter()
    config = OlmoConfig(**{**OLMO_1B_0724, "num_hidden_layers": layers})
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, weight_dtype)).eval()
    init_seconds = time.perf_counter() - start
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    data = bundled_dataset()
    train_config = TrainConfig(method="grad_diff", steps=steps, batch_size=batch_size, max_length=max_length, params=params, precision="auto")
    result = train(model, tokenizer, data.split("forget")[:batch_size], data.split("retain")[:batch_size], train_config)
    changed = None
    if params == "full":  # bf16 weights round most 1e-5-sized updates away: how many weights did move?
        pairs = list(zip(model.parameters(), result.model.parameters()))
        changed = sum(int((a != b).sum()) for a, b in pairs) / sum(a.numel() for a, _ in pairs)
    return {
        "parameters": sum(p.numel() for p in model.parameters()), "init_seconds": init_seconds,
        "step_seconds": [log["seconds"] for log in result.history], "tokens_per_step": [log["tokens"] for log in result.history],
        "status": result.status, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_after_init_bytes": rss_model, "share_of_weights_changed": changed,
    }


def measure(steps: int = 3, batch_size: int = 2, max_length: int = 64, configs=CONFIGS_1B) -> list[dict]:
    """Each configuration in a fresh process, after checking that it fits in the memory available right now."""
    rows = []
    for params, weight_dtype, layers in configs:
        trainable = olmo_params(layers) if params == "full" else layers * LORA_BLOCK_1B
        needed = needed_1b(params, weight_dtype, layers)
        row = {
            "params": params, "weights": weight_dtype, "layers": layers, "parameters": olmo_params(layers), "trainable": trainable,
            "steps": steps, "batch": f"{batch_size} forget + {batch_size} retain", "max_length": max_length,
            "memory_estimate_gib": memory_estimate(olmo_params(layers), trainable, 4 if weight_dtype == "float32" else 2)["total (excluding activations)"],
            "needed_gib": needed / GIB, "available_gib": available_memory() / GIB,
        }
        rows.append(row)
        if needed + 1 * GIB > available_memory():  # and 1 GiB left for everyone else on the machine
            row["skipped"] = f"needs ~{row['needed_gib']:.1f} GiB, {row['available_gib']:.1f} GiB available"
            continue
        if weight_dtype == "bfloat16" and not cpu_has_bf16():  # measured: a 16-layer step ran over 9 minutes
            row["skipped"] = "this CPU has no bf16 matmuls: bf16 weights take a slow path (minutes per 1B step)"
            continue
        spec = dict(params=params, weight_dtype=weight_dtype, layers=layers, steps=steps, batch_size=batch_size, max_length=max_length)
        code = "import json, sys; from benchmarks.one_b import child; print(json.dumps(child(**json.loads(sys.argv[1]))))"
        try:
            proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            row["skipped"] = "timed out after 900 s"
            continue
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "killed, probably out of memory"
            row["skipped"] = f"failed (exit {proc.returncode}): {last}"
            continue
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        timed = child["step_seconds"][1:] or child["step_seconds"]  # step 1 allocates AdamW's state: a warm-up
        row.update(child, peak_rss_gib=child["peak_rss_bytes"] / GIB, mean_step_seconds=statistics.fmean(timed))
    return rows


def run(ctx: Context) -> list[dict]:
    if ctx.quick:  # the smallest configuration only
        return measure(steps=2, max_length=32, configs=(("full", "float32", 4),))
    return measure()


def show(rows: list[dict]) -> None:
    table_rows = []
    for r in rows:
        row = {"params": r["params"], "weights": r["weights"], "layers": r["layers"], "memory_estimate GiB": r["memory_estimate_gib"],
               "engine needs GiB": r["needed_gib"]}
        if "skipped" in r:
            table_rows.append(row | {"notes": "skipped: " + r["skipped"]})
            continue
        moved = f", {r['share_of_weights_changed']:.1%} of weights moved" if r["share_of_weights_changed"] is not None else ""
        table_rows.append(row | {
            "peak RSS GiB": r["peak_rss_gib"], "s/step": r["mean_step_seconds"],
            "notes": f"{r['status']}, {r['tokens_per_step'][0]} tokens/step, init {r['init_seconds']:.0f} s{moved}",
        })
    first = rows[0]
    table(
        f"1B scale: random OLMo-1B-0724 ({olmo_params() / 1e9:.2f}B params at 16 layers) through the engine, "
        f"{first['batch']}, max_length {first['max_length']}, {first['steps']} steps (step 1 untimed), bf16 autocast",
        table_rows, floats="{:.1f}",
    )
    print("  memory_estimate = models.memory_estimate (two weight copies, grads, Adam moments, autocast casts; no activations);")
    print("  engine needs = memory_estimate + 2 GiB of activations and runtime, checked against free memory before each run")
    small = next((r for r in rows if r["params"] == "full" and r["layers"] < 16 and "skipped" not in r), None)
    big = next((r for r in rows if r["params"] == "full" and r["layers"] == 16 and r["weights"] == small["weights"]), None) if small else None
    if big and "skipped" in big:
        scale = big["parameters"] / small["parameters"]
        print(
            f"  full fine-tuning, {big['weights']} weights, 16 layers, extrapolated linearly in parameters from the "
            f"{small['layers']}-layer run: ~{small['peak_rss_gib'] * scale:.1f} GiB peak, ~{small['mean_step_seconds'] * scale:.0f} s/step"
        )


def headline(rows: list[dict]) -> list[dict]:
    return []  # memory and speed figures with no ratio or goal: the section's own table says it all
