"""Records to token tensors: prompt tokens masked out of the labels, EOS appended, padding per batch."""
from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.data.records import Record

IGNORE = -100  # label value that torch's cross-entropy skips

Features = dict[str, list[int]]
Batch = dict[str, torch.Tensor]


MAX_LENGTH = 1024  # tokens per sample, unless the model's context is shorter: LUME's longest validation sample is 369


def encode(tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str, max_length: int) -> Features:
    """Tokenise prompt and answer apart, exactly as generation sees the prompt, so training and evaluation agree.

    The answer ends with EOS: QA is scored by exact match of the whole generation, so the model must learn to stop.
    A sample longer than `max_length` loses the start of its prompt (after a BOS token), never its answer: the answer
    is what is trained and scored, and the prompt's end is what leads to it. Only an answer that alone fills
    `max_length` loses its end, with one prompt token kept so that its first token is still predicted.
    """
    prompt_ids = tokenizer(prompt)["input_ids"]
    answer_ids = (tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])[: max_length - 1]
    room = max_length - len(answer_ids)
    if len(prompt_ids) > room:
        head = prompt_ids[:1] if prompt_ids[0] == tokenizer.bos_token_id and room > 1 else []
        prompt_ids = head + prompt_ids[len(prompt_ids) - room + len(head):]
    return {"input_ids": prompt_ids + answer_ids, "labels": [IGNORE] * len(prompt_ids) + answer_ids}


def encode_records(tokenizer: PreTrainedTokenizerBase, records: list[Record], max_length: int = MAX_LENGTH) -> list[Features]:
    return [encode(tokenizer, r.input, r.output, max_length) for r in records]


def sample_length(model: PreTrainedModel, max_length: int = MAX_LENGTH) -> int:
    """Tokens per sample: `max_length`, or fewer when the model's context is shorter."""
    return min(max_length, getattr(model.config, "max_position_embeddings", None) or max_length)


def cuts(tokenizer: PreTrainedTokenizerBase, records: list[Record], max_length: int) -> dict[str, list[str]]:
    """The ids of the samples `encode` cuts at `max_length`: those whose prompt loses its start (answer whole), and
    those whose answer alone is too long and loses its end."""
    out: dict[str, list[str]] = {"prompt": [], "answer": []}
    for record in records:
        prompt = len(tokenizer(record.input)["input_ids"])
        answer = len(tokenizer(record.output, add_special_tokens=False)["input_ids"]) + 1  # + EOS
        if answer > max_length - 1:
            out["answer"].append(record.id)
        elif prompt + answer > max_length:
            out["prompt"].append(record.id)
    return out


def cut_note(tokenizer: PreTrainedTokenizerBase, records: list[Record], max_length: int) -> str | None:
    """What `encode` cuts from these records, in words for the user; None when every sample is whole."""
    cut = cuts(tokenizer, records, max_length)
    shown = lambda ids: ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")  # noqa: E731
    notes = [f"{len(cut['prompt'])} of {len(records)} samples are longer than {max_length} tokens: their prompts lose "
             f"their first tokens, their answers are whole ({shown(cut['prompt'])})"] if cut["prompt"] else []
    if cut["answer"]:
        notes.append(f"{len(cut['answer'])} samples have an answer longer than that alone: it loses its end "
                     f"({shown(cut['answer'])})")
    return "; ".join(notes) + "." if notes else None


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
