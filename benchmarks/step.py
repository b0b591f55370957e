"""Section "step": an unlearning step on full weights, the engine (plain and compiled) against a Hugging Face Trainer.

The reference is a `transformers.Trainer` subclass overriding `compute_loss` the way common frameworks write gradient
difference (fp32, default TrainingArguments), on the same model and the same fixed batch. Sides alternate call by
call, each call a short run from the same weights whose first step (optimiser state, kernel choice, torch.compile)
is left out. Both sides run with the engine's allocator setting (engine.keep_freed_memory: it is process-wide), so
the reference gains from it too. The compiled engine starts from an empty torch.compile cache, as a user's first
run does; its one-off compile time is reported apart. Also: each side's first-step loss, FLOP/s as a share of this
machine's matmul peak, and where one compiled step's time goes (torch.profiler).
The last-k section (benchmarks.last_k) reuses `compare_steps` with the first blocks frozen.
"""
from __future__ import annotations

import copy
import statistics
import tempfile
import time
from typing import Callable

import torch

from benchmarks.common import LOSS_TOLERANCE, Context, matmul_peak, meets, step_batch, table, verdict
from unlearning.batching import collate, encode
from unlearning.data.records import Record
from unlearning.engine import TrainConfig, autocast_dtype, keep_freed_memory, train
from unlearning.models import LoadedModel, decoder_layers

GOAL = 3.0  # issue 13: reference s/step over engine s/step


def _reference_trainer_class():
    """Imported lazily: Trainer's imports are slow, and other sections do not need them."""
    from transformers import Trainer

    class GradDiffTrainer(Trainer):
        """Gradient difference as common frameworks write it (open-unlearning's GradDiff with alpha = gamma = 1):
        two forwards with labels, the model's own loss, -NLL(forget) + NLL(retain). Only the loss is changed."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.terms: list[dict] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            forget = model(**inputs["forget"])
            retain = model(**inputs["retain"])
            loss = -forget.loss + retain.loss
            self.terms.append({"loss": loss.item(), "forget_nll": forget.loss.item(), "retain_nll": retain.loss.item()})
            return (loss, forget) if return_outputs else loss

    return GradDiffTrainer


class PairDataset(torch.utils.data.Dataset):
    """Item i = forget example i paired with retain example i, tokenised as the engine does (prompt masked, EOS)."""

    def __init__(self, tokenizer, forget: list[Record], retain: list[Record], max_length: int):
        self.pairs = [
            {"forget": encode(tokenizer, f.input, f.output, max_length), "retain": encode(tokenizer, r.input, r.output, max_length)}
            for f, r in zip(forget, retain)
        ]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        return self.pairs[i]


def pad_pairs(pad_id: int):
    """Data collator: right-pads the forget and the retain examples apart, labels padded with -100."""
    return lambda pairs: {view: collate([p[view] for p in pairs], pad_id) for view in ("forget", "retain")}


def reference_run(
    loaded: LoadedModel, forget, retain, steps: int, learning_rate: float, max_length: int, last_k: int | None = None
) -> tuple[list[float], list[dict]]:
    """Train a fresh copy with the Trainer reference (only the last `last_k` blocks when given); returns each step's
    end time and each step's loss terms."""
    from transformers import PrinterCallback, TrainerCallback, TrainingArguments

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    model = copy.deepcopy(loaded.model)
    if last_k is not None:  # Trainer's optimiser takes only parameters that require gradients
        model.requires_grad_(False)
        decoder_layers(model)[-last_k:].requires_grad_(True)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=len(forget), max_steps=steps, learning_rate=learning_rate,
            report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True,
            remove_unused_columns=False,  # the dataset's keys are "forget" and "retain", not model arguments
        )
        trainer = _reference_trainer_class()(
            model=model, args=args, train_dataset=PairDataset(loaded.tokenizer, forget, retain, max_length),
            data_collator=pad_pairs(loaded.tokenizer.pad_token_id), callbacks=[Stamp()],
        )
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict even with logging off
        trainer.train()
    return stamps, trainer.terms


def engine_run(loaded: LoadedModel, forget, retain, steps: int, learning_rate: float, max_length: int, **config) -> tuple[list[float], list[dict]]:
    """Train with the studio's engine (`config`: TrainConfig fields); returns each step's end time and its log."""
    stamps: list[float] = []
    # alpha 1: the reference's loss is -NLL(forget) + NLL(retain)
    settings = TrainConfig(method="grad_diff", method_options={"alpha": 1.0}, steps=steps, learning_rate=learning_rate,
                           batch_size=len(forget), max_length=max_length, **config)
    result = train(loaded.model, loaded.tokenizer, forget, retain, settings, on_step=lambda log: stamps.append(time.perf_counter()))
    return stamps, result.history


Side = Callable[[int], tuple[list[float], list[dict]]]  # steps -> (each step's end time, each step's loss terms)


def compare_steps(
    loaded: LoadedModel, forget: list[Record], retain: list[Record], sides: dict[str, Side], rounds: int, steps: int,
    dtypes: dict[str, str], peaks: dict[str, float] | None = None,
) -> dict:
    """Time `sides` (the last one the reference) alternately, ABC CBA across `rounds`, so all share the machine's noise.

    Each call trains `steps` steps from the same weights on one fixed batch (len(forget) + len(retain) examples); its
    first step is a warm-up and is not timed, but its time is kept (`first_step_seconds`: compile or cache cost).
    With `peaks`, FLOP/s are counted as for full-weight training and compared with the machine's matmul peak.
    """
    if len(forget) != len(retain):
        raise ValueError("the step benchmark pairs forget and retain examples: give as many of each")
    keep_freed_memory()  # the engine would set it on its first call anyway; set now, no side runs without it
    order = list(sides)
    timed: dict[str, list[float]] = {side: [] for side in order}
    first: dict[str, dict] = {}
    first_step: dict[str, float] = {}
    for r in range(rounds):
        for side in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            stamps, logs = sides[side](steps)
            first_step.setdefault(side, stamps[0] - start)
            timed[side] += [b - a for a, b in zip(stamps, stamps[1:])]
            first.setdefault(side, {k: logs[0][k] for k in ("loss", "forget_nll", "retain_nll")})

    pad = loaded.tokenizer.pad_token_id
    batches = [collate([encode(loaded.tokenizer, x.input, x.output, 256) for x in xs], pad) for xs in (forget, retain)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)  # real tokens, as the engine's log counts them
    n_params = sum(p.numel() for p in loaded.model.parameters())
    reference = order[-1]
    result = {
        "model": loaded.source, "parameters": n_params, "batch": f"{len(forget)} forget + {len(retain)} retain",
        "tokens_per_step": tokens, "padded_tokens_per_step": sum(b["input_ids"].numel() for b in batches),
        "timed_steps_per_side": len(timed[reference]), "reference": reference, "sides": {},
    }
    scale = abs(first[reference]["forget_nll"]) + abs(first[reference]["retain_nll"])
    for side in order:
        seconds = statistics.fmean(timed[side])
        flops = 6 * n_params * tokens / seconds if peaks else None
        check = {f"{k}_rel_diff": abs(first[side][k] - first[reference][k]) / abs(first[reference][k]) for k in ("forget_nll", "retain_nll")}
        # the loss is a difference of two similar numbers: relative to it, any rounding looks huge; scale by the terms
        check["loss_diff_over_terms"] = abs(first[side]["loss"] - first[reference]["loss"]) / scale
        result["sides"][side] = {
            "step_seconds": timed[side], "mean_step_seconds": seconds, "tokens_per_second": tokens / seconds,
            "first_step_seconds": first_step[side], "first_step_loss": first[side], "matmul_dtype": dtypes[side],
            "flops_per_second": flops, "share_of_peak": flops / peaks[dtypes[side]] if peaks and dtypes[side] in peaks else None,
            "speedup": statistics.fmean(timed[reference]) / seconds, "same_loss": max(check.values()) <= LOSS_TOLERANCE, **check,
        }
    return result


def show_steps(title: str, result: dict, labels: dict[str, str]) -> None:
    rows = []
    for side, label in labels.items():
        s = result["sides"][side]
        loss = s["first_step_loss"]
        row = {"implementation": label, "s/step": s["mean_step_seconds"], "speedup": s["speedup"], "tokens/s": s["tokens_per_second"]}
        if s["flops_per_second"] is not None:
            row |= {"GFLOP/s": s["flops_per_second"] / 1e9, "share of matmul peak": f"{s['share_of_peak']:.1%} of {s['matmul_dtype']}"}
        rows.append(row | {
            "first-step loss": loss["loss"], "forget / retain NLL": f"{loss['forget_nll']:.4f} / {loss['retain_nll']:.4f}",
            "same loss": "yes" if s["same_loss"] else "NO",
        })
    table(
        f"{title}: {result['model']}, {result['batch']}, {result['tokens_per_step']} tokens/step "
        f"({result['padded_tokens_per_step']} padded), {result['timed_steps_per_side']} timed steps per side", rows,
    )
    print(f"  same loss: first-step NLL terms within {LOSS_TOLERANCE:.0%} of the reference's (bf16 autocast against fp32)")
    if result["sides"][result["reference"]]["flops_per_second"] is not None:
        print("  FLOP/s counted as 6 x parameters x real tokens per step (undercounts: attention scores and padding left out)")


def engine_dtype() -> str:
    return "bfloat16" if autocast_dtype("auto", torch.device("cpu")) else "float32"


def run(ctx: Context) -> dict:
    loaded = ctx.model
    peaks = {"bfloat16": matmul_peak(torch.bfloat16), "float32": matmul_peak(torch.float32)}
    forget, retain = step_batch(loaded, ctx.batch_size)
    rounds, steps = (1, 3) if ctx.quick else (1, 6)  # one round: `make bench` must fit in 10 minutes
    lr, length = 1e-5, 256
    sides = {
        "engine": lambda n: engine_run(loaded, forget, retain, n, lr, length),
        "compiled": lambda n: engine_run(loaded, forget, retain, n, lr, length, compile=True),
        "reference": lambda n: reference_run(loaded, forget, retain, n, lr, length),
    }
    if ctx.quick:  # compiling alone takes ~30 s
        del sides["compiled"]
    dtypes = {"engine": engine_dtype(), "compiled": engine_dtype(), "reference": "float32"}
    result = compare_steps(loaded, forget, retain, sides, rounds, steps, dtypes, peaks)
    result |= {"matmul_peak_flops": peaks, "goal": GOAL}
    if ctx.quick:
        return result
    engine, compiled = result["sides"]["engine"], result["sides"]["compiled"]
    # what compiling costs once per process, and the run length from which it pays for itself
    compile_seconds = compiled["first_step_seconds"] - engine["first_step_seconds"]
    saved = engine["mean_step_seconds"] - compiled["mean_step_seconds"]
    result |= {
        "compile_seconds": compile_seconds,
        "compile_pays_off_after_steps": compile_seconds / saved if saved > 0 else None,
        "breakdown": breakdown(loaded, forget, retain, compile=True, learning_rate=lr, max_length=length),
    }
    return result


def show(result: dict) -> None:
    labels = {"reference": "Trainer reference (fp32)", "engine": "studio engine (auto)", "compiled": "studio engine (auto, compile)"}
    labels = {side: label for side, label in labels.items() if side in result["sides"]}
    show_steps("Unlearning step, full weights", result, labels)
    print("  matmul peak (torch.matmul 2048x2048, fastest call in 1 s): " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in result["matmul_peak_flops"].items()))
    for side in [side for side in ("engine", "compiled") if side in result["sides"]]:
        ratio = result["sides"][side]["speedup"]
        print(f"  speedup, {labels[side]}: {ratio:.2f}x, {verdict(ratio, result['goal'])}")
    if "breakdown" not in result:  # --quick: no compiled side, no profile
        return
    pays = result["compile_pays_off_after_steps"]
    print(
        f"  compile: {result['compile_seconds']:.1f} s once per process (its first step), "
        + (f"paid back after {pays:.0f} steps" if pays is not None else "never paid back: compiled steps are not faster here")
    )
    show_breakdown(result["breakdown"], result["sides"]["reference"]["mean_step_seconds"])


# torch.profiler op names by what they spend a step on; every other op (elementwise, softmax, embedding, ...) is "other"
OP_KINDS = {
    "matmul": ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"),
    "optimiser and clipping": ("aten::_fused_adamw_", "aten::_foreach_norm", "aten::linalg_vector_norm", "aten::_foreach_mul_"),
    "casts and copies": ("aten::copy_",),
}


def breakdown(
    loaded: LoadedModel, forget: list[Record], retain: list[Record], compile: bool = True, learning_rate: float = 1e-5, max_length: int = 256
) -> dict:
    """Self CPU time of one engine step (the fourth of a run: past the warm-up) by kind of op, from torch.profiler.

    Why: it says what a faster step would have to shrink. The profiler adds its own overhead to each op, so the
    profiled step is slower than a timed one; the shares are what to read. With compile, "other" is mostly the
    compiled blocks' fused kernels (norms, rotary, activations and their backward).
    """
    from torch.profiler import ProfilerActivity, profile

    profiler = profile(activities=[ProfilerActivity.CPU])

    def on_step(log: dict) -> None:
        if log["step"] == 3:
            profiler.__enter__()
        elif log["step"] == 4:
            profiler.__exit__(None, None, None)

    config = TrainConfig(
        method="grad_diff", steps=4, learning_rate=learning_rate, batch_size=len(forget), max_length=max_length, compile=compile
    )
    train(loaded.model, loaded.tokenizer, forget, retain, config, on_step=on_step)
    seconds = dict.fromkeys([*OP_KINDS, "other"], 0.0)
    for event in profiler.key_averages():
        kind = next((k for k, names in OP_KINDS.items() if event.key in names), "other")
        seconds[kind] += event.self_cpu_time_total / 1e6
    total = sum(seconds.values())
    return {"compile": compile, "seconds": seconds, "total_seconds": total, "shares": {k: v / total for k, v in seconds.items()}}


def show_breakdown(result: dict, reference_seconds: float) -> None:
    rows = [{"kind": kind, "seconds": secs, "share": f"{result['shares'][kind]:.0%}"} for kind, secs in result["seconds"].items()]
    which = "compiled engine" if result["compile"] else "engine"
    table(f"  Where one {which} step goes (torch.profiler, one steady step: {result['total_seconds']:.2f} s profiled)", rows)
    matmul = result["seconds"]["matmul"]
    fixed = matmul + result["seconds"]["optimiser and clipping"]
    print(
        f"  if everything but the matmuls were free, a step would take {matmul:.2f} s ({reference_seconds / matmul:.1f}x the "
        f"reference); matmuls plus the optimiser and clipping alone take {fixed:.2f} s ({reference_seconds / fixed:.1f}x)"
    )


def headline(result: dict) -> list[dict]:
    return [
        {"figure": f"full-weight step, {label} vs Trainer", "value": f"{result['sides'][side]['speedup']:.2f}x", "goal": f">= {result['goal']:g}x",
         "verdict": meets(result["sides"][side]["speedup"], result["goal"]),
         "same results": "same first-step loss" if result["sides"][side]["same_loss"] else "DIFFERENT LOSS"}
        for side, label in (("engine", "engine"), ("compiled", "compiled engine")) if side in result["sides"]
    ]
