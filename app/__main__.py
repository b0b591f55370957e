"""python -m app: start Unlearning Studio in the browser (http://127.0.0.1:7860 by default)."""
from __future__ import annotations

import argparse
import logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m app",
        description="Unlearning Studio: teach, demo and probe machine unlearning in language models.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes the studio to your network (use --auth then)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--model", default="default",  # unlearning.models.DEFAULT_MODEL, not imported: --help stays instant
                   help="model loaded at start: 'default' (offline SmolLM2-135M), 'tiny' (random, instant), a folder or a hub id")
    p.add_argument("--data", default="bundled",
                   help="dataset at start: 'bundled', a LUME folder or hub id, a TOFU .json, or a CSV/JSONL/parquet table")
    p.add_argument("--runs", default="runs", help="folder where runs are saved (kept across restarts)")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="require this login to open the studio")
    p.add_argument("--share", action="store_true", help="also publish a temporary public gradio.live link")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            parser().error("--auth takes USER:PASSWORD")
        auth = (user, password)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Imported here so that --help answers at once, without loading torch and gradio.
    from app.state import Studio
    from app.ui import build_app, launch_options

    try:
        studio = Studio(runs=args.runs, model=args.model, data=args.data)
    except ValueError as error:  # a --runs that is a file: a usage error, not a traceback
        parser().error(str(error))
    if studio.recovered:
        logging.getLogger("app").info("marked %d interrupted run(s): %s", len(studio.recovered), ", ".join(studio.recovered))
    demo = build_app(studio)
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=args.host, server_port=args.port, auth=auth, share=args.share, show_error=False,
                **launch_options())


if __name__ == "__main__":
    main()
