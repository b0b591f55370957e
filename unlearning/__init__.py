"""Unlearning Studio's library: models, data, methods, engine, evaluation, run store, jobs and CLI (no UI code)."""
