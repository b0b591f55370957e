"""Greedy generation as the official SemEval script does it: raw-text prompts, only the new tokens decoded.

Fast mode batches prompts of similar length with left padding (several times faster; identical to one at a time in
fp32, tests/test_evaluate.py). Official mode generates one prompt at a time: in bf16, left padding changes the
arithmetic enough to change some long generations, and one at a time is what the organisers ran.
"""
from __future__ import annotations

import threading
from typing import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from unlearning.evaluation.metrics import Cancelled, Context, stage
from unlearning.models import each_layer

GENERATE = stage("generate", 0.6)  # the greedy generation pass: most of an evaluation's time


def batches_by_length(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped so each batch holds similar lengths (less padding); longest first, so OOM shows up at once."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class _EachToken(BaseStreamer):
    """Calls `tick(i)` after the i-th new token of a batch, so generation's progress moves token by token."""

    def __init__(self, tick: Callable[[int], None]) -> None:
        self.tick, self.count = tick, -1  # generate() first puts the prompt

    def put(self, value) -> None:
        self.count += 1
        if self.count:
            self.tick(self.count)

    def end(self) -> None:
        pass


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int = 256,
    batch_size: int = 16,
    progress: Callable[[float, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[str]:
    """Greedy continuations of raw-text prompts, in order; batch_size=1 is the official one-at-a-time loop.

    `cancel` is checked between batches, so a stop waits for one batch, not the whole evaluation.
    """
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    outputs = [""] * len(prompts)
    done = 0
    for batch in batches_by_length(lengths, batch_size):
        if cancel is not None and cancel.is_set():
            raise Cancelled("generation cancelled by the user")
        # Left padding so every prompt ends where generation starts; passed per call because the tokenizer
        # object is shared with training code that right-pads.
        enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, padding_side="left")
        enc = enc.to(model.device)
        # A batch of 64 prompts takes tens of seconds on a CPU: its progress moves layer by layer through the
        # prefill, then token by token, in fractions of its prompts weighted by tokens (prompt against new ones).
        prompt = enc["input_ids"].shape[1]
        share = prompt / (prompt + max_new_tokens)
        moved = (lambda f, done=done, n=len(batch): progress(done + n * f, len(prompts))) if progress else None
        with each_layer(model, (lambda f: moved(share * f)) if moved else None):  # the prefill
            out = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                pad_token_id=tokenizer.pad_token_id,
                streamer=_EachToken(lambda t: moved(share + (1 - share) * t / max_new_tokens)) if moved else None,
            )
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(batch, texts):
            outputs[i] = text
        done += len(batch)
        if progress:
            progress(done, len(prompts))
    return outputs


def generations(ctx: Context) -> list[str]:
    """The evaluated model's greedy generation for every record: the pass the official scores and fluency read."""
    config = ctx.config
    return generate(
        ctx.model, ctx.tokenizer, [r.input for r in ctx.records], config.max_new_tokens, config.generation_batch_size,
        lambda done, total: ctx.progress(GENERATE, done, total), ctx.cancel,
    )
