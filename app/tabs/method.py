"""Method tab: pick an unlearning method, read its formula and intuition, set its knobs and the engine's.

Each method's knobs are built from its Config dataclass: one control per field, its help text as the control's
`info`, so the documentation lives in the method module only. All groups exist from the start; only the selected
method's group is visible, and the Run tab reads them all at once through a set of inputs.
"""
from __future__ import annotations

import re
from dataclasses import MISSING, fields

import gradio as gr

from app.state import Studio, suggested_training
from app.tabs.common import LATEX, Shared
from unlearning.engine import TrainConfig
from unlearning.methods import METHODS

DEFAULT_METHOD = "grad_diff"
PARAMS = [("all weights (full)", "full"), ("only the last k layers", "last_k"), ("LoRA adapters", "lora")]
_QUOTED = re.compile(r"'(\w+)'")


def unlearning_methods() -> dict:
    return {name: cls for name, cls in METHODS.items() if cls.unlearns}


def explainer(name: str) -> str:
    cls = METHODS[name]
    formula = cls.formula.strip()
    if formula.startswith("$") and formula.endswith("$") and formula.count("$") == 2:
        formula = f"$${formula[1:-1]}$$"  # shown as a display equation, centred and larger
    return f"### {cls.title}\n\n{formula}\n\n{cls.intuition}\n\n<span class='us-muted'>{cls.paper}</span>"


def _type_name(field) -> str:
    return field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))


def knob(field):
    """One control for one Config field: number, checkbox, or a dropdown when the help names the choices."""
    kind, help_text = _type_name(field), field.metadata.get("help", "")
    default = field.default if field.default is not MISSING else None
    label = field.name.replace("_", " ")
    bounds = {"minimum": field.metadata.get("min"), "maximum": field.metadata.get("max")}  # where a config declares them
    if kind == "bool":
        return gr.Checkbox(default, label=label, info=help_text)
    if kind == "int":
        return gr.Number(default, label=label, info=help_text, precision=0, **bounds)
    if kind == "float":
        return gr.Number(default, label=label, info=help_text, **bounds)
    choices = list(dict.fromkeys(_QUOTED.findall(help_text)))
    if len(choices) >= 2 and default in choices:
        return gr.Dropdown(choices, value=default, label=label, info=help_text)
    return gr.Textbox(default, label=label, info=help_text)


def field_value(field, value):
    kind = _type_name(field)
    if value is None or value == "":
        raise ValueError(f"{field.name.replace('_', ' ')} needs a value")
    return int(value) if kind == "int" else float(value) if kind == "float" else bool(value) if kind == "bool" else value


class MethodTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        methods = unlearning_methods()
        suggested = suggested_training(studio.model_info["parameters"] if studio.model_info else None)
        self.knobs: dict[str, dict[str, gr.components.Component]] = {}
        self.groups: dict[str, gr.Group] = {}
        with gr.Tab("Method", id="method"):
            gr.Markdown("### 3 · Choose how to forget\nEvery method trains a copy of the model with its own loss; the "
                        "original stays untouched for the before/after comparison.")
            with gr.Row():
                with gr.Column(scale=5):
                    self.method = gr.Dropdown([(cls.title, name) for name, cls in methods.items()], value=DEFAULT_METHOD,
                                              label="Method", elem_id="method-picker")
                    self.explainer = gr.Markdown(explainer(DEFAULT_METHOD), latex_delimiters=LATEX,
                                                 elem_id="method-explainer", elem_classes="us-explainer")
                    gr.Markdown("#### Method options")
                    for name, cls in methods.items():
                        with gr.Group(visible=name == DEFAULT_METHOD) as group:
                            self.knobs[name] = {}
                            options = fields(cls.Config)
                            for i in range(0, len(options), 2):  # two per row: short help texts, less scrolling
                                with gr.Row():
                                    for f in options[i : i + 2]:
                                        self.knobs[name][f.name] = knob(f)
                            if not self.knobs[name]:
                                gr.Markdown("<span class='us-muted'>This method has no options of its own.</span>",
                                            padding=True)
                        self.groups[name] = group
                with gr.Column(scale=4):
                    gr.Markdown("#### Training")
                    self.steps = gr.Number(suggested["steps"], label="steps", precision=0, minimum=1, elem_id="steps",
                                           info="Optimiser steps; each sees one forget batch (and one retain batch).")
                    self.lr = gr.Number(suggested["learning_rate"], label="learning rate", elem_id="learning-rate",
                                        info="1e-5 suits the 135M model; the random tiny model needs ~1e-3. "
                                             "Set to the loaded model's suggestion whenever a model loads.")
                    self.batch = gr.Number(suggested["batch_size"], label="batch size", precision=0, minimum=1,
                                           info="Forget (and retain) samples per step.")
                    self.params = gr.Radio(PARAMS, value="full", label="What trains",
                                           info="Fewer trainable weights: less memory, gentler edits.")
                    self.last_k = gr.Number(TrainConfig.last_k, label="k (last layers that train)", precision=0,
                                            minimum=1, visible=False)
                    self.lora_rank = gr.Number(TrainConfig.lora_rank, label="LoRA rank", precision=0, minimum=1,
                                               visible=False, info="Adapters are merged into the model after training.")
                    with gr.Accordion("Advanced", open=False):
                        self.max_length = gr.Number(TrainConfig.max_length, label="max length (tokens per sample)",
                                                    precision=0, minimum=8)
                        self.grad_clip = gr.Number(TrainConfig.grad_clip, label="gradient clipping (0 = off)")
                        self.precision = gr.Dropdown(["auto", "fp32", "bf16"], value="auto", label="precision",
                                                     info="auto: bf16 autocast on GPUs and CPUs that do bf16 fast.")
                        self.compile = gr.Checkbox(TrainConfig.compile, label="compile (torch.compile)",
                                                   info="~25% faster steps on the 135M model, after a ~30 s first step "
                                                        "(once per app session): worth it for long or repeated runs.")
                        self.seed = gr.Number(TrainConfig.seed, label="seed", precision=0)

    @property
    def inputs(self) -> set:
        """Every control a TrainConfig is read from; handlers take them as one dict (gradio's set-of-inputs form)."""
        engine = {self.method, self.steps, self.lr, self.batch, self.params, self.last_k, self.lora_rank,
                  self.max_length, self.grad_clip, self.precision, self.compile, self.seed}
        return engine | {c for knobs in self.knobs.values() for c in knobs.values()}

    def train_config(self, values: dict) -> TrainConfig:
        """Build and validate a TrainConfig from the controls' values; raises ValueError with a readable text."""
        name = values[self.method]
        cls = METHODS[name]
        options = {f.name: field_value(f, values[self.knobs[name][f.name]]) for f in fields(cls.Config)}

        def whole(component, label):
            value = values[component]
            if value is None:
                raise ValueError(f"{label} needs a value")
            return int(value)

        lr = values[self.lr]
        if lr is None:
            raise ValueError("learning rate needs a value")
        return TrainConfig(
            method=name, method_options=options, steps=whole(self.steps, "steps"), learning_rate=float(lr),
            batch_size=whole(self.batch, "batch size"), params=values[self.params],
            last_k=whole(self.last_k, "k"), lora_rank=whole(self.lora_rank, "LoRA rank"),
            max_length=whole(self.max_length, "max length"), grad_clip=float(values[self.grad_clip] or 0.0),
            precision=values[self.precision], compile=bool(values[self.compile]), seed=whole(self.seed, "seed"),
        )

    def wire(self) -> None:
        names = list(self.groups)

        def pick(name: str):
            return (explainer(name), *[gr.update(visible=n == name) for n in names])

        self.method.change(pick, self.method, [self.explainer, *self.groups.values()], show_progress="hidden")
        self.params.change(lambda p: (gr.update(visible=p == "last_k"), gr.update(visible=p == "lora")),
                           self.params, [self.last_k, self.lora_rank], show_progress="hidden")

    def on_load(self):
        facts = self.studio.model_info
        return suggested_training(facts["parameters"])["learning_rate"] if facts else gr.skip()
