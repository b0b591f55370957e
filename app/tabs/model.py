"""Model tab: choose and load the model to unlearn, see its size and memory needs, prepare a memorised target."""
from __future__ import annotations

import html

import gradio as gr

from app.state import Studio
from app.tabs.common import SKIP, Shared, friendly, number, progress_html
from unlearning.models import DEFAULT_MODEL, TINY_MODEL
from unlearning.target import TargetConfig

SOURCES = [
    ("Offline default: SmolLM2-135M-Instruct (bundled, no network)", DEFAULT_MODEL),
    ("Tiny random model (2 layers, instant; for quick demos)", TINY_MODEL),
    ("Local folder (a Hugging Face model folder)", "folder"),
    ("Hugging Face hub id (needs network; HF_TOKEN for gated models)", "hub"),
]


def source_of(choice: str, path: str) -> str:
    if choice in (DEFAULT_MODEL, TINY_MODEL):
        return choice
    path = (path or "").strip()
    if not path:
        raise ValueError("Type the model's folder or hub id first.")
    return path


def choice_of(source: str) -> tuple[str, str]:
    if source in (DEFAULT_MODEL, TINY_MODEL):
        return source, ""
    return ("hub" if "/" in source and not source.startswith(("/", ".", "~")) else "folder"), source


def info_html(studio: Studio) -> str:
    """The loaded model's facts, the memory each training mode needs, and its target report if it is one."""
    facts = studio.model_info
    if facts is None:
        job = studio.latest_job("model", "target")
        if job is not None and job.state == "failed":
            return f'<div class="us-alert"><div class="us-alert-title">The model did not load</div><p>{html.escape(job.error)}</p></div>'
        return '<p class="us-muted">No model loaded yet.</p>'
    kv = [("source", f"<code>{html.escape(facts['source'])}</code>"), ("architecture", facts["architecture"]),
          ("parameters", f"<b>{number(facts['parameters'])}</b> ({facts['parameters']:,})"), ("layers", facts["layers"]),
          ("device", facts["device"]), ("dtype", facts["dtype"])]
    grid = "".join(f"<div class='k'>{k}</div><div class='v'>{v}</div>" for k, v in kv)
    modes = "".join(f"<tr><td>{mode}</td><td class='num'>{number(m['trainable'])}</td><td class='num'>{m['gib']:.2f}</td></tr>"
                    for mode, m in facts["modes"].items())
    suggested = facts["suggested"]
    text = (f'<div class="us-kv" id="model-facts">{grid}</div>'
            "<h4>Memory per training mode</h4><table class='us-table'><thead><tr><th>what trains</th>"
            "<th>trainable parameters</th><th>GiB (without activations)</th></tr></thead>"
            f"<tbody>{modes}</tbody></table><p class='us-muted'>Trained copy + frozen original (kept for the "
            "before/after comparison) + gradients + two Adam moments per trainable weight.</p>"
            f"<p>Suggested learning rate: <b>{suggested['learning_rate']:g}</b> ({html.escape(suggested['why'])}).</p>")
    if studio.target_report:
        t = studio.target_report
        how = f' ({html.escape(t["trains"])}, {t["epochs"]} epochs)' if "trains" in t else ""
        text += (f'<div class="us-box done"><b>This is a prepared target</b>: fine-tuned on {t["records"]} records for '
                 f'{t["steps"]} steps{how}; it reproduces its training texts with ROUGE-L recall '
                 f'<b>{t["rouge_l_recall"]:.2f}</b>.</div>')
    return text


class ModelTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        choice, path = choice_of(studio.model_source)
        with gr.Tab("Model", id="model"):
            gr.Markdown("### 1 · Choose the model to unlearn\nUnlearning edits a model that *knows* something. "
                        "Load one, then (optionally) make it memorise the dataset first so there is something to forget.")
            with gr.Row():
                with gr.Column(scale=3):
                    self.source = gr.Radio(SOURCES, value=choice, label="Model", elem_id="model-source")
                    self.path = gr.Textbox(value=path, label="Folder or hub id", placeholder="/path/to/model or owner/name",
                                           visible=choice in ("folder", "hub"))
                    self.load = gr.Button("Load model", variant="primary", elem_id="load-model")
                    self.progress = gr.HTML(progress_html(None), elem_id="model-progress")
                    # shown once a base model has loaded: it knows nothing of the data yet, so nothing to forget
                    self.offer = gr.Button(visible=False, variant="primary", elem_id="prepare-target-now")
                with gr.Column(scale=4):
                    self.info = gr.HTML(info_html(studio), elem_id="model-info")
            with gr.Accordion("Prepare a target: make the model memorise the dataset first", open=False):
                gr.Markdown(
                    "A model that never saw the data has nothing to forget: every forget score is already low. The SemEval "
                    "organisers fine-tuned OLMo on their data before releasing it as the unlearning target; this does the "
                    "same with the current data's forget and retain splits (never the holdout). The result is cached: "
                    "preparing the same target again takes no time. Training stops as soon as the model predicts its answers "
                    "word for word. Afterwards the target is the loaded model."
                )
                with gr.Row():
                    self.epochs = gr.Number(TargetConfig.epochs, label="at most this many epochs", precision=0, minimum=1)
                    self.target_lr = gr.Number(TargetConfig.learning_rate, label="learning rate")
                    self.target_batch = gr.Number(TargetConfig.batch_size, label="batch size", precision=0, minimum=1)
                with gr.Row():
                    self.prepare = gr.Button("Prepare target", variant="primary", elem_id="prepare-target")
                    self.cancel = gr.Button("Cancel", variant="stop")
            self.seen = gr.State({})

    def wire(self, header: gr.Markdown, suggested_lr: gr.Number) -> None:
        studio = self.studio
        self.source.change(lambda c: gr.update(visible=c in ("folder", "hub")), self.source, self.path)

        @friendly
        def load(choice: str, path: str):
            job = studio.load_model(source_of(choice, path))
            gr.Info(f"Loading in the background (job #{job.id}).")

        self.load.click(load, [self.source, self.path], None, show_progress="hidden")

        @friendly
        def prepare(epochs, lr, batch):
            config = TargetConfig(epochs=int(epochs or 0), learning_rate=float(lr or 0), batch_size=int(batch or 0))
            job = studio.prepare_target(config)
            gr.Info(f"Preparing the target in the background (job #{job.id}).")

        self.prepare.click(prepare, [self.epochs, self.target_lr, self.target_batch], None, show_progress="hidden")
        self.offer.click(prepare, [self.epochs, self.target_lr, self.target_batch], None, show_progress="hidden")

        def cancel():
            job = studio.latest_job("model", "target")
            if job is not None and not job.finished:
                studio.cancel(job.id)

        self.cancel.click(cancel, None, None, show_progress="hidden")

        def poll(seen: dict):
            job = studio.latest_job("model", "target")
            signature = [job.id, job.state, round(job.progress, 3), job.stage] if job else None
            facts = studio.model_info
            source = facts["source"] if facts else None  # set once a load finishes, not when it is asked for
            if seen.get("sig") == signature and seen.get("source") == source:
                return SKIP(), SKIP(), SKIP(), SKIP(), SKIP(), SKIP()
            changed = "source" in seen and seen["source"] != source  # a newly loaded model: suggest its learning rate
            lr = facts["suggested"]["learning_rate"] if changed and facts else None
            return (progress_html(job), info_html(studio), header_markdown(studio),
                    lr if lr is not None else SKIP(), offer_button(studio), {"sig": signature, "source": source})

        self.shared.timer.tick(poll, self.seen, [self.progress, self.info, header, suggested_lr, self.offer, self.seen],
                               show_progress="hidden", queue=True)


def offer_button(studio: Studio) -> dict:
    """The button that prepares a target, with the time it takes, while a base model is loaded and no target is on its way."""
    facts, job = studio.model_info, studio.latest_job("model", "target")
    seconds = (facts or {}).get("target_seconds")
    busy = job is not None and not job.finished
    if seconds is None or studio.target_report or busy:
        return gr.update(visible=False)
    return gr.update(visible=True, value=f"Prepare a target: memorise the data first (about {seconds:.0f} s)")


def header_markdown(studio: Studio) -> str:
    """The one line every tab shows: which model and which data the next run uses."""
    facts, target = studio.model_info, studio.target_report
    if facts is None:
        model = f"`{studio.model_source}` (loading)"
    else:
        name = f"memorised target of {target['base']}" if target else facts["source"]
        name = name if len(name) < 48 else "…" + name[-40:]
        model = f"`{name}` ({number(facts['parameters'])} params, {facts['device']})"
    data = studio.data_source if len(studio.data_source) < 48 else "…" + studio.data_source[-40:]
    return f"**Model** {model} &nbsp;·&nbsp; **Data** `{data}`"
