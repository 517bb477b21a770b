"""One reversible patching layer: handles that undo themselves in any order; nested probes restore the pipeline."""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch

from freeinit_lab.hooks.patching import patch, patch_class_method
from freeinit_lab.probes.probe import LatentProbe
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline


class Thing:
    def f(self, x, *, scale=1):
        return x * scale

    def __call__(self, x):
        return x + 1


def _tag(label):
    return lambda inner: lambda *a, **k: f"{label}({inner(*a, **k)})"


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_instance_patches_undo_in_any_order(order):
    t = Thing()
    handles = [patch(t, "f", _tag(label)) for label in "abc"]
    assert t.f(2) == "c(b(a(2)))"
    left = list("abc")
    for i in order:
        handles[i].remove()
        left.remove("abc"[i])
        expected = 2
        for label in left:
            expected = f"{label}({expected})"
        assert t.f(2) == expected
    assert "f" not in vars(t) and t.f(2) == 2
    handles[0].remove()  # idempotent


def test_previous_instance_attribute_comes_back_and_signature_is_kept():
    t = Thing()
    t.f = own = lambda x, *, scale=1: -x
    h = patch(t, "f", _tag("a"))
    assert inspect.signature(t.f) == inspect.signature(own)
    h.remove()
    assert vars(t)["f"] is own


@pytest.mark.parametrize("first", [0, 1])
def test_one_class_swap_undone_by_the_last_patch(first):
    t, other = Thing(), Thing()
    handles = [patch_class_method(t, "__call__", _tag("a")), patch_class_method(t, "__call__", _tag("b"))]
    assert type(t) is not Thing and type(type(t)).__mro__ and type(t).__bases__ == (Thing,)
    assert t(1) == "b(a(2))" and other(1) == 2
    handles[first].remove()
    assert type(t) is not Thing
    handles[1 - first].remove()
    assert type(t) is Thing and t(1) == 2


@pytest.mark.parametrize("close_first", ["outer", "inner"])
def test_nested_probes_closed_in_any_order_restore_the_pipeline(close_first):
    pipe = tiny_animatediff_pipeline()
    cls = type(pipe)
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "output_type": "latent"}

    def run():
        return pipe("a cat", generator=torch.Generator().manual_seed(0), **kw).frames

    ref = run()
    outer = LatentProbe(pipe).__enter__()
    inner = LatentProbe(pipe).__enter__()
    assert torch.equal(run(), ref)
    for probe in ([outer, inner] if close_first == "outer" else [inner, outer]):
        probe.__exit__(None, None, None)
    assert type(pipe) is cls
    assert "step" not in vars(pipe.scheduler) and "set_timesteps" not in vars(pipe.scheduler)
    assert torch.equal(run(), ref)
    for probe in (outer, inner):
        assert probe.to_xarray().sizes["step"] == kw["num_inference_steps"]
