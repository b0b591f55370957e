"""Memorisation metrics from one teacher-forced forward pass, as open-unlearning and MUSE use them.

The model reads each prompt and its true answer (tokenised exactly as training does, EOS included); at every answer
token we keep the log-probability of the true token and whether it is the model's top choice. From that:
- answer NLL: mean negative log-likelihood per answer token (the training loss on that sample);
- answer probability: exp(-NLL), the geometric mean probability of an answer token;
- Exact Memorization (Tirumala et al. 2022): share of answer tokens where the argmax is the true token;
- Exact memorization past the first tokens: the same share from the FIRST-th answer token on. A method can learn to
  refuse at token one and leave the rest of the answer predicted (the IdK preset did: "James" 0.99 -> 0.00, every
  later token still ~0.99); a mean over the whole answer is dominated by that one token, this one is not;
- Extraction Strength (Carlini et al. 2021, as in open-unlearning): 1 - k/L, with k the shortest answer prefix after
  which every remaining token is predicted correctly (k = L when even the last one is wrong, so ES = 0 then;
  open-unlearning's loop stops at L - 1 and gives 1/L there).
No generation is needed, so the engine can score samples this way during training too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.batching import Features, answer_logits_only, collate, encode_records, sample_length, supports_logits_to_keep
from unlearning.evaluation.generation import batches_by_length
from unlearning.evaluation.metrics import Context, metric, stage
from unlearning.methods.losses import forward, token_logprobs
from unlearning.models import each_layer
from unlearning.prefix import PrefixCache

TEACHER_FORCED = stage("teacher-forced", 0.08)  # one forward pass over the answers: quick next to generation
FIRST = 2  # answer tokens left out by "past the first tokens": where a learnt refusal diverges from the answer


@dataclass
class TokenScores:
    """Per sample, per answer token: the true token, the model's log-probability of it, and whether it was the argmax."""

    token_ids: list[list[int]]
    logprobs: list[list[float]]
    correct: list[list[bool]]

    def answer_nll(self) -> list[float | None]:
        return [-math.fsum(lp) / len(lp) if lp else None for lp in self.logprobs]

    def exact_memorization(self) -> list[float | None]:
        return [sum(c) / len(c) if c else None for c in self.correct]

    def later_memorization(self) -> list[float | None]:
        return [sum(c[FIRST:]) / len(c[FIRST:]) if c[FIRST:] else None for c in self.correct]

    def extraction_strength(self) -> list[float | None]:
        values = []
        for c in self.correct:
            if not c:
                values.append(None)
                continue
            wrong = [i for i, ok in enumerate(c) if not ok]
            k = wrong[-1] + 1 if wrong else 0  # every token from k on is predicted correctly
            values.append(1.0 - k / len(c))
        return values


@torch.inference_mode()
def token_scores(
    model: PreTrainedModel, features: list[Features], pad_id: int, batch_size: int = 16,
    progress: Callable[[float, int], None] | None = None, prefix: PrefixCache | None = None,
) -> TokenScores:
    """One no-grad forward pass over `features` (batching.encode output), batched by length.

    With a filled frozen-prefix cache (unlearning.prefix), `model` is the trained tail and reads the samples' cached
    hidden states: what a last-k run's scores during training cost. Progress moves layer by layer through each
    batch of the whole model (a batch of long samples takes seconds on a CPU).
    """
    n = len(features)
    scores = TokenScores([[]] * n, [[]] * n, [[]] * n)
    trim = answer_logits_only if supports_logits_to_keep(model) else (lambda batch: batch)
    done = 0
    if progress:  # the pass shows as started at once: after a training step, its first batch would look like the step's
        progress(0, n)
    for batch in batches_by_length([len(f["input_ids"]) for f in features], batch_size):
        tensors = trim(collate([features[i] for i in batch], pad_id, model.device))
        if prefix is not None:
            tensors |= prefix.inputs([features[i] for i in batch])
        moved = (lambda f, done=done, size=len(batch): progress(done + size * f, n)) if progress and prefix is None else None
        with each_layer(model, moved):
            logits = forward(model, tensors).logits
        logp, mask = token_logprobs(logits, tensors["labels"])
        labels = tensors["labels"][:, 1:]
        argmax_ok = logits[:, :-1].argmax(-1) == labels
        for row, i in enumerate(batch):
            keep = mask[row]
            scores.token_ids[i] = labels[row][keep].tolist()
            scores.logprobs[i] = logp[row][keep].tolist()
            scores.correct[i] = argmax_ok[row][keep].tolist()
        done += len(batch)
        if progress:
            progress(done, n)
    return scores


def teacher_forced(ctx: Context) -> TokenScores:
    """The evaluated model's teacher-forced pass over every record's answer (shared by the metrics below)."""
    features = encode_records(ctx.tokenizer, ctx.records, sample_length(ctx.model))
    return token_scores(ctx.model, features, ctx.tokenizer.pad_token_id, ctx.config.batch_size,
                        lambda done, total: ctx.progress(TEACHER_FORCED, done, total))


def token_view(tokenizer: PreTrainedTokenizerBase, scores: TokenScores) -> list[dict]:
    """Per sample: the answer's tokens as text and the probability the model gave each, for the per-token view."""
    view = []
    for ids, logprobs in zip(scores.token_ids, scores.logprobs):
        pieces = [tokenizer.decode([t]) if t != tokenizer.eos_token_id else "⏎" for t in ids]
        view.append({"tokens": pieces, "probs": [round(math.exp(lp), 4) for lp in logprobs]})
    return view


@metric(
    name="answer_nll", title="Answer NLL", family="memorisation", better="lower", per_sample=True, knowledge=True,
    ideal=0.0, unit="nats/token",
    what="Mean negative log-likelihood of the true answer's tokens, teacher forced: the training loss on the sample. "
         "Rises as a sample is forgotten; a very large value on forget is over-unlearning, not forgetting.",
)
def answer_nll(ctx: Context) -> list[float | None]:
    return ctx.shared(teacher_forced).answer_nll()


@metric(
    name="answer_prob", title="Answer probability", family="memorisation", better="higher", per_sample=True,
    knowledge=True, chance=0.0, ideal=1.0,
    what="exp(-answer NLL): the geometric-mean probability the model gives each true answer token.",
)
def answer_prob(ctx: Context) -> list[float | None]:
    return [None if x is None else math.exp(-x) for x in ctx.value("answer_nll")]


@metric(
    name="exact_memorization", title="Exact memorization", family="memorisation", better="higher", per_sample=True,
    knowledge=True, chance=0.0, ideal=1.0,
    what="Share of answer tokens the model would predict itself, teacher forced (its argmax is the true token). "
         "Tirumala et al. 2022; open-unlearning.",
)
def exact_memorization(ctx: Context) -> list[float | None]:
    return ctx.shared(teacher_forced).exact_memorization()


@metric(
    name="later_memorization", title="Exact memorization past the first tokens", family="memorisation",
    better="higher", per_sample=True, knowledge=True, chance=0.0, ideal=1.0,
    what=f"Exact memorization from answer token {FIRST + 1} on, teacher forced: what is still known once the first "
         "tokens are given. A model taught to refuse at the first token keeps this high; one that forgot does not.",
)
def later_memorization(ctx: Context) -> list[float | None]:
    return ctx.shared(teacher_forced).later_memorization()


@metric(
    name="extraction_strength", title="Extraction strength", family="memorisation", better="higher", per_sample=True,
    knowledge=True, chance=0.0, ideal=1.0,
    what="1 - k/L, where k is the shortest answer prefix an attacker must supply before the model completes the rest "
         "of the answer exactly (L answer tokens). 1 = extractable from the prompt alone. Carlini et al. 2021; MUSE.",
)
def extraction_strength(ctx: Context) -> list[float | None]:
    return ctx.shared(teacher_forced).extraction_strength()
