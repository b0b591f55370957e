"""Assemble the studio: shared session states and the poll timer, the nine tabs, and the wiring between them."""
from __future__ import annotations

import gradio as gr

from app.state import Studio
from app.tabs.common import Shared
from app.tabs.compare import CompareTab
from app.tabs.data import DataTab
from app.tabs.learn import LearnTab
from app.tabs.method import MethodTab
from app.tabs.metrics import MetricsTab
from app.tabs.model import ModelTab, header_markdown
from app.tabs.probe import ProbeTab
from app.tabs.run import RunTab
from app.tabs.runs import RunsTab

POLL_SECONDS = 1.0
SELECTION_KEY = "unlearning-studio-forget-ids"
MODEL_KEY, DATA_KEY = "unlearning-studio-model", "unlearning-studio-data"

# Fonts gradio ships itself (LocalFont) or the system's: the studio must look right with no network.
THEME = gr.themes.Soft(
    primary_hue="indigo", secondary_hue="slate", neutral_hue="slate",
    font=[gr.themes.LocalFont("Source Sans 3"), gr.themes.Font("system-ui"), gr.themes.Font("sans-serif")],
    font_mono=[gr.themes.LocalFont("Source Code Pro"), gr.themes.Font("monospace")],
)

CSS = """
.gradio-container { max-width: 1280px !important; }
#us-top { align-items: center; }
#us-title h1 { margin: 0; font-size: 1.7em; }
#us-title p { margin: 2px 0 0; color: var(--body-text-color-subdued); }
#us-status { padding: 8px 14px; border-radius: 8px; background: var(--background-fill-secondary); font-size: 0.92em; }
.us-learn td:first-child { white-space: nowrap; }
.us-muted { color: var(--body-text-color-subdued); font-size: 0.92em; }
.us-plan { padding: 8px 12px; border-left: 4px solid var(--color-accent); background: var(--background-fill-secondary); }
.us-progress { height: 14px; border-radius: 7px; background: var(--background-fill-secondary); overflow: hidden;
  border: 1px solid var(--border-color-primary); }
.us-progress-fill { height: 100%; background: linear-gradient(90deg, #6366f1, #818cf8); transition: width .6s ease; }
.us-progress.done .us-progress-fill { background: #16a34a; }
.us-progress.failed .us-progress-fill { background: #dc2626; width: 100% !important; }
.us-progress.cancelled .us-progress-fill { background: #94a3b8; }
.us-progress.queued .us-progress-fill { background: #cbd5e1; }
.us-progress-text { margin-top: 6px; font-size: 0.92em; }
.us-table { width: 100%; border-collapse: collapse; font-size: 13px; }
.us-table th { text-align: left; font-weight: 600; padding: 6px 8px; border-bottom: 2px solid var(--border-color-primary);
  background: var(--background-fill-secondary); }
.us-table td { padding: 6px 8px; border-bottom: 1px solid var(--border-color-primary); vertical-align: top; }
.us-table td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.us-table tr.sub td:first-child { padding-left: 22px; color: var(--body-text-color-subdued); }
.us-table td.dir { color: var(--body-text-color-subdued); white-space: nowrap; }
.us-table td.good { color: #15803d; font-weight: 600; }
.us-table td.bad { color: #b91c1c; font-weight: 600; }
.compare-table { table-layout: fixed; }
.compare-table th:nth-child(1) { width: 12%; } .compare-table th:nth-child(2) { width: 22%; }
.compare-table th:nth-child(3) { width: 17%; } .compare-table th:nth-child(4),
.compare-table th:nth-child(5) { width: 20%; } .compare-table th:nth-child(6) { width: 9%; }
.compare-table td { word-wrap: break-word; overflow-wrap: anywhere; }
.cmp-gen { white-space: pre-wrap; }
.cmp-expected { color: var(--body-text-color-subdued); }
mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 3px; }
del { background: #fecaca; color: #7f1d1d; text-decoration: line-through; padding: 0 2px; border-radius: 3px; }
.empty { color: var(--body-text-color-subdued); font-style: italic; }
.us-cards { display: flex; gap: 12px; flex-wrap: wrap; }
.us-card { flex: 1 1 150px; padding: 12px 16px; border-radius: 10px; border: 1px solid var(--border-color-primary);
  background: var(--background-fill-primary); }
.us-card-label { font-size: 0.85em; color: var(--body-text-color-subdued); text-transform: uppercase; letter-spacing: .04em; }
.us-card-value { font-size: 2em; font-weight: 700; font-variant-numeric: tabular-nums; }
.us-card-was { font-size: 0.85em; color: var(--body-text-color-subdued); }
.us-card.good { border-left: 6px solid #16a34a; } .us-card.bad { border-left: 6px solid #dc2626; }
.us-card.same { border-left: 6px solid #94a3b8; } .us-card.warn { border-left: 6px solid #f59e0b; }
.us-probe-text { margin: 4px 0; font-weight: 600; }
.us-cards-note { margin-top: 6px; font-size: 0.88em; color: var(--body-text-color-subdued); }
.us-alert { border: 2px solid #dc2626; background: #fef2f2; color: #7f1d1d; border-radius: 10px; padding: 12px 18px;
  margin: 6px 0; }
.us-alert-title { font-size: 1.25em; font-weight: 700; margin-bottom: 4px; }
.us-alert ul, .us-note ul { margin: 4px 0 4px 18px; }
.us-note { border: 1px solid #f59e0b; background: #fffbeb; color: #78350f; border-radius: 10px; padding: 10px 16px;
  margin: 6px 0; }
.us-note-title { font-weight: 700; }
.us-box { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 14px; margin-bottom: 8px; }
.us-box.done { border-left: 6px solid #16a34a; }
.us-answers { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.us-answers > div { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 8px 14px; }
.us-answers h4 { margin: 4px 0; }
.us-explainer { padding: 6px 14px; border-radius: 10px; background: var(--background-fill-secondary); }
.us-learn { max-width: 900px; }
.us-kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; padding: 10px 14px; border-radius: 10px;
  background: var(--background-fill-secondary); margin-bottom: 8px; }
.us-kv .k { color: var(--body-text-color-subdued); }
.us-bottom { align-items: flex-end; }
#model-info h4 { margin: 10px 0 4px; }
.us-verdict { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 16px; margin: 6px 0; }
.us-verdict.broken { border: 2px solid #dc2626; background: #fef2f2; }
.us-verdict-title { font-weight: 700; font-size: 1.1em; margin-bottom: 6px; }
.us-verdict-title.broken { color: #7f1d1d; }
.us-finding { padding: 3px 0 3px 10px; border-left: 5px solid #94a3b8; margin: 3px 0; }
.us-finding.good { border-left-color: #16a34a; } .us-finding.warn { border-left-color: #f59e0b; }
.us-finding.bad { border-left-color: #dc2626; } .us-finding.unknown { border-left-color: #cbd5e1; }
.us-finding.hidden { border-left-color: #7c3aed; } .us-finding.hidden .us-finding-mark { color: #6d28d9; }
.us-verdict-title.hidden { color: #5b21b6; }
.us-finding-mark { display: inline-block; width: 1.4em; font-weight: 700; }
.us-finding.good .us-finding-mark { color: #15803d; } .us-finding.bad .us-finding-mark { color: #b91c1c; }
.us-finding.warn .us-finding-mark { color: #b45309; }
.us-mode { margin-top: 6px; font-size: 0.88em; color: var(--body-text-color-subdued); }
.us-gibberish { background: #fee2e2; color: #991b1b; border-radius: 4px; padding: 0 5px; font-size: 0.8em; font-weight: 600; }
.us-tokens { padding: 8px 12px; border-radius: 10px; background: var(--background-fill-secondary); }
.us-tokrow { margin: 6px 0; line-height: 2.1; }
.us-tokrow b { display: inline-block; width: 4em; }
.us-tok { padding: 2px 1px; margin: 0 1px; border-radius: 3px; white-space: pre; font-family: var(--font-mono); font-size: 0.9em; }
"""


def build_app(studio: Studio) -> gr.Blocks:
    # gradio keeps its own copy of every download and upload: gone after a day, and at a restart
    with gr.Blocks(title="Unlearning Studio", delete_cache=(86400, 86400)) as demo:
        with gr.Row(equal_height=True, elem_id="us-top"):
            gr.Markdown("# Unlearning Studio\nTeach, demo and probe machine unlearning in language models "
                        "(SemEval-2025 Task 4 / LUME). Work left to right, Model → Runs.", elem_id="us-title")
            header = gr.Markdown(header_markdown(studio, studio.default_model, studio.default_data), elem_id="us-status")
        # The session's model, data and ticked samples live in the browser's localStorage: a reload keeps them, and
        # another browser has its own (jobs and runs live in the Studio)
        preload = studio.preload_job.id if studio.preload_job else None
        shared = Shared(timer=gr.Timer(POLL_SECONDS), selection=gr.BrowserState([], storage_key=SELECTION_KEY),
                        current_run=gr.State(""), runs_changed=gr.State(0),
                        model_source=gr.BrowserState(studio.default_model, storage_key=MODEL_KEY),
                        data_source=gr.BrowserState(studio.default_data, storage_key=DATA_KEY),
                        model_job=gr.State({"id": preload, "mine": False}))
        with gr.Tabs():
            model = ModelTab(studio, shared)
            data = DataTab(studio, shared)
            method = MethodTab(studio, shared)
            run = RunTab(studio, shared)
            compare = CompareTab(studio, shared)
            metrics = MetricsTab(studio, shared)
            runs = RunsTab(studio, shared)
            probe = ProbeTab(studio, shared)
            LearnTab()

        model.wire(header, method)
        data.wire(header)
        method.wire()
        run.wire(method)
        compare.wire()
        metrics.wire()
        runs.wire()
        probe.wire()

        def latest_run() -> str | None:
            """A fresh page opens the run being trained, else the newest run with results, else the newest run."""
            job = studio.watched_run_job()
            if job is not None and job.run_id:
                return job.run_id
            summaries = studio.summaries()
            finished = [s["id"] for s in summaries if s["status"] == "completed"]
            return finished[0] if finished else (summaries[0]["id"] if summaries else None)

        # current_run starts as "" and latest_run answers an id or None: it always changes, so every view draws once
        demo.load(latest_run, None, shared.current_run)
        demo.load(model.on_load, shared.model_source, shared.model_source)
        demo.load(data.on_load, [shared.data_source, shared.selection], data.load_outputs)
        demo.load(method.on_load, shared.model_source, [method.lr, method.train["steps"]])
        demo.load(runs.draw_list, [runs.axis, runs.sweep, runs.colour], [runs.table, runs.scatter, runs.count, runs.sweep,
                                                                          runs.colour])
    return demo


def launch_options() -> dict:
    """Theme and CSS: gradio 6 takes them in launch(), not in Blocks()."""
    return {"theme": THEME, "css": CSS}
