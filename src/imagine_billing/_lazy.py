"""Packages that import their public names on first use (PEP 562): `attach`.

A package lists each public name once, under the module that defines it; type checkers read
the same names from the package's ``__init__.pyi`` (a test keeps the two in step). So
``import imagine_billing`` and pricing with a table load only what that needs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["attach"]


def attach(package: str, exports: Mapping[str, Sequence[str]]) -> tuple[
        Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``, whose public names are
    ``exports`` (module -> the names it defines); a name is imported on its first use, then
    kept in the package's namespace."""
    module_of = {name: module for module, names in exports.items() for name in names}
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the PEP 562 hook
        return sorted(set(namespace) | set(module_of))

    return __getattr__, __dir__, sorted(module_of)
