"""Fluency: are the generations still language? A low forget score means little if the answers became gibberish.

Two signals per generation, and a flag that combines them:
- repetition: the share of the generation's tokens (lower-cased, spaces stripped) that already occur among the WINDOW
  tokens before them. Prose repeats a few words and punctuation marks (LUME's documents and completions: at most
  0.36, mean 0.17); a loop or digit soup repeats nearly everything ("angel angel angel ...", "2222...", and the
  "...-220222312222311222..." that gradient ascent left in docs/recipes.md's first scenario: 0.5-0.9). A window,
  not the whole text, so a long text is not punished for reusing "the".
- generation NLL: mean per-token NLL of the generation under the *original* model, given the prompt. Prose the original
  could have written scores about 1-3.5 nats; token soup far more. It misses digit soup (digits are cheap tokens for any
  model), and over a few tokens it mostly measures "differs from what the original said" (a memorising original finds
  any other phone number unlikely).
Short answers are the hard case: "303-755-0306" repeats digits as a loop does and is unlikely to an original that knew
another number, so a short generation is flagged only when empty or one token repeated; both statistical limits apply
from LONG tokens on.
"""
from __future__ import annotations

from typing import Callable

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.batching import IGNORE, MAX_LENGTH
from unlearning.evaluation.generation import generations
from unlearning.evaluation.memorisation import token_scores
from unlearning.evaluation.metrics import Context, metric, stage

FLUENCY = stage("fluency", 0.08)  # the original model reads every generation once
WINDOW = 16  # tokens looked back at for a repeat
REPETITION_LIMIT = 0.4  # at or above, on a long generation: a loop (prose stays under 0.37, see above)
LONG = 24  # tokens from which the repetition limit applies (LUME's longest number-heavy answer, an address, has 18)
NLL_LIMIT = 6.0  # nats/token under the original model: greedy prose sits near 1-3.5 (docs/evaluation.md)


def _pieces(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    pieces = [tokenizer.decode([t]).strip().lower() for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    return [p for p in pieces if p]


def repetition(tokenizer: PreTrainedTokenizerBase, text: str) -> float:
    """Share of tokens already seen among the WINDOW tokens before them: ~0.1-0.35 for prose, near 1 for a loop."""
    pieces = _pieces(tokenizer, text)
    if len(pieces) < 2:
        return 0.0
    repeats = sum(pieces[i] in pieces[max(0, i - WINDOW) : i] for i in range(1, len(pieces)))
    return repeats / (len(pieces) - 1)


def is_gibberish(tokenizer: PreTrainedTokenizerBase, text: str, repeated: float, nll: float | None) -> bool:
    """One token over and over, or a long generation that loops or that the original finds implausible. An empty
    answer is not gibberish: it is counted on its own (evaluation.answers)."""
    pieces = _pieces(tokenizer, text)
    if len(pieces) >= 3 and len(set(pieces)) == 1:
        return True
    return len(pieces) >= LONG and (repeated >= REPETITION_LIMIT or (nll is not None and nll >= NLL_LIMIT))


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
    flags = [float(is_gibberish(tokenizer, t, r, n)) for t, r, n in zip(texts, repeated, nll)]
    return {"generation_nll": nll, "repetition": repeated, "gibberish": flags}


def fluency(ctx: Context) -> dict[str, list]:
    """Every generation of this evaluation judged by the reference (original) model: the metrics below read it."""
    return judge_texts(ctx.reference, ctx.tokenizer, [r.input for r in ctx.records], ctx.shared(generations),
                       ctx.config.batch_size, lambda done, total: ctx.progress(FLUENCY, done, total))


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
    what=f"Share of the generation's tokens that repeat one of the {WINDOW} before them: 0.1-0.35 for prose, near 1 "
         "for 'angel angel angel...' or '2222...'.",
)
def repetition_share(ctx: Context) -> list[float]:
    return ctx.shared(fluency)["repetition"]


@metric(
    name="gibberish", title="Gibberish", family="fluency", better="lower", per_sample=True, ideal=0.0,
    what=f"1 when the generation is one token repeated, a long loop (repetition >= {REPETITION_LIMIT} over "
         f"{LONG}+ tokens) or implausible to the original model (generation NLL >= {NLL_LIMIT}, {LONG}+ tokens); its "
         "mean is the share of broken answers. An empty answer is counted apart (Empty answer).",
)
def gibberish(ctx: Context) -> list[float]:
    return ctx.shared(fluency)["gibberish"]
