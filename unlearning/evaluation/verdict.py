"""The verdict on a run: one plain sentence and a colour for each of forgot, output, kept, fluent, utility, privacy and
robust.

These rules are the only place the studio decides what counts as forgotten, kept or broken: the CLI prints them, the
app colours the Runs table, the Pareto plot and the Run tab's summary from them.

"Forgotten" means what the field means by it: indistinguishable from a model that never saw the data, in what the
model knows and not only in what it greedily prints. So "forgot" reads the teacher-forced knowledge of each forget
sample (exact memorization, also past the first answer tokens) and of its question forms and paraphrases (the
knowledge checks every run makes), against the level of a model that never saw them: the oracle where one is
prepared, else the original's level on the data's holdout samples of the same task and kind, else half the original's
(fixed thresholds, said in the text). A run whose output changed while the knowledge stayed is "hidden", not
forgotten. "output" keeps the greedy-output reading (the official score), against the oracle's where there is one:
far below it is a tell too (refusals where the oracle answers). "privacy" reads PrivLeak against the oracle's MIA AUC,
else 0.5. "kept" is decided per retain group, not by a mean one good group can prop up, and answers that became
gibberish or empty are broken output, not forgetting. "robust" reads the relearning and quantisation probes once run.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

from unlearning.evaluation.distance import LEAK_FAR, LEAK_NEAR, privleak
from unlearning.evaluation.report import EvalReport
from unlearning.options import finite_number

ASPECTS = {"forgot": "Forgot (knowledge)", "output": "Output", "kept": "Kept", "fluent": "Still fluent",
           "utility": "Utility kept", "privacy": "Privacy", "robust": "Robust"}
# What each finding asks and what decides it: the Learn tab's table, so the rules are described where they live.
RULES = {
    "forgot": ("does the model still *know* the forget answers?",
               "teacher-forced exact memorization of each forget answer (also past its first tokens) and of its "
               "question forms and paraphrases, against the level of a model that never saw them: the oracle's, else "
               "the holdout samples', else half the original's (said as fixed thresholds); output forgotten while "
               "the knowledge stayed reads **hidden**"),
    "output": ("does it still *print* them?", "the official (greedy) forget score against the oracle's: above it is "
               "remembered, far below it a tell (refusals where the oracle answers); without an oracle, the relative "
               "drop; answers turned into gibberish are broken output, not forgetting"),
    "kept": ("is every retain group still reproduced?", "every task x kind group's fall, not the mean"),
    "fluent": ("are forget and retain answers still language?", "answers that turned into gibberish or went empty"),
    "utility": ("does it still know general things?", "accuracy on the bundled multiple-choice families (or MMLU), "
                "against chance"),
    "privacy": ("can an attacker tell the forgotten documents apart?", "PrivLeak: the MIA AUC against the oracle's "
                "(without an oracle, against 0.5)"),
    "robust": ("does the forgetting survive an attack?", "relearning (against a model that never saw the samples) "
               "and quantisation, once run on the Probe tab"),
}
# good | warn | bad | unknown, and hidden: the output changed while the knowledge stayed (a colour of its own)
STATUSES = ("good", "warn", "bad", "hidden", "unknown")
NOTHING_KNOWN = 0.05  # a "before" forget score under this: the original never reproduced the forget samples
FORGOTTEN = 0.5  # without an oracle, the forget score must fall by at least half (relative) to count as forgotten
PARTLY = 0.2
KNOWN_MARGIN = 0.1  # exact memorization more than this above the reference level: the sample is still known
HIDDEN_SHARE = 0.5  # output forgotten while this share of the known samples, or of one check's rewordings, is still known
ORACLE_ABOVE, ORACLE_BELOW = 0.1, 0.25  # output score this far above the oracle's: remembered; this far below: a tell
KEPT_WITHIN = 0.1  # every retain group within 0.1 of its score before: kept (the bar the issues set)
KEPT_BROKEN = 0.25  # a retain group losing more than this is broken
GIBBERISH_BAD = {"forget": 0.25, "retain": 0.1}  # share of a split's answers newly broken (gibberish or empty): broken
ORIGINAL_GIBBERISH = 0.5  # the original's own retain answers this broken (a random model): fluency tells nothing
UTILITY_DROP = 0.05  # accuracy points: a smaller move is noise on ~100 items
UTILITY_BROKEN = 0.15
AT_CHANCE = 0.1  # within this of the guessing level: at chance (2.5 standard deviations of guessing on 124 items)
MIA_NEAR, MIA_FAR = 0.1, 0.25  # |AUC - 0.5| without an oracle: near chance is good, beyond MIA_FAR is bad either way
HELD, CAME_BACK = 0.2, 0.5  # a probe's recovery (beyond its control's gain) under HELD: held; from CAME_BACK: came back
CHECKS = {"question_form": "asked as a question", "paraphrase": "paraphrased"}


@dataclass
class Finding:
    aspect: str  # one of ASPECTS
    status: str  # one of STATUSES
    text: str


@dataclass
class Verdict:
    findings: list[Finding]

    @property
    def broken(self) -> bool:
        """The run damaged what it should keep or turned answers into gibberish: marked on every run view."""
        return any(f.status == "bad" and f.aspect in ("kept", "fluent", "utility") for f in self.findings)

    @property
    def hidden(self) -> bool:
        """The answers look forgotten in the output while the model still knows them."""
        return any(f.status == "hidden" for f in self.findings)

    def what_broke(self) -> list[str]:
        return [f.text for f in self.findings if f.status == "bad" and f.aspect in ("kept", "fluent", "utility")]

    def to_dict(self) -> dict:
        return {"broken": self.broken, "hidden": self.hidden, "findings": [asdict(f) for f in self.findings]}


def group_label(group: str) -> str:
    """"Task2/sc/retain" -> "Task2 completions"."""
    task, kind, _ = group.split("/")
    return f"{task} {'completions' if kind == 'sc' else 'questions'}"


def _example(text: str, limit: int = 40) -> str:
    text = " ".join(text.split()) or "(empty)"
    return f"“{text[:limit]}{'…' if len(text) > limit else ''}”"


def _flags(report: EvalReport | None, split: str, name: str) -> dict[str, tuple[float, str]]:
    if report is None:
        return {}
    return {r["id"]: (r[name], r.get("generation", "")) for r in report.rows
            if r["split"] == split and r.get(name) is not None}


def _newly(before: EvalReport | None, after: EvalReport, split: str, name: str) -> tuple[int, int, str]:
    """How many of a split's answers carry the flag `name` now and did not before, of how many, and one example."""
    now, was = _flags(after, split, name), _flags(before, split, name)
    new = [text for rid, (flag, text) in now.items() if flag and not was.get(rid, (0.0, ""))[0]]
    return len(new), len(now), (new[0] if new else "")


# ------------------------------------------------------------------------------------------------- the reference


@dataclass
class Reference:
    """The level a model that never saw a sample reaches, per sample: from the oracle, the holdout, or fixed."""

    name: str  # "the oracle's", "the holdout's", "half the original's"
    fixed: bool
    level: Callable[[dict, str], float | None]  # (row, metric) -> the reference value of that row


def reference(before: EvalReport | None, after: EvalReport) -> Reference:
    oracle = after.oracle()
    if oracle is not None:
        rows = {r["id"]: r for r in oracle.rows}
        return Reference("the oracle's", False, lambda row, name: rows.get(row["id"], {}).get(name))
    original = {r["id"]: r for r in before.rows} if before else {}

    def half(row: dict, name: str) -> float | None:
        value = original.get(row["id"], {}).get(name)
        return None if value is None else value / 2

    holdout = after.checks.get("holdout_level", {})
    if holdout:
        def level(row: dict, name: str) -> float | None:
            key = f"{row['task']}/{row['kind']}"
            return holdout[key] if name == "exact_memorization" and key in holdout else half(row, name)
        return Reference("the holdout's", False, level)
    return Reference("half the original's", True, half)


def _known(original: float | None, unlearned: float | None, level: float | None) -> tuple[bool, bool] | None:
    """(the original knew it, the unlearned model still knows it) above the reference level; None when unmeasured."""
    if original is None or unlearned is None or level is None:
        return None
    return original > level + KNOWN_MARGIN, unlearned > level + KNOWN_MARGIN


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _asked(after: EvalReport, ref: Reference) -> dict[str, tuple[int, int]]:
    """Per knowledge check: (still answered, of how many the original answered), against the reference."""
    holdout = after.checks.get("holdout_level", {})
    out = {}
    for check in CHECKS:
        known = still = 0
        for row in after.checks.get(check, []):
            em = row["exact_memorization"]
            if "oracle" in em:
                level = em["oracle"]
            elif f"{row['task']}/{row['kind']}" in holdout:
                level = holdout[f"{row['task']}/{row['kind']}"]
            else:
                level = None if em.get("original") is None else em["original"] / 2
            state = _known(em.get("original"), em.get("unlearned"), level)
            if state and state[0]:
                known += 1
                still += state[1]
        if known:
            out[check] = (still, known)
    return out


# -------------------------------------------------------------------------------------------------------- output


def _output_forgotten(before: EvalReport | None, after: EvalReport) -> bool:
    """The greedy output looks forgotten: at or below the oracle's forget score, or (no oracle) half gone."""
    fa, fb = after.split("official", "forget"), before.split("official", "forget") if before else None
    oracle = after.oracle()
    fo = oracle.split("official", "forget") if oracle else None
    if fa is None:
        return False
    if fo is not None:
        return fa <= fo + ORACLE_ABOVE
    return fb is not None and fb >= NOTHING_KNOWN and (fb - fa) / fb >= FORGOTTEN


def _refusals(after: EvalReport) -> tuple[int, int, bool]:
    """Forget answers that are refusals, of how many, and whether the oracle answered (no refusal, not empty) there."""
    flags = _flags(after, "forget", "refusal")
    refused = [rid for rid, (flag, _) in flags.items() if flag]
    oracle = after.oracle()
    answered = False
    if oracle is not None and refused:
        rows = {r["id"]: r for r in oracle.rows}
        answered = any(not rows.get(rid, {}).get("refusal", 1) and rows.get(rid, {}).get("generation", "").strip()
                       for rid in refused)
    return len(refused), len(flags), answered


def _broken_unlike_oracle(before: EvalReport | None, after: EvalReport) -> tuple[list[str], int]:
    """The forget answers newly gibberish or empty (of how many), leaving out those where the oracle's own answer is
    broken too: that is what a model that never saw the sample says."""
    oracle = {r["id"]: r for r in after.oracle().rows} if after.reference else {}
    was = {r["id"]: r for r in before.rows} if before else {}
    rows = [r for r in after.rows if r["split"] == "forget" and r.get("gibberish") is not None]
    broken = [r.get("generation", "") for r in rows
              if any(r.get(flag) and not was.get(r["id"], {}).get(flag) and not oracle.get(r["id"], {}).get(flag)
                     for flag in ("gibberish", "empty"))]
    return broken, len(rows)


def output(before: EvalReport | None, after: EvalReport) -> Finding:
    fa = after.split("official", "forget")
    fb = before.split("official", "forget") if before else None
    if fa is None:
        return Finding("output", "unknown", "No forget samples were scored.")
    if fb is None:
        return Finding("output", "unknown", f"Forget score is {fa:.2f}; there is no before-evaluation to compare with.")
    if fb < NOTHING_KNOWN:
        return Finding("output", "unknown", f"The original model did not reproduce the forget samples (score {fb:.2f}): "
                                            "there was nothing to forget. Prepare a target first.")
    drop = (fb - fa) / fb
    groups_b, groups_a = before.groups("official", "forget"), after.groups("official", "forget")
    slowest = min((g for g in groups_a if groups_b.get(g)), key=lambda g: (groups_b[g] - groups_a[g]) / groups_b[g], default=None)
    tail = (f" Least forgotten: {group_label(slowest)}, {groups_b[slowest]:.2f} → {groups_a[slowest]:.2f}."
            if slowest and len(groups_a) > 1 else "")
    refused, total, oracle_answers = _refusals(after)
    if refused:
        tail += (f" {refused} of {total} forget answers are refusals" + (
            " where the oracle answers: the refusal itself reveals what was unlearned." if oracle_answers else "."))
    moved = f"Forget score (greedy output) {fb:.2f} → {fa:.2f}"
    broken, total_answers = _broken_unlike_oracle(before, after)
    new = len(broken)
    example = broken[0] if broken else ""
    if _output_forgotten(before, after) and total_answers and new / total_answers >= GIBBERISH_BAD["forget"]:
        return Finding("output", "warn", f"{moved}, but {new} of {total_answers} forget answers are now gibberish or empty "
                                         f"(e.g. {_example(example)}): that is broken output on these prompts, not the "
                                         "answer of a model that never saw them." + tail)
    oracle = after.oracle()
    fo = oracle.split("official", "forget") if oracle else None
    if fo is not None:
        if fa > fo + ORACLE_ABOVE:
            status = "bad" if drop < PARTLY else "warn"
            return Finding("output", status, f"Still reproduced: {moved}, above the oracle's {fo:.2f}." + tail)
        if fa < fo - ORACLE_BELOW:
            return Finding("output", "warn", f"{moved}, far below the oracle's {fo:.2f}: a model that never saw these "
                                             "samples still answers them in kind, so the gap is a tell." + tail)
        status = "warn" if oracle_answers else "good"
        return Finding("output", status, f"{moved}, at the oracle's level ({fo:.2f})." + tail)
    fixed = " (fixed thresholds: no oracle is prepared)"
    if drop >= FORGOTTEN:
        return Finding("output", "good", f"{moved} ({drop:.0%} lower){fixed}." + tail)
    if drop >= PARTLY:
        return Finding("output", "warn", f"Partly forgotten: {moved} ({drop:.0%} lower){fixed}." + tail)
    return Finding("output", "bad", f"Hardly forgotten: {moved}{fixed}." + tail)


# ----------------------------------------------------------------------------------------------------- knowledge


def forgot(before: EvalReport | None, after: EvalReport) -> Finding:
    rows = [r for r in after.rows if r["split"] == "forget" and r.get("exact_memorization") is not None]
    if not rows or before is None:
        return Finding("forgot", "unknown", "What the model knows was not measured (no teacher-forced scores before "
                                            "and after).")
    original = {r["id"]: r for r in before.rows}
    ref = reference(before, after)
    states, em = [], {"unlearned": [], "reference": [], "later": [], "later_ref": []}
    for row in rows:
        was = original.get(row["id"], {})
        state = _known(was.get("exact_memorization"), row["exact_memorization"], ref.level(row, "exact_memorization"))
        if state is None or not state[0]:
            continue  # the original did not know it beyond the reference: nothing to forget here
        states.append(state[1])
        em["unlearned"].append(row["exact_memorization"])
        em["reference"].append(ref.level(row, "exact_memorization"))
        em["later"].append(row.get("later_memorization"))
        em["later_ref"].append(ref.level(row, "later_memorization"))
    if not states:
        return Finding("forgot", "unknown", f"The original model predicted no forget answer above {ref.name} level: "
                                            "there was nothing to forget. Prepare a target first.")
    known, n = sum(states), len(states)
    asked = _asked(after, ref)
    still_asked = sum(s for s, _ in asked.values())
    level = f"exact memorization {_mean(em['unlearned']):.2f} against {ref.name} {_mean(em['reference']):.2f}"
    later, later_ref = _mean(em["later"]), _mean(em["later_ref"])
    if later is not None:
        level += f"; past the first tokens {later:.2f}" + (f" ({ref.name} {later_ref:.2f})" if later_ref is not None else "")
    parts = [f"{known} of {n} forget samples still predicted above {ref.name} level ({level})"]
    parts += [f"{CHECKS[check]}, {s} of {k} answered" for check, (s, k) in asked.items()]
    detail = "; ".join(parts) + "." + (" Fixed thresholds: no oracle is prepared and the data has no holdout, so a "
                                       "sample counts as forgotten once half of what the original predicted is gone."
                                       if ref.fixed else "")
    asked_total = sum(k for _, k in asked.values())
    if not known and not still_asked:
        return Finding("forgot", "good", f"Forgotten in what the model knows: {detail}")
    # one way of asking that still finds the answers is enough: the facts are in the model
    if _output_forgotten(before, after) and (known / n >= HIDDEN_SHARE or
                                             any(s / k >= HIDDEN_SHARE for s, k in asked.values())):
        return Finding("forgot", "hidden", f"Hidden, not forgotten: the output changed but the true answers are still "
                                           f"predicted. {detail}")
    if (known + still_asked) / (n + asked_total) >= HIDDEN_SHARE:
        return Finding("forgot", "bad", f"Still known: {detail}")
    return Finding("forgot", "warn", f"Partly forgotten: {detail}")


# ------------------------------------------------------------------------------------------------ what it keeps


def retain_falls(before: EvalReport | None, after: EvalReport) -> list[tuple[str, float, float]]:
    """(group, before, after) of every retain group scored before and after, the one that fell most first: the group
    every view names when it speaks of the retain set's worst."""
    groups_a = after.groups("official", "retain")
    groups_b = before.groups("official", "retain") if before else {}
    shared = sorted((g for g in groups_a if g in groups_b), key=lambda g: groups_b[g] - groups_a[g], reverse=True)
    return [(g, groups_b[g], groups_a[g]) for g in shared]


def kept(before: EvalReport | None, after: EvalReport) -> Finding:
    falls = retain_falls(before, after)
    if not falls:
        return Finding("kept", "unknown", "No retain samples were scored before and after.")
    groups_b, groups_a = {g: b for g, b, _ in falls}, {g: a for g, _, a in falls}
    shared, worst = list(groups_b), falls[0][0]
    loss = groups_b[worst] - groups_a[worst]
    fell = [g for g in shared if groups_b[g] - groups_a[g] > KEPT_WITHIN]
    where = ", ".join(f"{group_label(g)} {groups_b[g]:.2f} → {groups_a[g]:.2f}" for g in fell)
    mean_b, mean_a = before.split("official", "retain"), after.split("official", "retain")
    hidden = (f" (the retain mean, {mean_b:.2f} → {mean_a:.2f}, hides it)"
              if len(shared) > 1 and mean_b is not None and mean_b - mean_a < KEPT_WITHIN else "")
    if loss > KEPT_BROKEN:
        return Finding("kept", "bad", f"Retain damaged: {where}{hidden}.")
    if loss > KEPT_WITHIN:
        return Finding("kept", "warn", f"Retain partly damaged: {where}{hidden}.")
    return Finding("kept", "good", f"Every retain group within {KEPT_WITHIN} of before (fell most: {group_label(worst)} "
                                   f"{groups_b[worst]:.2f} → {groups_a[worst]:.2f}).")


def fluent(before: EvalReport | None, after: EvalReport) -> Finding:
    if "gibberish" not in after.metrics:
        return Finding("fluent", "unknown", "Fluency was not measured (a run saved before the fluency metrics existed).")
    was = before.split("gibberish", "retain") if before else None
    if was is not None and was >= ORIGINAL_GIBBERISH:
        return Finding("fluent", "unknown", f"The original model's own answers were mostly gibberish ({was:.0%} of retain "
                                            "answers): fluency cannot show damage on this model.")
    parts, status, example = [], "good", ""
    for split in ("forget", "retain"):
        broken = 0
        for flag, words in (("gibberish", "turned into gibberish"), ("empty", "empty")):
            new, total, text = _newly(before, after, split, flag)
            if new:
                parts.append(f"{new} of {total} {split} answers {words}")
                example = example or text
                broken += new
        total = len(_flags(after, split, "gibberish"))
        if broken and total:
            status = "bad" if broken / total >= GIBBERISH_BAD[split] or status == "bad" else "warn"
    if status == "good":
        return Finding("fluent", "good", "No answer turned into gibberish or went empty: generations are still language.")
    return Finding("fluent", status, f"{'; '.join(parts)}, e.g. {_example(example)}.")


def utility(before: EvalReport | None, after: EvalReport) -> Finding:
    ua = after.value("utility")
    ub = before.value("utility") if before else None
    if ua is None:
        return Finding("utility", "unknown", "Utility was not measured.")
    chance = after.chance("utility")
    if ub is None:
        return Finding("utility", "unknown", f"Utility is {ua:.2f} (chance {chance:.2f}); no before-evaluation to compare.")
    if ub <= chance + AT_CHANCE:
        return Finding("utility", "unknown", f"Utility was already at chance before ({ub:.2f}, chance {chance:.2f}): this "
                                             "benchmark cannot show damage on this model.")
    families_b = before.metrics["utility"].get("families", {})
    families_a = after.metrics["utility"].get("families", {})
    worst = max((f for f in families_a if f in families_b), key=lambda f: families_b[f] - families_a[f], default=None)
    tail = f" Worst family: {worst} {families_b[worst]:.2f} → {families_a[worst]:.2f}." if worst else ""
    if ua <= chance + AT_CHANCE or ub - ua > UTILITY_BROKEN:
        return Finding("utility", "bad", f"Utility collapsed: {ub:.2f} → {ua:.2f} (chance {chance:.2f})." + tail)
    if ub - ua > UTILITY_DROP:
        return Finding("utility", "warn", f"Utility fell {ub:.2f} → {ua:.2f} (chance {chance:.2f})." + tail)
    return Finding("utility", "good", f"Utility kept: {ub:.2f} → {ua:.2f} (chance {chance:.2f}).")


def privacy(before: EvalReport | None, after: EvalReport) -> Finding:
    auc = after.value("mia_auc")
    if auc is None:
        return Finding("privacy", "unknown", "Membership inference was not measured.")
    was = f" (it was {before.value('mia_auc'):.2f})" if before and before.value("mia_auc") is not None else ""
    oracle = after.oracle()
    oracle_auc = oracle.value("mia_auc") if oracle else None
    if oracle_auc:
        leak = privleak(auc, oracle_auc)
        head = f"PrivLeak {leak:+.0%} against the oracle (MIA AUC {auc:.2f}{was}, oracle {oracle_auc:.2f})"
        if abs(leak) <= LEAK_NEAR:
            return Finding("privacy", "good", f"{head}: an attacker tells these documents from unseen text no better "
                                              "than on a model that never saw them.")
        status = "bad" if abs(leak) > LEAK_FAR else "warn"
        side = ("members still stand out: under-forgotten" if leak > 0 else
                "the documents are now less likely than on the oracle: over-unlearned, which an attacker reads as well")
        return Finding("privacy", status, f"{head}: {side}.")
    fixed = " Read against 0.5 (fixed: no oracle is prepared, and its own AUC on this data may differ)."
    gap = abs(auc - 0.5)
    if gap <= MIA_NEAR:
        return Finding("privacy", "good", f"MIA AUC {auc:.2f}{was}: the forgotten documents look like text never "
                                          "trained on, so an attacker is near chance." + fixed)
    status = "bad" if gap > MIA_FAR else "warn"
    if auc > 0.5:
        return Finding("privacy", status, f"Under-forgotten: MIA AUC {auc:.2f}{was}. The forgotten documents still have "
                                          "lower loss than unseen text, so an attacker can tell they were trained on."
                                          + fixed)
    return Finding("privacy", status, f"Over-unlearned: MIA AUC {auc:.2f}{was}. The forgotten documents are now less "
                                      "likely than text the model never saw; an attacker reads that just as well." + fixed)


def _dig(found, *keys):
    """found[k1][k2]..., None where a level is missing or not a table: probes.json is read as untrusted."""
    for key in keys:
        found = found.get(key) if isinstance(found, dict) else None
    return found


def _number(value) -> float | None:
    return float(value) if finite_number(value) else None


def robust(probes: Mapping[str, dict] | None) -> Finding:
    """Relearning and quantisation, once run (they train or round the model: on demand, not in every run)."""
    parts, states = [], []
    recovered = _number(_dig(probes, "relearn", "result", "headline", "value"))
    if recovered is not None:
        gain = _number(_dig(probes, "relearn", "result", "control", "metrics", "official", "gain")) or 0.0
        beyond = recovered - max(gain, 0.0)
        states.append("good" if beyond < HELD else "warn" if beyond < CAME_BACK else "bad")
        parts.append(f"relearning brought back {recovered:.0%}" + (f", where a model that never saw them gains {gain:.0%}"
                                                                    if gain else ""))
    quantised = _dig(probes, "quantize", "result", "headline", "status")
    if quantised in ("good", "warn", "bad"):
        states.append(quantised)
        text = _dig(probes, "quantize", "result", "headline", "text")
        parts.append(f"quantisation: {text if isinstance(text, str) else quantised}")
    if not states:
        return Finding("robust", "unknown", "Not attacked yet: relearning and quantisation run on demand (Probe tab, or "
                                            "`python -m unlearning probe RUN_ID`).")
    status = "bad" if "bad" in states else "warn" if "warn" in states else "good"
    head = {"good": "The forgetting held", "warn": "Partly came back", "bad": "Came back"}[status]
    return Finding("robust", status, f"{head}: {'; '.join(parts)}.")


def judge(before: EvalReport | None, after: EvalReport, probes: Mapping[str, dict] | None = None) -> Verdict:
    """The findings for a run's after-evaluation, judged against its before-evaluation, the oracle and knowledge
    checks saved with it, and the probes run on it (probes.json entries by name)."""
    return Verdict([forgot(before, after), output(before, after), kept(before, after), fluent(before, after),
                    utility(before, after), privacy(before, after), robust(probes)])


def tradeoff_point(report: EvalReport) -> dict[str, float | None]:
    """Where a model sits on the forget/retain plane: forget mean, retain mean, and the worst retain group."""
    groups = report.groups("official", "retain")
    return {"forget": report.split("official", "forget"), "retain": report.split("official", "retain"),
            "retain_worst": min(groups.values()) if groups else None}
