"""Frozen-prefix cache: when only the last k decoder blocks train, run each step through those k blocks only.

The first n - k blocks never change during such a run, so the hidden states they hand to block n - k are the same
for a sample at every step: compute them once per sample, and each step runs the last k blocks, the final norm and
the LM head (forward and backward), for the trained model and for the reference model of the methods that have one
(its frozen blocks are the same weights, so it reads the same cache).

Exact, not an approximation: with right padding a causal model's real tokens never attend to the padding, so a
sample's hidden states do not depend on the batch it sits in; they are cached unpadded and padded per batch (zeros,
which only padding positions read). tests/test_prefix.py checks every method against the plain engine.
A sweep passes one PrefixCache to every run: runs with the same model, k and precision reuse what earlier runs
computed, sample by sample (keyed by token ids), and any other run starts it afresh.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from transformers import PreTrainedModel

from unlearning.batching import Features

# Architectures whose decoder hands `inputs_embeds` unchanged to its first block and gives every block the same mask
# and rotary embedding whatever its position in the stack, so a model cut to its last k blocks computes exactly what
# the whole model computes there (checked by tests/test_prefix.py). Others are not: Gemma scales inputs_embeds, Qwen2
# picks each block's mask by its index in the loop. They train without the cache.
EXACT_ARCHITECTURES = ("llama", "olmo", "olmo2")
CACHING = "caching the frozen blocks' outputs"  # the stage `fill` reports, counted in samples


def supports(model: PreTrainedModel) -> bool:
    """Whether the cache is exact for this model: a known architecture and no dropout (a random prefix is not frozen)."""
    return model.config.model_type in EXACT_ARCHITECTURES and not getattr(model.config, "attention_dropout", 0.0)


def _decoder(model: PreTrainedModel) -> torch.nn.Module:
    return getattr(model, model.base_model_prefix)


def _cut(model: PreTrainedModel, keep: slice) -> PreTrainedModel:
    """A copy of `model` with only the decoder blocks `keep`, sharing every weight and buffer but no module object.

    Sharing the tensors costs no memory; owning its modules means the hooks transformers adds to record hidden states,
    and the compiled blocks the engine swaps in, stay on the copy and never reach the model it was cut from.
    """
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    view = copy.deepcopy(model, memo=shared)
    decoder = _decoder(view)
    decoder.layers = torch.nn.ModuleList(list(decoder.layers)[keep])
    return view


def tail(model: PreTrainedModel, k: int) -> PreTrainedModel:
    """`model` from block n - k on: its `inputs_embeds` are the hidden states entering block n - k.

    Its config still says n blocks, so code that counts blocks (RMU's layer) counts them as in the whole model.
    """
    return _cut(model, slice(-k, None))


def tail_layers(view: PreTrainedModel) -> torch.nn.ModuleList:
    """The decoder blocks a `tail` runs."""
    return _decoder(view).layers


def _head(model: PreTrainedModel, k: int) -> torch.nn.Module:
    """The decoder of `model` up to block n - k, without the final norm: it returns the hidden states entering block n - k."""
    decoder = _decoder(_cut(model, slice(0, model.config.num_hidden_layers - k)))
    decoder.norm = torch.nn.Identity()
    return decoder


class PrefixCache:
    """Hidden states entering block n - k of one frozen model, per tokenised sample, at one precision.

    Memory: 4 x hidden size bytes per token of every cached sample in fp32 (2.3 KB per token for SmolLM2-135M,
    8 KB for OLMo-1B); `nbytes` says what it holds.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.states: dict[tuple[int, ...], torch.Tensor] = {}
        self.skipped = 0  # n - k: blocks the cached states have been through

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.states.values())

    def fill(
        self,
        source: PreTrainedModel,
        model: PreTrainedModel,
        k: int,
        dtype: torch.dtype | None,
        features: list[Features],
        progress: Callable[[str, float, int], None] | None = None,
        batch_size: int = 16,
    ) -> None:
        """Compute the states of the samples not cached yet with `model`'s first n - k blocks.

        `source` is the model whose weights `model`'s frozen blocks hold (the original a run copies): with the number
        of blocks skipped, the autocast dtype and the attention implementation it says which states can be reused.
        """
        key = (source, k, dtype, model.config._attn_implementation)
        if key != self.key:
            self.key, self.states, self.skipped = key, {}, model.config.num_hidden_layers - k
        missing = list({tuple(f["input_ids"]): None for f in features if tuple(f["input_ids"]) not in self.states})
        if not missing:
            return
        head = _head(model, k).eval()
        device = next(model.parameters()).device
        missing.sort(key=len)  # similar lengths together: less padding
        for start in range(0, len(missing), batch_size):
            if progress:
                progress(CACHING, start, len(missing))
            group = missing[start : start + batch_size]
            width = max(map(len, group))
            ids = torch.tensor([list(s) + [0] * (width - len(s)) for s in group], device=device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in group], device=device)
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                hidden = head(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            for row, sample in enumerate(group):
                self.states[sample] = hidden[row, : len(sample)].clone()
        if progress:
            progress(CACHING, len(missing), len(missing))

    def inputs(self, features: list[Features]) -> dict:
        """The cached states of a batch, right-padded like batching.collate pads it: what `losses.forward` reads."""
        states = [self.states[tuple(f["input_ids"])] for f in features]
        width = max(len(s) for s in states)
        padded = torch.stack([torch.nn.functional.pad(s, (0, 0, 0, width - len(s))) for s in states])
        return {"inputs_embeds": padded, "skipped_blocks": self.skipped}
