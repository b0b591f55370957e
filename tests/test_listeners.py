"""Every listener of the built app: none drops a pick or a change while it runs."""
from app.state import Studio


def test_no_listener_drops_a_pick_or_a_change(tmp_path):
    """Gradio drops the triggers of a "once" listener (its default unless the first trigger is a change) while it
    runs. A pick dropped so is lost: the Runs tab's sweep filter snapped back to "all runs" when it was picked as a
    sweep ended (the pending redraw wrote the old choice back), and a tick in the Data table sent while the previous
    one was pending never reached the selection. Buttons, timers and tabs keep "once": a double click runs once."""
    from app.ui import build_app

    demo = build_app(Studio(runs=tmp_path, preload=False))
    kinds = {c["id"]: c["type"] for c in demo.config["components"]}
    dropping = [[(kinds.get(target), event) for target, event in dep["targets"]]
                for dep in demo.config["dependencies"]
                if dep["trigger_mode"] == "once" and any(
                    event in ("input", "select", "change") and kinds.get(target) not in ("button", "tabitem")
                    for target, event in dep["targets"])]
    assert not dropping
    assert len(demo.config["dependencies"]) > 40  # every tab was wired
