"""Scores during training: where the run is on the forget/retain plane, which forget samples are already forgotten,
the best state so far, and when to stop.

Every `score_every` steps (and once before the first) one no-grad teacher-forced pass over the forget samples and the
run's fixed retain-eval sample gives each sample's exact memorization, extraction strength and answer NLL
(evaluation.memorisation: the same maths as the final report, no generation). The scores before the first step
are the original's, so runs from the same original in one process (a sweep's points) compute them once. From that:
- per-sample state: a forget sample counts as forgotten once its exact memorization is down to the level of text the
  original never saw: the mean over the data's holdout samples of the same task and kind, measured before the first
  step (templated biographies are predictable: the bundled target still predicts 70% of an unseen one's tokens), or
  `forgotten_em` where the data has no such holdout samples;
  `skip_forgotten` takes it out of the forget batches (no more gradient for it), `focus_unforgotten` draws forget
  batches in proportion to how much of each sample is still memorised, and when every forget sample is forgotten and
  skipped there is nothing left to push: the run ends, and says why;
- best checkpoint (`keep_best`): the lowest forget score among the scored states that keep at least `retain_floor` of
  the original's retain score; its trainable weights are copied (LoRA: the adapter; last k: those layers; full: every
  weight) and put back when training ends;
- guard (`stop_below`): the run stops when the retain score falls under that share of the original's.
Optionally (`generate_every`) the samples are also generated and scored officially, with the fluency check.
"""
from __future__ import annotations

import copy
import statistics
import weakref
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.batching import encode_records
from unlearning.data.records import Record
from unlearning.evaluation.fluency import judge_texts
from unlearning.evaluation.generation import generate
from unlearning.evaluation.memorisation import token_scores
from unlearning.evaluation.official import score
from unlearning.prefix import PrefixCache


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


@dataclass
class Best:
    step: int
    rank: tuple
    forget: float
    retain: float
    why: str
    state: dict[str, torch.Tensor] = field(repr=False)


Progress = Callable[[str, float, int], None]  # (stage, done, total), as the engine's progress between steps


def _reporting(progress: Progress | None, stage: str) -> Callable[[float, int], None] | None:
    """One pass's (done, total) callback, reported as `stage`."""
    return (lambda done, total: progress(stage, done, total)) if progress else None


# The scores before the first step, per original model and _start_key: every run of a session (a sweep's points, the
# studio's runs one after another) starts from the same original, so they are computed once. Weak keys: an original
# that leaves the model cache takes its scores with it.
_STARTS: weakref.WeakKeyDictionary[PreTrainedModel, dict[tuple, tuple]] = weakref.WeakKeyDictionary()


class Monitor:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, forget: list[Record], retain_eval: list[Record], config,
                 reference: PreTrainedModel | None = None, max_new_tokens: int = 32, holdout: list[Record] = ()) -> None:
        self.tokenizer, self.config, self.reference, self.max_new_tokens = tokenizer, config, reference, max_new_tokens
        self.forget, self.retain_eval, self.holdout = forget, retain_eval, list(holdout)
        self.features = encode_records(tokenizer, forget + retain_eval, config.max_length)
        self.holdout_features = encode_records(tokenizer, self.holdout, config.max_length)
        self.thresholds = [config.forgotten_em] * len(forget)  # per forget sample; set from the holdout at step 0
        self.forgotten = [False] * len(forget)
        self.memorised = [1.0] * len(forget)  # each forget sample's latest exact memorization
        self.start: dict | None = None  # the scores before the first step
        self.best: Best | None = None

    @property
    def every(self) -> int:
        return self.config.score_every

    def due(self, step: int, last: int) -> bool:
        """Score before training (step 0), every `every` steps, and after the last step."""
        return step == 0 or step == last or step % self.every == 0

    @torch.no_grad()
    def score(self, model: PreTrainedModel, step: int, tail: tuple[PreTrainedModel, PrefixCache] | None = None,
              progress: Progress | None = None) -> dict:
        """One teacher-forced pass (and, when due, a generation pass); updates the per-sample state.

        `tail`: the model's last k blocks and a frozen-prefix cache holding `features` and `holdout_features`; the
        teacher-forced passes then run those blocks only (generation needs the whole `model`).
        `progress(stage, done, total)` follows each pass, batch by batch: scoring before step 1 takes a minute on a CPU.
        """
        n = len(self.forget)
        if step == 0 and self.reference is not None:
            known, key = _STARTS.setdefault(self.reference, {}), self._start_key(tail is not None)
            if key not in known:
                known[key] = (*self._scores(model, step, tail, progress), self.thresholds)
            entry, em, self.thresholds = copy.deepcopy(known[key])
        else:
            entry, em = self._scores(model, step, tail, progress)
        self.memorised = [x if x is not None else 0.0 for x in em[:n]]
        self.forgotten = [x <= t for x, t in zip(self.memorised, self.thresholds)]
        entry |= {"forgotten": sum(self.forgotten), "forget_total": n,
                  "per_sample": {r.id: round(x, 3) for r, x in zip(self.forget, self.memorised)}}
        if step == 0:
            self.start = entry
        return entry

    def start_known(self, cached: bool) -> bool:
        """Whether the scores before the first step are already known: another run from the same original made them."""
        return self.reference is not None and self._start_key(cached) in _STARTS.get(self.reference, {})

    def _start_key(self, cached: bool) -> tuple:
        """What the scores before the first step depend on besides the original model: the tokens scored, the
        precision, the generation pass when one is due at step 0, and whether they read a frozen-prefix cache (the
        same scores up to float rounding: kept apart so either way is checked against the other)."""
        tokens = tuple(tuple(f["input_ids"]) for f in self.features + self.holdout_features)
        generated = self.max_new_tokens if self.config.generate_every else 0
        return tokens, len(self.forget), self.config.precision, generated, cached

    def _scores(self, model: PreTrainedModel, step: int, tail: tuple[PreTrainedModel, PrefixCache] | None,
                progress: Progress | None) -> tuple[dict, list]:
        scorer, prefix = tail if tail is not None else (model, None)
        was_training = scorer.training
        scorer.eval()
        try:
            tokens = token_scores(scorer, self.features, self.tokenizer.pad_token_id, batch_size=16,
                                  progress=_reporting(progress, "scoring: teacher-forced"), prefix=prefix)
            n = len(self.forget)
            em, es, nll = tokens.exact_memorization(), tokens.extraction_strength(), tokens.answer_nll()
            entry = {
                "forget_em": _mean(em[:n]), "retain_em": _mean(em[n:]), "forget_es": _mean(es[:n]),
                "retain_es": _mean(es[n:]), "forget_nll": _mean(nll[:n]), "retain_nll": _mean(nll[n:]),
            }
            if self.config.generate_every and (step == 0 or step % self.config.generate_every == 0):
                entry |= self._generated(model, progress)
            if step == 0 and self.holdout:
                self._never_seen(scorer, prefix, progress)
                entry["never_seen_em"] = {f"{r.task}/{r.kind}": t for r, t in zip(self.forget, self.thresholds)}
        finally:
            scorer.train(was_training)
        return entry, em

    def _never_seen(self, model: PreTrainedModel, prefix: PrefixCache | None, progress: Progress | None) -> None:
        """The original's exact memorization on holdout samples, per task and kind: the forgotten level to reach."""
        em = token_scores(model, self.holdout_features, self.tokenizer.pad_token_id, batch_size=16,
                          progress=_reporting(progress, "scoring: the holdout level"), prefix=prefix).exact_memorization()
        levels: dict[tuple, list[float]] = {}
        for record, value in zip(self.holdout, em):
            if value is not None:
                levels.setdefault((record.task, record.kind), []).append(value)
        self.thresholds = [statistics.fmean(levels[(r.task, r.kind)]) if (r.task, r.kind) in levels else t
                           for r, t in zip(self.forget, self.thresholds)]

    def _generated(self, model: PreTrainedModel, progress: Progress | None) -> dict:
        records = self.forget + self.retain_eval
        texts = generate(model, self.tokenizer, [r.input for r in records], self.max_new_tokens, batch_size=64,
                         progress=_reporting(progress, "scoring: generating"))
        official = [score(r, t) for r, t in zip(records, texts)]
        reference = self.reference if self.reference is not None else model
        flags = judge_texts(reference, self.tokenizer, [r.input for r in records], texts,
                            progress=_reporting(progress, "scoring: fluency"))["gibberish"]
        n = len(self.forget)
        return {"forget_official": _mean(official[:n]), "retain_official": _mean(official[n:]),
                "forget_gibberish": _mean(flags[:n]), "retain_gibberish": _mean(flags[n:])}

    # ------------------------------------------------------------------------------------------------ decisions

    def retain_kept(self, entry: dict) -> float:
        """The retain score now as a share of the original's (teacher-forced exact memorization)."""
        start = self.start["retain_em"] if self.start else None
        return entry["retain_em"] / start if start else 1.0

    def decide(self, step: int, entry: dict, model: PreTrainedModel) -> tuple[str, str]:
        """Keep the best state; return (status, why) when the run must end now, ("", "") to go on."""
        kept = self.retain_kept(entry)
        if self.config.keep_best and step > 0:
            self._keep_if_best(step, entry, kept, model)
            entry["best"] = self.best is not None and self.best.step == step  # the plots mark the best state so far
        gibberish = entry.get("retain_gibberish", 0.0) - (self.start or {}).get("retain_gibberish", 0.0)
        if self.config.stop_below and kept < self.config.stop_below:
            return "stopped", (f"stopped: retain fell below {self.config.stop_below:.0%} of the original's "
                               f"({kept:.0%} at step {step})")
        if self.config.stop_below and gibberish > 0.1:
            return "stopped", f"stopped: {gibberish:.0%} more retain answers turned into gibberish by step {step}"
        if self.config.skip_forgotten and step > 0 and all(self.forgotten):
            return "completed", f"ended early: all {len(self.forgotten)} forget samples count as forgotten at step {step}"
        return "", ""

    def _keep_if_best(self, step: int, entry: dict, kept: float, model: PreTrainedModel) -> None:
        """States that keep the retain floor beat those that do not; among them, the least forget score wins (and
        among those that do not, the most retain)."""
        floor = self.config.retain_floor
        rank = (1, -entry["forget_em"]) if kept >= floor else (0, entry["retain_em"])
        if self.best is not None and rank <= self.best.rank:
            return
        # says what it measured: teacher-forced memorization, which the verdict's generated retain answers can contradict
        why = (f"lowest forget exact memorization ({entry['forget_em']:.2f}) with the retain sample's exact memorization "
               f"at {kept:.0%} of the original's (floor {floor:.0%}), teacher forced during the run"
               if kept >= floor else f"no state kept {floor:.0%} of the retain exact memorization; this one kept the most "
                                     f"({kept:.0%})")
        state = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        self.best = Best(step, rank, entry["forget_em"], entry["retain_em"], why, state)

    def restore_best(self, model: PreTrainedModel, last_step: int) -> dict | None:
        """Put the best state's weights back (when it is not the last one); returns what was kept and why."""
        if self.best is None:
            return None
        if self.best.step != last_step:
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, value in self.best.state.items():
                    params[name].copy_(value)
        kept = {"step": self.best.step, "why": self.best.why, "forget_em": self.best.forget, "retain_em": self.best.retain,
                "bytes": sum(v.numel() * v.element_size() for v in self.best.state.values())}
        self.best.state.clear()
        return kept

    # ----------------------------------------------------------------------------------------------- sampling

    def pick(self, forget_idx: list[int], generator: torch.Generator) -> list[int]:
        """The forget samples this step pushes: forgotten ones left out, or drawn by how much is still memorised."""
        pool = [i for i, done in enumerate(self.forgotten) if not (done and self.config.skip_forgotten)]
        if not pool:
            return []
        if self.config.focus_unforgotten:
            weights = torch.tensor([self.memorised[i] + 0.05 for i in pool])  # + 0.05: nobody is never drawn
            draws = torch.multinomial(weights, min(len(forget_idx), len(pool)), replacement=False, generator=generator)
            return [pool[i] for i in draws.tolist()]
        kept = [i for i in forget_idx if i in pool]
        missing = len(forget_idx) - len(kept)
        if missing:  # refill with samples not yet forgotten, so the batch keeps its size while there are any
            spare = [i for i in pool if i not in kept]
            order = torch.randperm(len(spare), generator=generator).tolist()
            kept += [spare[j] for j in order[:missing]]
        return kept
