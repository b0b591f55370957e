"""Model tab: choose and load the model to unlearn, see its size and memory needs, prepare a memorised target."""
from __future__ import annotations

import html

import gradio as gr

from app.state import Studio
from app.tabs.common import SKIP, Shared, friendly, number, progress_html
from app.tabs.method import MethodTab, knob
from unlearning.engine import TrainConfig
from unlearning.jobs import Job
from unlearning.models import DEFAULT_MODEL, TINY_MODEL, training_modes
from unlearning.options import options
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


def info_html(studio: Studio, source: str, job: Job | None = None, last_k: int | None = None,
              lora_rank: int | None = None) -> str:
    """This session's model: its facts, the memory each training mode needs at the Method tab's k and rank (the
    defaults until it has them), and its target report if it is one; or why the model the session asked for did not
    load."""
    if job is not None and job.state == "failed":
        return f'<div class="us-alert"><div class="us-alert-title">The model did not load</div><p>{html.escape(job.error)}</p></div>'
    facts = studio.facts(source)
    if facts is None:
        return '<p class="us-muted">No model loaded yet.</p>'
    kv = [("source", f"<code>{html.escape(facts['source'])}</code>"), ("architecture", facts["architecture"]),
          ("parameters", f"<b>{number(facts['parameters'])}</b> ({facts['parameters']:,})"), ("layers", facts["layers"]),
          ("device", facts["device"]), ("dtype", facts["dtype"])]
    grid = "".join(f"<div class='k'>{k}</div><div class='v'>{v}</div>" for k, v in kv)
    modes = "".join(f"<tr><td>{mode}</td><td class='num'>{number(m['trainable'])}</td><td class='num'>{m['gib']:.2f}</td></tr>"
                    for mode, m in training_modes(facts, int(last_k or TrainConfig.last_k),
                                                  int(lora_rank or TrainConfig.lora_rank)).items())
    suggested = facts["suggested"]
    text = (f'<div class="us-kv" id="model-facts">{grid}</div>'
            "<h4>Memory per training mode</h4><table class='us-table'><thead><tr><th>what trains</th>"
            "<th>trainable parameters</th><th>GiB (without activations)</th></tr></thead>"
            f"<tbody>{modes}</tbody></table><p class='us-muted'>Trained copy + frozen original (kept for the "
            "before/after comparison) + gradients + two Adam moments per trainable weight.</p>"
            f"<p>Suggested learning rate: <b>{suggested.get('learning_rate', TrainConfig.learning_rate):g}</b> ({html.escape(suggested['why'])}).</p>")
    t = studio.target_report(source)
    if t:
        how = f' ({html.escape(t["trains"])}, {t["epochs"]} epochs)' if "trains" in t else ""
        text += (f'<div class="us-box done"><b>This is a prepared target</b>: fine-tuned on {t["records"]} records for '
                 f'{t["steps"]} steps{how}; it reproduces its training texts with ROUGE-L recall '
                 f'<b>{t["rouge_l_recall"]:.2f}</b>.'
                 + (f' Stopped, {html.escape(t["stopped"])}.' if t.get("stopped") else "")
                 + (f' {html.escape(t["cut"])}' if t.get("cut") else "") + '</div>')
    return text


class ModelTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        choice, path = choice_of(studio.default_model)
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
                    self.info = gr.HTML(info_html(studio, studio.default_model), elem_id="model-info")
            with gr.Accordion("Prepare a target: make the model memorise the dataset first", open=False):
                gr.Markdown(
                    "A model that never saw the data has nothing to forget: every forget score is already low. The SemEval "
                    "organisers fine-tuned OLMo on their data before releasing it as the unlearning target; this does the "
                    "same with the current data's forget and retain splits (never the holdout). The result is cached: "
                    "preparing the same target again takes no time. Training stops as soon as the model predicts its answers "
                    "word for word. Afterwards the target is the loaded model."
                )
                with gr.Row():
                    # TargetConfig's options that are not advanced, as the CLI's prepare-target flags are
                    self.target = {o.name: knob(o, elem_id=f"target-{o.name}") for o in options(TargetConfig) if not o.advanced}
                with gr.Row():
                    self.prepare = gr.Button("Prepare target", variant="primary", elem_id="prepare-target")
                    self.cancel = gr.Button("Cancel", variant="stop")
            self.seen = gr.State({})

    def wire(self, header: gr.Markdown, method: MethodTab) -> None:
        studio, shared = self.studio, self.shared
        self.source.change(lambda c: gr.update(visible=c in ("folder", "hub")), self.source, self.path)

        @friendly
        def load(choice: str, path: str):
            job = studio.load_model(source_of(choice, path))
            gr.Info(f"Loading in the background (job #{job.id}).")
            return {"id": job.id, "mine": True}

        self.load.click(load, [self.source, self.path], shared.model_job, show_progress="hidden")

        @friendly
        def prepare(model_source: str, data_source: str, *values):
            config = TargetConfig(**dict(zip(self.target, values)))  # checked there, as the CLI's flags are
            job = studio.prepare_target(model_source, data_source, config)
            gr.Info(f"Preparing the target in the background (job #{job.id}).")
            return {"id": job.id, "mine": True}

        inputs = [shared.model_source, shared.data_source, *self.target.values()]
        self.prepare.click(prepare, inputs, shared.model_job, show_progress="hidden")
        self.offer.click(prepare, inputs, shared.model_job, show_progress="hidden")

        def cancel(watched: dict):
            job = studio.runner.get(watched["id"]) if watched["mine"] else None
            if job is not None and not job.finished:
                studio.cancel(job.id)

        self.cancel.click(cancel, shared.model_job, None, show_progress="hidden")

        def poll(seen: dict, watched: dict, model_source: str, data_source: str, last_k, lora_rank):
            job = studio.runner.get(watched["id"]) if watched["id"] else None
            # the memory table follows the Method tab's k and rank (a preset may set them)
            signature = [[job.id, job.state, round(job.progress, 3), job.stage] if job else None, last_k, lora_rank]
            # this session's finished load or target job makes its model the session's model, and suggests its rate
            adopt = watched["mine"] and job is not None and job.state == "done" and job.result
            source = job.result if adopt else model_source
            facts = studio.facts(source)
            if seen.get("sig") == signature and source == model_source and seen.get("known") == bool(facts):
                return SKIP(), SKIP(), SKIP(), SKIP(), SKIP(), SKIP(), SKIP()
            # a model new to this session, or one whose load just finished: suggest its learning rate
            fresh = facts and (source != model_source or seen.get("known") is False)
            lr = facts["suggested"].get("learning_rate", TrainConfig.learning_rate) if fresh else SKIP()
            return (progress_html(job), info_html(studio, source, job, last_k, lora_rank),
                    header_markdown(studio, source, data_source),
                    lr, offer_button(studio, source, job), {"sig": signature, "known": bool(facts)}, source)

        shared.timer.tick(poll, [self.seen, shared.model_job, shared.model_source, shared.data_source,
                                 method.train["last_k"], method.train["lora_rank"]],
                          [self.progress, self.info, header, method.lr, self.offer, self.seen, shared.model_source],
                          show_progress="hidden", queue=True)

    def on_load(self, model_source: str | None):
        """Page load: the session's model, if this studio has loaded it; else (a new browser, a restarted studio)
        the studio's default model."""
        known = model_source and (model_source == self.studio.default_model or self.studio.facts(model_source))
        return model_source if known else self.studio.default_model


def offer_button(studio: Studio, source: str, job) -> dict:
    """The button that prepares a target, with the time it takes, while a base model is this session's and no target
    is on its way."""
    seconds = (studio.facts(source) or {}).get("target_seconds")
    busy = job is not None and not job.finished
    if seconds is None or studio.target_report(source) or busy:
        return gr.update(visible=False)
    return gr.update(visible=True, value=f"Prepare a target and its oracle: memorise the data first "
                                         f"(about {seconds:.0f} s)")


def header_markdown(studio: Studio, model_source: str, data_source: str) -> str:
    """The one line every tab shows: which model and which data this session's next run uses."""
    facts, target = studio.facts(model_source), studio.target_report(model_source)
    if facts is None:
        model = f"`{model_source}` (loading)"
    else:
        name = f"memorised target of {target['base']}" if target else facts["source"]
        name = name if len(name) < 48 else "…" + name[-40:]
        model = f"`{name}` ({number(facts['parameters'])} params, {facts['device']})"
    data = data_source if len(data_source) < 48 else "…" + data_source[-40:]
    return f"**Model** {model} &nbsp;·&nbsp; **Data** `{data}`"
