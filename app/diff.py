"""Word-level diff of two generations as HTML: what the "before" model said that the "after" one no longer says.

Pure functions, no gradio: the Compare tab and the tests call them alike. Every piece of model text goes through
html.escape, so a generation that happens to contain markup is shown, never executed.
"""
from __future__ import annotations

import difflib
import html
import re

_WORD = re.compile(r"(\S+)(\s*)")  # a word and the whitespace after it, so newlines survive the round trip
EMPTY = '<span class="empty">(empty)</span>'


def _words(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Leading whitespace, then (word, trailing whitespace) pairs."""
    lead = text[: len(text) - len(text.lstrip())]
    return lead, [(m.group(1), m.group(2)) for m in _WORD.finditer(text)]


def _render(lead: str, pieces: list[tuple[str, str]], marked: set[int], tag: str) -> str:
    out = [html.escape(lead)]
    for i, (word, space) in enumerate(pieces):
        word = html.escape(word)
        out.append((f"<{tag}>{word}</{tag}>" if i in marked else word) + html.escape(space))
    return "".join(out)


def word_diff(before: str, after: str) -> tuple[str, str]:
    """(before_html, after_html): words only in `before` wrapped in <del>, words only in `after` in <mark>.

    Words are compared exactly (case and punctuation count), because exact match is how QA answers are scored.
    """
    lead_b, words_b = _words(before)
    lead_a, words_a = _words(after)
    matcher = difflib.SequenceMatcher(a=[w for w, _ in words_b], b=[w for w, _ in words_a], autojunk=False)
    removed: set[int] = set()
    added: set[int] = set()
    for op, b0, b1, a0, a1 in matcher.get_opcodes():
        if op != "equal":
            removed.update(range(b0, b1))
            added.update(range(a0, a1))
    before_html = _render(lead_b, words_b, removed, "del") if words_b else EMPTY
    after_html = _render(lead_a, words_a, added, "mark") if words_a else EMPTY
    return before_html, after_html


def changed_share(before: str, after: str) -> float:
    """Share of words that differ between two generations, 0 (identical) to 1 (nothing in common)."""
    a, b = before.split(), after.split()
    if not a and not b:
        return 0.0
    return 1.0 - difflib.SequenceMatcher(a=a, b=b, autojunk=False).ratio()
