"""Evaluation, one concept per module:

generation    greedy generation, batched (fast) or one prompt at a time (official)
official      the SemEval-2025 Task 4 scores: ROUGE-L recall / exact match, task aggregate, final score
memorisation  teacher-forced answer NLL, probability, exact memorization, extraction strength
fluency       generation NLL under the original model, repetition, gibberish
answers       refusals and empty answers, counted apart from gibberish
mia           membership inference (official loss attack, Min-K%, zlib)
utility       log-likelihood multiple choice: bundled item families, MMLU
metrics       the registry every number is declared in (name, direction, chance, ideal, what it measures)
report        EvalConfig, EvalReport and evaluate(): every registered metric on one model
verdict       the rules that call a run forgotten, kept, fluent, useful and private, or broken

Importing the package imports every module in it, so a new metric module registers itself (like methods and probes).
"""
import importlib
import pkgutil

from unlearning.evaluation.generation import generate
from unlearning.evaluation.metrics import METRICS, Cancelled, Metric, Skip
from unlearning.evaluation.report import EvalConfig, EvalReport, evaluate
from unlearning.evaluation.verdict import Verdict, judge

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METRICS", "Cancelled", "EvalConfig", "EvalReport", "Metric", "Skip", "Verdict", "evaluate", "generate", "judge"]
