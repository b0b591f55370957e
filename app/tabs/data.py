"""Data tab: load a dataset, browse and filter it, tick the samples to forget; the rest of the retain split is kept."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from app import selection as sel
from app.state import Studio
from app.tabs.common import Shared, friendly
from app.tabs.model import header_markdown
from unlearning.batching import cut_note, sample_length
from unlearning.data import DataError, data_source
from unlearning.data.lume import PARTS
from unlearning.models import cached_model
from unlearning.options import coerce
from unlearning.plan import FORGET_N

SOURCES = [
    ("Bundled: synthetic biographies with PII + short stories (offline)", "bundled"),
    ("LUME (SemEval-2025 Task 4): a local folder or a hub dataset id", "lume"),
    ("TOFU: a .json / .jsonl file of question/answer pairs (forget split only)", "tofu"),
    ("Upload your own table: CSV, JSONL or parquet with input and output columns", "upload"),
]
MAX_ROWS = 500  # rows drawn at once: enough to browse, few enough for the browser to stay quick
COLUMN_WIDTHS = ["84px", "130px", "72px", "64px", "84px", "40%", "30%"]
SPLIT_CHOICES = [("all splits", sel.ALL), ("forget", "forget"), ("retain", "retain"), ("holdout", "holdout")]
KIND_CHOICES = [("all kinds", sel.ALL), ("sentence completion (sc)", "sc"), ("question answering (qa)", "qa")]


def describe(data, lengths: str = "") -> str:
    counts = {s: len(data.split(s)) for s in ("forget", "retain", "holdout")}
    tasks = ", ".join(sel.tasks(data))
    return (f"**{data.name}** · {len(data.records)} samples: {counts['forget']} forget, {counts['retain']} retain, "
            f"{counts['holdout']} holdout · tasks: {tasks} · MIA documents: {len(data.mia_members)} members, "
            f"{len(data.mia_nonmembers)} non-members" + (f"\n\n{lengths}" if lengths else ""))


def lengths(studio: Studio, model_source: str, data) -> str:
    """What a run of this session's model cuts from these samples at the default max length; nothing to say until
    the model has loaded in this process (it is then cached: no load here)."""
    if studio.facts(model_source) is None:
        return ""
    loaded = cached_model(model_source)
    limit = sample_length(loaded.model)
    note = cut_note(loaded.tokenizer, data.records, limit)
    return f"**Long samples:** {note}" if note else f"Every sample fits the {limit} tokens a run trains on, whole."


class DataTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        with gr.Tab("Data", id="data"):
            gr.Markdown("### 2 · Choose what to forget\nTick the samples the model must forget. The rest of the retain "
                        "split is what it must keep; the holdout split is never trained on.")
            self.about = gr.Markdown(elem_id="data-about")
            with gr.Accordion("Change dataset: bundled, LUME, TOFU or your own table", open=False), \
                    gr.Row(elem_classes="us-bottom"):
                self.source = gr.Dropdown(SOURCES, value="bundled", label="Dataset", scale=4, elem_id="data-source")
                self.path = gr.Textbox(label="Folder, file or hub id", visible=False, scale=3,
                                       placeholder="shared/data/lume-validation  or  owner/dataset")
                self.part = gr.Dropdown(list(PARTS), value=PARTS[0], label="Part", visible=False, scale=1,
                                        min_width=120, elem_id="data-part",
                                        info="of a LUME folder or hub copy holding both")
                self.upload = gr.File(label="Your table", file_types=[".csv", ".jsonl", ".json", ".parquet"],
                                      visible=False, scale=3, height=120, elem_id="data-upload")
                self.load = gr.Button("Load dataset", variant="primary", scale=1, min_width=140, elem_id="load-data")
            with gr.Row(elem_classes="us-bottom"):
                self.task = gr.Dropdown([("all tasks", sel.ALL)], value=sel.ALL, label="Task", scale=1)
                self.kind = gr.Dropdown(KIND_CHOICES, value=sel.ALL, label="Kind", scale=1)
                self.split = gr.Dropdown(SPLIT_CHOICES, value=sel.ALL, label="Split", scale=1)
                self.query = gr.Textbox(label="Search id, prompt or answer", placeholder="e.g. email", scale=2)
            with gr.Row(elem_classes="us-bottom"):
                self.pick_task = gr.Dropdown([("all tasks", sel.ALL)], value=sel.ALL, label="Shortcuts: task", scale=2,
                                             min_width=120)
                self.tick_task = gr.Button("Forget all of this task", scale=2, size="md")
                self.n = gr.Number(5, label="N", precision=0, minimum=1, scale=1, min_width=70)
                self.tick_random = gr.Button("Forget N at random", scale=2, size="md")
                self.tick_split = gr.Button("Forget the whole forget split", scale=2, size="md")
                self.clear = gr.Button("Clear", scale=1, size="md", variant="stop", min_width=80)
            self.summary = gr.Markdown(elem_id="selection-summary")
            self.table = gr.Dataframe(
                headers=list(sel.COLUMNS), datatype=sel.DATATYPES, interactive=True, static_columns=[1, 2, 3, 4, 5, 6],
                column_widths=COLUMN_WIDTHS, wrap=True, max_height=460, elem_id="data-table", label="Samples",
                show_label=False,
            )
            self.shown = gr.Markdown(elem_classes="us-muted")
            with gr.Accordion("Retain set: what the model must keep", open=False):
                self.retain = gr.Dataframe(headers=["id", "task", "kind", "input", "output"], interactive=False,
                                           wrap=True, max_height=320, elem_id="retain-table")

    # ------------------------------------------------------------------------------------------------------ draw

    def _draw(self, source: str, selected: list[str], task: str, kind: str, split: str, query: str):
        data = self.studio.data(source)
        rows = sel.filter_records(data.records, task, kind, split, query or "")
        note = f"Showing {min(len(rows), MAX_ROWS)} of {len(rows)} matching samples ({len(data.records)} in all)."
        if len(rows) > MAX_ROWS:
            note += " Narrow the filters to see the rest."
        return sel.table(rows[:MAX_ROWS], selected), note

    def _selection_views(self, source: str, selected: list[str]):
        data = self.studio.data(source)
        retain = pd.DataFrame([[r.id, r.task, r.kind, r.input, r.output] for r in data.retain_set(selected)],
                              columns=["id", "task", "kind", "input", "output"])
        return sel.summary(data, selected), retain

    def wire(self, header: gr.Markdown) -> None:
        studio, selection, source = self.studio, self.shared.selection, self.shared.data_source
        filters = [self.task, self.kind, self.split, self.query]

        self.source.change(
            lambda s: (gr.update(visible=s in ("lume", "tofu")), gr.update(visible=s == "upload"),
                       gr.update(visible=s == "lume")),
            self.source, [self.path, self.upload, self.part],
        )

        for f in (self.task, self.kind, self.split):
            f.change(self._draw, [source, selection, *filters], [self.table, self.shown], show_progress="hidden")
        self.query.change(self._draw, [source, selection, *filters], [self.table, self.shown], show_progress="hidden",
                          trigger_mode="always_last")

        def ticked(data_source: str, selected: list[str], frame: pd.DataFrame):
            known = {r.id for r in studio.data(data_source).records}
            return sel.apply_ticks(selected, frame, known)

        # always_last: each tick sends the whole table, and one sent while the previous was pending must not be dropped
        self.table.input(ticked, [source, selection, self.table], selection, show_progress="hidden",
                         trigger_mode="always_last")
        selection.change(self._selection_views, [source, selection], [self.summary, self.retain], show_progress="hidden")

        def shortcut(ids_fn):
            @friendly
            def handler(data_source, selected, pick_task, n, task, kind, split, query):
                new = ids_fn(studio.data(data_source), selected, pick_task, n)
                return (new, *self._draw(data_source, new, task, kind, split, query))
            return handler

        inputs = [source, selection, self.pick_task, self.n, *filters]
        outputs = [selection, self.table, self.shown]
        self.tick_task.click(shortcut(lambda d, s, t, n: list(dict.fromkeys(s + sel.task_forget_ids(d, t)))),
                             inputs, outputs, show_progress="hidden")
        # the run plan's check of a forget count: 0 or an empty box is refused, not read as "none"
        self.tick_random.click(shortcut(lambda d, s, t, n: d.sample_forget(coerce(FORGET_N, n))), inputs, outputs,
                               show_progress="hidden")
        self.tick_split.click(shortcut(lambda d, s, t, n: sel.whole_forget_ids(d)), inputs, outputs,
                              show_progress="hidden")
        self.clear.click(shortcut(lambda d, s, t, n: []), inputs, outputs, show_progress="hidden")

        self.load.click(friendly(self.load_source), [self.source, self.path, self.upload, self.shared.model_source,
                                                     self.part],
                        [source, selection, self.task, self.pick_task, self.kind, self.split, self.query, self.table,
                         self.shown, self.about, header, self.summary, self.retain])

    def load_source(self, kind: str, path: str, upload: str | None, model_source: str, part: str = PARTS[0]):
        """Make a dataset this session's (the first output): only this session's next runs use it. A LUME source
        carries its part (FOLDER#train), so runs and their config.json name the part they used."""
        if kind == "bundled":
            new = "bundled"
        elif kind == "upload":
            if not upload:
                raise DataError("Choose a file to upload first.")
            new = self.studio.load_upload(upload)
        else:
            new = (path or "").strip()
            if not new:
                raise DataError("Type a folder, file or hub id first.")
            new = data_source(new, part) if kind == "lume" else new
        data = self.studio.data(new)
        gr.Info(f"Loaded {data.name}: {len(data.records)} samples. The selection was cleared.")
        return (new, [], *self._filters(new), *self._draw(new, [], sel.ALL, sel.ALL, sel.ALL, ""),
                describe(data, lengths(self.studio, model_source, data)),
                header_markdown(self.studio, model_source, new), *self._selection_views(new, []))

    def _filters(self, source: str):
        tasks = [("all tasks", sel.ALL)] + [(t, t) for t in sel.tasks(self.studio.data(source))]
        return (gr.update(choices=tasks, value=sel.ALL), gr.update(choices=tasks, value=sel.ALL), sel.ALL, sel.ALL, "")

    def on_load(self, source: str | None, selected: list[str] | None):
        """Page load: the session's dataset (the studio's default for a new browser, or when the session's no longer
        loads), the stored selection (minus ids that dataset lacks), filters, table and description."""
        source = source or self.studio.default_data
        try:
            data = self.studio.data(source)
        except DataError as error:
            failed = f"**Could not load `{source}`:** {error}. Using `{self.studio.default_data}` instead."
            if source == self.studio.default_data:
                return (source, [], gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"**Could not load `{source}`:** {error}",
                        gr.skip(), gr.skip())
            gr.Warning(failed)
            return self.on_load(self.studio.default_data, [])
        known = {r.id for r in data.records}
        selected = [i for i in (selected or []) if i in known]
        return (source, selected, *self._filters(source)[:2], *self._draw(source, selected, sel.ALL, sel.ALL, sel.ALL, ""),
                describe(data), *self._selection_views(source, selected))

    @property
    def load_outputs(self):
        return [self.shared.data_source, self.shared.selection, self.task, self.pick_task, self.table, self.shown,
                self.about, self.summary, self.retain]
