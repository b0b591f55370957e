"""Quantisation attack: round the unlearned model's weights to 8 or 4 bits and score forget and retain again.

Unlearning with a small learning rate moves the weights very little. Rounding them to a coarse grid can map the
unlearned weights and the original's onto the same values, and the forgotten answers come back (Zhang et al., ICLR
2025: retained knowledge 21% -> 83% at 4 bits). The original model is quantised too, as the reference for what
rounding alone costs.

Round-to-nearest (RTN), symmetric, one scale per output channel (row) or per group of `group_size` weights along a row,
applied to every linear layer's weight but the output head (GPTQ, AWQ and bitsandbytes leave the head unquantised;
in tied models it is also the input embedding). The weights are rounded and stored back in their own dtype ("fake
quantisation"), so the rounded model scores with the same code as any other; int4 kernels (torchao, quanto) would add
a dependency and, for 4 bits, mostly need a GPU, to compute the very same rounded weights.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from unlearning.evaluation import EvalReport
from unlearning.experiment import cached_report, source_stamp
from unlearning.options import option
from unlearning.probes.base import (HEADLINE, ProbeOptions, Progress, Subject, bars, compare, means, probe,
                                    verdict)


@dataclass
class Options(ProbeOptions):
    bits: str = option("8,4", "Bit widths to round the weights to, comma-separated, each 2-16 (16 changes next to "
                              "nothing: a check).")
    group_size: int = option(0, "Weights per scale along a row: 0 = one scale per output channel; e.g. 64 or 128 for "
                                "per-group rounding (finer, less damage).", ge=0, le=1 << 16)
    reference: bool = option(True, "Also quantise the original model: what rounding alone costs it.")

    def widths(self) -> list[int]:
        return [int(b) for b in self.bits.replace(" ", "").split(",") if b]

    def problems(self) -> list[str]:
        try:
            widths = self.widths()
        except ValueError:
            return [f"bits must be whole numbers separated by commas, e.g. 8,4; got {self.bits!r}"]
        if not widths or any(not 2 <= b <= 16 for b in widths):
            return [f"bits must list widths between 2 and 16, e.g. 8,4; got {self.bits!r}"]
        return []


def round_to_nearest(weight: torch.Tensor, bits: int, group_size: int = 0) -> torch.Tensor:
    """`weight` (out x in) rounded to 2^(bits-1) - 1 levels each side of zero, one scale (max |w| / levels) per row,
    or per `group_size` columns of a row; returned in the weight's dtype."""
    rows, cols = weight.shape
    size = group_size or cols
    padded = nn.functional.pad(weight.float(), (0, -cols % size))  # zeros never raise a group's max |w|
    groups = padded.reshape(rows, -1, size)
    levels = 2 ** (bits - 1) - 1
    scale = groups.abs().amax(-1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny) / levels
    rounded = (groups / scale).round().clamp(-levels, levels) * scale
    return rounded.reshape(rows, -1)[:, :cols].to(weight.dtype)


@torch.no_grad()
def quantised(model: PreTrainedModel, bits: int, group_size: int = 0) -> PreTrainedModel:
    """A copy of `model` with every linear layer's weight but the output head's rounded to `bits`."""
    rounded = copy.deepcopy(model)
    head = rounded.get_output_embeddings()
    for module in rounded.modules():
        if isinstance(module, nn.Linear) and module is not head:
            module.weight.copy_(round_to_nearest(module.weight, bits, group_size))
    return rounded


@probe(name="quantize", title="Quantisation attack",
       asks="Do the forgotten answers come back when the weights are rounded to 8 or 4 bits?", options=Options)
def run(subject: Subject, options: Options, progress: Progress, cancel: threading.Event | None) -> dict:
    sel = subject.selection
    records = sel.forget + sel.retain_eval
    saved = {"original": subject.before.rows, "unlearned": subject.after.rows}
    models = {"unlearned": subject.unlearned} | ({"original": subject.original.model} if options.reference else {})
    jobs = [(bits, name) for bits in options.widths() for name in models]
    scored: dict[int, dict[str, EvalReport]] = {}
    for i, (bits, name) in enumerate(jobs):
        label = f"{bits}-bit {name}"

        def rescored() -> EvalReport:
            progress(i / len(jobs), f"rounding the {label} model")
            model = quantised(models[name], bits, options.group_size)
            return subject.rescore(model, records, lambda f, stage: progress((i + f) / len(jobs), f"{label}: {stage}"),
                                   cancel)

        if name == "original":  # the same for every run from this original: rounded and scored once
            key = {"model": subject.config.model, "stamp": source_stamp(subject.config.model), "rounded": bits,
                   "group_size": options.group_size, "ids": [r.id for r in records], "data": subject.config.data,
                   "eval": subject.knowledge_config().__dict__}
            scored.setdefault(bits, {})[name] = cached_report(key, rescored)
        else:
            scored.setdefault(bits, {})[name] = rescored()
    widths, probed, recovered = {}, {}, {}
    for bits, reports in scored.items():
        entry = {}
        for split in ("forget", "retain"):
            found = compare(means(saved["original"], split=split), means(saved["unlearned"], split=split),
                            means(reports["unlearned"].rows, split=split))
            for name, values in found.items():
                if "original" in reports:
                    values["original_quantised"] = means(reports["original"].rows, split=split)[name]
                if split == "retain":
                    values.pop("recovery")  # recovery is about forgotten answers; retain reads as kept or lost
            entry[split] = found
        entry["gibberish"] = {name: {split: report.split("gibberish", split) for split in ("forget", "retain")}
                              for name, report in reports.items()}
        widths[str(bits)] = entry
        probed[f"{bits}-bit"] = {n: v["probed"] for n, v in entry["forget"].items()}
        recovered[f"{bits}-bit"] = {n: v["recovery"] for n, v in entry["forget"].items()}
    worst = max((b for b in widths if widths[b]["forget"][HEADLINE]["recovery"] is not None),
                key=lambda b: widths[b]["forget"][HEADLINE]["recovery"], default=None)
    headline = verdict(widths[worst]["forget"][HEADLINE]["recovery"] if worst else None, f"at {worst} bits")
    if worst and options.reference:
        retain = widths[worst]["retain"][HEADLINE]
        if retain["original"] is not None and retain["original_quantised"] is not None:
            headline["text"] += (f" (rounding the original to {worst} bits moves its retain score "
                                 f"{retain['original']:.2f} → {retain['original_quantised']:.2f})")
    forget_means = {name: means(rows, split="forget") for name, rows in saved.items()}
    return {"widths": widths, "group_size": options.group_size, "headline": headline,
            "bars": bars(forget_means["original"], forget_means["unlearned"], probed, recovered)}
