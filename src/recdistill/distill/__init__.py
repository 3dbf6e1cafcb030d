"""Distillation methods, one module per method, found by name in ``DISTILLERS``.

Every module in this package that defines a distiller registers it with
``@DISTILLERS.register("<name>")``; :func:`load_distillers` imports all the method modules, so
adding a method is adding a file (the CLI lists ``DISTILLERS``).

>>> load_distillers().get("rdd")  # doctest: +SKIP
KeyError: "unknown distiller 'rdd'; known: bd, cd, ir-rrd, rd, rrd, rrd+ir-rrd"
"""

from __future__ import annotations

import importlib
import pkgutil

from recdistill.distill.base import DISTILLERS, Distiller, FrozenTeacherDistiller, make_config
from recdistill.registry import Registry

#: modules of this package that hold no distiller
_SUPPORT_MODULES = frozenset({"base", "teacher"})


def load_distillers() -> Registry[type[Distiller]]:
    """Import every method module of this package (each registers itself) and return the registry."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _SUPPORT_MODULES and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return DISTILLERS


__all__ = ["DISTILLERS", "Distiller", "FrozenTeacherDistiller", "load_distillers", "make_config"]
