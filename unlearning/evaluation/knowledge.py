"""What a model still knows of the forget samples, asked in other words: the checks every run makes, teacher forced.

Unlearning trains on the forget samples' exact prompts, and a model can learn to refuse those prompts while the
answers stay in its weights. Two checks that need no training read the knowledge under other wordings:
- question form: for a forgotten completion, the data's questions on the same document whose answer is in the
  completion ("What is the email address of Angela Brewer?");
- paraphrase: the same prompt in other words (the bundled data rewrites its own prompts; other data gets templates).
Each reworded sample keeps its source's answer, and every model of the run (original, unlearned, oracle) is scored on
it by exact memorization in one teacher-forced pass: seconds, not a generation. The level a model that never saw the
data reaches is read from the oracle where one is prepared, else from the data's holdout samples of the same task and
kind on the original (text it never saw): both are kept here, and the verdict reads them.
The "asked differently" probe (unlearning.probes.variants) adds a forcing prefix and generations on demand.
"""
from __future__ import annotations

import statistics
import weakref
from dataclasses import replace
from typing import Callable, Mapping

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.batching import encode_records, sample_length
from unlearning.data import UnlearningData
from unlearning.data.records import Record, entity_id
from unlearning.data.synthetic import paraphrases as bundled_paraphrases
from unlearning.evaluation.memorisation import token_scores

TEMPLATES = ("Question: {input} Answer:", "Please answer briefly. {input}")  # for data the studio cannot paraphrase
PARAPHRASES = 2  # per forget sample, in the checks every run makes
FIXED = ("original", "oracle")  # the models of a run that are never trained


def question_forms(data: UnlearningData, forget: list[Record]) -> list[tuple[Record, Record]]:
    """(question, completion) pairs: the data's questions on a forgotten completion's document, answered inside it."""
    chosen = {r.id for r in forget}
    questions: dict[str, list[Record]] = {}
    for record in data.records:
        if record.kind == "qa" and record.id not in chosen and entity_id(record.id):
            questions.setdefault(entity_id(record.id), []).append(record)
    return [(q, r) for r in forget if r.kind == "sc" and entity_id(r.id)
            for q in questions.get(entity_id(r.id), []) if q.output.strip() and q.output.strip() in r.output]


def paraphrased(forget: list[Record], count: int, templates: tuple[str, ...] | list[str] = TEMPLATES) -> list[tuple[Record, Record]]:
    """(paraphrase, source) pairs: up to `count` other wordings of each prompt, each with its source's answer."""
    pairs = []
    for record in forget:
        texts = bundled_paraphrases(record) or [t.replace("{input}", record.input) for t in templates]
        pairs += [(replace(record, id=f"{record.id}~paraphrase{i}", input=text), record)
                  for i, text in enumerate(texts[:count])]
    return pairs


# The fixed models' scores (the original's, the oracle's: loaded once and never trained) per model and samples: every
# run from one original asks them the same questions. Weak keys: a model that leaves the model cache takes them along.
_FIXED: weakref.WeakKeyDictionary[PreTrainedModel, dict[tuple, list]] = weakref.WeakKeyDictionary()


def _em(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, records: list[Record],
        progress: Callable[[int, int], None] | None = None, fixed: bool = False) -> list[float | None]:
    features = encode_records(tokenizer, records, sample_length(model))
    key = tuple(tuple(f["input_ids"]) + (-1,) + tuple(f["labels"]) for f in features)
    if fixed and key in _FIXED.get(model, {}):
        return list(_FIXED[model][key])
    model.eval()  # dropout off, as in every evaluation
    em = token_scores(model, features, tokenizer.pad_token_id, progress=progress).exact_memorization()
    if fixed:
        _FIXED.setdefault(model, {})[key] = list(em)
    return em


def holdout_levels(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, data: UnlearningData,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """"Task2/qa" -> the mean exact memorization `model` (one that is never trained: computed once) reaches on the
    data's holdout samples of that task and kind: what it predicts of text it never saw (templated biographies are
    predictable)."""
    holdout = data.split("holdout")
    levels: dict[str, list[float]] = {}
    for record, value in zip(holdout, _em(model, tokenizer, holdout, progress, fixed=True) if holdout else []):
        if value is not None:
            levels.setdefault(f"{record.task}/{record.kind}", []).append(value)
    return {key: statistics.fmean(values) for key, values in levels.items()}


def knowledge_checks(
    models: Mapping[str, PreTrainedModel], tokenizer: PreTrainedTokenizerBase, data: UnlearningData,
    forget: list[Record], progress: Callable[[str], None] = lambda stage: None,
) -> dict:
    """Every reworded forget sample's exact memorization under each model ("original", "unlearned", "oracle"), and
    the original's holdout level per task and kind. JSON-able; saved with the after-evaluation. The original and the
    oracle never change: their scores are computed once per model and samples."""
    pairs = {"question_form": question_forms(data, forget), "paraphrase": paraphrased(forget, PARAPHRASES)}
    records = [variant for found in pairs.values() for variant, _ in found]
    scores = {}
    for name, model in models.items():
        asking = lambda done, total, name=name: progress(f"asking the {name} model in other words, {int(done)}/{total} prompts")
        asking(0, len(records))
        scores[name] = _em(model, tokenizer, records, asking, fixed=name in FIXED) if records else []
    progress("the original's level on the holdout samples")
    level = lambda done, total: progress(f"the original's level on the holdout samples, {int(done)}/{total}")  # noqa: E731
    checks: dict = {"holdout_level": holdout_levels(models["original"], tokenizer, data, level) if "original" in models else {}}
    position = 0
    for check, found in pairs.items():
        checks[check] = []
        for variant, source in found:
            checks[check].append({"id": variant.id, "rewords": source.id, "task": variant.task, "kind": variant.kind,
                                  "prompt": variant.input, "answer": variant.output,
                                  "exact_memorization": {name: values[position] for name, values in scores.items()}})
            position += 1
    return checks
