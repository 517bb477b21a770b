"""Sweeps: store layout, per-cell determinism, serial = distributed, resume, killed workers and CLI runs, bad input.

Cells run the analytic Gaussian pipeline at 4 frames × 8 × 8 (milliseconds per cell) or, where a cell must last
long enough to be killed, the embedded default with a few steps. The tests that start a LocalCluster of two worker
processes or a command-line run are marked slow (each costs seconds of process start-up).
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as hst

import freeinit_lab as fl
from freeinit_lab.sweep import (
    PipelineFactory,
    SweepResultError,
    SweepSpec,
    SweepSpecError,
    SweepStoreError,
    register_study,
    run_sweep,
    video_seeds,
)
from freeinit_lab.sweep.studies import STUDIES, freeinit_study

REPO = Path(__file__).resolve().parent.parent
ANALYTIC = {"name": "analytic", "num_frames": 4, "height": 8}
SPEC = dict(pipeline=ANALYTIC, study="freeinit", grid={"d_s": [0.25, 0.5], "method": ["gaussian", "butterworth"]},
            seeds=[0, 1], videos_per_seed=2, sampler={"num_inference_steps": 3})
CALLS: dict[str, int] = {}


def _data(ds: xr.Dataset) -> xr.Dataset:
    """The numbers of a store, without the timing and the creation attrs."""
    return ds.drop_vars("cell_seconds").load().drop_attrs()


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return run_sweep(SPEC, tmp_path_factory.mktemp("sweep") / "serial.zarr", progress=False).load()


# ------------------------------------------------------------------------------------------------ store and cells
def test_store_layout_labels_and_marks(serial):
    ds = serial
    assert ds.consistency.dims == ("d_s", "method", "seed", "arm", "video")
    assert ds.gain.dims == ("d_s", "method", "seed", "video") and ds.complete.dims == ("d_s", "method", "seed")
    assert ds.method.values.tolist() == ["gaussian", "butterworth"] and ds.seed.values.tolist() == [0, 1]
    assert ds.arm.values.tolist() == ["plain", "freeinit"] and ds.sizes["video"] == 2
    assert bool(ds.complete.all()) and bool(np.isfinite(ds.consistency).all()) and bool((ds.cell_seconds > 0).all())
    assert callable(sys.modules["freeinit_lab.sweep"])  # freeinit_lab.sweep(spec, store) is run_sweep
    np.testing.assert_array_equal(ds.gain, ds.consistency.sel(arm="freeinit") - ds.consistency.sel(arm="plain"))
    assert ds.attrs["sweep_spec_hash"] == SweepSpec.from_dict(SPEC).spec_hash()
    # plain sampling does not depend on the filter: both arms share the noises, every filter the plain arm
    plain = ds.consistency.sel(arm="plain")
    np.testing.assert_array_equal(plain.isel(d_s=0, method=0), plain.isel(d_s=1, method=1))
    assert not np.array_equal(ds.consistency.sel(arm="freeinit").isel(d_s=0), ds.consistency.sel(arm="freeinit").isel(d_s=1))


def test_a_cell_is_the_study_called_directly_with_per_video_generators(serial):
    """A cell is the study called directly on a pipeline built, as the sweep builds it, under the cell's 1 torch
    thread (the analytic pipeline's fitted spectrum is a reduction, so its last bits depend on the thread count)."""
    from freeinit_lab.sweep.engine import _torch_threads

    with _torch_threads(1):
        pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
        direct = freeinit_study(pipe, seed=1, num_videos=2, num_inference_steps=3, d_s=0.5, method="butterworth")
    cell = serial.sel({"d_s": 0.5, "method": "butterworth", "seed": 1})  # `method` is also a sel() argument
    for name in direct.data_vars:
        np.testing.assert_array_equal(cell[name].values, direct[name].values, err_msg=name)
    # ... and the plain arm is the pipeline from generators seeded seed * videos_per_seed + v
    import torch

    gens = [torch.Generator().manual_seed(s) for s in video_seeds(1, 2)]
    plain = pipe(num_videos_per_prompt=2, generator=gens, num_inference_steps=3, output_type="latent").frames
    from freeinit_lab import metrics

    c = metrics.frame_cosine_similarity(plain.clamp(-1, 1)).double().numpy()
    np.testing.assert_allclose(cell.consistency.sel(arm="plain").values, c, atol=1e-12)


def test_cutoff_map_sweep_tiles_one_measure_cutoff_map(tmp_path):
    spec = dict(pipeline=ANALYTIC, study="cutoff_map", grid={"d_s": [0.25, 0.5], "d_t": [0.25]}, seeds=[0, 1],
                videos_per_seed=2, sampler={"num_inference_steps": 3})
    ds = run_sweep(spec, tmp_path / "cmap.zarr", progress=False)
    ref = fl.measure_cutoff_map(fl.load_analytic_pipeline(num_frames=4, height=8), d_s=[0.25, 0.5], d_t=[0.25],
                                num_videos=4, seed=0, num_inference_steps=3, progress=False)
    got = ds.gain.stack(v=("seed", "video")).transpose("d_s", "d_t", "v")
    np.testing.assert_allclose(got.values, ref.gain_per_video.values, atol=1e-6)


def test_cutoff_map_takes_one_control_by_name_as_measure_cutoff_map_does(tmp_path):
    """``controls: mask_only`` (a name, not a list) is that one control, not the letters m, a, s, k, ..."""
    spec = dict(pipeline=ANALYTIC, study="cutoff_map", grid={"d_s": [0.25]}, seeds=[0], videos_per_seed=2,
                sampler={"num_inference_steps": 3}, options={"num_iters": 2, "controls": "mask_only"})
    one = run_sweep(spec, tmp_path / "one.zarr", progress=False)
    listed = run_sweep({**spec, "options": {"num_iters": 2, "controls": ["mask_only"]}}, tmp_path / "list.zarr",
                       progress=False)
    assert one.control.values.tolist() == ["mask_only"]
    xr.testing.assert_identical(_data(one), _data(listed))


def test_an_unknown_cutoff_map_control_is_refused_before_the_plain_samples(tmp_path, monkeypatch):
    """A misspelt control failed only inside measure_cutoff_map, after the seed's plain samples were computed."""
    from freeinit_lab.sweep import studies

    monkeypatch.setattr(studies, "_cached_plain", lambda *a, **k: pytest.fail("plain samples before the check"))
    spec = dict(pipeline=ANALYTIC, study="cutoff_map", grid={"d_s": [0.25]}, seeds=[0], videos_per_seed=2,
                sampler={"num_inference_steps": 3}, options={"num_iters": 2, "controls": ["mask_onyl"]})
    with pytest.raises(ValueError, match=r"controls=\['mask_onyl'\]: a map samples each of"):
        run_sweep(spec, tmp_path / "bad.zarr", progress=False)


@pytest.mark.parametrize("study,grid,options", [
    ("strategies", {"d_s": [0.25]}, {"num_iters": 2, "num_data_videos": 4}),
    ("evidence", {"d_t": [0.25, 0.5]}, {}),
    ("refinement", {"method": ["gaussian"]}, {"num_iters": 2}),
    ("decomposition", {"d_s": [0.25]}, {"num_bootstrap": 200, "controls": ["freeinit_fresh", "shuffled_low"]}),
])
def test_existing_studies_run_as_sweeps(tmp_path, study, grid, options):
    spec = dict(pipeline=ANALYTIC, study=study, grid=grid, seeds=[3], videos_per_seed=8 if study == "decomposition"
                else 2, sampler={"num_inference_steps": 3}, options=options)
    ds = run_sweep(spec, tmp_path / "s.zarr", progress=False)
    assert bool(ds.complete.all()) and tuple(ds.consistency.dims[:2]) == (*grid, "seed")
    assert ds.sizes["video"] == spec["videos_per_seed"] and bool(np.isfinite(ds.consistency).all())


# ---------------------------------------------------------------------------------------------------- resuming
def _flaky_study(pipe, *, seed, num_videos, fail_at=None, **settings):
    """The freeinit study, counting calls, raising on the cell whose d_s is ``fail_at`` (on every cell with
    ``"every cell"``) while CALLS['fail'] is set; CALLS['fix'] is added to its consistency (a library update that
    changes a study's numbers)."""
    CALLS["n"] = CALLS.get("n", 0) + 1
    fail = CALLS.get("fail")
    if fail == "every cell" or fail and settings.get("d_s") == fail_at and seed == 1:
        raise RuntimeError("interrupted")
    ds = freeinit_study(pipe, seed=seed, num_videos=num_videos, **settings)
    return ds.assign(consistency=ds.consistency + CALLS["fix"]) if CALLS.get("fix") else ds


register_study("test-flaky", _flaky_study, overwrite=True)


def test_resume_computes_only_the_missing_cells(tmp_path, serial):
    spec = {**SPEC, "study": "test-flaky", "options": {"fail_at": 0.5}}
    store = tmp_path / "resume.zarr"
    CALLS.update(n=0, fail=True)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_sweep(spec, store, progress=False)
    first = xr.open_zarr(store, chunks=None)
    done = int(first.complete.sum())
    assert 0 < done < 8 and CALLS["n"] == done + 1
    CALLS.update(n=0, fail=False)
    ds = run_sweep(spec, store, progress=False)
    assert CALLS["n"] == 8 - done and bool(ds.complete.all())
    xr.testing.assert_identical(_data(ds), _data(serial))
    CALLS.update(n=0)
    run_sweep(spec, store, progress=False)
    assert CALLS["n"] == 0


def _flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["delete", "flip", "truncate", "flip-mark"])
def test_a_lost_or_damaged_cell_is_found_and_computed_again(tmp_path, serial, damage):
    """A complete cell whose chunk is deleted, bit-flipped or truncated after it was written is found when the store
    is reopened (every chunk is checksummed and written even when it equals the fill value), named in a warning
    and computed again: never read back as NaN or as wrong numbers."""
    store = tmp_path / "s.zarr"
    spec = {**SPEC, "study": "test-flaky"}
    run_sweep(spec, store, progress=False)
    # the chunk of cell d_s=0.5, gaussian, seed 1 (consistency's dims: d_s, method, seed, arm, video)
    chunk = store / "complete" / "1.0.1" if damage == "flip-mark" else store / "consistency" / "1.0.1.0.0"
    assert chunk.exists()
    if damage == "delete":
        chunk.unlink()
    elif damage == "truncate":
        chunk.write_bytes(chunk.read_bytes()[:-7])
    else:
        _flip_a_bit(chunk)
    CALLS.update(n=0, fail=False)
    with pytest.warns(RuntimeWarning, match=r"1 cell\(s\) marked complete lost or damaged data.*d_s=0.5, "
                                            r"method=gaussian, seed=1: .*(missing|damaged).*computed again"):
        ds = run_sweep(spec, store, progress=False)
    assert CALLS["n"] == 1
    xr.testing.assert_identical(_data(ds), _data(serial))


def _quick_study(pipe, *, seed, num_videos, scale=1.0):
    """Several variables, a dim and its labels of its own, in microseconds: a store with many files to create."""
    v = np.arange(num_videos) * scale + seed
    return xr.Dataset({"x": ("video", v), "y": (("arm", "video"), np.stack([v, -v])), "n": ("video", v > 1)},
                      coords={"arm": ["plain", "freeinit"]})


register_study("test-quick", _quick_study, overwrite=True)


def test_a_run_stopped_while_creating_its_store_resumes(tmp_path, monkeypatch):
    """The store is made from the first cell's result, dozens of files (metadata, labels, attrs). A run stopped part
    way through (interrupted, killed, disk full) left a half-made store that every later run refused: as "not a
    sweep store", "not a readable zarr store", with its labels "damaged", or blaming the study for variables the
    store lacked. Now the store is made beside its path and moved there whole: the rerun completes it."""
    import zarr.storage._local as zarr_local

    from freeinit_lab.sweep.store import SweepStore

    spec = {**SPEC, "study": "test-quick", "grid": {"scale": [1.0, 2.0]}, "sampler": {}}
    reference = _data(run_sweep(spec, tmp_path / "reference.zarr", progress=False))
    real_put, real_create, files = zarr_local._put, SweepStore._create, []

    def counting_create(self, result):  # how many files creating the store writes
        monkeypatch.setattr(zarr_local, "_put", lambda path, *a, **k: files.append(path) or real_put(path, *a, **k))
        try:
            return real_create(self, result)
        finally:
            monkeypatch.setattr(zarr_local, "_put", real_put)

    monkeypatch.setattr(SweepStore, "_create", counting_create)
    run_sweep(spec, tmp_path / "counted.zarr", progress=False)
    monkeypatch.setattr(SweepStore, "_create", real_create)
    assert len(files) > 20
    for stop in np.linspace(1, len(files) - 1, 6).astype(int).tolist():  # spread over the creation
        calls = [0]

        def failing_put(path, *args, stop=stop, **kwargs):
            calls[0] += 1
            if calls[0] == stop:
                raise OSError(28, "No space left on device")
            return real_put(path, *args, **kwargs)

        store = tmp_path / f"stopped{stop}.zarr"
        monkeypatch.setattr(zarr_local, "_put", failing_put)
        with pytest.raises(OSError, match="No space left"):
            run_sweep(spec, store, progress=False)
        monkeypatch.setattr(zarr_local, "_put", real_put)
        assert not store.exists() and sorted(p.name for p in tmp_path.iterdir() if "stopped" in p.name) == []
        xr.testing.assert_identical(_data(run_sweep(spec, store, progress=False)), reference)
        store.rename(tmp_path / f"done{stop}.zarr")


@pytest.mark.parametrize("label,damage", [("d_s", "flip"), ("seed", "flip"), ("arm", "flip"), ("d_s", "delete"),
                                          ("seed", "delete")])
def test_a_damaged_label_is_never_read_as_another_setting(tmp_path, label, damage):
    """A coordinate's chunk bit-flipped (d_s = 0.25 read as 0.25000000000000006) or lost (d_s read as NaN, seeds
    as 0) would put every number of the store under wrong labels: the labels are checksummed like the cells and
    the cells' own are checked against the spec, so such a store is refused, naming the label."""
    store = tmp_path / "s.zarr"
    run_sweep(SPEC, store, progress=False)
    chunk = store / label / "0"
    _flip_a_bit(chunk) if damage == "flip" else chunk.unlink()
    with pytest.raises(SweepStoreError, match=f"labels of its cells were damaged.*{label}"):
        run_sweep(SPEC, store, progress=False)


def _fill_valued_study(pipe, *, seed, num_videos, **settings):
    """A cell whose every value equals the store's fill value (NaN, False, 0) where d_s is 0.5."""
    blank = settings.get("d_s") == 0.5
    v = np.arange(num_videos)
    return xr.Dataset({"x": ("video", np.full(num_videos, np.nan) if blank else v + 0.5),
                       "flag": ("video", np.zeros(num_videos, bool) if blank else v >= 0),
                       "count": ("video", np.zeros(num_videos, np.int64) if blank else v + 1)})


register_study("test-fill-valued", _fill_valued_study, overwrite=True)


def test_a_cell_equal_to_the_fill_value_stays_complete(tmp_path, recwarn):
    """Chunks equal to the fill value are written too, so such a cell is not taken for a lost one."""
    spec = {**SPEC, "study": "test-fill-valued"}
    store = tmp_path / "s.zarr"
    first = run_sweep(spec, store, progress=False).load()
    assert bool(first.complete.all()) and bool(first.x.sel(d_s=0.5).isnull().all())
    CALLS.update(n=0)
    again = run_sweep(spec, store, progress=False).load()
    assert not [w for w in recwarn if "lost or damaged" in str(w.message)]
    xr.testing.assert_identical(_data(again), _data(first))


# ------------------------------------------------------------------------------------- the code cells ran on
def test_code_digest_counts_code_not_comments_docstrings_or_formatting(tmp_path):
    import shutil

    from freeinit_lab.sweep.store import code_digest, code_record

    root = tmp_path / "pkg"
    shutil.copytree(REPO / "freeinit_lab" / "sweep", root, ignore=shutil.ignore_patterns("__pycache__"))
    digest = lambda: code_digest.__wrapped__(str(root))  # noqa: E731 - uncached: the files change below
    before = digest()
    engine = root / "engine.py"
    text = engine.read_text()
    line = "        seconds = time.perf_counter() - t0\n"
    assert line in text
    same = [  # comments, docstrings (also an attribute's), blank lines, line breaks, quotes: the same code
        text.replace(line, line[:-1] + "  # s\n\n"),
        text.replace('"""Run ``study`` on one cell;', '"""Runs ``study`` on one cell;'),
        text.replace("_PIPELINES: dict[str, Any] = {}", "_PIPELINES: dict[str, Any] = {}\n'''the cache'''"),
        text.replace("time.perf_counter() - t0", "(\n            time.perf_counter()\n            - t0)"),
        text.replace('"pass client= or workers=, not both"', "'pass client= or workers=, not both'"),
    ]
    for variant in same:
        assert variant != text
        engine.write_text(variant)
        assert digest() == before, variant
    for variant in (text.replace("time.perf_counter() - t0", "time.perf_counter() - t0 + 0"),  # what it does
                    text.replace("if len(_PIPELINES) >= 2:", "if len(_PIPELINES) >= 3:")):
        assert variant != text
        engine.write_text(variant)
        assert digest() != before
    engine.write_text(text)
    (root / "extra.py").write_text("x = 1\n")  # a new module
    assert digest() != before
    assert code_digest() == code_digest() and code_digest.cache_info().hits >= 1  # once per process
    assert set(code_record()) == {"code_digest", "freeinit_lab", "python", "torch", "diffusers", "numpy"}


def _updated_library(monkeypatch, **changes) -> dict:
    """Make this process's code record differ from the one stores were written with (a library update)."""
    from freeinit_lab.sweep import store as store_module

    old = store_module.code_record()
    new = {**old, **changes}
    monkeypatch.setattr(store_module, "_code_record", lambda: new)
    return old


def _half_written(tmp_path) -> tuple[dict, Path, int]:
    """A test-flaky sweep interrupted part-way: (spec, store, complete cells)."""
    spec, store = {**SPEC, "study": "test-flaky", "options": {"fail_at": 0.5}}, tmp_path / "half.zarr"
    CALLS.update(n=0, fail=True, fix=0.0)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_sweep(spec, store, progress=False)
    CALLS.update(n=0, fail=False)
    done = int(xr.open_zarr(store, chunks=None).complete.sum())
    assert 0 < done < 8
    return spec, store, done


def _history(store: Path) -> list[dict]:
    import json

    return json.loads(xr.open_zarr(store, chunks=None).attrs["code_history"])


@pytest.mark.parametrize("changes,match", [
    ({"code_digest": "0123456789abcdef"},
     r"code: the library's code changed since the store was written \(freeinit_lab \S+, code digest \w+ in the "
     r"store; \S+, 0123456789abcdef now"),
    ({"torch": "0.0"}, r"torch: \S+ in the store, 0.0 now"),
    ({"numpy": "0.0", "python": "2.7"}, r"python: 3\.\d+ in the store, 2.7 now\n  numpy: \S+ in the store, 0.0 now"),
], ids=["code", "torch", "python-numpy"])
def test_a_store_resumed_by_other_code_is_refused_before_any_computation(tmp_path, monkeypatch, changes, match):
    """Half a sweep, then a library update (another code digest, or torch, numpy, Python versions): the missing
    cells are not computed beside the old ones unless the caller says how (on_code_change)."""
    spec, store, done = _half_written(tmp_path)
    old = _updated_library(monkeypatch, **changes)
    assert _history(store) == [old]
    CALLS.update(n=0, fix=1.0)
    try:
        with pytest.raises(SweepStoreError, match=rf"half.zarr: its {done} complete cell\(s\) were computed under "
                                                  rf"other code than this process runs:\n  {match}") as err:
            run_sweep(spec, store, progress=False)
    finally:
        CALLS.update(fix=0.0)
    assert CALLS["n"] == 0 and not (tmp_path / "half.zarr.lock").exists()
    assert ("code:" in str(err.value)) == ("code_digest" in changes)  # names only what differs
    for way_out in ("new store path", "on_code_change='recompute'", "--on-code-change recompute",
                    "on_code_change='continue'", "code_history"):
        assert way_out in str(err.value)
    assert int(xr.open_zarr(store, chunks=None).complete.sum()) == done and _history(store) == [old]


def test_continue_computes_the_missing_cells_and_records_both_codes(tmp_path, monkeypatch, serial):
    spec, store, done = _half_written(tmp_path)
    before = xr.open_zarr(store, chunks=None).complete.load()
    old = _updated_library(monkeypatch, code_digest="0123456789abcdef")
    CALLS.update(n=0, fix=1.0)
    try:
        ds = run_sweep(spec, store, progress=False, on_code_change="continue").load()
    finally:
        CALLS.update(fix=0.0)
    assert CALLS["n"] == 8 - done and bool(ds.complete.all())
    assert _history(store) == [old, {**old, "code_digest": "0123456789abcdef"}]
    xr.testing.assert_identical(ds.consistency.where(before), serial.consistency.where(before))
    xr.testing.assert_identical(ds.consistency.where(~before), (serial.consistency + 1.0).where(~before))
    CALLS.update(n=0)
    assert bool(run_sweep(spec, store, progress=False).complete.all()) and CALLS["n"] == 0
    _updated_library(monkeypatch, code_digest="fedcba9876543210")  # reading a complete store: under any code
    assert bool(run_sweep(spec, store, progress=False).complete.all()) and CALLS["n"] == 0


def test_recompute_makes_the_store_one_codes_also_when_interrupted(tmp_path, monkeypatch, serial):
    """Every cell is computed again under the new code. The old cells' marks are cleared only when the first new
    cell is written: a recompute that fails before leaves the store as it was; one that fails after leaves only
    the new code's cells complete, so it resumes under that code without a word."""
    spec, store, done = _half_written(tmp_path)
    old = _updated_library(monkeypatch, code_digest="0123456789abcdef")
    new = {**old, "code_digest": "0123456789abcdef"}
    CALLS.update(n=0, fix=1.0, fail="every cell")
    try:
        with pytest.raises(RuntimeError, match="interrupted"):
            run_sweep(spec, store, progress=False, on_code_change="recompute")
        assert int(xr.open_zarr(store, chunks=None).complete.sum()) == done and _history(store) == [old]
        CALLS.update(fail=True)  # fails at d_s=0.5, seed 1 again
        with pytest.raises(RuntimeError, match="interrupted"):
            run_sweep(spec, store, progress=False, on_code_change="recompute")
        ds = xr.open_zarr(store, chunks=None).load()
        assert 0 < int(ds.complete.sum()) < 8 and _history(store) == [new]
        xr.testing.assert_identical(ds.consistency.where(ds.complete), (serial.consistency + 1.0).where(ds.complete))
        left = 8 - int(ds.complete.sum())
        CALLS.update(n=0, fail=False)
        ds = run_sweep(spec, store, progress=False).load()  # the new code's store: resumed without a word
        assert CALLS["n"] == left and bool(ds.complete.all())
        xr.testing.assert_identical(ds.consistency, serial.consistency + 1.0)
        _updated_library(monkeypatch, code_digest="fedcba9876543210")  # a complete store is recomputed too
        CALLS.update(n=0, fix=2.0)
        ds = run_sweep(spec, store, progress=False, on_code_change="recompute").load()
    finally:
        CALLS.update(fix=0.0, fail=False)
    assert CALLS["n"] == 8 and [h["code_digest"] for h in _history(store)] == ["fedcba9876543210"]
    xr.testing.assert_identical(ds.consistency, serial.consistency + 2.0)


def test_a_store_from_before_the_code_record_resumes_with_a_warning(tmp_path, monkeypatch):
    import zarr

    from freeinit_lab.sweep.store import code_record

    spec, store, done = _half_written(tmp_path)
    group = zarr.open_group(str(store), mode="r+", zarr_format=2)
    del group.attrs["code_history"]  # as every store written before the record was
    zarr.consolidate_metadata(str(store), zarr_format=2)
    with pytest.warns(RuntimeWarning, match=rf"the code its {done} complete cell\(s\) were computed with is not "
                                            "recorded.*code_history records both"):
        ds = run_sweep(spec, store, progress=False)
    assert CALLS["n"] == 8 - done and bool(ds.complete.all())
    assert _history(store) == [{"code_digest": None, "note": "cells computed before the code was recorded"},
                               code_record()]
    _updated_library(monkeypatch, torch="0.0")
    CALLS.update(n=0)
    assert bool(run_sweep(spec, store, progress=False).complete.all()) and CALLS["n"] == 0  # a complete store reads


def test_command_line_on_code_change(tmp_path, monkeypatch, capsys):
    from freeinit_lab.sweep.__main__ import main

    spec, store, done = _half_written(tmp_path)
    yaml = tmp_path / "spec.yaml"
    yaml.write_text("pipeline: {name: analytic, num_frames: 4, height: 8}\nstudy: test-flaky\n"
                    "grid: {d_s: [0.25, 0.5], method: [gaussian, butterworth]}\nseeds: [0, 1]\nvideos_per_seed: 2\n"
                    "sampler: {num_inference_steps: 3}\noptions: {fail_at: 0.5}\n")
    _updated_library(monkeypatch, code_digest="0123456789abcdef")
    run = [str(yaml), "--store", str(store), "--no-progress"]
    CALLS.update(n=0)
    assert main(run) == 2
    assert "the library's code changed" in capsys.readouterr().err and CALLS["n"] == 0
    assert main([*run, "--on-code-change", "continue"]) == 0
    assert f"8/8 cells complete ({8 - done} computed now" in capsys.readouterr().out and len(_history(store)) == 2
    assert main([*run, "--on-code-change", "recompute"]) == 0
    assert "8/8 cells complete (8 computed now" in capsys.readouterr().out and len(_history(store)) == 1
    assert CALLS["n"] == 8 - done + 8


# --------------------------------------------------------------------------------------------------- bad input
def _counting_factory():
    CALLS["factory"] = CALLS.get("factory", 0) + 1
    return fl.load_analytic_pipeline(num_frames=4, height=8)


@pytest.mark.parametrize("change,match", [
    ({"grid": {}}, "empty grid"),
    ({"grid": {"d_s": []}}, "non-empty list"),
    ({"grid": {"d_s": [0.25, 0.25]}}, "repeated"),
    ({"grid": {"d_s": [1, 1.0]}}, "repeated"),  # one value, two spellings: two cells, one label twice
    ({"grid": {"guidance_scale": [0.0, -0.0]}}, "repeated"),
    ({"grid": {"guidance_scale": [1.0, float("nan")]}}, r"grid\['guidance_scale'\] value nan is not a number"),
    ({"grid": {"guidance_scale": [1, 2**70]}},
     r"grid\['guidance_scale'\] value 1180591620717411303424 does not fit the store's labels \(int64\)"),
    ({"study": "nope"}, "unknown study 'nope'; registered: .*cutoff_map"),
    ({"grid": {"dee_s": [0.25]}}, "no setting 'dee_s'; its settings are .*d_s"),
    ({"sampler": {"num_inference_step": 3}}, "no setting 'num_inference_step'"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [0, 0]}, "repeats"),
    ({"seeds": {"start": 2}}, r"seeds = \{'start': 2\} needs stop"),  # not a KeyError: 'stop'
    ({"seeds": {"stop": 2.5}}, "seeds: stop=2.5 must be an integer"),  # not range(0, 2) in silence
    ({"seeds": {"start": True, "stop": 3}}, "seeds: start=True must be an integer"),
    ({"videos_per_seed": 0}, "videos_per_seed"),
    # past int64 (the store's seed labels) or past 2**64 - 1 for a video's generator seed: after the first cell
    ({"seeds": [0, 2**63]}, r"the largest seed is 9223372036854775807 with videos_per_seed = 2"),
    ({"seeds": [0, 2**62], "videos_per_seed": 4}, r"the largest seed is 4611686018427387903 with videos_per_seed = 4"),
    ({"grid": {"d_s": [0.25]}, "sampler": {"d_s": 0.5}}, "given twice"),
    ({"grid": {"seed": [1]}}, "reserved"),
    # a study taking **settings accepts any name, but the sweep passes seed and num_videos itself
    ({"study": "test-flaky", "options": {"seed": 3}}, r"\['seed'\] are the sweep's own.*seeds:"),
    ({"study": "test-flaky", "sampler": {"num_videos": 4}}, r"\['num_videos'\] are the sweep's own.*videos_per_seed:"),
    ({"study": "test-flaky", "grid": {"d_s": [0.25], "num_videos": [1, 2]}}, "num_videos'\\] are the sweep's own"),
    ({"pipeline": "no-such-pipeline"}, "is not one of"),
    # a bad setting *value* is found in its cell before the pipeline loads or any earlier cell runs
    ({"grid": {"d_s": [0.25], "method": ["gaussian", "gausian"]}},
     r"cell \(num_inference_steps=3, d_s=0.25, method=gausian, seed=0\).*unknown filter method 'gausian'"),
    ({"grid": {"d_s": [0.25, 0.0]}}, r"d_s=0.0, seed=0\).*d_s=0.0 is outside \(0, 1\]"),
    # YAML reads 1e-1 as text: the store would label d_s with strings no ds.sel(d_s=0.1) finds
    ({"grid": {"d_s": ["1e-1", "2.5e-1"]}}, r"d_s='1e-1' is text, not a number.*0\.1"),
    ({"grid": {"num_iters": [2, 0]}}, "num_iters=0 must be an integer >= 1"),
    ({"sampler": {"num_inference_steps": 0}}, "num_inference_steps=0 must be an integer >= 1"),
    ({"pipeline": "no_such_module:make"}, "cannot be imported"),
    ({"pipeline": {"factory": "freeinit_lab:load_analytic_pipeline", "kwargs": [4]}}, "kwargs .* must be a mapping"),
    ({"pipeline": {"factory": 12}}, "pipeline factory 12 is neither"),
    # settings that change a study's dims or labels: the second cell would be refused after the first had run
    ({"study": "strategies", "grid": {"num_iters": [2, 3]}},
     r"study 'strategies' cannot vary 'num_iters' across cells: it sets the result's dims or labels"),
    ({"study": "refinement", "grid": {"d_s": [0.25], "num_bands": [3, 4]}}, "cannot vary 'num_bands'"),
    ({"study": "decomposition", "grid": {"num_bands": [3, 4]}}, "cannot vary 'num_bands'"),
    ({"study": "decomposition", "grid": {"controls": ["mask_only", "freeinit_fresh"]}}, "cannot vary 'controls'"),
    # decompose_freeinit's own floor (2,000 resamples need 8 videos), checked before the pipeline loads
    ({"study": "decomposition", "videos_per_seed": 2}, r"needs videos_per_seed >= 8 for cell .*got 2"),
    ({"grid": "d_s"}, r"grid = 'd_s' is not a mapping of settings"),  # was reported as "empty grid 'd_s'"
    ({"study": "decomposition", "videos_per_seed": 6, "options": {"num_bootstrap": 100, "num_iters": 7}},
     r"needs videos_per_seed >= 7 for cell \(.*num_bootstrap=100, num_iters=7.*got 6"),
])
def test_bad_specs_fail_before_any_sampling(tmp_path, change, match):
    CALLS["factory"] = 0
    spec = {**SPEC, "pipeline": _counting_factory, **change}
    with pytest.raises((SweepSpecError, ValueError), match=match):
        run_sweep(spec, tmp_path / "bad.zarr", progress=False)
    assert CALLS["factory"] == 0 and not (tmp_path / "bad.zarr").exists()


@pytest.mark.parametrize("threads", [0, -1, 2.5, True])
def test_bad_torch_threads_fail_before_any_sampling(tmp_path, threads):
    CALLS["factory"] = 0
    with pytest.raises(ValueError, match=f"torch_threads={threads!r} must be an integer >= 1"):
        run_sweep({**SPEC, "pipeline": _counting_factory}, tmp_path / "bad.zarr", torch_threads=threads,
                  progress=False)
    assert CALLS["factory"] == 0 and not (tmp_path / "bad.zarr").exists()


def test_store_from_another_spec_is_refused(tmp_path, serial):
    store = tmp_path / "s.zarr"
    run_sweep({**SPEC, "seeds": [0]}, store, progress=False)
    CALLS["factory"] = 0
    with pytest.raises(SweepStoreError, match=r"another sweep spec[\s\S]*seeds: store has \[0\], this spec \[0, 1\]"):
        run_sweep({**SPEC, "pipeline": ANALYTIC}, store, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(SweepStoreError, match="not a readable zarr store|not a sweep store"):
        run_sweep(SPEC, tmp_path / "junk", progress=False)


def test_one_run_per_store(tmp_path):
    """A live run's lock is refused before sampling; a lock whose process died on this host is taken over."""
    import json
    import socket

    store, lock = tmp_path / "s.zarr", tmp_path / "s.zarr.lock"
    spec = {**SPEC, "grid": {"d_s": [0.25]}, "seeds": [0]}
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    CALLS["factory"] = 0
    with pytest.raises(SweepStoreError, match=r"being written by another run \(pid \d+ on .*delete the lock file"):
        run_sweep({**spec, "pipeline": _counting_factory}, store, progress=False)
    assert CALLS["factory"] == 0
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(gone.stdout)}))
    assert bool(run_sweep(spec, store, progress=False).complete.all()) and not lock.exists()


def test_a_lock_never_exists_without_its_owner(tmp_path, monkeypatch):
    """The lock used to be created empty and written after: a run reading it in between (or left by a run that died
    in between) saw no owner ("pid ?"). Now the owner is in the lock the moment it exists, and nothing else is left."""
    import json

    from freeinit_lab.sweep.store import SweepStore

    lock = tmp_path / "s.zarr.lock"
    seen = []
    real_dump = json.dump

    def dump(obj, fh, *args, **kwargs):  # at the moment the owner is written, the lock must not exist yet
        seen.append(lock.exists())
        return real_dump(obj, fh, *args, **kwargs)

    monkeypatch.setattr(json, "dump", dump)
    store = SweepStore.__new__(SweepStore)
    store.path = str(tmp_path / "s.zarr")
    with store.writer_lock():
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr.lock"]  # no temporary file left
    assert seen == [False] and not lock.exists()


def test_a_dead_runs_lock_taken_over_meanwhile_by_another_run_is_left_to_it(tmp_path, monkeypatch):
    """Two runs both finding a dead run's lock: the first removes it and takes the lock; the second, which read the
    dead owner before that, used to remove the first's live lock and take it too, so both wrote the store. Now it
    removes the lock only if it still holds the dead owner, and refuses the live one."""
    import json

    from freeinit_lab.sweep import store as store_mod

    lock = tmp_path / "s.zarr.lock"
    dead = {"host": socket.gethostname(), "pid": int(subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)}
    first = {"host": socket.gethostname(), "pid": os.getppid()}  # alive: the run that took over first
    lock.write_text(json.dumps(dead))
    real_alive = store_mod._alive

    def alive(pid):  # the moment this run has read the dead owner, the other run takes the lock over
        if pid == dead["pid"] and json.loads(lock.read_text()) == dead:
            lock.write_text(json.dumps(first))
        return real_alive(pid)

    monkeypatch.setattr(store_mod, "_alive", alive)
    store = store_mod.SweepStore.__new__(store_mod.SweepStore)
    store.path = str(tmp_path / "s.zarr")
    with pytest.raises(SweepStoreError, match=rf"pid {first['pid']} on"):
        with store.writer_lock():
            pass
    assert json.loads(lock.read_text()) == first


def test_a_dead_runs_lock_is_taken_over_where_the_file_system_has_no_flock(tmp_path, monkeypatch):
    """The takeover's guard is an flock on the folder; where that is refused (some network mounts) the dead run's
    lock is still taken over, unguarded, as before."""
    import fcntl
    import json

    from freeinit_lab.sweep.store import SweepStore

    def no_flock(fd, op):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    lock = tmp_path / "s.zarr.lock"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(gone.stdout)}))
    store = SweepStore.__new__(SweepStore)
    store.path = str(tmp_path / "s.zarr")
    with store.writer_lock():
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_a_store_reached_through_a_symlink_shares_its_lock(tmp_path):
    """The lock was named after the path as given, so one store reached through a symlink had a second lock."""
    import json

    from freeinit_lab.sweep.store import SweepStore

    (tmp_path / "s.zarr").mkdir()
    (tmp_path / "alias.zarr").symlink_to(tmp_path / "s.zarr")
    a, b = (SweepStore.__new__(SweepStore) for _ in range(2))
    a.path, b.path = str(tmp_path / "s.zarr"), str(tmp_path / "alias.zarr/")
    with a.writer_lock():
        assert json.loads((tmp_path / "s.zarr.lock").read_text())["pid"] == os.getpid()
        with pytest.raises(SweepStoreError, match="being written by another run"):
            with b.writer_lock():
                pass


def test_factories_that_cannot_reach_workers_are_named(tmp_path):
    lock = threading.Lock()

    def holds_a_lock():
        with lock:
            return fl.load_analytic_pipeline(num_frames=4, height=8)

    class NoClient:  # never used: the check comes first
        pass

    with pytest.raises(TypeError, match=r"cannot be sent to dask workers: .*lock.*module-level function"):
        run_sweep({**SPEC, "pipeline": holds_a_lock}, tmp_path / "a.zarr", client=NoClient(), progress=False)
    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    with pytest.raises(TypeError, match="cannot be sent to dask workers: TypeError: a TinyVideoPipeline object is a "
                                        "loaded pipeline, not a recipe to build one. .*give a factory"):
        run_sweep(SPEC, tmp_path / "b.zarr", pipeline=pipe, client=NoClient(), progress=False)
    # in-process, a pipeline object is fine
    ds = run_sweep({**SPEC, "grid": {"d_s": [0.25]}, "seeds": [0]}, tmp_path / "c.zarr", pipeline=pipe, progress=False)
    assert ds.attrs["pipeline"].startswith("object TinyVideoPipeline ")


def test_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("distributed")
    from freeinit_lab.sweep.cluster import connect

    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"no dask scheduler answered at 'tcp://127.0.0.1:9' within 1 s"):
        connect("tcp://127.0.0.1:9", timeout=1)
    assert time.perf_counter() - t0 < 15


def test_a_scheduler_address_as_client_is_a_clear_error(tmp_path):
    """client= takes a Client; an address there failed in the sweep's own code ('str' object has no attribute
    'submit'). The error names what to pass, before anything is loaded."""
    CALLS["factory"] = 0
    with pytest.raises(TypeError, match=r"client='tcp://127.0.0.1:9' is an address.*Client\('tcp://127.0.0.1:9'\)"):
        run_sweep({**SPEC, "pipeline": _counting_factory}, tmp_path / "s.zarr", client="tcp://127.0.0.1:9",
                  progress=False)
    assert CALLS["factory"] == 0 and not (tmp_path / "s.zarr").exists()


def _two_arms(pipe, *, seed, num_videos, scale=1.0):
    return xr.Dataset({"x": (("arm", "video"), np.full((2, num_videos), scale))}, coords={"arm": ["a", "b"]})


def test_register_study_takes_one_name_as_one_name(tmp_path):
    """dims="arm" (or parameters="scale") is that one name, not its letters: the sweep ran a cell, then refused
    the study's own arm dim as undeclared (dims=('a', 'r', 'm'))."""
    study = register_study("test-one-name", _two_arms, dims="arm", parameters="scale", shape_settings="num_arms",
                           overwrite=True)
    assert (study.dims, study.parameters, study.shape_settings) == (("arm",), ("scale",), ("num_arms",))
    ds = run_sweep({**SPEC, "study": "test-one-name", "grid": {"scale": [1.0, 2.0]}, "sampler": {}},
                   tmp_path / "s.zarr", progress=False)
    assert ds.x.dims == ("scale", "seed", "arm", "video") and bool(ds.complete.all())


def _labelled_cell(pipe, *, seed, num_videos, scale=1.0, label=True):
    ds = xr.Dataset({"x": ("video", np.arange(num_videos) * scale + seed)})
    return ds.assign_coords(scale=scale, seed=seed) if label else ds  # as .sel(scale=...) without drop=True leaves


def test_a_result_carrying_its_cells_labels_as_scalar_coords_is_stored(tmp_path):
    """A cell result with its own setting and seed as scalar coordinates (what ``.sel(d_s=0.25)`` leaves) is the
    same cell: the store labels it itself. The first cell ran, then the store could not be created ("dimension
    'scale' already exists as a scalar variable")."""
    register_study("test-labelled", _labelled_cell, overwrite=True)
    spec = {**SPEC, "study": "test-labelled", "grid": {"scale": [1.0, 2.0]}, "sampler": {}}
    labelled = run_sweep(spec, tmp_path / "a.zarr", progress=False)
    plain = run_sweep({**spec, "options": {"label": False}}, tmp_path / "b.zarr", progress=False)
    xr.testing.assert_identical(_data(labelled), _data(plain))
    STUDIES.pop("test-labelled")


def test_results_the_store_cannot_hold(tmp_path):
    def wrong_size(pipe, *, seed, num_videos, k=0):
        return xr.Dataset({"x": ("video", np.zeros(num_videos + 1))})

    def not_a_dataset(pipe, *, seed, num_videos, d_s=0.25):
        return np.zeros(num_videos)

    register_study("test-wrong-size", wrong_size, overwrite=True)
    register_study("test-not-a-dataset", not_a_dataset, overwrite=True)
    base = {**SPEC, "grid": {"d_s": [0.25]}, "seeds": [0]}
    with pytest.raises(SweepSpecError, match="no setting 'd_s'"):
        run_sweep({**base, "study": "test-wrong-size"}, tmp_path / "a.zarr", progress=False)
    with pytest.raises(SweepResultError, match="needs a `video` dim of size videos_per_seed = 2"):
        run_sweep({**base, "study": "test-wrong-size", "grid": {"k": [1]}, "sampler": {}},
                  tmp_path / "b.zarr", progress=False)
    with pytest.raises(SweepResultError, match="returned ndarray"):
        run_sweep({**base, "study": "test-not-a-dataset", "sampler": {}}, tmp_path / "c.zarr", progress=False)
    for name in ("test-wrong-size", "test-not-a-dataset"):
        STUDIES.pop(name)


def test_a_cell_whose_values_the_store_dtype_cannot_hold_is_refused_not_truncated(tmp_path):
    def counts_then_fractions(pipe, *, seed, num_videos, k=0):  # integers in the first cell, fractions later
        return xr.Dataset({"x": ("video", np.arange(num_videos) + (0.5 if k else 0))})

    register_study("test-dtype-drift", counts_then_fractions, overwrite=True)
    spec = {"pipeline": ANALYTIC, "study": "test-dtype-drift", "grid": {"k": [0, 1]}, "videos_per_seed": 2}
    try:
        with pytest.raises(SweepResultError, match=r"x has dtype float64, the store int64"):
            run_sweep(spec, tmp_path / "a.zarr", progress=False)
        ds = xr.open_zarr(tmp_path / "a.zarr")
        assert ds.complete.values.ravel().tolist() == [True, False]  # the first cell stays, the other is not faked
    finally:
        STUDIES.pop("test-dtype-drift")


def test_pipeline_entries():
    key = lambda e: PipelineFactory.from_spec(e).key  # noqa: E731
    assert key("default").startswith("default {} files ") and key(ANALYTIC) == 'analytic {"height":8,"num_frames":4}'
    assert key(str(REPO / "data" / "default_model")).startswith("folder ")
    assert key("org/some-model") == "hub org/some-model"
    assert key("freeinit_lab.testing:tiny_pipeline").startswith("factory freeinit_lab.testing:tiny_pipeline")
    f = PipelineFactory.from_spec({"factory": "freeinit_lab:load_analytic_pipeline", "kwargs": {"num_frames": 4,
                                                                                               "height": 8}})
    assert f().sample_shape == (3, 4, 8, 8)
    part = functools.partial(fl.load_analytic_pipeline, num_frames=4)
    assert "partial(" in key(part) and "num_frames=4" in key(part)
    with pytest.raises(SweepSpecError, match="has no model_index.json"):
        key(str(REPO / "data"))


def _analytic_maker(num_frames):
    return lambda: fl.load_analytic_pipeline(num_frames=num_frames, height=8)


class _AnalyticMaker:
    def __init__(self, num_frames):
        self.num_frames = num_frames

    def __call__(self):
        return fl.load_analytic_pipeline(num_frames=self.num_frames, height=8)


_FRAMES = {"n": 4}


def _reads_a_global():
    return fl.load_analytic_pipeline(num_frames=_FRAMES["n"], height=8)


_PIPE = None


def _returns_the_global_pipe():
    return _PIPE


def test_python_callables_that_build_other_pipelines_are_other_specs(tmp_path):
    """A callable's key is its name *and* what it builds with: closures of one function over other values, two
    lambdas of one module, callable objects with other settings and a global they read are other pipelines, and
    never complete each other's stores. The same callable keeps its key (a store resumes)."""
    key = lambda e: PipelineFactory.from_spec(e).key  # noqa: E731
    four, eight = _analytic_maker(4), _analytic_maker(8)
    assert four.__qualname__ == eight.__qualname__  # the qualified name alone cannot tell them apart
    assert key(four) != key(eight) and key(four) == key(_analytic_maker(4))
    lambda_a = lambda: fl.load_analytic_pipeline(num_frames=4, height=8)  # noqa: E731
    lambda_b = lambda: fl.load_analytic_pipeline(num_frames=4, height=16)  # noqa: E731
    assert key(lambda_a) != key(lambda_b)
    assert key(_AnalyticMaker(4)) != key(_AnalyticMaker(8)) == key(_AnalyticMaker(8))
    assert key(_AnalyticMaker(4).__call__) != key(_AnalyticMaker(8).__call__)
    assert key(functools.partial(fl.load_analytic_pipeline, num_frames=4)) != key(
        functools.partial(fl.load_analytic_pipeline, num_frames=8))
    import torch

    clips = [torch.zeros(2, 3, 4, 8, 8, dtype=torch.float64) for _ in range(2)]
    clips[1][1, 2, 3, 4, 5] = 1e-9  # tensors and arrays enter by their bytes (their repr would elide this)
    assert key(functools.partial(fl.load_analytic_pipeline, clips=clips[0])) != key(
        functools.partial(fl.load_analytic_pipeline, clips=clips[1]))
    assert key(functools.partial(fl.load_analytic_pipeline, clips=clips[0].numpy())) != key(
        functools.partial(fl.load_analytic_pipeline, clips=clips[1].numpy()))
    before = key(_reads_a_global)
    _FRAMES["n"] = 8
    try:
        assert key(_reads_a_global) != before
    finally:
        _FRAMES["n"] = 4
    global _PIPE  # a notebook's `pipe` reassigned between two sweeps of `lambda: pipe`: other weights, other spec
    _PIPE = fl.load_analytic_pipeline(num_frames=4, height=8)
    first = key(_returns_the_global_pipe)
    _PIPE = fl.load_analytic_pipeline(num_frames=4, height=8, clips=torch.rand(8, 3, 4, 8, 8) * 2 - 1)
    assert key(_returns_the_global_pipe) != first
    assert key(_returns_the_global_pipe) == key(_returns_the_global_pipe)

    spec = {**SPEC, "grid": {"d_s": [0.25]}, "seeds": [0], "videos_per_seed": 1}
    store = tmp_path / "s.zarr"
    run_sweep({**spec, "pipeline": four}, store, progress=False)
    with pytest.raises(SweepStoreError, match="pipeline_key: store has 'callable .*_analytic_maker"):
        run_sweep({**spec, "pipeline": eight}, store, progress=False)
    assert bool(run_sweep({**spec, "pipeline": _analytic_maker(4)}, store, progress=False).complete.all())


def test_a_loaded_pipeline_with_another_sampler_is_another_spec(tmp_path):
    """A pipeline object (or one a factory returns from a global) is keyed by its weights *and* its scheduler: the
    same weights sampled with another scheduler, or the same one configured otherwise, give other numbers and must
    not be handed a store of the first."""
    import diffusers

    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    spec = {**SPEC, "grid": {"d_s": [0.25]}, "seeds": [0], "videos_per_seed": 1}
    store = tmp_path / "s.zarr"
    run_sweep(spec, store, pipeline=pipe, progress=False)
    ddim = pipe.scheduler
    key = lambda: PipelineFactory.from_spec(pipe).key  # noqa: E731
    before = key()
    pipe.scheduler = diffusers.DDIMScheduler.from_config(ddim.config, timestep_spacing="trailing")
    assert key() != before
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(ddim.config)
    with pytest.raises(SweepStoreError, match="another sweep spec"):
        run_sweep(spec, store, pipeline=pipe, progress=False)
    global _PIPE
    _PIPE = pipe
    euler = PipelineFactory.from_spec(_returns_the_global_pipe).key
    pipe.scheduler = ddim
    assert PipelineFactory.from_spec(_returns_the_global_pipe).key != euler and key() == before
    assert bool(run_sweep(spec, store, pipeline=pipe, progress=False).complete.all())


def test_a_loaded_pipeline_with_other_sampling_defaults_is_another_spec(tmp_path):
    """The same weights and scheduler with another stored ε-scaling (or DDIM η, autoguidance weight or interval)
    sample other videos: a store of the first must not be handed to the second. Pipelines at the neutral values
    keep the key they had before these defaults existed."""
    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    spec = {**SPEC, "grid": {"d_s": [0.25]}, "seeds": [0], "videos_per_seed": 1}
    store = tmp_path / "s.zarr"
    run_sweep(spec, store, pipeline=pipe, progress=False)
    key = lambda: PipelineFactory.from_spec(pipe).key  # noqa: E731
    before = key()
    assert "defaults" not in before
    for name, value in (("default_eps_scale", 1.02), ("default_eta", 0.5), ("default_guidance_scale", 1.5),
                        ("default_guidance_interval", (250.0, 999.0))):
        stored = getattr(pipe, name)
        setattr(pipe, name, value)
        try:
            assert key() != before, name
        finally:
            setattr(pipe, name, stored)
    pipe.default_eps_scale = 1.02
    try:
        with pytest.raises(SweepStoreError, match="another sweep spec"):
            run_sweep(spec, store, pipeline=pipe, progress=False)
    finally:
        pipe.default_eps_scale = 1.0
    assert key() == before and bool(run_sweep(spec, store, pipeline=pipe, progress=False).complete.all())


def test_a_callables_key_is_the_same_in_every_process():
    """Keys hold no addresses: a store made by a module's function resumes in a new Python process."""
    code = ("import functools, freeinit_lab as fl; from freeinit_lab.sweep import PipelineFactory; "
            "from freeinit_lab import testing; "
            "print(PipelineFactory.from_spec(functools.partial(testing.tiny_pipeline, name='AnimateDiffPipeline')).key)")
    from freeinit_lab import testing

    here = PipelineFactory.from_spec(functools.partial(testing.tiny_pipeline, name="AnimateDiffPipeline")).key
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
            for _ in range(2)]
    assert runs == [here, here] and " code " in here and " id" not in here


def test_other_weights_in_the_same_folder_are_another_spec(tmp_path):
    """A retrained or replaced model (same folder, other files) must not complete a store of the old one."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(REPO / "data" / "default_model", folder)
    spec = {**SPEC, "pipeline": str(folder), "grid": {"d_s": [0.25]}, "seeds": [0], "videos_per_seed": 1}
    run_sweep(spec, tmp_path / "s.zarr", progress=False)
    weights = next(folder.rglob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(SweepStoreError, match=r"pipeline_key: store has 'folder .* files \w+', this spec"):
        run_sweep(spec, tmp_path / "s.zarr", progress=False)


def test_a_refreshed_model_card_keeps_the_fingerprint(tmp_path):
    """Documentation in a pipeline folder (model card, sample figures, training log) decides no number: rewriting
    it keeps the fingerprint, while any file the pipeline loads (a config, the sampler, weights) changes it."""
    import shutil

    from freeinit_lab.sweep.spec import folder_fingerprint

    folder = tmp_path / "model"
    shutil.copytree(REPO / "data" / "default_model", folder)
    before = folder_fingerprint(folder)
    (folder / "MODEL_CARD.md").write_text("# another card\n")
    (folder / "model_card.json").write_text("{}")
    (folder / "samples.png").write_bytes(b"not a figure")
    assert folder_fingerprint(folder) == before
    for loaded in ("sampler.json", "unet/config.json"):
        f = folder / loaded
        text = f.read_text()
        f.write_text(text + " ")
        assert folder_fingerprint(folder) != before, loaded
        f.write_text(text)
        assert folder_fingerprint(folder) == before


@settings(max_examples=40, deadline=None)
@given(values=hst.lists(hst.floats(0.01, 1.0), min_size=1, max_size=4, unique=True),
       steps=hst.integers(1, 50), seeds=hst.lists(hst.integers(0, 99), min_size=1, max_size=3, unique=True))
def test_spec_hash_names_the_numbers_not_the_spelling(values, steps, seeds):
    a = SweepSpec(study="freeinit", grid={"d_s": values}, seeds=seeds, sampler={"num_inference_steps": steps,
                                                                                  "guidance_scale": 1.0})
    b = SweepSpec.from_dict({"sampler": {"guidance_scale": 1.0, "num_inference_steps": steps}, "seeds": list(seeds),
                             "grid": {"d_s": [np.float64(v) for v in values]}, "study": "freeinit"})
    assert a.spec_hash() == b.spec_hash()
    assert a.spec_hash() != SweepSpec(**{**a.__dict__, "sampler": {"num_inference_steps": steps + 1,
                                                                   "guidance_scale": 1.0}}).spec_hash()
    assert a.spec_hash() != SweepSpec(**{**a.__dict__, "seeds": [*seeds, 100]}).spec_hash()
    cells = a.cells()
    assert len(cells) == len(values) * len(seeds) and len({c.index for c in cells}) == len(cells)
    assert [c.seed for c in cells[: len(seeds)]] == list(seeds)


def test_local_path_imports_no_dask(tmp_path):
    """With dask and distributed made unimportable, an in-process sweep still runs (and never asks for them)."""
    code = (
        "import sys; sys.modules['distributed'] = None; sys.modules['dask'] = None\n"
        "from freeinit_lab.sweep import run_sweep\n"
        f"ds = run_sweep({SPEC!r}, {str(tmp_path / 'nodask.zarr')!r}, progress=False)\n"
        "print(int(ds.complete.sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "8"


# ------------------------------------------------------------------------------------------ LocalCluster (slow)
def _dying_study(pipe, *, seed, num_videos, marker=None, **settings):
    """The freeinit study, except that the first cell of seed 1 kills its worker process mid-cell."""
    if seed == 1 and marker is not None:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    return freeinit_study(pipe, seed=seed, num_videos=num_videos, **settings)


register_study("test-dying", _dying_study, overwrite=True)


def _raising_study(pipe, *, seed, num_videos, **settings):
    """The freeinit study, except that the cells of seed 1 raise."""
    if seed == 1:
        raise RuntimeError("interrupted")
    return freeinit_study(pipe, seed=seed, num_videos=num_videos, **settings)


register_study("test-raising", _raising_study, overwrite=True)


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    import cloudpickle
    from distributed import Client

    from freeinit_lab.sweep.cluster import local_cluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test studies travel by value
    with local_cluster(2) as cluster, Client(cluster) as c:
        yield c


def _environ_settles(keys, want: dict, timeout: float = 30.0) -> dict:
    """``keys`` of ``os.environ`` once they equal ``want``, or as they are after ``timeout`` seconds: a worker
    registers with the scheduler a moment before its nanny's spawn returns and the nanny's variables are taken
    back."""
    deadline = time.monotonic() + timeout
    while {k: os.environ.get(k) for k in keys} != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return {k: os.environ.get(k) for k in keys}


@pytest.mark.slow
@pytest.mark.parametrize("own_nanny", [False, True], ids=["default", "callers-nanny-class"])
def test_a_local_cluster_leaves_the_callers_environment_as_it_was(monkeypatch, own_nanny):
    """The nanny writes its workers' pre-spawn variables into the caller's ``os.environ`` (dask/distributed#6749);
    a process the caller starts later (nbval's next kernel) would run torch on one thread. The workers still get
    them; the caller keeps its own, after start-up and after a restart of the workers, also with the caller's
    own ``Nanny`` subclass as ``worker_class``."""
    pytest.importorskip("distributed")
    from distributed import Client, Nanny

    from freeinit_lab.sweep.cluster import local_cluster

    class CallersNanny(Nanny):
        started = 0

        async def instantiate(self):
            CallersNanny.started += 1
            return await super().instantiate()

    extra = {"worker_class": CallersNanny} if own_nanny else {}

    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED", "MALLOC_TRIM_THRESHOLD_")
    for k in keys:  # unset, as in CI (a variable the caller has set is the workers' too: dask's precedence)
        monkeypatch.delenv(k, raising=False)
    before = dict.fromkeys(keys)
    with local_cluster(2, **extra) as cluster, Client(cluster) as c:
        assert {k: os.environ.get(k) for k in keys} == before
        seen = list(c.run(lambda: (os.environ.get("OMP_NUM_THREADS"), os.environ.get("MKL_NUM_THREADS"))).values())
        assert seen == [("1", "1")] * 2  # both workers, spawned side by side
        c.restart()  # each nanny spawns a new worker, writing the variables into this process again
        assert list(c.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == ["1"] * 2
        assert _environ_settles(keys, before) == before
    assert {k: os.environ.get(k) for k in keys} == before
    assert CallersNanny.started == (4 if own_nanny else 0)  # the caller's class did run: start-up and restart


@pytest.mark.slow
def test_two_worker_processes_give_the_serial_numbers_bit_for_bit(tmp_path, serial, client):
    ds = run_sweep(SPEC, tmp_path / "dist.zarr", client=client, progress=False)
    assert len(client.scheduler_info()["workers"]) == 2
    xr.testing.assert_identical(_data(ds), _data(serial))


@pytest.mark.slow
def test_a_worker_killed_mid_cell_is_survived(tmp_path, serial, client):
    nanny_keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED")
    before = {k: os.environ.get(k) for k in nanny_keys}
    marker = tmp_path / "killed"
    spec = {**SPEC, "study": "test-dying", "options": {"marker": str(marker)}}
    ds = run_sweep(spec, tmp_path / "dying.zarr", client=client, progress=False)
    assert marker.exists()  # a worker process did die mid-cell
    assert bool(ds.complete.all())
    xr.testing.assert_identical(_data(ds), _data(serial))  # nothing lost, nothing written twice differently
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it
    assert _environ_settles(nanny_keys, before) == before


@pytest.mark.slow
def test_a_sweep_leaves_the_clusters_workers_as_it_found_them(tmp_path, serial, client):
    """A user's long-lived cluster: its workers' torch threads and plugins are the same after a sweep (finished or
    failed) as before, though every cell ran on 1 thread."""
    import torch

    def threads():
        import torch

        return torch.get_num_threads()

    def plugins(dask_worker):
        return sorted(dask_worker.plugins)

    client.run(torch.set_num_threads, 3)  # the user's setting
    before = client.run(plugins)
    try:
        assert set(client.run(threads).values()) == {3}
        ds = run_sweep(SPEC, tmp_path / "dist.zarr", client=client, progress=False)
        xr.testing.assert_identical(_data(ds), _data(serial))  # the cells ran on 1 thread, as in-process
        assert set(client.run(threads).values()) == {3} and client.run(plugins) == before
        with pytest.raises(RuntimeError, match="interrupted") as err:
            run_sweep({**SPEC, "study": "test-raising"}, tmp_path / "failed.zarr", client=client, progress=False)
        assert err.value.sweep_cell.endswith("seed=1")  # the failed cell is named on the distributed path too
        assert set(client.run(threads).values()) == {3} and client.run(plugins) == before
    finally:
        client.run(torch.set_num_threads, 1)


@pytest.mark.slow
def test_a_worker_with_other_code_is_refused_before_its_cell_runs(tmp_path, client, monkeypatch):
    """The store records the client's code (digest and library versions); workers installed apart from the client
    computed its cells with their own code, unrecorded. A worker whose code record differs now raises
    WorkerCodeError naming it and each difference before computing, and no cell is written."""
    import freeinit_lab.sweep.store as store_mod
    from freeinit_lab.sweep import WorkerCodeError

    real = store_mod.code_record()
    client_side = dict(real, code_digest="0" * 16, torch="0.0.0")
    monkeypatch.setattr(store_mod, "_code_record", lambda: client_side)  # this process only, not the workers
    with pytest.raises(WorkerCodeError, match=r"worker tcp://\S+ runs other code") as err:
        run_sweep(SPEC, tmp_path / "mixed.zarr", client=client, progress=False)
    assert f"code_digest: {'0' * 16} on the client, {real['code_digest']} on the worker" in str(err.value)
    assert f"torch: 0.0.0 on the client, {real['torch']} on the worker" in str(err.value)
    assert "diffusers" not in str(err.value)  # only what differs
    assert _complete_cells(tmp_path / "mixed.zarr") == 0  # no cell written (the store is not even created)
    monkeypatch.undo()
    ds = run_sweep(SPEC, tmp_path / "same.zarr", client=client, progress=False)  # same code: runs
    assert bool(ds.complete.all())


# ---------------------------------------------------------------------------------------------- command line
def _cli(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "freeinit_lab.sweep", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _complete_cells(store: Path) -> int:
    import zarr

    try:
        return int(np.asarray(zarr.open_group(str(store), mode="r")["complete"][...]).astype(bool).sum())
    except Exception:  # not created yet, or metadata half-written
        return 0


CLI_SPEC = """\
pipeline: default
study: freeinit
grid:
  d_s: [0.25, 0.5]
  d_t: [0.25, 0.5, 1.0]
seeds: [0, 1]
videos_per_seed: 1
sampler: {num_inference_steps: 3}
options: {num_iters: 2}
"""


@pytest.mark.slow
def test_killed_command_line_run_restarted_completes_the_store(tmp_path):
    """Kill an in-process CLI run after its first cell, restart it with --workers 2: the store completes, equal to
    an uninterrupted in-process run."""
    spec, store = tmp_path / "spec.yaml", tmp_path / "out.zarr"
    spec.write_text(CLI_SPEC)
    proc = _cli(spec, "--store", store, "--no-progress")
    deadline = time.monotonic() + 240
    while _complete_cells(store) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    done = _complete_cells(store)
    assert 1 <= done < 12, f"kill came too late ({done} of 12 cells complete)"
    again = _cli(spec, "--store", store, "--no-progress", "--workers", "2")  # resumed on two worker processes
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-2000:]
    assert f"12/12 cells complete ({12 - done} computed now, 2 local workers" in out
    ds = xr.open_zarr(store)
    assert ds.consistency.dims == ("d_s", "d_t", "seed", "arm", "video") and bool(ds.complete.all())
    fresh = run_sweep(SweepSpec.from_yaml(spec), tmp_path / "fresh.zarr", progress=False)
    xr.testing.assert_identical(_data(ds), _data(fresh))


def _mistyped_study(pipe, *, seed, num_videos, **settings):
    """The freeinit study, except that the cells of seed 1 hit a bug of the study's own (a TypeError)."""
    if seed == 1:
        return freeinit_study(pipe, seed=seed, num_videos=num_videos, **settings, no_such_option=1)
    return freeinit_study(pipe, seed=seed, num_videos=num_videos, **settings)


register_study("test-mistyped", _mistyped_study, overwrite=True)


def test_a_failing_cell_is_named_and_the_command_line_exits_1(tmp_path, capsys):
    """A study raising in a cell raised its own error, naming no cell; on the command line a TypeError or ImportError
    from a study (a bug, a missing optional package) mid-sweep was taken for bad input: exit status 2, "error: ..."
    with no traceback, though cells were computed and stored. Now the error names the cell and how to resume, and
    the command line lets it through with its traceback (exit status 1)."""
    from freeinit_lab.sweep.__main__ import main

    store = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError, match="interrupted") as err:
        run_sweep({**SPEC, "study": "test-raising"}, store, progress=False)
    assert err.value.sweep_cell == "num_inference_steps=3, d_s=0.25, method=gaussian, seed=1"
    if sys.version_info >= (3, 11):
        assert err.value.__notes__ == [f"raised in sweep cell (num_inference_steps=3, d_s=0.25, method=gaussian, "
                                       f"seed=1) of study 'test-raising'; the cells finished before it stay "
                                       f"complete in {store}: run the sweep again to compute the rest"]
    assert _complete_cells(store) == 1
    spec = tmp_path / "spec.yaml"
    spec.write_text("pipeline: {name: analytic, num_frames: 4, height: 8}\nstudy: test-mistyped\n"
                    "grid: {d_s: [0.25, 0.5]}\nseeds: [0, 1]\nvideos_per_seed: 2\n"
                    "sampler: {num_inference_steps: 3}\n")
    with pytest.raises(TypeError, match="no_such_option") as err:  # `python -m`: the traceback, exit status 1
        main([str(spec), "--store", str(tmp_path / "cli.zarr"), "--no-progress"])
    assert err.value.sweep_cell == "num_inference_steps=3, d_s=0.25, seed=1"
    assert _complete_cells(tmp_path / "cli.zarr") == 1 and "error:" not in capsys.readouterr().err

def test_command_line_bad_input_exits_2_before_sampling(tmp_path, capsys):
    from freeinit_lab.sweep.__main__ import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(CLI_SPEC.replace("d_t:", "dt:"))
    assert main([str(spec), "--store", str(tmp_path / "x.zarr")]) == 2
    assert "no setting 'dt'" in capsys.readouterr().err
    spec.write_text(CLI_SPEC)
    assert main([str(spec), "--store", str(tmp_path / "x.zarr"), "--scheduler", "tcp://127.0.0.1:9",
                 "--timeout", "1"]) == 2
    assert "no dask scheduler answered" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()
    assert main([str(tmp_path / "missing.yaml"), "--store", str(tmp_path / "y.zarr")]) == 2
    assert main([str(spec), "--store", str(tmp_path / "y.zarr"), "--threads", "0"]) == 2
    assert "--threads 0: give at least 1" in capsys.readouterr().err
    spec.write_text(CLI_SPEC.replace("[0.25, 0.5]", "[0.25, 0.5"))  # not YAML: a spec error, not a traceback
    assert main([str(spec), "--store", str(tmp_path / "y.zarr")]) == 2
    assert f"{spec} is not valid YAML" in capsys.readouterr().err
    assert main([str(tmp_path), "--store", str(tmp_path / "y.zarr")]) == 2  # a folder, not the spec file
    assert "is a directory" in capsys.readouterr().err and not (tmp_path / "y.zarr").exists()
    assert main(["--list-studies"]) == 0 and "cutoff_map" in capsys.readouterr().out


def test_freeinit_study_on_a_text_to_video_pipeline_scores_decoded_frames(tmp_path):
    """A diffusers pipeline (tiny AnimateDiff): prompts as a grid key, frames decoded; plain sampling is the same
    with and without coarse-to-fine FreeInit (it runs separately then, from the same generators)."""
    spec = dict(pipeline={"factory": "freeinit_lab.testing:tiny_pipeline", "kwargs": {"name": "AnimateDiffPipeline"}},
                study="freeinit", grid={"prompt": ["a cat", "a dog"], "fast_sampling": [False, True]}, seeds=[0],
                videos_per_seed=2, sampler={"num_inference_steps": 3, "num_frames": 8, "height": 16, "width": 16},
                options={"num_iters": 2})
    ds = run_sweep(spec, tmp_path / "ad.zarr", progress=False).load()
    assert bool(ds.complete.all()) and ds.consistency.dims == ("prompt", "fast_sampling", "seed", "arm", "video")
    plain = ds.consistency.sel(arm="plain")
    np.testing.assert_allclose(plain.sel(fast_sampling=False), plain.sel(fast_sampling=True), atol=1e-6)
    assert ds.denoiser_calls.sel(fast_sampling=True, arm="freeinit").values.tolist() == [[4], [4]]  # 1 + 3 steps


def test_a_normalised_model_is_scored_on_decoded_video(tmp_path):
    """A model trained in a normalised space (a ChannelNormalizer in its folder): metrics of the decoded video."""
    import torch

    from freeinit_lab import metrics

    pipe = fl.load_default_pipeline()  # the embedded default works in model space (per-channel unit variance)
    assert pipe.normalizer is not None
    ds = freeinit_study(pipe, seed=0, num_videos=1, num_inference_steps=2, num_iters=2)
    gens = [torch.Generator().manual_seed(s) for s in video_seeds(0, 1)]
    video = pipe(num_videos_per_prompt=1, generator=gens, num_inference_steps=2, output_type="pt").frames
    expected = metrics.frame_cosine_similarity(video, layout="bfchw", value_range=(0.0, 1.0)).double().numpy()
    np.testing.assert_allclose(ds.consistency.sel(arm="plain").values, expected, atol=1e-9)


def test_freeinit_study_refuses_single_frame_videos_before_sampling(tmp_path, monkeypatch):
    """Consistency between frames needs 2 frames: refused (naming the fix) before FreeInit samples, as every other
    study does (require_frames), not after sampling with 'temporal metrics need at least 2 frames'."""
    def sampled(*args, **kwargs):
        raise AssertionError("sampled before refusing single-frame videos")

    monkeypatch.setattr(fl, "freeinit", sampled)
    spec = {**SPEC, "pipeline": {**ANALYTIC, "num_frames": 1}}
    with pytest.raises(ValueError, match="freeinit_study scores temporal consistency.*at least 2 frames"):
        run_sweep(spec, tmp_path / "a.zarr", progress=False)
    with pytest.raises(ValueError, match="freeinit_study scores temporal consistency.*at least 2 frames"):
        freeinit_study(fl.load_analytic_pipeline(num_frames=4, height=8), seed=0, num_videos=1, num_frames=1)


def test_fast_sampling_counts_the_plain_arms_denoiser_calls_as_run():
    """With fast_sampling the plain arm is a separate run; its denoiser calls were estimated as calls per step of
    pass 0 times the steps, which is wrong for a second-order scheduler (Heun calls 2n − 1 times for n steps)."""
    import torch
    from diffusers import HeunDiscreteScheduler

    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    pipe.scheduler = HeunDiscreteScheduler.from_config(pipe.scheduler.config)
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        pipe(num_videos_per_prompt=2, generator=[torch.Generator().manual_seed(s) for s in (0, 1)],
             num_inference_steps=4, output_type="latent")
        plain_run = len(calls)
        ds = freeinit_study(pipe, seed=0, num_videos=2, num_inference_steps=4, fast_sampling=True, num_iters=2)
    finally:
        handle.remove()
    assert plain_run == 7  # 2 · 4 − 1
    assert int(ds.denoiser_calls.sel(arm="plain")) == plain_run
