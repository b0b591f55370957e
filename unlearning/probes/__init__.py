"""Probes: does a run's forgetting survive an attack? One module per probe; importing this package registers them."""
import importlib
import pkgutil

from unlearning.probes.base import PROBES, Probe, ProbeOptions, Subject, get_probes
from unlearning.probes.runner import open_subject, probe_summary, problem, run_probes

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "runner"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["PROBES", "Probe", "ProbeOptions", "Subject", "get_probes", "open_subject", "probe_summary", "problem", "run_probes"]
