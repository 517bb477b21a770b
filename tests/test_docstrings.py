"""Every docstring example of the package runs and prints what it shows (the examples are documentation users
paste; a stale one, like the embedded pipeline's 8 × 16 × 16 output shape after the default became 16 × 32 × 32,
is a wrong statement)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import freeinit_lab

MODULES = sorted(m.name for m in pkgutil.walk_packages(freeinit_lab.__path__, "freeinit_lab.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name, globs=vars(module).copy()):
        if test.examples and test.filename and test.filename.endswith(".py"):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} fail (printed above)"
