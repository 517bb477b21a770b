"""Record I/O: checksums catch damage, nothing missing reads as NaN, overwrite only replaces our records."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

from freeinit_lab.probes.io import (
    RECORD_MARKER,
    DamagedRecordError,
    EmptyRecordError,
    IncompleteRecordWarning,
    load_record,
    mark_complete,
    save_record,
)


def record(seed=0, dtype=np.float32, steps=(3, 2)):
    """A probe-like record: two passes of 3 and 2 steps (the second padded with NaN), float data, attrs."""
    rng = np.random.default_rng(seed)
    n_it, n_st = len(steps), max(steps)
    data = rng.standard_normal((n_it, n_st, 1, 4, 4, 8, 8)).astype(dtype)
    timestep = np.full((n_it, n_st), np.nan)
    for i, n in enumerate(steps):
        timestep[i, :n] = np.linspace(999, 0, n)
        data[i, n:] = np.nan
    dims = ("iteration", "step", "batch", "channel", "frame", "height", "width")
    return xr.Dataset(
        {"latents": (dims, data, {"long_name": "latent after the step"})},
        coords={"iteration": np.arange(n_it), "step": np.arange(n_st),
                "timestep": (("iteration", "step"), timestep)},
        attrs={"record_version": 1, "capture": "latents", "mode": "full", "seed": seed},
    )


def _only_our_attrs(ds):
    return {k: v for k, v in ds.attrs.items() if k != "num_steps_stored"}


# ----------------------------------------------------------------------------------------------------------------
# overwrite only replaces our own records
# ----------------------------------------------------------------------------------------------------------------
def test_zarr_overwrite_refuses_an_unrelated_folder(tmp_path):
    folder = tmp_path / "photos.zarr"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"refusing to overwrite .*photos\.zarr.*not a freeinit_lab zarr record"):
        save_record(record(), folder, overwrite=True)
    assert (folder / "precious.txt").read_text() == "keep me"
    # a zarr store written by something else is not ours either
    foreign = tmp_path / "other.zarr"
    xr.Dataset({"x": ("i", np.arange(3.0))}).to_zarr(foreign, zarr_format=3, consolidated=False)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        save_record(record(), foreign, overwrite=True)
    xr.testing.assert_identical(xr.open_zarr(foreign, consolidated=False).load(),
                                xr.Dataset({"x": ("i", np.arange(3.0))}))


def test_netcdf_overwrite_refuses_an_unrelated_file(tmp_path):
    text = tmp_path / "notes.nc"
    text.write_text("not a record")
    with pytest.raises(FileExistsError, match=r"refusing to overwrite .*notes\.nc"):
        save_record(record(), text, overwrite=True)
    assert text.read_text() == "not a record"
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("i", np.arange(3.0))}).to_netcdf(foreign)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        save_record(record(), foreign, overwrite=True)


@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_overwrite_replaces_our_record_and_a_failed_save_keeps_it(tmp_path, suffix):
    path = tmp_path / f"run.{suffix}"
    save_record(record(0), path)
    save_record(record(1), path, overwrite=True)
    assert load_record(path).attrs["seed"] == 1
    bad = record(2).assign_attrs(config=object())  # an attr neither format can store: the write fails midway
    with pytest.raises((TypeError, ValueError)):
        save_record(bad, path, overwrite=True)
    back = load_record(path)
    assert back.attrs["seed"] == 1
    np.testing.assert_array_equal(back.latents.values, record(1).latents.values)
    assert sorted(os.listdir(tmp_path)) == [f"run.{suffix}"], "no half-written or replaced copies left behind"


@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_a_record_another_writer_saved_meanwhile_is_kept(tmp_path, suffix, monkeypatch):
    """Two saves racing to one new path: the one that finishes second is refused (as if the path had existed),
    never silently replacing the record the other one wrote."""
    import freeinit_lab.probes.io as io

    path = tmp_path / f"run.{suffix}"
    writer = io._write_zarr if suffix == "zarr" else io._write_netcdf

    def slow_writer(ds, tmp):  # the other writer (the original code) finishes while this one is still writing
        monkeypatch.undo()
        save_record(record(7), path)
        writer(ds, tmp)

    monkeypatch.setattr(io, "_write_zarr" if suffix == "zarr" else "_write_netcdf", slow_writer)
    with pytest.raises(FileExistsError, match="created by another writer"):
        save_record(record(1), path)
    back = load_record(path)
    assert back.attrs["seed"] == 7
    np.testing.assert_array_equal(back.latents.values, record(7).latents.values)
    assert sorted(os.listdir(tmp_path)) == [f"run.{suffix}"], "no half-written copy left behind"


# ----------------------------------------------------------------------------------------------------------------
# damage raises, naming the file
# ----------------------------------------------------------------------------------------------------------------
def test_netcdf_bytes_overwritten_in_the_data_raise(tmp_path):
    ds = record()
    path = tmp_path / "run.nc"
    save_record(ds, path)
    raw = bytearray(path.read_bytes())
    start = raw.find(ds.latents.values[0, 0].tobytes()[:256])
    assert start > 0, "the latents' bytes are stored as is"
    raw[start + 128 : start + 192] = bytes(range(64))  # 64 bytes in the middle of the data section
    path.write_bytes(bytes(raw))
    with pytest.raises(DamagedRecordError, match=r"record '.*run\.nc' is damaged"):
        load_record(path)


@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_truncated_records_raise(tmp_path, suffix):
    path = tmp_path / f"run.{suffix}"
    save_record(record(), path)
    target = path if suffix == "nc" else path / "latents" / "c" / "0" / "0" / "0" / "0" / "0" / "0" / "0"
    assert target.is_file()
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    with pytest.raises(DamagedRecordError, match=rf"record '.*run\.{suffix}' is damaged"):
        load_record(path)


def test_a_truncated_netcdf_record_raises_after_a_refusal_at_the_same_path(tmp_path):
    """netCDF-C leaves the HDF5 file open when an open fails, and HDF5 reuses it for the next open of the same file,
    skipping its own length check: load_record checks the length against the superblock itself."""
    import shutil

    from freeinit_lab.probes.io import _hdf5_end_of_file

    # no step dim, so no step count to catch it by chance: the cut-off coord `seed` would read back as zeros
    ds = xr.Dataset({"latents": (("batch", "channel"), np.arange(8.0).reshape(2, 4))},
                    coords={"seed": ("batch", [3, 4])}, attrs={"mode": "full"})
    good, path = tmp_path / "good.nc", tmp_path / "run.nc"
    save_record(ds, good)
    raw = good.read_bytes()
    assert _hdf5_end_of_file(good) == len(raw)
    flipped = bytearray(raw)
    flipped[62] ^= 0x10  # a header byte
    path.write_bytes(bytes(flipped))
    with pytest.raises(DamagedRecordError):
        load_record(path)
    shutil.copyfile(good, path)  # restored in place (the same file) from a copy that was cut short
    with open(path, "r+b") as f:
        f.truncate(len(raw) - 100)
    with pytest.raises(DamagedRecordError, match=rf"is truncated: {len(raw) - 100} bytes, but its HDF5 superblock "
                                                 rf"records {len(raw)}"):
        load_record(path)
    with pytest.raises(FileExistsError, match="not a readable freeinit_lab NetCDF record"):
        save_record(ds, path, overwrite=True)  # as in a fresh process: a truncated file is not known to be ours
    path.write_bytes(raw + bytes(10))  # appended bytes: not the file the superblock describes either
    with pytest.raises(DamagedRecordError, match="bytes were appended"):
        load_record(path)


def test_zarr_damage_raises_never_nan(tmp_path):
    path = tmp_path / "run.zarr"
    save_record(record(), path)
    chunk = path / "latents" / "c" / "0" / "0" / "0" / "0" / "0" / "0" / "0"
    good = chunk.read_bytes()
    flipped = bytearray(good)
    flipped[100:164] = bytes(64)
    chunk.write_bytes(bytes(flipped))
    with pytest.raises(DamagedRecordError, match="checksum"):
        load_record(path)
    chunk.unlink()  # a deleted chunk would read back as the fill value, NaN
    with pytest.raises(DamagedRecordError, match=r"1 of the 1 chunks of 'latents' are missing"):
        load_record(path)
    with pytest.raises(DamagedRecordError, match="chunks of 'latents' are missing"):
        load_record(path, lazy=True)
    chunk.write_bytes(good)
    xr.testing.assert_identical(load_record(path), record().assign_attrs(num_steps_stored=5))
    import shutil

    shutil.rmtree(path / "latents")  # a whole variable gone
    with pytest.raises(DamagedRecordError, match=r"variables \['latents'\] are missing"):
        load_record(path)


def _flip_bit(path, find, offset=0, bit=0x01):
    raw = bytearray(path.read_bytes())
    at = raw.index(find) + offset
    raw[at] ^= bit
    path.write_bytes(bytes(raw))


def test_a_bit_flipped_in_zarr_metadata_raises_naming_what_differs(tmp_path):
    ds = record().assign_attrs(freeinit_d_s=0.25)
    path = tmp_path / "run.zarr"
    save_record(ds, path)
    good = {p: p.read_bytes() for p in path.rglob("zarr.json")}
    _flip_bit(path / "zarr.json", b'"freeinit_d_s": 0.25', len(b'"freeinit_d_s": 0.'))  # one bit: 0.25 -> 0.35
    assert b'"freeinit_d_s": 0.35' in (path / "zarr.json").read_bytes()
    with pytest.raises(DamagedRecordError, match=r"run\.zarr' is damaged: its metadata differs from what was saved: "
                                                 r"root attribute 'freeinit_d_s' changed"):
        load_record(path)
    with pytest.raises(DamagedRecordError, match="'freeinit_d_s' changed"):
        load_record(path, lazy=True)
    with pytest.raises(DamagedRecordError, match="'freeinit_d_s' changed"):
        mark_complete(path)  # never renews the digests over damage
    (path / "zarr.json").write_bytes(good[path / "zarr.json"])
    meta = path / "latents" / "zarr.json"  # an array's description: its long name
    _flip_bit(meta, b"latent after the step", 0, 0x20)  # "latent" -> "Latent"
    with pytest.raises(DamagedRecordError, match=r"array metadata \(zarr.json\) of 'latents' changed"):
        load_record(path)
    meta.write_bytes(good[meta])
    xr.testing.assert_identical(load_record(path), ds.assign_attrs(num_steps_stored=5))
    mark_complete(path, complete=False)  # a change made by the library renews the digests
    with pytest.warns(IncompleteRecordWarning):
        assert load_record(path).attrs["complete"] == 0


def test_zarr_records_saved_without_metadata_digests(tmp_path):
    """Records saved before the digests (freeinit_lab_record = 1) load unchecked; a newer one without them is damaged."""
    import json

    path = tmp_path / "run.zarr"
    save_record(record(), path)
    doc = json.loads((path / "zarr.json").read_text())
    assert doc["attributes"][RECORD_MARKER] == 2
    del doc["attributes"]["freeinit_lab_metadata_sha256"]
    (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(DamagedRecordError, match="metadata digests .* are missing"):
        load_record(path)
    doc["attributes"][RECORD_MARKER] = 1
    (path / "zarr.json").write_text(json.dumps(doc))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xr.testing.assert_identical(load_record(path), record().assign_attrs(num_steps_stored=5))


@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_variable_names_with_spaces_round_trip(tmp_path, suffix):
    ds = xr.Dataset({"my latents": ("i", np.arange(3.0)), "x0 pred (ema)": ("i", np.ones(3))}, attrs={"seed": 0})
    save_record(ds, tmp_path / f"run.{suffix}")
    xr.testing.assert_identical(load_record(tmp_path / f"run.{suffix}"), ds)
    da = xr.DataArray(np.arange(3.0), dims="i", name="band power")
    save_record(da, tmp_path / f"da.{suffix}")
    xr.testing.assert_identical(load_record(tmp_path / f"da.{suffix}"), da)


@pytest.fixture(params=["hdf5-visible", "hdf5-hidden"])
def hdf5_view(request, monkeypatch):
    """Both ways load_record judges whether HDF5 holds a NetCDF file open: by asking the library, or (where it cannot
    be reached) from this process's own opens."""
    from freeinit_lab.probes import _hdf5

    if request.param == "hdf5-visible":
        if _hdf5.open_file_ids() is None:
            pytest.skip("the HDF5 library under netCDF4 cannot be reached here")
    else:
        monkeypatch.setattr(_hdf5, "open_file_ids", lambda: None)
    return request.param


def _rewrite_in_place(target, source):
    with open(target, "r+b") as f:  # the same inode, as cp or an in-place writer leaves it
        f.write(source.read_bytes())
        f.truncate()


def test_a_netcdf_record_rewritten_in_place_while_held_open_loads_as_it_is_now(tmp_path, hdf5_view):
    """HDF5 reuses an open file's state for the same inode: a record held lazily and rewritten in place loaded as
    what it was (its old values and attributes) before."""
    a, b = record().assign_attrs(which="a"), (record() + 10).assign_attrs(which="b")
    save_record(a, tmp_path / "a.nc")
    save_record(b, tmp_path / "b.nc")
    path = tmp_path / "run.nc"
    path.write_bytes((tmp_path / "a.nc").read_bytes())
    held = load_record(path, lazy=True)
    assert held.attrs["which"] == "a"
    _rewrite_in_place(path, tmp_path / "b.nc")
    xr.testing.assert_identical(load_record(path), load_record(tmp_path / "b.nc"))
    assert load_record(path, lazy=True).attrs["which"] == "b"


def test_a_damaged_netcdf_header_put_right_in_place_loads_its_own_metadata(tmp_path, hdf5_view):
    """netCDF-C leaves the HDF5 file open when an open fails; a file put right in place then loaded the cached
    attributes of an earlier record beside its own values."""
    a, b = record().assign_attrs(which="a"), (record() + 10).assign_attrs(which="b")
    save_record(a, tmp_path / "a.nc")
    save_record(b, tmp_path / "b.nc")
    path = tmp_path / "run.nc"
    path.write_bytes((tmp_path / "a.nc").read_bytes())
    _flip_bit(path, b"OHDR", 20)
    with pytest.raises(DamagedRecordError):
        load_record(path)
    for good in ("b", "a", "b"):
        _rewrite_in_place(path, tmp_path / f"{good}.nc")
        xr.testing.assert_identical(load_record(path), load_record(tmp_path / f"{good}.nc"))


def test_a_zarr_name_with_a_slash_is_refused_before_writing(tmp_path):
    # zarr would store "a/b" as array b of a group a, which no reader sees: a record saved but never loadable
    with pytest.raises(ValueError, match="'a/b'"):
        save_record(xr.Dataset({"a/b": ("i", np.arange(3.0))}), tmp_path / "run.zarr")
    assert not os.listdir(tmp_path)


def test_missing_record_and_unreadable_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match="no record at"):
        load_record(tmp_path / "nothing.nc")
    path = tmp_path / "run.zarr"
    save_record(record(), path)
    (path / "zarr.json").write_text("{ truncated")
    with pytest.raises(DamagedRecordError, match=r"run\.zarr"):
        load_record(path)
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(EmptyRecordError, match=r"empty\.zarr.*empty folder, not a record.*os\.rmdir"):
        load_record(tmp_path / "empty.zarr")


# ----------------------------------------------------------------------------------------------------------------
# completeness
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_complete_attribute_and_steps_stored(tmp_path, suffix):
    ds = record()
    done = mark_complete(ds)
    assert done.attrs["complete"] == 1 and done.attrs["num_steps_stored"] == 5
    path = tmp_path / f"done.{suffix}"
    save_record(done, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteRecordWarning)
        assert load_record(path).attrs["complete"] == 1
    stopped = mark_complete(ds.isel(iteration=[0]), complete=False)
    path = tmp_path / f"stopped.{suffix}"
    save_record(stopped, path)
    with pytest.warns(IncompleteRecordWarning, match=r"incomplete.*3 steps stored"):
        back = load_record(path)
    assert back.attrs["complete"] == 0 and back.attrs["num_steps_stored"] == 3
    # save_record always writes the count of a record with steps
    save_record(ds, tmp_path / f"plain.{suffix}")
    assert load_record(tmp_path / f"plain.{suffix}").attrs["num_steps_stored"] == 5


def test_mark_complete_updates_a_zarr_store_in_place(tmp_path):
    path = tmp_path / "run.zarr"
    save_record(record(), path)
    mark_complete(path, complete=False)
    with pytest.warns(IncompleteRecordWarning):
        assert load_record(path).attrs["complete"] == 0
    with pytest.raises(ValueError, match="mark_complete"):
        mark_complete(tmp_path / "run.nc")


# ----------------------------------------------------------------------------------------------------------------
# what to pass
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_dataarrays_round_trip(tmp_path, suffix):
    da = record().latents.assign_attrs(units="latent units")
    save_record(da, tmp_path / f"named.{suffix}")
    back = load_record(tmp_path / f"named.{suffix}")
    assert isinstance(back, xr.DataArray)
    xr.testing.assert_identical(back, da.assign_attrs(num_steps_stored=5))
    unnamed = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("a", "b"))
    save_record(unnamed, tmp_path / f"unnamed.{suffix}")
    xr.testing.assert_identical(load_record(tmp_path / f"unnamed.{suffix}"), unnamed)


def test_wrong_inputs_and_missing_folder_say_what_to_do(tmp_path):
    with pytest.raises(TypeError, match=r"takes an xarray.Dataset .* or an xarray.DataArray; got dict"):
        save_record({"x": np.zeros(3)}, tmp_path / "x.nc")
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=r"the folder '.*no/such' does not exist; create it first"):
        save_record(record(), missing / "run.nc")
    assert not missing.exists()


# ----------------------------------------------------------------------------------------------------------------
# streamed stores
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def streamed_every2(tmp_path_factory):
    from freeinit_lab.probes.probe import LatentProbe
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 5}
    path = tmp_path_factory.mktemp("stream") / "every2.zarr"
    with LatentProbe(pipe, capture="latents", every=2, store=path) as probe:
        pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
    with LatentProbe(pipe, capture="latents", every=2) as mem:
        pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
    return path, probe, mem.to_xarray()


def test_streamed_every_k_store_loads_without_nan_rows(streamed_every2, tmp_path):
    path, probe, in_memory = streamed_every2
    back = load_record(path)
    assert back.step.values.tolist() == [0, 2, 4]
    assert np.isfinite(back.latents.values).all() and np.isfinite(back.timestep.values).all()
    xr.testing.assert_identical(back, in_memory)  # labels (long_name) too
    xr.testing.assert_identical(load_record(path, lazy=True).load(), in_memory)
    # a probe store is ours: it may be replaced by a checked copy
    save_record(back, path.parent / "copy.zarr")
    save_record(back, path.parent / "copy.zarr", overwrite=True)


def test_streamed_store_with_a_deleted_chunk_is_damaged(streamed_every2, tmp_path):
    import shutil

    path, _, _ = streamed_every2
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    chunks = sorted(p for p in (copy / "latents" / "c").rglob("*") if p.is_file())
    chunks[0].unlink()
    with pytest.raises(DamagedRecordError, match=r"1 recorded step\(s\) of 'latents' have no stored chunk"):
        load_record(copy)


def test_streamed_store_has_checksums_and_stores_nan_steps(streamed_every2, tmp_path):
    import shutil

    import zarr

    path, _, _ = streamed_every2
    group = zarr.open_group(path, mode="r")
    assert all(type(c).__name__ == "Crc32cCodec" for _, a in group.arrays() for c in a.compressors)
    assert group["latents"].nchunks_initialized == 3  # steps 0, 2, 4: one chunk each, no rows for 1 and 3
    copy = tmp_path / "flipped.zarr"
    shutil.copytree(path, copy)
    chunk = sorted(p for p in (copy / "latents" / "c").rglob("*") if p.is_file())[0]
    raw = bytearray(chunk.read_bytes())
    raw[8] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    with pytest.raises(DamagedRecordError, match="flipped.zarr"):
        load_record(copy)


def test_a_closed_streamed_store_is_sealed_and_a_changed_setting_is_damage(streamed_every2, tmp_path):
    """A probe's store gets its metadata digests when the block closes: a flipped bit in a recorded setting or in an
    array's description is refused as in a saved record, instead of loading as a different setting."""
    import json
    import shutil

    path, probe, in_memory = streamed_every2
    doc = json.loads((path / "zarr.json").read_text())
    assert "freeinit_lab_metadata_sha256" in doc["attributes"] and doc["attributes"]["complete"] == 1
    assert "freeinit_lab_metadata_sha256" not in probe.to_xarray().attrs  # internal, as in load_record
    xr.testing.assert_identical(probe.to_xarray(), load_record(path))
    copy = tmp_path / "flipped.zarr"
    shutil.copytree(path, copy)
    _flip_bit(copy / "zarr.json", b'"mode": "full"', len(b'"mode": "'), 0x20)  # "full" -> "Full"
    with pytest.raises(DamagedRecordError, match="root attribute 'mode' changed"):
        load_record(copy)
    with pytest.raises(DamagedRecordError, match="root attribute 'mode' changed"):
        load_record(copy, lazy=True)
    shutil.rmtree(copy)
    shutil.copytree(path, copy)
    _flip_bit(copy / "timestep" / "zarr.json", b'"float64"', len(b'"float'), 0x02)  # float64 -> float44
    with pytest.raises(DamagedRecordError, match=r"array metadata \(zarr.json\) of 'timestep' changed"):
        load_record(copy)
    shutil.rmtree(copy)
    shutil.copytree(path, copy)
    mark_complete(copy, complete=False)  # a change made by the library renews the digests in the same write
    with pytest.warns(IncompleteRecordWarning):
        assert load_record(copy).attrs["complete"] == 0


def test_a_streamed_store_marked_complete_without_its_digests_is_damaged(streamed_every2, tmp_path):
    """Once a store says it finished, its digests must be there; a store streamed before digests (no
    freeinit_lab_stream attribute) and a capture still open (complete = 0) load unchecked."""
    import json
    import shutil

    path, _, in_memory = streamed_every2
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    doc = json.loads((copy / "zarr.json").read_text())
    del doc["attributes"]["freeinit_lab_metadata_sha256"]
    (copy / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(DamagedRecordError, match=r"says its capture finished \(complete = 1\) but has no metadata"):
        load_record(copy)
    del doc["attributes"]["freeinit_lab_stream"]  # as streamed by an earlier version
    (copy / "zarr.json").write_text(json.dumps(doc))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xr.testing.assert_equal(load_record(copy), in_memory)


def test_streamed_ragged_passes_with_every_k_match_the_in_memory_record(tmp_path):
    from freeinit_lab.probes.probe import LatentProbe
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    kw = TINY_CALL_KWARGS["AnimateDiffPipeline"]
    records = []
    for store in (tmp_path / "ragged.zarr", None):
        with LatentProbe(pipe, capture="latents", every=3, store=store) as probe:
            for n in (7, 5):  # kept steps 0, 3, 6 then 0, 3, 4: step 4 arrives after step 6
                pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent",
                     num_inference_steps=n, **{k: v for k, v in kw.items() if k != "num_inference_steps"})
        records.append(probe.to_xarray())
    raw = xr.open_zarr(tmp_path / "ragged.zarr", consolidated=False, chunks=None)
    assert sorted(raw.step.values.tolist()) == [0, 3, 4, 6]
    assert np.isfinite(raw.timestep.values).sum() == 6
    assert records[0].step.values.tolist() == [0, 3, 4, 6]
    xr.testing.assert_identical(records[0].load(), records[1])
    xr.testing.assert_identical(load_record(tmp_path / "ragged.zarr"), records[1])


@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_streamed_band_power_store_closes_complete_and_matches_the_in_memory_record(tmp_path, suffix):
    from freeinit_lab.probes.probe import LatentProbe
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 2}
    path = tmp_path / "bands.zarr"
    records = []
    for store in (path, None):
        with LatentProbe(pipe, capture="latents", mode="band_power", store=store) as probe:
            pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
        records.append(probe.to_xarray().load())
    streamed, in_memory = records
    assert streamed.latents.dims[-1] == "band" and streamed.band_lo.dims == ("band",)
    back = load_record(path)
    assert back.attrs["complete"] == 1 and back.attrs == in_memory.attrs
    for ds in (back, streamed):
        xr.testing.assert_identical(ds, in_memory)
        assert ds.latents.attrs["long_name"] == in_memory.latents.attrs["long_name"]  # "band power of ..."
        assert ds.latents.attrs["units"] == in_memory.latents.attrs["units"]
        assert ds.band_lo.attrs == in_memory.band_lo.attrs
    copy = tmp_path / f"copy.{suffix}"  # and the record saves and loads in either format
    save_record(back, copy)
    xr.testing.assert_identical(load_record(copy), back.assign_attrs(num_steps_stored=2))


def test_streamed_every_k_store_opens_without_nan_rows_in_plain_xarray(streamed_every2):
    path, _, in_memory = streamed_every2
    raw = xr.open_zarr(path, consolidated=False, chunks=None)
    assert np.isfinite(raw["timestep"].values).all()
    assert raw.step.values.tolist() == [0, 2, 4]
    np.testing.assert_array_equal(raw.latents.values, in_memory.latents.values)


@pytest.mark.parametrize("store", [True, False], ids=["streamed", "in-memory"])
def test_interrupted_capture_is_marked_incomplete(tmp_path, store):
    from freeinit_lab.probes.probe import LatentProbe
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 3}

    def stop(pipe, i, t, kwargs):
        if i == 1:
            raise KeyboardInterrupt
        return kwargs

    path = tmp_path / "stopped.zarr"
    with pytest.raises(KeyboardInterrupt):
        with LatentProbe(pipe, capture="latents", store=path if store else None) as probe:
            pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent",
                 callback_on_step_end=stop, **kw)
    assert not probe.complete
    if not store:
        save_record(probe.to_xarray(), path)
    with pytest.warns(IncompleteRecordWarning, match=r"complete = 0, 1 steps stored"):
        back = load_record(path)
    assert back.attrs["complete"] == 0 and back.attrs["num_steps_stored"] == 1
    assert back.step.values.tolist() == [0] and np.isfinite(back.latents.values).all()


_KILLED_CAPTURE = """
import os, sys, torch
from freeinit_lab.probes.probe import LatentProbe
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline
pipe = tiny_animatediff_pipeline(seed=0)
kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 4}
calls = [0]
def die(pipe, i, t, kwargs):
    if calls[0] == int(sys.argv[2]) and i == 2:
        os._exit(9)  # killed: no finally, no exit handler runs
    return kwargs
with LatentProbe(pipe, capture="latents", store=sys.argv[1]):
    for seed in range(3):
        pipe("a cat", generator=torch.Generator().manual_seed(seed), output_type="latent", callback_on_step_end=die, **kw)
        calls[0] += 1
"""


@pytest.mark.parametrize("killed_in_call", [0, 1])
def test_a_capture_killed_mid_call_leaves_a_readable_store_marked_incomplete(tmp_path, killed_in_call):
    import subprocess
    import sys

    path = tmp_path / "killed.zarr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_CAPTURE, str(path), str(killed_in_call)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    with pytest.warns(IncompleteRecordWarning, match="incomplete"):
        back = load_record(path)
    assert back.attrs["complete"] == 0
    assert back.sizes["iteration"] == killed_in_call + 1
    stored = np.isfinite(back.timestep.values)
    assert stored.sum() == 4 * killed_in_call + 2  # every step written before the kill is there
    assert np.isfinite(back.latents.values[stored]).all()


_KILLED_BEFORE_FIRST_SYNC = """
import os, signal, sys, torch, zarr
from freeinit_lab.probes.probe import LatentProbe
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline
def kill():
    os.kill(os.getpid(), signal.SIGKILL)  # no finally, no exit handler, no flush runs
if sys.argv[2] == "created":  # right after the store is created, before any array exists
    open_group = zarr.open_group
    def _open_group(*args, **kwargs):
        open_group(*args, **kwargs)
        kill()
    zarr.open_group = _open_group
else:  # right after the data array grew for step n: n steps stored, the other arrays not grown yet
    resize = zarr.Array.resize
    def _resize(self, shape):
        resize(self, shape)
        if self.basename == "latents" and shape[1] == int(sys.argv[2]) + 1:
            kill()
    zarr.Array.resize = _resize
pipe = tiny_animatediff_pipeline(seed=0)
kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 4}
with LatentProbe(pipe, capture="latents", store=sys.argv[1]):
    pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
"""


@pytest.mark.parametrize("moment, stored", [("created", 0), ("0", 0), ("2", 2)])
def test_a_capture_killed_before_its_first_sync_says_what_it_left(tmp_path, moment, stored):
    """SIGKILL during the first pipeline call, before the probe's first sync: the store is recognisably an unfinished
    capture of ours from its first write. With no step stored, loading says there is no record and how to go on,
    and a new capture there is refused naming the same way out; steps stored while the arrays were being grown
    (some arrays a row longer than others) load as stored. save_record(overwrite=True) may replace the leftover."""
    import signal
    import subprocess
    import sys

    from freeinit_lab.probes.probe import LatentProbe
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline

    path = tmp_path / "killed.zarr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_BEFORE_FIRST_SYNC, str(path), moment], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pipe = tiny_animatediff_pipeline(seed=0)
    rmtree = re.escape(f"shutil.rmtree({str(path)!r})")
    if stored == 0:
        with pytest.raises(EmptyRecordError, match=rf"(?s)killed\.zarr.*no record.*before it stored its first step.*"
                                                   rf"{rmtree}"):
            load_record(path)
        with pytest.raises(FileExistsError, match=rf"(?s)never writes over.*no record.*{rmtree}"):
            LatentProbe(pipe, capture="latents", store=path)
    else:
        with pytest.warns(IncompleteRecordWarning, match=f"complete = 0, {stored} steps stored"):
            back = load_record(path)
        with pytest.raises(FileExistsError, match=rf"(?s)unfinished capture .* {stored} stored step.*{rmtree}"):
            LatentProbe(pipe, capture="latents", store=path)
        with LatentProbe(pipe, capture="latents") as probe:
            pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent",
                 **{**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 4})
        assert back.attrs["complete"] == 0 and back.sizes["step"] == stored
        np.testing.assert_array_equal(back.latents.values, probe.to_xarray().latents.values[:, :stored])
    # the leftover is provably ours: an explicit overwrite replaces it
    save_record(record(7), path, overwrite=True)
    back = load_record(path)
    assert back.attrs["seed"] == 7 and back.attrs["mode"] == "full" and "complete" not in back.attrs
    np.testing.assert_array_equal(back.latents.values, record(7).latents.values)


def test_finished_capture_is_marked_complete(tmp_path):
    import json

    from freeinit_lab.probes.probe import LatentProbe
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 3}
    path = tmp_path / "done.zarr"
    with LatentProbe(pipe, capture="latents", store=path) as probe:
        pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
        assert not probe.complete and probe.to_xarray().attrs["complete"] == 0  # still open
        # not sealed while open (its metadata still grows): readable, unchecked, and sealed only when it closes
        assert "freeinit_lab_metadata_sha256" not in json.loads((path / "zarr.json").read_text())["attributes"]
        with pytest.warns(IncompleteRecordWarning):
            load_record(path)
        pipe("a cat", generator=torch.Generator().manual_seed(1), output_type="latent", **kw)
    assert probe.complete
    assert "freeinit_lab_metadata_sha256" in json.loads((path / "zarr.json").read_text())["attributes"]
    for ds in (load_record(path), probe.to_xarray()):
        assert ds.attrs["complete"] == 1 and ds.attrs["num_steps_stored"] == 6 and ds.sizes["iteration"] == 2
    xr.testing.assert_identical(probe.to_xarray(), load_record(path))


def test_a_caught_failure_inside_the_block_still_marks_the_record_incomplete():
    from freeinit_lab.probes.probe import LatentProbe
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 3}

    def fail(pipe, i, t, kwargs):
        raise RuntimeError("boom")

    with LatentProbe(pipe, capture="latents") as probe:
        with pytest.raises(RuntimeError):
            pipe("a cat", output_type="latent", callback_on_step_end=fail, **kw)
        pipe("a cat", output_type="latent", **kw)
    assert not probe.complete and probe.to_xarray().attrs["complete"] == 0


def test_record_marker_is_internal(tmp_path):
    save_record(record(), tmp_path / "run.nc")
    back = load_record(tmp_path / "run.nc")
    assert RECORD_MARKER not in back.attrs and "freeinit_lab_variables" not in back.attrs
    assert _only_our_attrs(back) == record().attrs
