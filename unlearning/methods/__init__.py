"""Unlearning methods, one module each; importing this package registers them all."""
import importlib
import pkgutil

from unlearning.methods.base import METHODS, Method, Preset, get_method, get_preset, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "losses"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "Method", "Preset", "get_method", "get_preset", "register"]
