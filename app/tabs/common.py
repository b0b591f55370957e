"""What the tabs share: the per-session states, the poll timer, readable errors, small HTML helpers."""
from __future__ import annotations

import functools
import html
import logging
from dataclasses import dataclass

import gradio as gr

from app.state import Studio
from unlearning.engine import trains
from unlearning.jobs import Job

log = logging.getLogger("app")

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
SKIP = gr.skip  # "leave this output as it is": a poll that finds nothing new redraws nothing
USER_ERRORS = (ValueError, KeyError, OSError, RuntimeError)  # DataError, ModelLoadError and config errors among them


@dataclass
class Shared:
    """Components every tab may read or set. The model, the data and the selection are the session's own: what one
    user loads or ticks never changes another user's run."""

    timer: gr.Timer  # ticks once a second in every open page: the tabs poll the job runner on it
    selection: gr.State | gr.BrowserState  # record ids ticked to forget, kept by the browser across reloads
    current_run: gr.State  # the run the Compare and Metrics tabs show
    runs_changed: gr.State  # bumped when a run is queued, starts or ends: run lists and reports redraw
    model_source: gr.State | gr.BrowserState  # the model this session's runs unlearn (a loaded one)
    data_source: gr.State | gr.BrowserState  # the dataset this session's runs use
    # {"id", "mine"}: the job the Model tab shows, at first the studio's preload of its default model; a load or
    # target job this session started ("mine") makes its model the session's model once it is done
    model_job: gr.State


def message(error: BaseException) -> str:
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return str(text) or type(error).__name__


def friendly(fn):
    """Turn a library error into a readable gr.Error (a toast), never a traceback; unexpected ones are logged."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as error:
            raise gr.Error(message(error), title="Could not do that") from error
        except Exception as error:  # noqa: BLE001 - the user still gets a sentence; the log gets the traceback
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Unexpected error ({type(error).__name__}: {error}). The server log has the details.") from error

    return wrapper


def progress_html(job: Job | None, fraction: float | None = None, extra: str = "") -> str:
    """A progress bar with the job's state and stage, coloured by state."""
    if job is None:
        return '<div class="us-progress idle"><div class="us-progress-fill" style="width:0%"></div></div>' \
               '<div class="us-progress-text">No job yet.</div>'
    fraction = job.progress if fraction is None else fraction
    state = job.state
    text = {"queued": "queued", "running": "running", "done": "done", "failed": "failed", "cancelled": "stopped"}[state]
    detail = job.error if state == "failed" else job.stage
    return (
        f'<div class="us-progress {state}" data-state="{state}"><div class="us-progress-fill" '
        f'style="width:{100 * fraction:.1f}%"></div></div>'
        f'<div class="us-progress-text"><b>#{job.id} {html.escape(job.title)}</b> · {text} · {100 * fraction:.0f}%'
        f' · <span class="us-stage">{html.escape(detail)}</span>{extra}</div>'
    )


def run_choices(studio: Studio) -> list[tuple[str, str]]:
    """Dropdown entries for every run, newest first: label shows what it was, value is the run id."""
    return [(f"{s['label'] if s['name'] else s['id']} · {s['method']} · {s['steps']} steps · {s['status']}", s["id"])
            for s in studio.summaries()]


def run_header(studio: Studio, run_id: str | None) -> str:
    if not run_id:
        return "No run yet: start one in the **Run** tab, or open an earlier one in **Runs**."
    try:
        run = studio.store.read(run_id)
    except ValueError:
        return f"Run `{run_id}` no longer exists."
    config, status = run.config, run.status
    if config is None:
        return (f"**Run `{run_id}`** · **damaged** ({html.escape(status['message'])}). What could still be read is "
                "shown; export it to look inside, or delete it in **Runs**.")
    forget, train = len(config.forget_ids), config.train
    kept = status.get("kept") if isinstance(status.get("kept"), dict) else None
    steps = f"{train.steps} steps" + (f" (the state of step {kept['step']} kept)" if kept and "step" in kept else "")
    text = (f"**Run `{run_id}`**{' · ' + html.escape(config.name) if config.name else ''} · {train.method} · "
            f"{steps} · lr {train.learning_rate:g} · {trains(train)} · "
            f"{forget} forget samples · model `{_short(config.model)}` · **{status['status']}**")
    if status.get("message") and status["status"] not in ("completed",):
        text += f" ({html.escape(status['message'])})"
    return text


def _short(source: str) -> str:
    return source if len(source) < 40 else "…" + source[-36:]


def number(value: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return str(value)
