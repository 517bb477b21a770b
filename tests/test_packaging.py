"""Packaging: ranges in pyproject, exact versions in constraints.txt, environment.yml generated, data in the wheel."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

_spec = importlib.util.spec_from_file_location("sync_environment", ROOT / "scripts" / "sync_environment.py")
sync_environment = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_environment)


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_environment_yml_is_generated_from_pyproject():
    assert (ROOT / "environment.yml").read_text() == sync_environment.render(PYPROJECT), (
        "environment.yml is out of date: run python scripts/sync_environment.py")


def test_dependencies_are_ranges_not_pins():
    for req in map(Requirement, sync_environment.requirements(PYPROJECT)):
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{req}: use a range; pins go to constraints.txt"


def test_constraints_pin_every_requirement_within_its_range():
    pins = _pins()
    for req in map(Requirement, sync_environment.requirements(PYPROJECT)):
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        assert key in pins, f"constraints.txt has no pin for {req.name}"
        assert req.specifier.contains(pins[key], prereleases=True), f"{req.name}=={pins[key]} is outside {req}"


def test_license_is_an_spdx_expression():
    """A license table makes every setuptools build print a deprecation that turns into an error on 2027-02-18."""
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools.specifier.contains("77") and not setuptools.specifier.contains("76.1"), (
        "setuptools reads a string license from 77 on")


def test_makefile_installs_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert '-c constraints.txt -e ".[dev]"' in makefile


def _source_tree(tmp_path, *skip: str):
    """A copy of what a build reads (project files, the package, data/) in ``tmp_path / "src"``, without ``skip``."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "constraints.txt", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for name in ("freeinit_lab", "data"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "_data", *skip))
    return src


def test_sdist_leaves_out_what_the_wheel_leaves_out(tmp_path):
    """A model in training (``data/candidate_model``, which setup.py keeps out of the wheel) stays out of the sdist."""
    import tarfile

    src = _source_tree(tmp_path, "candidate_model")
    weights = src / "data" / "candidate_model" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"in training")
    code = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dist")], cwd=src, capture_output=True,
                         text=True, env={**os.environ, "PIP_NO_INDEX": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    with tarfile.open(tmp_path / "dist" / out.stdout.strip().splitlines()[-1]) as sdist:
        names = [n.split("/", 1)[1] for n in sdist.getnames() if "/" in n]
    assert "data/default_model/unet/diffusion_pytorch_model.safetensors" in names
    assert "setup.py" in names and "pyproject.toml" in names and "MANIFEST.in" in names
    assert "LICENSE" in names, "the sdist lacks the licence text Apache-2.0 requires to ship"
    assert not [n for n in names if n.startswith("data/candidate_model")], "the sdist carries the model in training"


def test_sdist_is_the_whole_source(tmp_path):
    """The sdist carries every tracked file but CI's and git's own: it carried the top-level tests only (no
    conftest.py, none of tests/<layer>/) and no scripts/ or notebooks/, which those tests read, so tests run from
    an unpacked sdist failed or were not there."""
    import tarfile

    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0 or not listed.stdout.strip():
        pytest.skip("not a git checkout: the tracked files are unknown")
    tracked = [n for n in listed.stdout.splitlines() if (ROOT / n).is_file()]
    src = tmp_path / "src"
    for name in tracked:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, src / name)
    code = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dist")], cwd=src, capture_output=True,
                         text=True, env={**os.environ, "PIP_NO_INDEX": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    with tarfile.open(tmp_path / "dist" / out.stdout.strip().splitlines()[-1]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    expected = {n for n in tracked if not n.startswith((".ci/", ".git", "data/candidate_model/"))}
    assert not expected - names, f"the sdist lacks {sorted(expected - names)[:10]}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.slow
def test_wheel_carries_the_embedded_default(tmp_path):
    """``pip install .`` (not editable) then ``load_default_pipeline()`` works offline outside the checkout."""
    src = _source_tree(tmp_path)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, env=env, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("freeinit_lab-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in zf.namelist()), "the wheel lacks the licence"
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, env=env)
    assert (site / "freeinit_lab" / "embedded" / "_data" / "default_model" / "model_index.json").is_file()

    code = (
        "import freeinit_lab as fl, torch\n"
        "print(fl.__file__)\n"
        "print(fl.embedded.paths.DATA_DIR)\n"
        "pipe = fl.load_default_pipeline()\n"
        "out = pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type='latent')\n"
        "print(type(pipe).__name__, tuple(out.frames.shape))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    file, data_dir, summary = run.stdout.strip().splitlines()[-3:]
    assert file.startswith(str(site)), f"imported {file}, not the wheel's copy"
    assert data_dir.startswith(str(site)), data_dir
    assert summary.startswith("TinyVideoPipeline"), summary


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_extras_named_in_the_package_exist():
    """Every ``pip install 'freeinit_lab[X]'`` the package prints names a real extra."""
    from freeinit_lab._extras import EXTRAS

    extras = PYPROJECT["project"]["optional-dependencies"]
    named = {m for p in (ROOT / "freeinit_lab").rglob("*.py") for m in re.findall(r"freeinit_lab\[(\w+)\]",
                                                                                    p.read_text())}
    named |= set(EXTRAS.values())
    assert named <= set(extras), f"messages name extras that pyproject.toml lacks: {sorted(named - set(extras))}"


#: Imported by the package without being declared: each comes with a declared requirement or is optional.
UNDECLARED_IMPORTS = {"cloudpickle": "optional: falls back to pickle (and comes with distributed)"}


def test_every_imported_library_is_declared():
    """Each third-party module the package imports is installed by its dependencies or one of its extras."""
    import ast
    from importlib.metadata import packages_distributions

    imported: dict[str, str] = {}
    for path in sorted((ROOT / "freeinit_lab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                imported.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    declared = {_norm(Requirement(r).name) for r in sync_environment.requirements(PYPROJECT)}
    provides = packages_distributions()
    missing = {
        module: where for module, where in imported.items()
        if module not in sys.stdlib_module_names and module != "freeinit_lab" and module not in UNDECLARED_IMPORTS
        and not {_norm(d) for d in provides.get(module, [])} & declared
    }
    assert not missing, f"imported but not declared in pyproject.toml (module: first importer): {missing}"
