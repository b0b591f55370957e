"""Compare tab: the current run's generations before and after, sample by sample, and a prompt box for both models."""
from __future__ import annotations

import html

import gradio as gr

from app.diff import word_diff
from app.state import Studio
from app.tabs.common import Shared, friendly, run_choices, run_header
from app.views import SHOW, compare_html, sample_choices, token_view_html, verdict_html
from unlearning.summary import run_reports

RETAIN_SHOWN = 25  # retain rows a page: enough to judge collateral damage without a wall of text


class CompareTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        with gr.Tab("Compare", id="compare"):
            with gr.Row(equal_height=True):
                self.run = gr.Dropdown([], label="Run", scale=3, elem_id="compare-run")
                self.header = gr.Markdown(scale=5)
            self.verdict = gr.HTML(elem_id="compare-verdict")
            with gr.Row(equal_height=True, elem_classes="us-bottom"):
                self.prompt = gr.Textbox(label="Ask both models: the original answers first, then the unlearned one",
                                         scale=6, elem_id="free-prompt",
                                         placeholder="e.g. a forget sample's prompt, or a question on something else")
                self.tokens = gr.Number(32, label="max new tokens", precision=0, minimum=1, maximum=256, scale=1,
                                        min_width=90)
                self.ask = gr.Button("Ask both", variant="primary", scale=1, min_width=100)
            self.answers = gr.HTML(elem_id="free-answers")
            gr.Markdown("#### Token by token: which facts lost probability\n<span class='us-muted'>The sample's true "
                        "answer, each token coloured by the probability the model gives it (teacher forced): dark green "
                        "= the model would say it, pale red = it would not. Hover for the numbers.</span>")
            self.sample = gr.Dropdown([], label="Sample", elem_id="token-sample")
            self.token_view = gr.HTML(elem_id="token-view")
            with gr.Row(equal_height=True):
                self.show = gr.Radio([(label, key) for key, label in SHOW.items()], value="all", label="Show", scale=4,
                                     elem_id="compare-show")
                self.page = gr.Number(1, label="Retain page", precision=0, minimum=1, scale=1, min_width=90,
                                      elem_id="compare-page")
            gr.Markdown("#### Forget samples: the model should no longer reproduce these\n"
                        "<span class='us-muted'>Changed words: <del>no longer said</del>, <mark>newly said</mark>. "
                        "Score: ROUGE-L recall (sc) or exact match (qa), before → after.</span>")
            self.forget = gr.HTML(elem_id="compare-forget")
            gr.Markdown("#### Retain samples: the model should still reproduce these")
            self.retain = gr.HTML(elem_id="compare-retain")

    def draw(self, run_id: str | None):
        studio = self.studio
        choices = run_choices(studio)
        if not run_id:
            empty = '<p class="us-muted">No run selected.</p>'
            return (gr.update(choices=choices, value=None), run_header(studio, None), "", empty, empty,
                    gr.update(choices=[], value=None), token_view_html(None, None, None), "all", 1)
        before, after = run_reports(studio.store, run_id)
        samples = sample_choices(before)
        first = samples[0][1] if samples else None
        return (gr.update(choices=choices, value=run_id), run_header(studio, run_id),
                verdict_html(before, after, studio.store.probes(run_id)), *self.draw_samples(run_id, "all", 1),
                gr.update(choices=samples, value=first), token_view_html(before, after, first), "all", 1)

    def draw_samples(self, run_id: str | None, show: str, page) -> tuple[str, str]:
        """The forget and retain tables, filtered or sorted as picked; the retain table a page at a time."""
        before, after = run_reports(self.studio.store, run_id) if run_id else (None, None)
        return (compare_html(before, after, "forget", show=show),
                compare_html(before, after, "retain", RETAIN_SHOWN, show=show, page=page or 1))

    def draw_tokens(self, run_id: str | None, sample_id: str | None) -> str:
        before, after = run_reports(self.studio.store, run_id) if run_id else (None, None)
        return token_view_html(before, after, sample_id)

    def wire(self) -> None:
        studio, shared = self.studio, self.shared
        outputs = [self.run, self.header, self.verdict, self.forget, self.retain, self.sample, self.token_view,
                   self.show, self.page]  # a new run starts from all samples, page 1
        gr.on([shared.current_run.change, shared.runs_changed.change], self.draw, shared.current_run, outputs,
              show_progress="hidden")
        self.sample.input(self.draw_tokens, [shared.current_run, self.sample], self.token_view, show_progress="hidden",
                          trigger_mode="always_last")
        self.run.input(lambda run_id: run_id, self.run, shared.current_run, trigger_mode="always_last")
        gr.on([self.show.input, self.page.input], self.draw_samples, [shared.current_run, self.show, self.page],
              [self.forget, self.retain], show_progress="hidden", trigger_mode="always_last")

        @friendly
        def ask(run_id: str | None, prompt: str, tokens):
            if not run_id:
                raise ValueError("Select a run first.")
            if not (prompt or "").strip():
                raise ValueError("Type a prompt first.")
            answers = studio.generate_pair(run_id, prompt, int(tokens or 32))
            if answers["after"] is None:
                before = html.escape(answers["before"]) or "<i>(empty)</i>"
                return (f'<div class="us-answers"><div><h4>Original model</h4><p>{before}</p></div><div><h4>After '
                        "unlearning</h4><p class='us-muted'>This run's unlearned model is not in memory (only the latest "
                        "runs are kept) and its weights were not saved. Re-run it with <b>Save the unlearned weights</b> "
                        "ticked to chat with it later.</p></div></div>")
            before, after = word_diff(answers["before"], answers["after"])
            return (f'<div class="us-answers"><div><h4>Original model</h4><p class="cmp-gen">{before}</p></div>'
                    f'<div><h4>After unlearning</h4><p class="cmp-gen">{after}</p></div></div>')

        # generation shares the device with training: one at a time, queued behind each other
        self.ask.click(ask, [shared.current_run, self.prompt, self.tokens], self.answers, concurrency_id="device",
                       concurrency_limit=1)
        self.prompt.submit(ask, [shared.current_run, self.prompt, self.tokens], self.answers, concurrency_id="device",
                           concurrency_limit=1)
