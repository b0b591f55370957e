"""Unlearning Studio's web UI (gradio): one module per tab, a process-level Studio, pure plot and view builders."""
