"""Section "gpu": a whole studio run end to end on a CUDA GPU, the way the mission's users run a 1B model.

A random OLMo-1B-0724 architecture in bf16 (no download: benchmarks/one_b.py's config, the default tokenizer), saved
as a model folder and run through the library as the CLI runs it: the plan, the before evaluation, 60 steps of the
IdK preset through LoRA and through the last 8 blocks, the after evaluation and the quantisation probe. Printed per
configuration: seconds per step, peak GPU memory, training tokens per second, and the share of the GPU's bf16 peak
the steps reach (the model's FLOPs per step, 6 x parameters x tokens for the trained path plus 2 x parameters x tokens
for each reference forward, against the fastest bf16 matmul timed on the same GPU).

Without CUDA the same path runs on a 2-block random Llama (a smoke run CI can afford: tests/test_bench_gpu.py), so the
script is known to work before a GPU is lent. `python -m benchmarks --sections gpu` (make bench ARGS="--sections gpu").
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, OlmoConfig

from benchmarks.common import GIB, Context, matmul_peak, table
from benchmarks.one_b import OLMO_1B_0724
from unlearning.data import bundled_dataset
from unlearning.evaluation.verdict import judge
from unlearning.experiment import run_experiment
from unlearning.methods import get_method
from unlearning.models import default_tokenizer, tiny_model
from unlearning.plan import make_plan
from unlearning.probes.runner import run_probes
from unlearning.runs import RunStore
from unlearning.summary import run_reports

CONFIGS = ({"params": "lora", "lora_rank": 16}, {"params": "last_k", "last_k": 8})


def model_folder(folder: Path, cuda: bool) -> tuple[Path, int, int]:
    """A random model saved as a folder: OLMo-1B-0724 in bf16 on a GPU, the tests' tiny Llama elsewhere."""
    if cuda:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(OlmoConfig(**OLMO_1B_0724), dtype=torch.bfloat16)
        tokenizer = default_tokenizer()  # OLMo's own cannot be downloaded; any ids below its 50304 do for timing
    else:
        loaded = tiny_model()
        model, tokenizer = loaded.model, loaded.tokenizer
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, sum(p.numel() for p in model.parameters()), model.config.num_hidden_layers


def run(ctx: Context) -> dict:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    small = ctx.quick or not cuda  # a smoke run: few steps, samples and tokens
    steps = 4 if small else 60
    preset = get_method("idk").presets[0]
    forget = [r.id for r in bundled_dataset().split("forget")][: 4 if small else None]
    evaluation = {"max_new_tokens": 4, "retain_rows": 4, "utility": "none"} if small else {}
    peak = matmul_peak(torch.bfloat16, n=8192 if cuda else 512, device=device)
    results = []
    with tempfile.TemporaryDirectory(prefix="unlearning-bench-gpu-") as tmp:
        folder, params, layers = model_folder(Path(tmp) / "model", cuda)
        store = RunStore(Path(tmp) / "runs")
        for extra in CONFIGS:
            train = {**preset.train, **extra, "steps": steps, "method": "idk", "method_options": dict(preset.options)}
            train["last_k"] = min(train["last_k"], layers)
            plan = make_plan({"model": str(folder), "data": "bundled", "forget_ids": forget, "train": train,
                              "eval": evaluation})
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            run_id, unlearned = run_experiment(plan, store)
            run_seconds = time.perf_counter() - start
            start = time.perf_counter()
            run_probes(store, run_id, ["quantize"], unlearned=unlearned)
            probe_seconds = time.perf_counter() - start
            logs = [log for log in store.steps(run_id) if log["step"]]
            per_step = statistics.median(log["seconds"] for log in logs[1:] or logs)  # the first step warms up
            tokens = statistics.median(log["tokens"] for log in logs)
            # IdK trains three views (forget, refusal, retain) and reads the frozen reference on two of them
            flops = 6 * params * tokens + 2 * params * tokens * 2 / 3
            before, after = run_reports(store, run_id)
            results.append({
                "trains": plan.config.train.params, "status": store.status(run_id)["status"], "steps": len(logs),
                "seconds_per_step": per_step, "tokens_per_step": tokens, "tokens_per_second": tokens / per_step,
                "peak_share": flops / per_step / peak, "run_seconds": run_seconds, "probe_seconds": probe_seconds,
                "before_eval_seconds": before.seconds, "after_eval_seconds": after.seconds,
                "peak_memory_gib": torch.cuda.max_memory_allocated() / GIB if cuda else None,
                "probed": sorted(store.probes(run_id)),
                "verdict": {f.aspect: f.status for f in judge(before, after, store.probes(run_id)).findings},
            })
            del unlearned
    return {"device": torch.cuda.get_device_name() if cuda else "cpu (no CUDA: the tiny model, a smoke run)",
            "model": "random OLMo-1B-0724, bf16" if cuda else "tiny random Llama", "params": params,
            "bf16_peak_flops": peak, "configs": results}


def show(result: dict) -> None:
    table(f"GPU: a whole studio run (IdK preset) of a {result['model']} ({result['params'] / 1e9:.2f} B parameters) "
          f"on {result['device']}; bf16 matmul peak {result['bf16_peak_flops'] / 1e12:.1f} TFLOP/s",
          [{"trains": r["trains"], "status": r["status"], "steps": r["steps"], "s/step": r["seconds_per_step"],
            "tokens/s": r["tokens_per_second"], "share of bf16 peak": r["peak_share"],
            "peak GPU GiB": r["peak_memory_gib"], "before eval s": r["before_eval_seconds"],
            "after eval s": r["after_eval_seconds"], "run s": r["run_seconds"], "quantize probe s": r["probe_seconds"]}
           for r in result["configs"]])


def headline(result: dict) -> list[dict]:
    return [{"figure": f"GPU run through {r['trains']} ({result['device']})", "value": f"{r['seconds_per_step']:.3g} s/step",
             "goal": "runs end to end", "verdict": "meets" if r["status"] == "completed" else "MISSES",
             "same results": f"{r['tokens_per_second']:.0f} tokens/s, {r['peak_share']:.1%} of bf16 peak"}
            for r in result["configs"]]
