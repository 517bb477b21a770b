"""Build hook: the wheel carries the embedded default (``data/``) as ``freeinit_lab/embedded/_data``.

Everything else is declared in ``pyproject.toml``. In a checkout or an editable install the package reads the
top-level ``data/`` folder instead (:func:`freeinit_lab.embedded.paths.data_dir`).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = Path(__file__).resolve().parent / "data"
TARGET = ("freeinit_lab", "embedded", "_data")
#: Folders of ``data/`` that stay in the checkout: a model still in training is not part of a release.
EXCLUDE = ("candidate_model",)


class BuildPyWithData(build_py):
    """``build_py`` that also copies ``data/`` into the built package (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False) or not DATA.is_dir():
            return
        for src in sorted(DATA.rglob("*")):
            if src.is_file() and src.relative_to(DATA).parts[0] not in EXCLUDE:
                dst = Path(self.build_lib, *TARGET, src.relative_to(DATA))
                self.mkpath(str(dst.parent))
                self.copy_file(str(src), str(dst))


setup(cmdclass={"build_py": BuildPyWithData})
