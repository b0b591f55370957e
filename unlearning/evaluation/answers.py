"""What kind of answer each generation is: a refusal, or nothing at all.

Both look "forgotten" to a score that compares the generation with the true answer, and neither is what a model that
never saw the sample says: it answers, wrongly. A forget set answered with refusals where the oracle answers tells an
attacker exactly which samples were unlearned; an empty answer is broken output. The verdict counts both apart from
gibberish (unlearning.evaluation.verdict).
"""
from __future__ import annotations

import re

from unlearning.evaluation.generation import generations
from unlearning.evaluation.metrics import Context, metric
from unlearning.methods.idk import REFUSALS

# The idk method's own refusal answers, and the phrasings chat models refuse with (TOFU's IdK set is of this shape),
# at the start of the answer (after an apology or a filler): "I don't know" inside a story is prose, not a refusal.
_COMMON = (r"i (?:do not|don't|dont) know\b", r"i(?:'m| am) (?:not sure|unable|not able|sorry|afraid)\b",
           r"i (?:can ?not|can't|cant) (?:answer|help|say|recall|provide|share|remember)\b",
           r"i have no (?:idea|information|knowledge|record)\b", r"i (?:do not|don't|dont) have (?:that|any|an|the)\b",
           r"no (?:idea|information)\b", r"(?:that's|that is) not something i know\b", r"i(?:'m| am) not aware\b")
_OPENERS = r"^(?:(?:sorry|unfortunately|well|hmm|honestly|apologies)\W+)*"
REFUSAL = re.compile(_OPENERS + "(?:" + "|".join((*_COMMON, *(re.escape(r.lower().rstrip(".")) for r in REFUSALS))) + ")")


def is_refusal(text: str) -> bool:
    """The answer opens with a refusal ("I don't know.", "Sorry, I can't help with that.")."""
    return bool(REFUSAL.match(" ".join(text.lower().replace("’", "'").split())))


def is_empty(text: str) -> bool:
    return not text.strip()


@metric(
    name="refusal", title="Refusal", family="fluency", better="lower", per_sample=True, ideal=0.0,
    what="1 when the answer opens with a refusal (\"I don't know.\", \"I can't help with that.\": the idk method's "
         "refusals and common patterns). On forget, a refusal where a model that never saw the sample answers is a "
         "tell: it shows what was unlearned.",
)
def refusal(ctx: Context) -> list[float]:
    return [float(is_refusal(text)) for text in ctx.shared(generations)]


@metric(
    name="empty", title="Empty answer", family="fluency", better="lower", per_sample=True, ideal=0.0,
    what="1 when the model generated nothing but whitespace: broken output, counted apart from gibberish.",
)
def empty(ctx: Context) -> list[float]:
    return [float(is_empty(text)) for text in ctx.shared(generations)]
