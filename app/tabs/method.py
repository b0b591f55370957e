"""Method tab: pick an unlearning method, read its formula and intuition, set its knobs and the engine's.

Every control is generated from a config option (unlearning.options): one per field of the method's Config and of
TrainConfig, with the option's label, help text, choices and bounds, so the defaults and documentation live in
the library only and cannot disagree with the CLI's flags. All method groups exist from the start; only the
selected method's group is visible, and the Run tab reads them all at once through a set of inputs.
"""
from __future__ import annotations

import html

import gradio as gr

from app.state import Studio
from app.tabs.common import LATEX, Shared
from unlearning.engine import TrainConfig
from unlearning.methods import METHODS, get_preset
from unlearning.models import suggested_training
from unlearning.options import Option, options

DEFAULT_METHOD = TrainConfig.method


CUSTOM = "custom (your own settings)"


def preset_names(method: str) -> list[str]:
    return [CUSTOM, *(p.name for p in METHODS[method].presets)]


def unlearning_methods() -> dict:
    return {name: cls for name, cls in METHODS.items() if cls.unlearns}


def explainer(name: str) -> str:
    cls = METHODS[name]
    formula = cls.formula.strip()
    if formula.startswith("$") and formula.endswith("$") and formula.count("$") == 2:
        formula = f"$${formula[1:-1]}$$"  # shown as a display equation, centred and larger
    return f"### {cls.title}\n\n{formula}\n\n{cls.intuition}\n\n<span class='us-muted'>{cls.paper}</span>"


def knob(option: Option, value=None, **kw):
    """One control generated from a config option: its label, help, choices and bounds are the option's own."""
    value = option.default if value is None else value
    common = {"label": option.label, "info": option.help, **kw}
    if option.kind is bool:
        return gr.Checkbox(value, **common)
    if option.choices:
        choices = [(label, key) for key, label in option.choices.items()]
        return (gr.Radio if len(choices) <= 3 else gr.Dropdown)(choices, value=value, **common)
    if option.kind is str:
        return gr.Textbox(value, **common)
    low = option.ge if option.ge is not None else option.gt
    return gr.Number(value, precision=0 if option.kind is int else None, minimum=low, maximum=option.le, **common)


class MethodTab:
    def __init__(self, studio: Studio, shared: Shared) -> None:
        self.studio, self.shared = studio, shared
        methods = unlearning_methods()
        suggested = suggested_training(None)  # a page load sets the session's model's suggestion (on_load)
        self.knobs: dict[str, dict[str, gr.components.Component]] = {}
        self.groups: dict[str, gr.Group] = {}
        self.train: dict[str, gr.components.Component] = {}  # TrainConfig's options, by name
        with gr.Tab("Method", id="method"):
            gr.Markdown("### 3 · Choose how to forget\nEvery method trains a copy of the model with its own loss; the "
                        "original stays untouched for the before/after comparison.")
            with gr.Row():
                with gr.Column(scale=5):
                    self.method = gr.Dropdown([(cls.title, name) for name, cls in methods.items()], value=DEFAULT_METHOD,
                                              label="Method", elem_id="method-picker")
                    self.explainer = gr.Markdown(explainer(DEFAULT_METHOD), latex_delimiters=LATEX,
                                                 elem_id="method-explainer", elem_classes="us-explainer")
                    self.preset = gr.Dropdown(preset_names(DEFAULT_METHOD), value=CUSTOM, label="Preset",
                                              elem_id="method-preset",
                                              info="A tested recipe of this method: it sets the options below.")
                    self.preset_why = gr.Markdown(elem_id="preset-why", elem_classes="us-muted")
                    gr.Markdown("#### Method options")
                    for name, cls in methods.items():
                        with gr.Group(visible=name == DEFAULT_METHOD) as group:
                            self.knobs[name] = {}
                            opts = options(cls.Config)
                            for i in range(0, len(opts), 2):  # two per row: short help texts, less scrolling
                                with gr.Row():
                                    for o in opts[i : i + 2]:
                                        self.knobs[name][o.name] = knob(o, elem_id=f"{name}-{o.name}")
                            if not self.knobs[name]:
                                gr.Markdown("<span class='us-muted'>This method has no options of its own.</span>",
                                            padding=True)
                        self.groups[name] = group
                with gr.Column(scale=4):
                    gr.Markdown("#### Training")
                    train = options(TrainConfig)
                    for o in (o for o in train if not o.advanced and not o.group):
                        self.train[o.name] = self._train_knob(o, suggested)
                    for group in dict.fromkeys(o.group for o in train if o.group):
                        with gr.Accordion(group.capitalize() + ": scores, per-sample balance, best state, guard",
                                          open=False, elem_id=f"group-{group.replace(' ', '-')}"):
                            for o in (o for o in train if o.group == group):
                                self.train[o.name] = self._train_knob(o, suggested)
                    with gr.Accordion("Advanced", open=False):
                        for o in (o for o in train if o.advanced):
                            self.train[o.name] = self._train_knob(o, suggested)

    @staticmethod
    def _train_knob(option: Option, suggested: dict):
        """A TrainConfig control, starting at the model's suggestion where there is one, hidden when it does not
        matter (k only for last-k training, the rank only for LoRA)."""
        visible = option.when is None or option.when[1] == TrainConfig.__dataclass_fields__[option.when[0]].default
        return knob(option, suggested.get(option.name), elem_id=option.name.replace("_", "-"), visible=visible)

    @property
    def inputs(self) -> set:
        """Every control a run's training settings are read from; handlers take them as one dict (gradio's
        set-of-inputs form)."""
        return {self.method, *self.train.values()} | {c for knobs in self.knobs.values() for c in knobs.values()}

    def request(self, values: dict) -> dict:
        """The training part of a run request, values as the controls hold them: the run plan checks them."""
        name = values[self.method]
        return {"method": name, "method_options": {o: values[c] for o, c in self.knobs[name].items()},
                **{o: values[c] for o, c in self.train.items()}}

    def wire(self) -> None:
        names = list(self.groups)

        def pick(name: str):
            return (explainer(name), *[gr.update(visible=n == name) for n in names])

        self.method.change(pick, self.method, [self.explainer, *self.groups.values()], show_progress="hidden")
        self.method.change(lambda name: (gr.update(choices=preset_names(name), value=CUSTOM), ""), self.method,
                           [self.preset, self.preset_why], show_progress="hidden")
        outputs = [*self.train.values(), *(c for controls in self.knobs.values() for c in controls.values()), self.preset_why]
        self.preset.input(self.apply_preset, [self.method, self.preset], outputs, show_progress="hidden",
                          trigger_mode="always_last")
        # k shows only while the last k layers train, the rank only under LoRA (a preset's change shows them too)
        for o in options(TrainConfig):
            if o.when is not None:
                other, value = o.when
                self.train[other].change(lambda v, value=value: gr.update(visible=v == value), self.train[other],
                                         self.train[o.name], show_progress="hidden")

    def apply_preset(self, method: str, name: str) -> tuple:
        """A preset's values for the training controls, then every method's controls (only this method's change), then
        the preset's explanation; a control the preset does not set keeps what it holds (gr.skip)."""
        knobs = [(m, option) for m, controls in self.knobs.items() for option in controls]
        if name == CUSTOM:
            return (gr.skip(),) * (len(self.train) + len(knobs)) + ("",)
        preset = get_preset(method, name)
        train = [preset.train.get(option, gr.skip()) for option in self.train]
        own = [preset.options.get(option, gr.skip()) if m == method else gr.skip() for m, option in knobs]
        return (*train, *own, f"**{html.escape(preset.name)}**: {html.escape(preset.why)}")

    @property
    def lr(self) -> gr.Number:
        return self.train["learning_rate"]

    def on_load(self, model_source: str | None):
        """Page load: the learning rate and steps the session's model needs (the default model's, when the session's
        is not loaded here: ModelTab.on_load falls back to it)."""
        facts = self.studio.facts(model_source or "") or self.studio.facts(self.studio.default_model)
        if not facts:
            return gr.skip(), gr.skip()
        suggested = facts["suggested"]
        return suggested.get("learning_rate", TrainConfig.learning_rate), suggested.get("steps", TrainConfig.steps)
