"""Utility: does the model still know general things? Multiple choice scored by log-likelihood.

lm-evaluation-harness's convention: each choice is a continuation of the prompt; the model's pick is the choice whose
tokens it finds most likely (summed log-probability). No letters to learn, so even a 135M model is well above chance
on easy items, and a broken one falls towards chance where a drop shows. The offline set (utility_items.json) has
families reported apart; MMLU (cais/mmlu, 0-shot, choices " A".." D" as lm-evaluation-harness scores it) is used when
the hub is reachable, as the official SemEval final score does.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.batching import IGNORE
from unlearning.evaluation.memorisation import token_scores
from unlearning.evaluation.metrics import Context, Skip, metric, stage

UTILITY = stage("utility", 0.12)  # every choice of every item scored
ITEMS_PATH = Path(__file__).with_name("utility_items.json")
LETTERS = "ABCD"


class UtilityUnavailable(RuntimeError):
    """A utility benchmark that cannot be loaded here (e.g. MMLU with no hub access); callers fall back."""


def load_items() -> list[dict]:
    """The bundled offline items: family, prompt, choices, index of the right choice (always 0 in the file)."""
    table = json.loads(ITEMS_PATH.read_text())
    return [
        {"family": family, "prompt": row[0], "choices": row[1:], "answer": 0}
        for family, rows in table.items() if not family.startswith("_") for row in rows
    ]


def mmlu_prompt(item: dict) -> str:
    """0-shot MMLU prompt of Hendrycks et al. (2021), as lm-evaluation-harness writes it."""
    subject = item["subject"].replace("_", " ")
    options = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, item["choices"]))
    return f"The following are multiple choice questions (with answers) about {subject}.\n\n{item['question'].strip()}{options}\nAnswer:"


def load_mmlu(n: int = 200, seed: int = 0, timeout: float = 10.0) -> list[dict]:
    """A fixed random subset of MMLU test ("cais/mmlu", "all") as items; raises UtilityUnavailable fast when unreachable."""
    import datasets
    import huggingface_hub

    # datasets retries for minutes when the hub is unreachable: ask once with a short timeout first.
    # With HF_HUB_OFFLINE=1 we skip the check and let datasets read its local cache (or fail at once).
    if not huggingface_hub.constants.HF_HUB_OFFLINE:
        try:
            huggingface_hub.HfApi().dataset_info("cais/mmlu", timeout=timeout)
        except Exception as error:
            raise UtilityUnavailable(
                f"MMLU is not reachable on the Hugging Face hub ({error}). Set HF_HUB_OFFLINE=1 to use a cached copy."
            ) from error
    try:
        data = datasets.load_dataset("cais/mmlu", "all", split="test")
    except Exception as error:
        raise UtilityUnavailable(f"Could not load MMLU: {error}") from error
    subset = data.shuffle(seed=seed).select(range(min(n, len(data))))
    return [{"family": "mmlu", "prompt": mmlu_prompt(r), "choices": list(LETTERS), "answer": r["answer"]} for r in subset]


@torch.inference_mode()
def choice_picks(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, items: list[dict], batch_size: int = 16,
                 progress: Callable[[int, int], None] | None = None) -> list[int]:
    """Index of the most likely choice of each item: one teacher-forced pass over every (prompt, choice) pair;
    `progress(done, total)` after each batch of pairs."""
    features = []
    for item in items:
        prompt = tokenizer(item["prompt"])["input_ids"]
        for choice in item["choices"]:
            answer = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
            features.append({"input_ids": prompt + answer, "labels": [IGNORE] * len(prompt) + answer})
    totals = [sum(lp) for lp in token_scores(model, features, tokenizer.pad_token_id, batch_size, progress).logprobs]
    picks, start = [], 0
    for item in items:
        scores = totals[start : start + len(item["choices"])]
        picks.append(max(range(len(scores)), key=scores.__getitem__))
        start += len(item["choices"])
    return picks


def accuracy(items: list[dict], picks: list[int]) -> dict:
    """Overall and per-family accuracy, with the guessing level."""
    families: dict[str, list[bool]] = {}
    for item, pick in zip(items, picks):
        families.setdefault(item["family"], []).append(pick == item["answer"])
    return {
        "value": statistics.fmean(pick == item["answer"] for item, pick in zip(items, picks)),
        "families": {name: statistics.fmean(hits) for name, hits in families.items()},
        "chance": statistics.fmean(1 / len(item["choices"]) for item in items),
        "questions": len(items),
    }


@metric(
    name="utility", title="Utility", family="utility", better="higher", per_sample=False, chance=0.25, ideal=1.0,
    label="utility",
    what="Accuracy on general multiple-choice questions, each choice scored by its log-likelihood after the prompt "
         "(MMLU when the hub is reachable, else the bundled families: capitals, number sequences, opposites, facts, "
         "words, colours). Chance is 0.25: a model near it has lost general knowledge.",
)
def utility(ctx: Context) -> dict:
    config = ctx.config
    if config.utility == "none":
        raise Skip("utility was turned off for this evaluation")
    note, name = "", config.utility
    if config.utility == "mmlu":
        try:
            items = load_mmlu(config.mmlu_subset)
        except UtilityUnavailable as error:
            items, name, note = load_items(), "items", f"MMLU unavailable, used the bundled items instead: {error}"
    else:
        items = load_items()
    # per batch of (question, choice) pairs: 124 items are ~500 pairs, a minute and more on a CPU
    picks = choice_picks(ctx.model, ctx.tokenizer, items, config.batch_size,
                         lambda done, total: ctx.progress(UTILITY, done, total))
    result = accuracy(items, picks)
    return {**result, "name": name, "note": note}
