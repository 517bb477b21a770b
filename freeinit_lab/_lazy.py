"""Lazy attributes for packages (PEP 562): a submodule or a public name is imported on first access.

Each package's ``__init__`` lists what it offers in one table and gets ``__getattr__``, ``__dir__`` and ``__all__``
from :func:`attach`, so ``import freeinit_lab`` costs only what the caller then uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(
    package: str,
    submodules: Iterable[str] = (),
    names: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Build ``(__getattr__, __dir__, __all__)`` for ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    submodules : iterable of str
        Submodules reachable as attributes, by their relative names.
    names : mapping of str to str, optional
        ``{public name: relative module}``; the name is read from that module on first access. A module path
        ending in ``":"`` (for example ``"core.spectral:"``) makes the name an alias of that module itself.

    Returns
    -------
    tuple
        ``__getattr__`` (caches what it imports in the package namespace), ``__dir__`` and ``__all__``.
    """
    submodules = tuple(submodules)
    names = dict(names or {})
    clash = set(submodules) & set(names)
    if clash:
        raise ValueError(f"{package}: {sorted(clash)} listed both as submodule and as name")

    def __getattr__(name: str) -> Any:
        import sys

        pkg = sys.modules[package]
        if name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        elif name in names:
            target = names[name]
            if target.endswith(":"):
                value = importlib.import_module(f"{package}.{target[:-1]}")
            else:
                value = getattr(importlib.import_module(f"{package}.{target}"), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        pkg.__dict__[name] = value
        return value

    public = sorted(set(submodules) | set(names))

    def __dir__() -> list[str]:
        import sys

        return sorted(set(public) | set(sys.modules[package].__dict__))

    return __getattr__, __dir__, [n for n in public if not n.startswith("_")]
