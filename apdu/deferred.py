"""Modules a module names at import and runs at their first use (importlib's ``LazyLoader``).

Why: a module's codecs (frozen dataclasses and enums, built when it runs) cost more than most
commands' work, and both :mod:`host.session` and the simulated card speak every command the
card has: ``evb card info`` uses none of backup's, keys' or triggers'. Pure standard library,
so the card (which never imports the host) and the host share it. A module that defers one imports it
for the type checker under ``TYPE_CHECKING`` and binds :func:`deferred` of it otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def deferred(name: str) -> ModuleType:
    """The module ``name``, run at its first attribute read (now, if it has run already)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:  # as an import would: ``apdu.backup`` reads as an attribute of ``apdu``
        setattr(sys.modules[parent], child, module)
    return module
