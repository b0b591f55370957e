"""Learn tab: a guided tour of machine unlearning, every metric (from the library's registry), and the studio."""
from __future__ import annotations

import gradio as gr

from app.tabs.common import LATEX
from unlearning.evaluation import METRICS
from unlearning.evaluation.metrics import FAMILIES, arrow
from unlearning.evaluation.verdict import ASPECTS, RULES

BASICS = r"""
## What is machine unlearning?

A language model trained on some text can often **reproduce it**: a phone number, a private biography, a
copyrighted story. Retraining from scratch without that text is the clean fix, but far too expensive.
*Unlearning* edits the trained model directly so that it behaves as if it had **never seen** a chosen set of
texts, while keeping everything else it knows. This studio follows the setting of
[SemEval-2025 Task 4](https://llmunlearningsemeval2025.github.io/) (the LUME benchmark): the texts to forget are
synthetic biographies with personal data and short creative stories.

## Three kinds of data

| split | what it is | what should happen |
|---|---|---|
| **forget** | the texts to remove (you tick them in **Data**) | the model should stop reproducing them |
| **retain** | texts the model was trained on and must keep | the model should still reproduce them |
| **holdout** | similar texts the model **never** saw | the reference for "never seen": forgotten texts should look like these |

Unlearning methods train on forget (pushing away) and usually on retain (holding on); the holdout is never
trained on.

## What the numbers mean

Each sample is a prompt and its expected continuation. The model completes the prompt (greedy decoding) and
the completion is scored:

* **Sentence completion (sc)**: **ROUGE-L recall** = the share of the expected text's words that appear, in
  order, in the generation (longest common subsequence / length of the reference). 1 = fully reproduced.
* **Question answering (qa)**: **exact match** = 1 if the answer is exactly the expected one (case and outer
  spaces ignored), else 0.

Scores are averaged per task, kind and split. On **forget** sets lower is better, on **retain** higher is better.
The **task aggregate** turns them into one number: the forget means are inverted ($1 - x$) and all of them are
combined with a **harmonic mean**,

$$\text{aggregate} = \frac{n}{\sum_i 1/s_i},\qquad s_i \in \{1-\text{forget}_{t,k},\ \text{retain}_{t,k}\}$$

so a single term near zero (forgot nothing, or kept nothing) drags the whole aggregate to zero.

**Membership inference (MIA)** asks whether an attacker can still tell that the forgotten documents were trained
on. It compares the model's loss on forget documents (members) with its loss on holdout documents (non-members):
trained-on text has lower loss. The **AUC** of that test is 1 when members are perfectly recognisable and
**0.5** when they look exactly like never-seen text, which is the goal. The **MIA score** is
$1 - 2\,|\text{AUC} - 0.5|$: 1 at AUC 0.5, 0 at AUC 0 or 1. (Too *high* a loss on forget texts is a tell, too.)

**Utility** checks that the model still knows general things: accuracy on multiple-choice questions (MMLU, or
the studio's 40-question offline probe). With four options, **chance is 0.25**: a model at chance is broken.

The **SemEval final score** is the mean of the three parts:
$\text{final} = (\text{aggregate} + \text{MIA score} + \text{utility}) / 3$.

## Why a single score can lie

Take a model that has **collapsed**: it answers everything with an empty string or "the the the".

* Forget scores are 0, so the inverted forget terms are a perfect 1.
* Its losses on members and non-members are equally terrible: AUC near 0.5, MIA score near 1.
* But retain scores are 0 (the harmonic-mean aggregate falls to 0) and utility is at chance (0.25).

Final score $\approx (0 + 1 + 0.25)/3 \approx 0.42$: a respectable-looking number for a useless model. This is why
the studio shows the **three parts separately**, gives every run a **verdict** (below) that calls out a broken model,
and lets you read the actual generations side by side. Always check the Compare tab before believing a score.

"""

MEMORISATION = r"""
## Does it still know the answer? Memorisation without generating

Generation-based scores depend on one greedy answer. The field now also reads the model's probabilities directly,
*teacher forced*: the model is shown the prompt and the true answer, and at every answer token we ask what it would
have predicted (open-unlearning, MUSE):

* **Exact memorization** (EM): the share of answer tokens where the model's top choice is the true token.
* **Extraction strength** (ES): $1 - k/L$, where $k$ is the shortest piece of the answer an attacker must supply before
  the model completes the rest exactly. ES = 1 means the prompt alone extracts the whole answer.
* **Answer probability**: the geometric-mean probability of an answer token, $e^{-\text{NLL}}$.

These need no generation, which is why the studio also computes them *during* a run (the Run tab's live curves) and
per sample (which forget samples are already forgotten). The **Compare** tab's token view colours each answer token
by its probability before and after: you see which facts (the SSN digits, the email) lost probability and which did
not.
"""

FLUENCY = r"""
## Is it still language? Fluency

A forget score can fall because the model now answers *something else*, or because it now answers *nothing
sensible*. The second is not forgetting: it is a broken model on those prompts, and it usually leaks into the retain
set too. For every generation the studio measures:

* **repetition**: the share of tokens that repeat one of the 16 before them. Prose stays under about 0.35;
  "angel angel angel ..." or "2222..." are near 1.
* **generation NLL**: how surprising the generation is to the *original* model. Token soup is implausible to it.

A long generation that loops (repetition at least 0.4) or that the original finds implausible, or one token repeated,
is flagged **gibberish**; an **empty** answer and a **refusal** ("I don't know.") are counted on their own. The
verdict counts the answers that *turned* into gibberish or went empty.
"""

OVER_UNLEARNING = r"""
## Too much forgetting: over-unlearning

Membership inference compares the loss of the forgotten documents with the loss of documents the model never saw. The
goal is an AUC of **0.5**: forgotten text looks like unseen text. Gradient ascent does not stop there: it keeps
pushing the forgotten answers' loss up until they are *less* likely than anything the model never saw, and the AUC
falls towards 0. An attacker reads that just as easily ("these are the ones it was made to forget"), which is why the
official MIA score $1 - 2|\text{AUC} - 0.5|$ is low at both ends. Bounded forget terms (NPO, SimNPO, or the
`nll_cap` option of gradient ascent and difference) and stopping each sample once it is forgotten (`skip_forgotten`)
are the studio's tools against it.
"""

def verdict_chapter() -> str:
    """The verdict's findings, what each asks and what decides it, straight from the library's rules."""
    rows = "\n".join(f"| **{ASPECTS[a]}** | {asks} | {decided} |" for a, (asks, decided) in RULES.items())
    return f"""
## The verdict

"Forgotten" means what the field means by it: indistinguishable from a model that never saw the data, in what the
model *knows* and not only in what it greedily prints. Every run gets a plain sentence per finding, green, amber or
red, and **purple for hidden**: the output changed while the answers are still predicted (a model taught to refuse
at the first answer token still knows the rest).

| | asks | decided by |
|---|---|---|
{rows}

A run that damaged a retain group or turned answers into gibberish is marked **broken** on the Runs table and drawn
as a red cross on the trade-off plot, whatever its final score. Preparing a target prepares its **oracle** too (the
same base trained on the retain set only): every finding reads against it.
"""


MODES = r"""
## Fast mode and official mode

The SemEval organisers generated one prompt at a time with the model in bf16, 256 new tokens, scored every retain
row, and ran the MIA on their own member and non-member files. **Official mode** does exactly that (slow on a CPU).
**Fast mode**, the interactive default, batches generation, stops at 64 tokens, scores a fixed sample of 40 retain
rows and uses the run's own forget samples as MIA members. Every number says which mode produced it;
docs/evaluation.md gives the measured distance between the two.
"""


PROBES_CHAPTER = r"""
## Forgotten, or only hidden?

A model can stop *saying* an answer while its weights still *hold* it ("Forgotten but not lost"). Published attacks
bring "unlearned" knowledge back by fine-tuning on a few related samples, by rounding the weights to 4 bits, or by
simply asking differently. The **Probe** tab runs these attacks on a finished run and scores the forget samples
again. Each reports **recovered**, per metric:

$$\text{recovered} = \frac{\text{probed} - \text{unlearned}}{\text{original} - \text{unlearned}}$$

0% means the forgetting held, 100% means the original's score is back.

| probe | what it does |
|---|---|
| **Relearning attack** | fine-tunes the unlearned model for a few steps on half of the forget samples and scores the *other* half; the same attack on a model that never knew the data (the base model, or the oracle) tells recovery apart from learning the answers afresh |
| **Quantisation attack** | rounds every linear weight to 8 and 4 bits and scores again, next to what rounding alone does to the original |
| **Asked differently** | paraphrased prompts, a forcing prefix ("Sure, here is the answer:"), and the question form of a forgotten completion |
| **Oracle reference** | a model trained on the retain set only, the one that never saw the forget set; TOFU's *forget quality* (a KS test of the forget losses against the oracle's) and MUSE's *PrivLeak* (the MIA AUC's gap to the oracle's) |

**A measured example** (2026-11-25, the bundled target on the default model, six forget completions, gradient
difference with the default retain weight, 60 steps at lr 3e-5): the forget score fell 0.93 → 0.47 and every retain
group was kept. Then:
* *relearning* 10 steps on three of the samples did not bring the other three's generations back (their score fell
  further, 0.49 → 0.33), but their answers became far more likely again: answer NLL 5.1 → 2.2 nats, 59% of the way
  back to the original's 0.16, where the base model, which never knew them, closed only 18% of that gap under the
  same attack;
* *8-bit rounding* changed nothing (0% recovered); *4-bit rounding* broke the 135M model itself (the original's own
  forget score fell 0.93 → 0.07), so it says nothing here;
* *asked as a question*, the knowledge was simply there: the questions about the same people and stories were
  answered as well as before unlearning (69% recovered on the official score, 92% on exact memorisation);
* against the *oracle*, forget quality p = 0.47 (six samples: weak evidence) and PrivLeak +114%.

The completions were unlearned; the facts in them were not.
"""


def cell(text: str) -> str:
    """Registry text as one markdown table cell: a bare `|` (the MIA score's |AUC - 0.5|) would end the cell."""
    return text.replace("|", r"\|")


def glossary() -> str:
    """Every metric the studio reports, straight from the library's registry."""
    rows = []
    for family in FAMILIES:
        for m in (m for m in METRICS.values() if m.family == family):
            direction = f"{arrow(m.better)} on retain, {arrow(m.better_on('forget'))} on forget" if m.knowledge else arrow(m.better)
            chance = "" if m.chance is None else f"{m.chance:g}"
            rows.append(f"| **{cell(m.title)}** `{m.name}` | {family} | {direction} | {chance} | {cell(m.what)} |")
    return ("## Every metric\n\n| metric | family | better | chance | what it measures |\n|---|---|---|---|---|\n"
            + "\n".join(rows))


USING = r"""
## Using the studio, step by step

1. **Model**: load a model. The *tiny* random model runs in seconds (good for seeing the mechanics); the offline
   default SmolLM2-135M gives real text. *Prepare target* first makes the model memorise the dataset, so that
   there is something to forget.
2. **Data**: tick the samples to forget (or use a shortcut: a whole task, N at random, the whole forget split).
3. **Method**: pick a method and read its formula. Start with *Gradient difference*; try *NPO* to see a gentler
   forget term. The learning rate is suggested from the model's size.
4. **Run**: start. Watch the forget NLL rise (forgetting) while the retain NLL should stay low (keeping).
   Runs queue one at a time; you can close the page and come back.
5. **Compare**: read the generations before and after, with changed words highlighted, and ask both models your
   own prompt.
6. **Metrics**: every score before and after, coloured green where it moved the right way, red where it did not.
7. **Runs**: every run you made, with the forget/retain trade-off plot. Points on the dashed **Pareto front** are
   runs no other run beats on both axes; the best runs sit top-left (forgotten and kept). A sweep (Run tab) fills
   it with many runs at once.
8. **Probe**: attack a finished run to see whether its forgetting holds (relearning, quantisation, other prompts,
   the oracle).
"""

CHAPTERS = [BASICS, MEMORISATION, FLUENCY, OVER_UNLEARNING, verdict_chapter(), PROBES_CHAPTER, MODES, USING]


class LearnTab:
    def __init__(self) -> None:
        with gr.Tab("Learn", id="learn"):
            for chapter in CHAPTERS:
                gr.Markdown(chapter, latex_delimiters=LATEX, elem_classes="us-learn")
            gr.Markdown(glossary(), elem_classes="us-learn", elem_id="learn-glossary")
