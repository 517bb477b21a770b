import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def pytest_collection_modifyitems(config, items):
    """Give notebook cells (collected by nbval from notebooks/) the ``notebooks`` marker, so ``-m`` selects tiers."""
    import pytest

    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)
