"""Module paths from before the layered layout (``freeinit_lab.spectral``, ``freeinit_lab.freeinit``, ...).

Each old path is an alias of the module that now holds its code: ``import freeinit_lab.spectral`` returns the
very module object ``freeinit_lab.core.spectral``, so objects, patches and ``isinstance`` checks agree whichever
path a caller used. The aliases are kept for one release; new code imports the layered paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

__all__ = ["MOVED_MODULES", "install"]

#: ``{old module name: new module name}``, both relative to ``freeinit_lab``.
MOVED_MODULES: dict[str, str] = {
    "dims": "core.dims",
    "schedules": "core.schedules",
    "snr": "core.snr",
    "spectral": "core.spectral",
    "layouts": "hooks.layouts",
    "freeinit": "engine.loop",
    "io": "probes.io",
    "metrics": "analysis.metrics",
    "cutoff_map": "studies.cutoff_map",
    "evidence": "studies.evidence",
    "refinement": "studies.refinement",
    "strategies": "studies.strategies",
    "plots": "viz.plots",
    "report": "viz.report",
    "widgets": "viz.widgets",
    "data": "embedded.data",
    "demo": "embedded.demo",
    "models": "embedded.models",
    "pipelines": "embedded.pipelines",
    "vae": "embedded.vae",
    "world": "embedded.world",
    "controls": "core.controls",
    "decomposition": "studies.decomposition",
    "fidelity": "analysis.fidelity",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``freeinit_lab.<old>`` to the module now at ``freeinit_lab.<new>`` (the same object)."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, fullname: str, path=None, target=None):
        prefix, _, old = fullname.rpartition(".")
        if prefix != self.package or old not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def _target(self, fullname: str) -> str:
        return f"{self.package}.{MOVED_MODULES[fullname.rpartition('.')[2]]}"

    def create_module(self, spec) -> ModuleType:
        module = importlib.import_module(self._target(spec.name))
        spec.loader_state = module.__spec__  # the import system overwrites ``__spec__``; exec_module restores it
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the target module is imported); give it back its own spec."""
        module.__spec__ = module.__spec__.loader_state

    def is_package(self, fullname: str) -> bool:
        return False

    def get_code(self, fullname: str):
        """The new module's code, so that ``python -m freeinit_lab.<old>`` still runs it."""
        target = self._target(fullname)
        return importlib.util.find_spec(target).loader.get_code(target)


def install(package: str) -> None:
    """Put the finder for ``package``'s old module paths on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedModuleFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder(package))
