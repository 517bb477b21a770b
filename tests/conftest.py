import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def pytest_collection_modifyitems(config, items):
    """Give notebook cells (collected by nbval from notebooks/) the ``notebooks`` marker, so ``-m`` selects tiers."""
    import pytest

    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)


#: Variables that change how a process started later computes (thread pools, allocator, hashing, devices,
#: offline mode): no test may leave them changed. (Libraries set others once on import, e.g. HDF5_PLUGIN_PATH.)
_GUARDED = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "MALLOC_", "PYTHONHASHSEED", "CUDA_", "TORCH_", "HF_",
            "TRANSFORMERS_", "DIFFUSERS_")


def _guarded_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_GUARDED)}


@pytest.fixture(autouse=True)
def _environment_left_as_found():
    """No test leaves the thread, allocator, hashing, device or offline variables of this process changed
    (``monkeypatch`` restores its own before this check).

    The notebooks run under nbval in kernels this process starts *after* the tests, and they inherit its
    environment: a leaked ``OMP_NUM_THREADS=1`` (a dask nanny's, dask/distributed#6749) once ran every notebook's
    torch on one thread, about twice as slow.
    """
    before = _guarded_environ()
    yield
    after = _guarded_environ()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, (f"the test left os.environ changed: {[(k, before.get(k), after.get(k)) for k in changed]} "
                         "(set variables with pytest's monkeypatch, which restores them)")
