"""What a sweep is: a study, a grid of settings, seeds and a pipeline, checked before anything is sampled.

A :class:`SweepSpec` is plain data (it round-trips through YAML and JSON) plus, in Python, optionally a pipeline
factory. Its :meth:`SweepSpec.spec_hash` names the sweep in the store, so a store written for one spec is never
completed with cells of another.

The cells of a sweep are the product of the grid values (in the order the grid lists its keys) and the seeds; a
cell runs the study on ``videos_per_seed`` videos. Video ``v`` of seed ``s`` draws its random numbers from
``torch.Generator().manual_seed(s * videos_per_seed + v)`` (:func:`video_seeds`), so seeds ``0 .. S-1`` tile the
same videos as one run of ``S * videos_per_seed`` videos from seed 0, and a cell's numbers depend on its settings
and seed only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import itertools
import json
import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from freeinit_lab._checks import MAX_SEED, require_int
from freeinit_lab._extras import require

__all__ = [
    "SweepSpec",
    "SweepSpecError",
    "PipelineFactory",
    "Cell",
    "video_seeds",
    "folder_fingerprint",
    "scheduler_config",
    "SPEC_VERSION",
]

#: bump when the meaning of a spec or the store layout changes (part of the hash)
SPEC_VERSION = 1

_SCALAR = (bool, int, float, str, np.integer, np.floating, np.bool_)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_RESERVED = ("seed", "video", "complete", "cell_seconds")
_ENGINE_ARGS = ("seed", "num_videos")  # what the sweep passes every study call itself
_INT64 = np.iinfo(np.int64)  # the store's integer labels (grid values and seeds)


class SweepSpecError(ValueError):
    """A sweep spec that cannot run: the message says what is wrong and how to fix it."""


def video_seeds(seed: int, num_videos: int) -> list[int]:
    """Generator seeds of the ``num_videos`` videos of sweep seed ``seed``: ``seed * num_videos + v``.

    >>> video_seeds(0, 3), video_seeds(1, 3)
    ([0, 1, 2], [3, 4, 5])
    """
    return [int(seed) * int(num_videos) + v for v in range(int(num_videos))]


# ----------------------------------------------------------------------------------------------------------------
# pipelines
# ----------------------------------------------------------------------------------------------------------------
def _folder_pipeline(path: str):
    import freeinit_lab as fl

    index = json.loads((Path(path) / "model_index.json").read_text())
    if index.get("_class_name") == "TinyVideoPipeline":
        return fl.load_default_pipeline(path)
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(path, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _hub_pipeline(repo_id: str, **kwargs: Any):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(repo_id, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _import_attr(path: str) -> Callable:
    module, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise SweepSpecError(f"pipeline factory {path!r} cannot be imported ({err}); write it as "
                             "'package.module:function' with the module importable on every worker") from None
    if not callable(obj):
        raise SweepSpecError(f"pipeline factory {path!r} is not callable")
    return obj


#: files of a pipeline folder that describe it without deciding what it computes (a model card, its figures,
#: the training log): rewriting them does not make a store or a precomputed map stale
DOCUMENTATION_SUFFIXES = (".md", ".txt", ".rst", ".html", ".png", ".jpg", ".jpeg", ".gif", ".svg")
DOCUMENTATION_NAMES = ("model_card.json", "training_log.json", ".gitattributes")


def _is_documentation(relpath: Path) -> bool:
    return relpath.suffix.lower() in DOCUMENTATION_SUFFIXES or relpath.name in DOCUMENTATION_NAMES


def folder_fingerprint(path: str | os.PathLike, *, sample: int = 1 << 20) -> str:
    """Short hash of a pipeline folder's files: names, sizes, and the first and last ``sample`` bytes of each.

    Cheap even for gigabyte weights, and it changes when a model is retrained or replaced, so a store made with
    other weights is not resumed with these. Documentation (:data:`DOCUMENTATION_SUFFIXES`,
    :data:`DOCUMENTATION_NAMES`: a model card, sample figures, the training log) is left out, so refreshing a
    model card keeps the stores and maps made with the same weights.
    """
    root = Path(path).resolve()
    files = tuple((f.relative_to(root).as_posix(), f.stat().st_size, f.stat().st_mtime_ns)
                  for f in sorted(p for p in root.rglob("*") if p.is_file())
                  if not _is_documentation(f.relative_to(root)))
    return _fingerprint_files(root, files, sample)


@functools.lru_cache(maxsize=32)
def _fingerprint_files(root: Path, files: tuple[tuple[str, int, int], ...], sample: int) -> str:
    """:func:`folder_fingerprint`'s hashing, cached while no file's size or modification time changes."""
    h = hashlib.sha256()
    for name, size, _ in files:
        h.update(f"{name}:{size};".encode())
        with open(root / name, "rb") as fh:
            h.update(fh.read(sample))
            if size > 2 * sample:
                fh.seek(-sample, os.SEEK_END)
                h.update(fh.read(sample))
    return h.hexdigest()[:12]


def _default_model_dir() -> Path:
    import freeinit_lab as fl

    folder = getattr(fl, "DEFAULT_MODEL_DIR", None)
    if folder is None:
        from freeinit_lab import pipelines

        folder = pipelines.DEFAULT_MODEL_DIR
    return Path(folder)


_KEY_DEPTH = 4  # functions a factory closes over are keyed by their code this many references deep


def _value_key(value: Any, depth: int = 0, data_only: bool = False) -> str:
    """A text that changes whenever ``value`` could make a factory build another pipeline, the same in every process.

    Plain values by ``repr``, containers element by element, arrays and tensors by their bytes, modules and
    classes by name, functions by their code (:func:`_callable_name`), loaded pipelines by their weights and
    scheduler, torch modules by their weights. Any other object is keyed by its identity in this process: a store
    made with it is never completed by another process's cells (it needs a fresh store then), rather than by cells
    of another object. With ``data_only`` (a function's globals) only data, pipelines and modules are keyed by
    value; other modules, functions and objects by their type's name, so a logger or cache a module holds never
    changes the key.
    """
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic, Path)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{', '.join(_value_key(v, depth, data_only) for v in value)}]"
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}[{', '.join(sorted(_value_key(v, depth, data_only) for v in value))}]"
    if isinstance(value, Mapping):
        items = sorted(f"{_value_key(k, depth, data_only)}: {_value_key(v, depth, data_only)}"
                       for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, np.ndarray) or type(value).__name__ in ("Tensor", "Parameter"):  # repr elides values
        if hasattr(value, "detach"):  # any torch dtype (bfloat16 too), by its bytes
            import torch

            raw = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        else:
            raw = np.ascontiguousarray(value).tobytes()
        return f"array {value.dtype} {list(value.shape)} {hashlib.sha256(raw).hexdigest()[:16]}"
    if type(value).__module__ == "torch" and type(value).__name__ in ("dtype", "device"):
        return repr(value)
    if isinstance(value, type):
        return f"class {_qualified(value)}"
    if _is_pipeline(value):  # a loaded pipeline a factory reads (a global too): its weights, as for a pipeline entry
        return f"pipeline {type(value).__name__} {_fingerprint(value)}"
    if callable(getattr(value, "state_dict", None)) and callable(getattr(value, "named_parameters", None)):
        digest = hashlib.sha256("|".join(f"{k}={_value_key(t)}" for k, t in value.state_dict().items()).encode())
        return f"module {type(value).__name__} {digest.hexdigest()[:16]}"  # a torch module: its weights
    if data_only:
        return f"<{type(value).__name__}>"
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if callable(value) and depth < _KEY_DEPTH:
        return _callable_name(value, depth + 1)
    return f"{type(value).__module__}.{type(value).__qualname__} id{id(value):x}"


def _qualified(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def _code_key(code: types.CodeType) -> str:
    """The bytecode, names and constants of ``code`` (nested functions' code recursively, never an address)."""
    consts = [_code_key(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    text = "|".join([code.co_code.hex(), ",".join(code.co_names), ",".join(code.co_varnames), *consts])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _callable_name(fn: Any, depth: int = 0) -> str:
    """A Python callable's key, so that two callables that could build different pipelines never share one.

    A function: its qualified name with a digest of its code, defaults, the values it closes over and the data
    (not objects) among the globals it reads, so two lambdas of one module, or the ``make(4)`` and ``make(8)``
    closures of one ``make``, are two pipelines. A ``functools.partial``: its function and arguments. A bound
    method: its object and function. A callable object: its class and attributes.
    """
    if isinstance(fn, functools.partial):
        args = ", ".join([_value_key(a, depth) for a in fn.args]
                         + [f"{k}={_value_key(v, depth)}" for k, v in sorted(fn.keywords.items())])
        return f"partial({_callable_name(fn.func, depth)}, {args})"
    if isinstance(fn, types.MethodType):
        return f"method {_callable_name(fn.__func__, depth)} of {_value_key(fn.__self__, depth)}"
    name = _qualified(fn)
    if isinstance(fn, types.FunctionType):
        try:
            free = inspect.getclosurevars(fn)
            nonlocals, globals_ = free.nonlocals, free.globals
        except (TypeError, ValueError):  # a closure cell not yet filled: key by the code and defaults
            nonlocals, globals_ = {}, {}
        parts = [
            _code_key(fn.__code__),
            _value_key(fn.__defaults__, depth),
            _value_key(fn.__kwdefaults__, depth),
            _value_key({k: v for k, v in nonlocals.items() if v is not fn}, depth),
            _value_key(globals_, depth, data_only=True),
        ]
        return f"{name} code {hashlib.sha256('|'.join(parts).encode()).hexdigest()[:16]}"
    if isinstance(fn, (type, types.BuiltinFunctionType)) or hasattr(fn, "__wrapped__") and hasattr(fn, "cache_info"):
        return name  # a class, a builtin, an lru_cache'd function: by name
    state = getattr(fn, "__dict__", None)  # a callable object: its settings decide what it builds
    return f"{name} state {_value_key(state, depth) if state is not None else f'id{id(fn):x}'}"


@dataclass(frozen=True)
class PipelineFactory:
    """A picklable recipe for the sweep's pipeline; workers build it once and keep it (keyed by :attr:`key`).

    Built by :meth:`from_spec` from a spec's ``pipeline`` entry:

    - ``"default"``: :func:`freeinit_lab.load_default_pipeline`;
    - ``"analytic"`` or ``{"name": "analytic", "num_frames": 4, "height": 8}``:
      :func:`freeinit_lab.load_analytic_pipeline` with those arguments;
    - a folder with ``model_index.json`` (``save_pretrained`` layout), loaded offline;
    - a hub id ``"org/name"`` (``DiffusionPipeline.from_pretrained``; honours ``HF_HUB_OFFLINE``);
    - ``"package.module:function"`` or ``{"factory": "package.module:function", "kwargs": {...}}``;
    - in Python, any callable returning a pipeline (it must pickle to reach worker processes).
    """

    key: str
    fn: Callable[..., Any]
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self):
        return self.fn(**dict(self.kwargs))

    @classmethod
    def from_spec(cls, entry: Any) -> PipelineFactory:
        if isinstance(entry, PipelineFactory):
            return entry
        if _is_pipeline(entry):
            return cls(key=f"object {type(entry).__name__} {_fingerprint(entry)}", fn=GivenPipeline(entry))
        if callable(entry):
            return cls(key=f"callable {_callable_name(entry)}", fn=entry)
        if isinstance(entry, Mapping):
            entry = dict(entry)
            if "factory" in entry:
                target = entry.pop("factory")
                kwargs = entry.pop("kwargs", {}) or {}
                if entry:
                    raise SweepSpecError(f"pipeline entry has unknown keys {sorted(entry)}; use factory and kwargs")
                if not isinstance(kwargs, Mapping):
                    raise SweepSpecError(f"pipeline kwargs {kwargs!r} must be a mapping of the factory's arguments, "
                                         "e.g. kwargs: {num_frames: 8}")
                if not isinstance(target, str) and not callable(target):
                    raise SweepSpecError(f"pipeline factory {target!r} is neither 'package.module:function' nor a "
                                         "callable that builds the pipeline")
                fn = _import_attr(target) if isinstance(target, str) else target
                name = target if isinstance(target, str) else _callable_name(target)
                return cls(key=f"factory {name} {_canonical(kwargs)}", fn=fn, kwargs=tuple(sorted(kwargs.items())))
            name = entry.pop("name", None)
            if name not in ("default", "analytic"):
                raise SweepSpecError(
                    f"pipeline entry {entry!r}: a mapping needs name: default | analytic (with their arguments) or "
                    "factory: 'package.module:function' with kwargs"
                )
            return cls._named(name, entry)
        if isinstance(entry, (str, os.PathLike)):
            text = os.fspath(entry)
            if text in ("default", "analytic"):
                return cls._named(text, {})
            if os.path.isdir(text):
                if not os.path.exists(os.path.join(text, "model_index.json")):
                    raise SweepSpecError(f"pipeline folder {text!r} has no model_index.json (save_pretrained layout)")
                path = os.path.abspath(text)
                return cls(key=f"folder {path} files {folder_fingerprint(path)}", fn=_folder_pipeline,
                           kwargs=(("path", path),))
            if ":" in text and not text.startswith(("/", ".")):
                return cls(key=f"factory {text} {{}}", fn=_import_attr(text))
            if _HUB_ID.match(text):
                return cls(key=f"hub {text}", fn=_hub_pipeline, kwargs=(("repo_id", text),))
        raise SweepSpecError(
            f"pipeline {entry!r} is not one of: 'default', 'analytic', a folder with model_index.json, a hub id "
            "'org/name', 'package.module:function', or (in Python) a callable that builds the pipeline"
        )

    @classmethod
    def _named(cls, name: str, kwargs: Mapping[str, Any]) -> PipelineFactory:
        import freeinit_lab as fl

        fn = fl.load_default_pipeline if name == "default" else fl.load_analytic_pipeline
        key = f"{name} {_canonical(dict(kwargs))}"
        if name == "default":  # the embedded weights can be retrained or replaced: name them by their files
            key += f" files {folder_fingerprint(kwargs.get('path') or _default_model_dir())}"
        return cls(key=key, fn=fn, kwargs=tuple(sorted(kwargs.items())))


def _is_pipeline(obj: Any) -> bool:
    from freeinit_lab.hooks.layouts import has_scheduler

    return not isinstance(obj, (str, os.PathLike, Mapping)) and (hasattr(obj, "components") or has_scheduler(obj))


def _fingerprint(pipe: Any) -> str:
    """A loaded pipeline's denoiser weights and its sampler (:func:`scheduler_config` and
    :func:`sampling_defaults`): what its samples depend on."""
    from freeinit_lab import cutoff_map

    try:
        weights = cutoff_map.model_fingerprint(pipe)
        sampler = hashlib.sha256(scheduler_config(pipe).encode()).hexdigest()[:12]
    except Exception:  # a pipeline without a registered layout: fall back to its identity
        return f"id{id(pipe):x}"
    return f"{weights} scheduler {sampler}{sampling_defaults(pipe)}"


#: A pipeline's own sampling defaults beside its scheduler (the embedded pipeline's ``sampler.json`` values), with
#: the value at which each changes nothing.
_NEUTRAL_DEFAULTS = {"default_eta": 0.0, "default_eps_scale": 1.0, "default_guidance_scale": 1.0,
                     "default_guidance_interval": None}


def _default_value(value: Any) -> Any:
    """A sampling default as JSON-friendly numbers: a float, a list of floats (an interval), else ``None``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in value):
        return [float(v) for v in value]
    return None


def sampling_defaults(pipe: Any) -> str:
    """The sampling defaults ``pipe`` applies when a call does not say otherwise and that differ from their neutral
    value (DDIM η, ε-scaling λ, autoguidance w and its timestep interval: :data:`_NEUTRAL_DEFAULTS`), as text
    (``""`` when none does, so pipelines without them keep their keys). The same weights and scheduler with another
    of them sample other videos."""
    values = {k: _default_value(getattr(pipe, k, None)) for k in _NEUTRAL_DEFAULTS}
    changed = {k: v for k, v in values.items() if v is not None and v != _NEUTRAL_DEFAULTS[k]}
    return f" defaults {json.dumps(changed, sort_keys=True)}" if changed else ""


def scheduler_config(pipe: Any) -> str:
    """``pipe``'s scheduler as text: its class and configuration (diffusers' private ``_`` entries aside)."""
    from freeinit_lab.hooks.layouts import get_scheduler

    scheduler = get_scheduler(pipe)
    config = {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    return f"{type(scheduler).__name__} {json.dumps(config, default=str, sort_keys=True)}"


class GivenPipeline:
    """A pipeline object handed to an in-process sweep (workers need a factory instead)."""

    def __init__(self, pipe: Any):
        self.pipe = pipe

    def __call__(self):
        return self.pipe

    def __reduce__(self):
        raise TypeError(f"a {type(self.pipe).__name__} object is a loaded pipeline, not a recipe to build one")


# ----------------------------------------------------------------------------------------------------------------
# the spec
# ----------------------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A JSON- and YAML-friendly copy of a settings value (numpy scalars to Python)."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _canonical(obj: Any) -> str:
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), default=repr)


@dataclass(frozen=True)
class Cell:
    """One cell: its position in the store (``index`` over the grid keys then ``seed``), settings and seed."""

    index: tuple[int, ...]
    settings: dict[str, Any]
    seed: int

    @property
    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.settings.items()] + [f"seed={self.seed}"]
        return ", ".join(parts)


@dataclass
class SweepSpec:
    """A sweep: ``study`` measured on every combination of ``grid`` values and ``seeds``.

    Parameters
    ----------
    study
        Name of a registered study (:func:`freeinit_lab.sweep.list_studies`).
    grid
        ``{setting: [values, ...]}``: each key becomes a store dimension with the values as its coordinate
        (numbers but NaN, strings or booleans, no repeats). Keys are the study's parameters (FreeInit or strategy
        settings, sampler settings, ``prompt``, ...).
    seeds
        Sweep seeds, one batch of ``videos_per_seed`` videos each (see :func:`video_seeds`); in YAML also
        ``{start: 0, stop: 8}`` for ``range(0, 8)``.
    videos_per_seed
        Videos per cell.
    pipeline
        See :class:`PipelineFactory`; ``"default"`` by default.
    sampler
        Fixed sampler settings passed to every cell, e.g. ``{"num_inference_steps": 10}``.
    options
        Fixed study settings passed to every cell (like ``sampler``; kept apart for readability).
    """

    study: str
    grid: dict[str, list[Any]]
    seeds: list[int] = field(default_factory=lambda: [0])
    videos_per_seed: int = 1
    pipeline: Any = "default"
    sampler: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepSpec:
        if not isinstance(data, Mapping):
            raise SweepSpecError(f"a sweep spec is a mapping (YAML dict), got {type(data).__name__}")
        known = {"study", "grid", "seeds", "videos_per_seed", "pipeline", "sampler", "options"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SweepSpecError(f"unknown spec keys {unknown}; a spec has {sorted(known)}")
        if "study" not in data or "grid" not in data:
            raise SweepSpecError("a sweep spec needs at least `study:` and `grid:`")
        kwargs = dict(data)
        seeds = kwargs.get("seeds", [0])
        if isinstance(seeds, Mapping) and set(seeds) <= {"start", "stop"}:  # seeds: {start: 0, stop: 8}
            if "stop" not in seeds:
                raise SweepSpecError(f"seeds = {dict(seeds)!r} needs stop (the seeds are start .. stop - 1), e.g. "
                                     "seeds: {start: 0, stop: 8}")
            seeds = list(range(require_int("seeds: start", seeds.get("start", 0), low=0, error=SweepSpecError),
                               require_int("seeds: stop", seeds["stop"], low=0, error=SweepSpecError)))
        kwargs["seeds"] = seeds
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> SweepSpec:
        yaml = require("yaml", "reading a YAML spec")
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no sweep spec at {path}")
        if path.is_dir():
            raise SweepSpecError(f"{path} is a directory; give the path of the YAML spec file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise SweepSpecError(f"{path} is not valid YAML: {err}") from None
        return cls.from_dict(data or {})

    @classmethod
    def coerce(cls, spec: SweepSpec | Mapping[str, Any] | str | os.PathLike) -> SweepSpec:
        if isinstance(spec, SweepSpec):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_dict(spec)
        if isinstance(spec, (str, os.PathLike)):
            return cls.from_yaml(spec)
        raise SweepSpecError(f"expected a SweepSpec, a mapping or a YAML path, got {type(spec).__name__}")

    # --------------------------------------------------------------------------------------------- checks
    def validate(self, parameters: Sequence[str] | None = None) -> None:
        """Raise :class:`SweepSpecError` for anything that would fail or be ambiguous once sampling starts.

        ``parameters`` are the settings the study accepts (``None``: any).
        """
        if not isinstance(self.grid, Mapping):
            raise SweepSpecError(
                f"grid = {self.grid!r} is not a mapping of settings to the values to sweep; write e.g. "
                "grid: {d_s: [0.25, 0.5]}"
            )
        if not self.grid:
            raise SweepSpecError(
                f"empty grid {self.grid!r}: a sweep needs at least one setting to vary; to run one setting, give it "
                "a single value, e.g. grid: {d_s: [0.25]}"
            )
        for key, values in self.grid.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise SweepSpecError(f"grid key {key!r} must be a setting name (an identifier)")
            if key in _RESERVED:
                raise SweepSpecError(f"grid key {key!r} is reserved for the store; list seeds under `seeds:`")
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
                raise SweepSpecError(f"grid[{key!r}] = {values!r}: give a non-empty list of values, e.g. [0.25, 0.5]")
            for v in values:
                if not isinstance(v, _SCALAR):
                    raise SweepSpecError(f"grid[{key!r}] value {v!r} is not a number, string or boolean")
                if isinstance(v, (float, np.floating)) and v != v:  # a label no one can select (NaN != NaN)
                    raise SweepSpecError(f"grid[{key!r}] value nan is not a number; give the values to sweep")
                if isinstance(v, int) and not isinstance(v, bool) and not _INT64.min <= v <= _INT64.max:
                    raise SweepSpecError(f"grid[{key!r}] value {v} does not fit the store's labels (int64); give it "
                                         "as a float or a string")
            kinds = {"str" if isinstance(v, str) else "bool" if isinstance(v, (bool, np.bool_)) else "num"
                     for v in values}
            if len(kinds) > 1:
                raise SweepSpecError(f"grid[{key!r}] = {list(values)!r} mixes strings, numbers and booleans")
            if len({_plain(v) for v in values}) != len(values):  # by value: 1 and 1.0 (0.0 and -0.0) are one
                raise SweepSpecError(f"grid[{key!r}] = {list(values)!r} has repeated values; list each value once")
        for name in ("sampler", "options"):
            if not isinstance(getattr(self, name), Mapping):
                raise SweepSpecError(f"{name} must be a mapping of settings, got {getattr(self, name)!r}")
        fixed = {**self.sampler, **self.options}
        own = sorted(k for k in {*self.grid, *fixed} if k in _ENGINE_ARGS)
        if own:  # a study taking **settings would get them twice, at the first cell
            raise SweepSpecError(f"settings {own} are the sweep's own: it passes each cell its seed (from seeds:) "
                                 "and num_videos (videos_per_seed:); give them there")
        clash = sorted((set(self.sampler) & set(self.options)) | (set(self.grid) & set(fixed)))
        if clash:
            raise SweepSpecError(f"settings {clash} are given twice (grid, sampler, options); give each once")
        if parameters is not None:
            unknown = sorted(k for k in [*self.grid, *fixed] if k not in parameters)
            if unknown:
                raise SweepSpecError(
                    f"study {self.study!r} has no setting {', '.join(map(repr, unknown))}; its settings are "
                    f"{', '.join(sorted(parameters))}"
                )
        seeds = self.seeds
        if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) == 0:
            raise SweepSpecError(f"seeds = {seeds!r}: give a non-empty list of integers, e.g. [0, 1, 2]")
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
            raise SweepSpecError(f"seeds = {list(seeds)!r}: every seed must be a non-negative integer")
        if len(set(int(s) for s in seeds)) != len(seeds):
            raise SweepSpecError(f"seeds = {list(seeds)!r} has repeats; list each seed once")
        per_seed = require_int("videos_per_seed", self.videos_per_seed, error=SweepSpecError)
        top = min(_INT64.max, (MAX_SEED + 1) // per_seed - 1)
        if max(int(s) for s in seeds) > top:
            raise SweepSpecError(
                f"seeds = {list(seeds)!r}: the largest seed is {top} with videos_per_seed = {per_seed} (video v of "
                "seed s draws from generator seed s * videos_per_seed + v, at most 2**64 - 1, and the store labels "
                "seeds as int64); use smaller seeds"
            )
        PipelineFactory.from_spec(self.pipeline)

    # ------------------------------------------------------------------------------------------ derived
    @property
    def dims(self) -> tuple[str, ...]:
        """The cell dimensions of the store: the grid keys in order, then ``seed``."""
        return (*self.grid, "seed")

    @property
    def shape(self) -> tuple[int, ...]:
        return (*(len(v) for v in self.grid.values()), len(self.seeds))

    def cells(self) -> list[Cell]:
        """Every cell in store order (last dimension, ``seed``, fastest)."""
        fixed = {**self.sampler, **self.options}
        out = []
        keys = list(self.grid)
        for index in itertools.product(*(range(n) for n in self.shape)):
            values = {k: _plain(self.grid[k][i]) for k, i in zip(keys, index[:-1])}
            out.append(Cell(index=tuple(index), settings={**fixed, **values}, seed=int(self.seeds[index[-1]])))
        return out

    def pipeline_factory(self) -> PipelineFactory:
        return PipelineFactory.from_spec(self.pipeline)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain values; the pipeline as its factory key."""
        factory = self.pipeline_factory()
        pipeline = self.pipeline if isinstance(self.pipeline, (str, Mapping)) else factory.key
        return {
            "study": self.study,
            "pipeline": _plain(pipeline),
            "pipeline_key": factory.key,
            "grid": {k: _plain(list(v)) for k, v in self.grid.items()},
            "seeds": [int(s) for s in self.seeds],
            "videos_per_seed": int(self.videos_per_seed),
            "sampler": _plain(dict(self.sampler)),
            "options": _plain(dict(self.options)),
        }

    def spec_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of everything that decides the store's numbers and layout.

        Independent of the order of ``sampler``/``options`` keys; the grid's key order matters (it is the store's
        dimension order). The pipeline enters by its factory key: the default model and folders with a fingerprint
        of their files, a hub id by name (pin ``revision`` in a factory's kwargs), a Python callable by its
        qualified name with its code and the values it reads (:func:`_callable_name`), a loaded pipeline by its
        weights and scheduler.
        """
        d = self.to_dict()
        del d["pipeline"]  # its meaning is pipeline_key (what it loads, with the weights' fingerprint)
        d["grid"] = [[k, v] for k, v in d["grid"].items()]
        d["version"] = SPEC_VERSION
        return hashlib.sha256(_canonical(d).encode()).hexdigest()[:16]
