"""Records to token tensors: prompt tokens masked out of the labels, EOS appended, padding per batch."""
from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.data.records import Record

IGNORE = -100  # label value that torch's cross-entropy skips

Features = dict[str, list[int]]
Batch = dict[str, torch.Tensor]


def encode(tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str, max_length: int) -> Features:
    """Tokenise prompt and answer apart, exactly as generation sees the prompt, so training and evaluation agree.

    The answer ends with EOS: QA is scored by exact match of the whole generation, so the model must learn to stop.
    """
    prompt_ids = tokenizer(prompt)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + answer_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def encode_records(tokenizer: PreTrainedTokenizerBase, records: list[Record], max_length: int = 256) -> list[Features]:
    return [encode(tokenizer, r.input, r.output, max_length) for r in records]


def collate(features: list[Features], pad_id: int, device: torch.device | str = "cpu") -> Batch:
    """Right-pad to the longest sequence in this batch only (dynamic padding).

    Not DataCollatorForSeq2Seq: it pads on `tokenizer.padding_side`, state that generation (left padding) shares.
    """
    width = max(len(f["input_ids"]) for f in features)
    batch = {"input_ids": [], "attention_mask": [], "labels": []}
    for f in features:
        pad = width - len(f["input_ids"])
        batch["input_ids"].append(f["input_ids"] + [pad_id] * pad)
        batch["attention_mask"].append([1] * len(f["input_ids"]) + [0] * pad)
        batch["labels"].append(f["labels"] + [IGNORE] * pad)
    return {k: torch.tensor(v, device=device) for k, v in batch.items()}


def answer_logits_only(batch: Batch) -> Batch:
    """Ask the model for logits only from the first answer position on, and slice the labels to match.

    Prompt positions have no labels, yet their vocabulary-sized logits (and log-softmax) are a large share of a
    step's time and memory; `logits_to_keep` keeps the last N positions, so every loss works on the slice unchanged.
    """
    answer = (batch["labels"] != IGNORE).any(0).nonzero()
    first = int(answer[0]) if len(answer) else 1
    keep = batch["labels"].shape[1] - first + 1  # +1: the logit at `first - 1` predicts the first answer token
    return {**batch, "labels": batch["labels"][:, -keep:], "logits_to_keep": keep}


def supports_logits_to_keep(model: PreTrainedModel) -> bool:
    """Whether the model's forward takes `logits_to_keep` (recent transformers causal LMs do; custom ones may not)."""
    return "logits_to_keep" in inspect.signature(type(model).forward).parameters
