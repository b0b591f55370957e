"""Fluency: are the generations still language? A low forget score means little if the answers became gibberish.

Two signals per generation, and a flag that combines them:
- generation NLL: mean per-token NLL of the generation under the *original* model, given the prompt. Prose the
  original could have written scores low; token soup scores high. Over a few tokens it mostly measures "differs from
  what the original would say" (a memorising original finds any other date unlikely), so the flag reads it only on
  generations of MIN_TOKENS or more.
- repetition: the share of the generation's token bigrams (tokens lower-cased, spaces stripped) that already
  appeared earlier in it. Ordinary prose repeats few bigrams; "angel angel angel ..." or "2222..." repeat nearly all.
"""
from __future__ import annotations

from typing import Callable

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.batching import IGNORE
from unlearning.evaluation.generation import generations
from unlearning.evaluation.memorisation import MAX_LENGTH, token_scores
from unlearning.evaluation.metrics import Context, metric

REPETITION_LIMIT = 0.5  # at or above: a loop (half of all bigrams are repeats; "angel angel angel" is exactly 0.5)
NLL_LIMIT = 6.0  # nats/token under the original model: greedy prose sits near 1-3 (measured in the README)
MIN_TOKENS = 8


def repetition(tokenizer: PreTrainedTokenizerBase, text: str) -> float:
    """Share of token bigrams already seen earlier in the text: 0 for prose, near 1 for a loop."""
    pieces = [tokenizer.decode([t]).strip().lower() for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    pieces = [p for p in pieces if p]
    grams = list(zip(pieces, pieces[1:]))
    seen, repeated = set(), 0
    for gram in grams:
        repeated += gram in seen
        seen.add(gram)
    return repeated / len(grams) if grams else 0.0


def is_gibberish(text: str, repeated: float, nll: float | None, tokens: int) -> bool:
    """Empty, looping, or text the original model finds implausible (over enough tokens to mean it)."""
    if not text.strip() or repeated >= REPETITION_LIMIT:
        return True
    return nll is not None and tokens >= MIN_TOKENS and nll >= NLL_LIMIT


def judge_texts(
    reference: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], texts: list[str],
    batch_size: int = 16, progress: Callable[[int, int], None] | None = None,
) -> dict[str, list]:
    """generation_nll, repetition and gibberish of each text read as the continuation of its prompt by `reference`."""
    features = []
    for prompt, text in zip(prompts, texts):
        prompt_ids = tokenizer(prompt)["input_ids"]
        answer = tokenizer(text, add_special_tokens=False)["input_ids"]
        features.append({"input_ids": (prompt_ids + answer)[:MAX_LENGTH],
                         "labels": ([IGNORE] * len(prompt_ids) + answer)[:MAX_LENGTH]})
    scores = token_scores(reference, features, tokenizer.pad_token_id, batch_size, progress)
    nll = scores.answer_nll()
    repeated = [repetition(tokenizer, text) for text in texts]
    flags = [float(is_gibberish(t, r, n, len(ids))) for t, r, n, ids in zip(texts, repeated, nll, scores.token_ids)]
    return {"generation_nll": nll, "repetition": repeated, "gibberish": flags}


def fluency(ctx: Context) -> dict[str, list]:
    """Every generation of this evaluation judged by the reference (original) model: the metrics below read it."""
    return judge_texts(ctx.reference, ctx.tokenizer, [r.input for r in ctx.records], ctx.shared(generations),
                       ctx.config.batch_size, lambda done, total: ctx.progress("fluency", done, total))


@metric(
    name="generation_nll", title="Generation NLL (original model)", family="fluency", better="lower", per_sample=True,
    unit="nats/token",
    what="How surprising the generation is to the original model, per token, given the prompt: low for prose it could "
         "have written, high for token soup. On short answers it mostly says 'different from before'.",
)
def generation_nll(ctx: Context) -> list[float | None]:
    return ctx.shared(fluency)["generation_nll"]


@metric(
    name="repetition", title="Repetition", family="fluency", better="lower", per_sample=True, ideal=0.0,
    what="Share of the generation's token pairs that repeat an earlier pair: near 0 for prose, near 1 for "
         "'angel angel angel...' or '2222...'.",
)
def repetition_share(ctx: Context) -> list[float]:
    return ctx.shared(fluency)["repetition"]


@metric(
    name="gibberish", title="Gibberish", family="fluency", better="lower", per_sample=True, ideal=0.0,
    what=f"1 when the generation is empty, loops (repetition >= {REPETITION_LIMIT}) or is implausible to the original "
         f"model (generation NLL >= {NLL_LIMIT} over {MIN_TOKENS}+ tokens); its mean is the share of broken answers.",
)
def gibberish(ctx: Context) -> list[float]:
    return ctx.shared(fluency)["gibberish"]
