"""Learn tab: a short guided tour of machine unlearning, the metrics, and how to use the studio."""
from __future__ import annotations

import gradio as gr

from app.tabs.common import LATEX

TOUR = r"""
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
the studio shows the **three parts separately**, warns in red when **retain or utility collapse**, and lets you
read the actual generations side by side. Always check the Compare tab before believing a score.

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
   runs no other run beats on both axes; the best runs sit top-left (forgotten and kept).
"""


class LearnTab:
    def __init__(self) -> None:
        with gr.Tab("Learn", id="learn"):
            gr.Markdown(TOUR, latex_delimiters=LATEX, elem_classes="us-learn")
