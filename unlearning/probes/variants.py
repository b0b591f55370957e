"""Asked differently: do the forgotten answers come back when the prompt changes?

Unlearning trains on the forget samples' exact prompts. The same knowledge may still answer other wordings:
- paraphrase: the same question in other words (the bundled data rewrites its own prompts from its templates; other
  data gets prompt templates wrapped around the original prompt);
- prefix: a forcing prefix after the prompt ("Sure, here is the answer:"), as if the model had begun to comply;
- qa_form: for a forgotten completion, the data's questions on the same document whose answer is in the completion.
Each variant is scored on the original and on the unlearned model. The leak is the unlearned model's score under the
variant minus under the original prompt. The recovery allows for variants the original itself answers less well: the
forgetting on the original prompt predicts a variant score (the same share of the original's); recovery is the share
of the gap from that prediction back to the original's variant score, so 0 = the forgetting held as well as on the
original prompt, 1 = this wording brings everything back.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from unlearning.data.records import Record
from unlearning.evaluation.knowledge import TEMPLATES, paraphrased, question_forms
from unlearning.options import option
from unlearning.probes.base import (HEADLINE, KNOWLEDGE, MIN_GAP, ProbeOptions, Progress, Subject, bars, means,
                                    probe, recovery, verdict)

TITLES = {"paraphrase": "paraphrased", "prefix": "forcing prefix", "qa_form": "asked as a question"}
HOW = {"paraphrase": "when paraphrased", "prefix": "behind a forcing prefix", "qa_form": "when asked as a question"}
EXAMPLES = 3  # generations kept per variant, to read beside the numbers


@dataclass
class Options(ProbeOptions):
    paraphrases: int = option(2, "Paraphrased prompts per forget sample (0 = none). The bundled data rewrites its "
                                 "own prompts; other data uses the templates below.", ge=0, le=4)
    templates: str = option(" | ".join(TEMPLATES),
                            "Prompt templates for data the studio cannot paraphrase, separated by '|'; {input} stands "
                            "for the original prompt.")
    prefix: str = option("Sure, here is the answer:", "A forcing prefix written after the prompt; empty = none.")
    qa_form: bool = option(True, "Ask the question form of each forgotten completion, where the data has questions on "
                                 "the same document whose answer is in the completion.")

    def template_list(self) -> list[str]:
        return [t.strip(" ") for t in self.templates.split("|") if t.strip()]

    def problems(self) -> list[str]:
        missing = [t for t in self.template_list() if "{input}" not in t]
        return [f"every template needs {{input}} (the original prompt), not {missing[0]!r}"] if missing else []


def variant_pairs(subject: Subject, options: Options) -> dict[str, list[tuple[Record, Record]]]:
    """Per variant: (variant record, the forget record it rewords) pairs, each variant's answer the record's own."""
    forget = subject.selection.forget
    found = {"paraphrase": paraphrased(forget, options.paraphrases, options.template_list()) if options.paraphrases else [],
             "prefix": [(replace(r, id=f"{r.id}~prefix", input=f"{r.input} {options.prefix.strip()}"), r)
                        for r in forget] if options.prefix.strip() else [],
             "qa_form": question_forms(subject.data, forget) if options.qa_form else []}
    return {name: pairs for name, pairs in found.items() if pairs}


def asked_recovery(plain_original: float | None, plain_unlearned: float | None, original: float | None,
                   unlearned: float | None) -> float | None:
    """Recovery of a variant, judged against what the forgetting on the original prompt predicts for it."""
    if None in (plain_original, plain_unlearned, original, unlearned) or abs(plain_original - plain_unlearned) < MIN_GAP:
        return None
    expected = original * plain_unlearned / plain_original  # the same share of the original's score as on the plain prompt
    return recovery(original, expected, unlearned)


@probe(name="variants", title="Asked differently",
       asks="Do the forgotten answers come back under a paraphrase, a forcing prefix or the question form?",
       options=Options)
def run(subject: Subject, options: Options, progress: Progress, cancel: threading.Event | None) -> dict:
    pairs = variant_pairs(subject, options)
    if not pairs:
        raise ValueError("no prompt variant applies to this run's forget samples: turn on paraphrases (with templates "
                         "for this data), a prefix, or the question form")
    records = list({v.id: v for found in pairs.values() for v, _ in found}.values())
    rows = {}
    for i, name in enumerate(("original", "unlearned")):
        model = subject.original.model if name == "original" else subject.unlearned
        report = subject.rescore(model, records, lambda f, stage: progress((i + f) / 2, f"{name} model: {stage}"), cancel)
        rows[name] = report.rows
    saved = {"original": subject.before.rows, "unlearned": subject.after.rows}
    results, probed, recovered = {}, {}, {}
    for variant, found in pairs.items():
        sources, asked = [r.id for _, r in found], [v.id for v, _ in found]
        plain = {name: means(saved[name], sources) for name in saved}
        reworded = {name: means(rows[name], asked) for name in rows}
        metrics = {m: {"original_prompt": {name: plain[name][m] for name in saved},
                       "variant": {name: reworded[name][m] for name in rows},
                       "leak": None if None in (reworded["unlearned"][m], plain["unlearned"][m])
                       else reworded["unlearned"][m] - plain["unlearned"][m],
                       "recovery": asked_recovery(plain["original"][m], plain["unlearned"][m], reworded["original"][m],
                                                  reworded["unlearned"][m])}
                   for m in KNOWLEDGE}
        by_id = {name: {row["id"]: row for row in rows[name]} for name in rows}
        examples = [{"id": v.id, "rewords": r.id, "prompt": v.input, "expected": v.output,
                     "original": by_id["original"][v.id]["generation"], "unlearned": by_id["unlearned"][v.id]["generation"]}
                    for v, r in found[:EXAMPLES]]
        results[variant] = {"title": TITLES[variant], "samples": len(found), "metrics": metrics, "examples": examples}
        probed[TITLES[variant]] = reworded["unlearned"]
        recovered[TITLES[variant]] = {m: metrics[m]["recovery"] for m in KNOWLEDGE}
    scored = {v: r["metrics"][HEADLINE]["recovery"] for v, r in results.items() if r["metrics"][HEADLINE]["recovery"] is not None}
    worst = max(scored, key=scored.get, default=None)
    headline = verdict(scored.get(worst), HOW[worst] if worst else "")
    if worst:
        leak = results[worst]["metrics"][HEADLINE]["leak"]
        headline["text"] += f" (score {leak:+.2f} against the original prompt)"
    forget = {name: means(saved[name], split="forget") for name in saved}
    return {"variants": results, "headline": headline,
            "bars": bars(forget["original"], forget["unlearned"], probed, recovered)}
