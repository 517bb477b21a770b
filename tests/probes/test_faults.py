"""Fault injection: an exception or KeyboardInterrupt at every stage of a probed FreeInit run.

After each: the pipeline is as before (class, ``scheduler.step``, attributes), the partial record is readable and
marked incomplete, and a rerun equals a fresh run.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import freeinit_lab as fl
from freeinit_lab.hooks.events import subscribe
from freeinit_lab.probes.io import IncompleteRecordWarning, load_record
from freeinit_lab.probes.probe import _ACTIVE, LatentProbe

STEPS = 3
ITERS = 2


class Boom(RuntimeError):
    pass


def _pipe():
    return fl.load_analytic_pipeline(num_frames=4, height=8)


def _run(pipe, **over):
    kw = dict(num_iters=ITERS, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0),
              output_type="np", progress=False)
    kw.update(over)
    return fl.freeinit(pipe, **kw)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Output and record of a fresh pipeline, never faulted."""
    pipe = _pipe()
    path = tmp_path_factory.mktemp("fresh") / "fresh.zarr"
    with LatentProbe(pipe, capture=("latents", "x0_pred"), store=path):
        res = _run(pipe)
    return res, load_record(path)


def _snapshot(pipe):
    return (type(pipe), dict(vars(pipe)), dict(vars(pipe.scheduler)), type(pipe.scheduler).step,
            pipe.scheduler.step.__func__)


@contextlib.contextmanager
def _inject(pipe, probe, stage, exc):
    """Raise ``exc`` at ``stage`` of the run; everything injected is removed on exit."""
    undo = []
    over = {}
    if stage == "prepare":
        pipe.prepare_latents = lambda *a, **k: (_ for _ in ()).throw(exc)
        undo.append(lambda: delattr(pipe, "prepare_latents"))
    elif stage == "step":  # step 1 of the second pass

        def callback(p, i, t, kw, _seen=[]):
            _seen.append(i)
            if len(_seen) == STEPS + 2:
                raise exc
            return kw

        over["callback_on_step_end"] = callback
    elif stage == "between-passes":
        sub = subscribe(pipe, lambda i, settings: (_ for _ in ()).throw(exc) if i == 1 else None)
        undo.append(sub.remove)
    elif stage == "decode":
        pipe.decode_latents = lambda *a, **k: (_ for _ in ()).throw(exc)
        undo.append(lambda: delattr(pipe, "decode_latents"))
    elif stage == "write":  # the record's second step fails to write
        sink = probe._sink
        add = sink.add
        calls = []

        def failing_add(rec):
            calls.append(1)
            if len(calls) == 2:
                raise exc
            return add(rec)

        sink.add = failing_add
        undo.append(lambda: delattr(sink, "add"))
    try:
        yield over
    finally:
        for u in undo:
            u()


@pytest.mark.parametrize("exc_type", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("stage", ["prepare", "step", "between-passes", "decode", "write"])
def test_fault_leaves_pipeline_clean_record_marked_and_rerun_equal(fresh, tmp_path, stage, exc_type):
    ref, ref_record = fresh
    pipe = _pipe()
    _run(pipe, num_iters=1, num_inference_steps=1)  # the pipeline's own per-call bookkeeping (_num_timesteps, ...)
    before = _snapshot(pipe)
    path = tmp_path / "faulted.zarr"
    probe = LatentProbe(pipe, capture=("latents", "x0_pred"), store=path)
    with pytest.raises(exc_type):
        with probe:
            with _inject(pipe, probe, stage, exc_type()) as over:
                _run(pipe, **over)
    # the pipeline is as before
    after = _snapshot(pipe)
    assert after[0] is before[0] and after[3] is before[3] and after[4] is before[4]
    assert after[1].keys() == before[1].keys()
    assert all(after[1][k] is v for k, v in before[1].items() if not isinstance(v, (bool, int, float)))
    assert after[2].keys() == before[2].keys() and "step" not in vars(pipe.scheduler)
    assert id(pipe) not in _ACTIVE
    # the partial record is readable and marked incomplete
    assert not probe.complete
    if path.exists():
        with pytest.warns(IncompleteRecordWarning, match="incomplete"):
            part = load_record(path)
        assert part.attrs["complete"] == 0
        stored = part.attrs["num_steps_stored"]
        assert stored == int(np.isfinite(part.timestep.values).sum()) < ITERS * STEPS or stage == "decode"
        finite = np.isfinite(part.timestep.values)
        same = ref_record.isel(iteration=slice(0, part.sizes["iteration"]), step=slice(0, part.sizes["step"]))
        for name in ("latents", "x0_pred"):  # every stored step is whole and equals the fresh run's
            np.testing.assert_array_equal(part[name].values[finite], same[name].values[finite])
    else:
        assert stage in ("prepare",) and probe.to_xarray().attrs["complete"] == 0
    # a rerun on the same pipeline equals a fresh run, and so does its record
    rerun_path = tmp_path / "rerun.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteRecordWarning)
        with LatentProbe(pipe, capture=("latents", "x0_pred"), store=rerun_path) as again:
            res = _run(pipe)
        assert again.complete
        rerun_record = load_record(rerun_path)
    np.testing.assert_array_equal(res.frames, ref.frames)
    assert torch.equal(res.latents, ref.latents)
    xr.testing.assert_identical(rerun_record, ref_record)
