"""One check that the toolkit works on *your* pipeline before you measure anything with it.

:func:`check_pipeline` runs the pipeline a few times (one plain run under a :class:`~freeinit_lab.probes.probe.LatentProbe`,
FreeInit with one pass, FreeInit with ``num_iters`` passes under a probe) and checks what the probe and FreeInit must
do on *any* pipeline, whatever its weights:

* the probe's record has the canonical dims, one pass, one step per scheduler step and the output's shape;
* the probe only observes: its last recorded latent is the output, and the output is the one the pipeline gives
  without a probe;
* FreeInit with one pass is the pipeline's own run (same generator, same output);
* each FreeInit pass costs what one plain run of its step count costs in denoiser evaluations, and an open probe
  tags every pass;
* every later pass starts from the latent FreeInit hands the pipeline (a pipeline that ignores or rescales
  ``latents=`` would run passes other than the ones FreeInit reports);
* FreeInit's first pass is the plain run (with ``fast_sampling``: the plain run of pass 0's own, smaller step count),
  and every pass's clean latent is finite.

These are properties of the toolkit on the pipeline, not findings about the model: they hold for random weights
too, which is why they are checked here and not claimed in a notebook.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import xarray as xr

from freeinit_lab.core.dims import RECORD_DIMS
from freeinit_lab.core.reinit import FreeInitSettings
from freeinit_lab.engine.checks import plan_call
from freeinit_lab.engine.loop import freeinit
from freeinit_lab.engine.result import FreeInitResult
from freeinit_lab.hooks.layouts import get_layout, get_scheduler, require_pipeline_instance
from freeinit_lab.hooks.outputs import read_pipeline_output

__all__ = ["CheckItem", "PipelineCheck", "PipelineCheckError", "check_pipeline"]

#: what to do when a check fails, by check name
FIXES = {
    "record layout": (
        "the probe read the pipeline's latent axes wrongly: register them with "
        "fl.register_layout(type(pipe), fl.LatentLayout(dims=(...))) in the pipeline's tensor order, or pass "
        "LatentProbe(layout=...)"
    ),
    "record steps": (
        "the probe saw a different number of scheduler steps than the scheduler ran: the pipeline steps a scheduler "
        "other than the one its layout names; register a LatentLayout(scheduler='<attribute>') for it"
    ),
    "record ends at the output": (
        "the probe's last recorded latent is not what the pipeline returned: the pipeline changes its latent after "
        "the last scheduler step (or a callback does); read the output, not the record, or register a LatentLayout "
        "with final_latent='scheduler_step'"
    ),
    "probe leaves the output unchanged": (
        "the pipeline returns something else while a LatentProbe is open: do not trust its records; check that the "
        "pipeline honours callback_on_step_end's returned latents unchanged and that its scheduler's step accepts "
        "its arguments by name, and report the pipeline class"
    ),
    "FreeInit with one pass is the pipeline's run": (
        "freeinit(num_iters=1) does not reproduce pipe(...) with the same generator: the pipeline ignores or rescales "
        "latents= differently from prepare_latents (init_noise_sigma), or draws random numbers in another order; "
        "check its prepare_latents and the layout"
    ),
    "each pass costs one plain run": (
        "FreeInit counted a different number of denoiser evaluations per pass than one plain run: the denoiser is not "
        "the module the layout names (LatentLayout(denoiser=...)), or the pipeline's passes differ"
    ),
    "probe tags every pass": (
        "an open probe did not record one iteration per FreeInit pass: the pipeline restarts its scheduler in a way "
        "the probe does not see; mark passes with fl.mark_iteration or register the pipeline's layout"
    ),
    "every pass starts from FreeInit's latent": (
        "the pipeline did not start a FreeInit pass from the latents= it was given times its scheduler's "
        "init_noise_sigma (as diffusers' prepare_latents scales both drawn and given noise): it ignores latents= or "
        "scales it another way, so FreeInit's passes are not the reinitialised latents it reports; make its "
        "prepare_latents use latents= as the initial noise, or wrap the pipeline in one that does"
    ),
    "first pass is the plain run": (
        "FreeInit's first clean latent differs from the plain run's with the same generator and the same number of "
        "steps: see the fix for 'FreeInit with one pass is the pipeline's run'"
    ),
    "every pass is finite": (
        "a pass produced NaN or inf: run in float32 (DTYPE='float32'), or check the model on plain sampling first"
    ),
}


@dataclass(frozen=True)
class CheckItem:
    """One check of :func:`check_pipeline`: its name, whether it passed, what was measured, and the fix."""

    name: str
    passed: bool
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}" + (
            "" if self.passed else f"\n      fix: {self.fix}")


class PipelineCheckError(RuntimeError):
    """A check of :func:`check_pipeline` failed; ``.report`` is the :class:`PipelineCheck` with every item."""

    def __init__(self, report: "PipelineCheck") -> None:
        self.report = report
        failed = [it for it in report.items if not it.passed]
        super().__init__(
            f"{len(failed)} of {len(report.items)} checks failed on {report.pipeline}:\n"
            + "\n".join(str(it) for it in failed)
        )


@dataclass
class PipelineCheck:
    """What :func:`check_pipeline` found, and the runs it made (reuse them instead of running them again).

    Attributes
    ----------
    items
        One :class:`CheckItem` per check, in order.
    pipeline
        The pipeline's class and scheduler, for messages.
    record
        The probe record of the plain run (``xarray.Dataset``, dims :data:`~freeinit_lab.core.dims.RECORD_DIMS`).
    plain_latents
        The plain run's output latent, in the pipeline's own axis order (``output_type="latent"``).
    freeinit
        The :class:`~freeinit_lab.engine.result.FreeInitResult` of the ``num_iters``-pass run.
    freeinit_record
        The probe record of that run (captures ``"latents"`` and ``"latents_in"``).
    num_denoiser_evals
        Denoiser evaluations the check spent: one plain run, FreeInit with one pass, FreeInit's passes (and one more
        plain run where it had to tell two failures apart, and with ``fast_sampling`` one plain run of pass 0's step
        count).
    """

    items: list[CheckItem]
    pipeline: str
    record: xr.Dataset | None = None
    plain_latents: torch.Tensor | None = None
    freeinit: FreeInitResult | None = None
    freeinit_record: xr.Dataset | None = None
    num_denoiser_evals: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(it.passed for it in self.items)

    @property
    def failures(self) -> list[CheckItem]:
        """The checks that failed."""
        return [it for it in self.items if not it.passed]

    def to_frame(self):
        """The checks as a ``pandas.DataFrame`` (columns ``passed``, ``detail``, ``fix``; index the check's name)."""
        import pandas as pd

        return pd.DataFrame([{"check": it.name, "passed": it.passed, "detail": it.detail,
                              "fix": "" if it.passed else it.fix} for it in self.items]).set_index("check")

    def __str__(self) -> str:
        head = (f"check_pipeline on {self.pipeline}: {sum(it.passed for it in self.items)} of {len(self.items)} "
                f"checks passed, {self.num_denoiser_evals} denoiser evaluations")
        return "\n".join([head, *(str(it) for it in self.items)])


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double().cpu() - b.detach().double().cpu()).abs().max())


def _tolerance(ref: torch.Tensor, rtol: float, atol: float) -> float:
    return atol + rtol * float(ref.detach().double().abs().max())


def _init_noise_sigma(sched: Any) -> float:
    """The factor ``prepare_latents`` scales the initial noise by (the scheduler's ``init_noise_sigma``, else 1)."""
    return float(getattr(sched, "init_noise_sigma", 1.0))


def _scheduler_steps(sched: Any, num_inference_steps: int) -> tuple[int, float]:
    """The scheduler timesteps of a plain run of ``num_inference_steps`` steps (Heun: ``2n - 1``) and its
    ``init_noise_sigma``, read after ``set_timesteps`` on a copy, so the pipeline's scheduler is left as it is."""
    import copy

    fresh = copy.deepcopy(sched)
    fresh.set_timesteps(int(num_inference_steps))
    return len(fresh.timesteps), _init_noise_sigma(fresh)


def check_pipeline(
    pipe: Any,
    *,
    settings: FreeInitSettings | Mapping[str, Any] | None = None,
    seed: int = 0,
    generator_device: str | torch.device | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    raise_on_failure: bool = True,
    **call_kwargs: Any,
) -> PipelineCheck:
    """Check that :class:`~freeinit_lab.probes.probe.LatentProbe` and :func:`~freeinit_lab.engine.loop.freeinit`
    work on ``pipe`` as they must on any pipeline, and return the runs it made.

    Runs (each from ``torch.Generator(generator_device).manual_seed(seed)``, ``output_type="latent"``):
    ``P = pipe(**call_kwargs)`` under a probe capturing ``latents`` and ``x0_pred``; ``F1 = freeinit(pipe,
    num_iters=1)`` without a probe; ``FK = freeinit(pipe, settings)`` (``settings.num_iters >= 2`` passes) under a
    probe capturing ``latents`` and ``latents_in``. With ``tol(y) = atol + rtol * max|y|`` it checks

    * **record layout**: the record's dims are ``RECORD_DIMS``, one pass, its latent shape is ``P``'s canonical
      shape;
    * **record steps**: one recorded step per scheduler timestep of the run;
    * **record ends at the output**: ``max|record[-1] - P| <= tol(P)``;
    * **probe leaves the output unchanged** and **FreeInit with one pass is the pipeline's run**:
      ``max|F1 - P| <= tol(P)`` (where it fails, one more unprobed ``pipe(...)`` run ``U`` says which: the probe if
      ``|U - P| > tol``, FreeInit if ``|F1 - U| > tol``);
    * **each pass costs one plain run**: ``K`` passes, pass ``i`` of ``n_i`` inference steps costs
      ``e(F1) / T(N) * T(n_i)`` denoiser evaluations, ``T(n)`` being the scheduler timesteps of a plain run of ``n``
      steps (``2n - 1`` for Heun; ``T(N)`` as ``P`` ran it, ``T(n_i)`` from ``set_timesteps(n_i)`` on a copy of the
      scheduler), and ``e(F1)`` is a positive multiple of ``T(N)``;
    * **probe tags every pass**: the probe recorded ``K`` iterations tagged ``freeinit_iteration = 0..K-1``, each
      ending at that pass's clean latent (within ``tol``);
    * **every pass starts from FreeInit's latent**: for each pass ``i >= 1`` the sample of its first scheduler step
      (the probe's ``latents_in``) is ``sigma(n_i) * FK.iterations[i].initial_latent`` in the pipeline's latent
      dtype, ``sigma(n)`` being the scheduler's ``init_noise_sigma`` for a plain run of ``n`` steps (read after
      ``P``, or after ``set_timesteps(n)`` on a copy), within ``tol`` of it plus one unit in the last place of
      that dtype;
    * **first pass is the plain run**: ``max|FK.iterations[0].clean_latent - P| <= tol(P)``; with ``fast_sampling``
      pass 0 runs ``n_0 < N`` steps, so it is compared with one more plain run ``P0 = pipe(num_inference_steps=n_0)``
      instead, within ``tol(P0)``;
    * **every pass is finite**.

    Parameters
    ----------
    pipe
        A diffusers video pipeline with a known latent layout (:func:`~freeinit_lab.hooks.layouts.get_layout`).
    settings
        FreeInit's settings for the multi-pass run (:class:`~freeinit_lab.core.reinit.FreeInitSettings` or a dict
        of its fields); default ``num_iters=2`` and FreeInit's defaults. ``num_iters`` must be at least 2.
    seed, generator_device
        The generator of every run; its device defaults to ``pipe.device`` (CPU if the pipeline has none).
    rtol, atol
        Tolerance of the comparisons (loosen for float16 or non-deterministic GPU kernels).
    raise_on_failure
        Raise :class:`PipelineCheckError` (the message names each failed check and its fix) when a check fails;
        with ``False`` the report is returned either way.
    **call_kwargs
        The pipeline call (prompt, num_inference_steps, num_frames, height, width, guidance_scale, ...), without
        ``generator``, ``latents``, ``output_type`` or ``return_dict`` (the check sets them).

    Returns
    -------
    PipelineCheck
        ``items`` (printable), ``passed``, and the runs: ``record`` and ``plain_latents`` of ``P``, ``freeinit`` and
        ``freeinit_record`` of ``FK``, ``num_denoiser_evals`` spent.

    Raises
    ------
    ValueError, TypeError
        Before any run, for a pipeline without a layout, call arguments FreeInit refuses, ``num_iters < 2``, a
        negative tolerance or an argument the check sets itself.
    PipelineCheckError
        After the runs, when a check failed and ``raise_on_failure``.

    Examples
    --------
    >>> from freeinit_lab.testing import tiny_animatediff_pipeline, TINY_CALL_KWARGS
    >>> pipe = tiny_animatediff_pipeline(seed=0)
    >>> report = check_pipeline(pipe, prompt="a cat", **TINY_CALL_KWARGS["AnimateDiffPipeline"])
    >>> report.passed, report.record.sizes["step"], len(report.freeinit.iterations), report.num_denoiser_evals
    (True, 4, 2, 16)
    """
    # ---------------------------------------------------------------- checks (before any model runs)
    require_pipeline_instance(pipe, "check_pipeline")
    layout = get_layout(pipe)
    owned = sorted(k for k in ("generator", "latents", "output_type", "return_dict") if k in call_kwargs)
    if owned:
        raise ValueError(f"check_pipeline sets {owned} itself (a generator from seed=, output_type='latent'); drop "
                         "them from the call arguments")
    if isinstance(settings, Mapping):
        settings = FreeInitSettings(**{"num_iters": 2, **settings})
    elif settings is None:
        settings = FreeInitSettings(num_iters=2)
    elif not isinstance(settings, FreeInitSettings):
        raise TypeError(f"settings must be a FreeInitSettings or a dict of its fields; got {type(settings).__name__}")
    if settings.num_iters < 2:
        raise ValueError(f"settings.num_iters={settings.num_iters}; the pass checks need FreeInit with at least 2 "
                         "passes (one pass is checked on its own anyway): pass num_iters >= 2")
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol={rtol}, atol={atol}: tolerances must be >= 0 (e.g. rtol=atol=1e-3 for float16)")
    if generator_device is None:
        generator_device = getattr(pipe, "device", None) or "cpu"

    def gen() -> torch.Generator:
        return torch.Generator(device=generator_device).manual_seed(int(seed))

    with warnings.catch_warnings():  # the call is validated here; FreeInit's own warnings come from its runs
        warnings.simplefilter("ignore")
        plan = plan_call(pipe, settings, None, {**call_kwargs, "generator": gen(), "output_type": "latent"})

    from freeinit_lab.probes.probe import LatentProbe

    sched = get_scheduler(pipe, layout)
    name = f"{type(pipe).__name__} ({type(sched).__name__})"
    items: list[CheckItem] = []

    def add(check: str, ok: bool, detail: str) -> None:
        items.append(CheckItem(check, bool(ok), detail, FIXES[check]))

    # ---------------------------------------------------------------- P: the plain run under a probe
    with LatentProbe(pipe, capture=("latents", "x0_pred")) as probe:
        plain = read_pipeline_output(pipe(**call_kwargs, generator=gen(), output_type="latent"))
    rec = probe.to_xarray()
    timesteps = getattr(sched, "timesteps", None)
    num_steps = 0 if timesteps is None else len(timesteps)
    sigma_plain = _init_noise_sigma(sched)
    canon = layout.to_canonical(plain).detach().float().cpu()
    tol = _tolerance(canon, rtol, atol)
    dims_ok = all(rec[v].dims == RECORD_DIMS for v in ("latents", "x0_pred"))
    shape_ok = tuple(rec.latents.shape[2:]) == tuple(canon.shape)
    add("record layout", dims_ok and rec.sizes["iteration"] == 1 and shape_ok,
        f"dims {rec.latents.dims}, {rec.sizes['iteration']} pass(es), latent {tuple(rec.latents.shape[2:])} vs output "
        f"{tuple(canon.shape)}")
    add("record steps", rec.sizes["step"] == num_steps and num_steps > 0,
        f"{rec.sizes['step']} recorded steps, {num_steps} scheduler timesteps")
    if shape_ok:
        d_rec = _max_abs_diff(torch.from_numpy(rec.latents.isel(iteration=0, step=-1).values), canon)
        add("record ends at the output", d_rec <= tol, f"max |record[-1] - output| = {d_rec:.3g} (tol {tol:.3g})")
    else:
        add("record ends at the output", False, "not comparable: the record's latent shape is not the output's")

    # ---------------------------------------------------------------- F1: FreeInit with one pass, no probe
    one = freeinit(pipe, num_iters=1, **call_kwargs, generator=gen(), output_type="latent", progress=False)
    evals = int(one.num_denoiser_evals) * 2  # P and F1 ran the same denoiser calls
    d_one = _max_abs_diff(one.latents, plain)
    if d_one <= tol:
        add("probe leaves the output unchanged", True,
            f"max |probed run - unprobed run| = {d_one:.3g} (FreeInit's single pass is the unprobed run)")
        add("FreeInit with one pass is the pipeline's run", True, f"max |FreeInit(1) - pipe(...)| = {d_one:.3g}")
    else:  # tell the two apart with one more plain run, without a probe
        unprobed = read_pipeline_output(pipe(**call_kwargs, generator=gen(), output_type="latent"))
        evals += int(one.num_denoiser_evals)
        d_probe, d_fi = _max_abs_diff(unprobed, plain), _max_abs_diff(one.latents, unprobed)
        add("probe leaves the output unchanged", d_probe <= tol,
            f"max |probed run - unprobed run| = {d_probe:.3g} (tol {tol:.3g})")
        add("FreeInit with one pass is the pipeline's run", d_fi <= tol,
            f"max |FreeInit(1) - pipe(...)| = {d_fi:.3g} (tol {tol:.3g})")

    # ---------------------------------------------------------------- FK: FreeInit's passes under a probe
    with LatentProbe(pipe, capture=("latents", "latents_in")) as fi_probe:
        res = freeinit(pipe, settings=settings, **call_kwargs, generator=gen(), output_type="latent", progress=False)
    fi_rec = fi_probe.to_xarray()
    evals += int(res.num_denoiser_evals)
    k = settings.num_iters
    # a pass of n inference steps costs what a plain run of n steps calls: evaluations per scheduler timestep times
    # the timesteps of that run (not proportional to n: Heun runs 2n - 1)
    per_step = one.num_denoiser_evals / num_steps if num_steps else 0.0
    counted = {plan.steps: num_steps}
    sigmas = {plan.steps: sigma_plain}
    uncounted = ""
    for n in plan.steps_per_pass:
        if n not in counted:
            try:
                counted[n], sigmas[n] = _scheduler_steps(sched, n)
            except Exception as exc:  # noqa: BLE001 - reported as the check's detail
                counted[n], sigmas[n] = 0, float("nan")
                uncounted = f"; cannot count a plain run of {n} steps ({type(exc).__name__}: {exc})"
    want = [int(round(per_step * counted[n])) for n in plan.steps_per_pass]
    got = [int(it.num_denoiser_evals) for it in res.iterations]
    whole = one.num_denoiser_evals > 0 and num_steps > 0 and one.num_denoiser_evals % num_steps == 0
    plain_costs = ", ".join(f"{n} steps: {w}" for n, w in dict(zip(plan.steps_per_pass, want)).items())
    add("each pass costs one plain run", len(got) == k and got == want and whole and not uncounted,
        f"{len(got)} passes costing {got} denoiser evaluations; one plain run of {plan.steps} inference steps "
        f"({num_steps} scheduler steps) costs {one.num_denoiser_evals}; plain runs of each pass's steps cost "
        f"{plain_costs}{uncounted}")
    tags = fi_rec.freeinit_iteration.values.tolist() if "freeinit_iteration" in fi_rec.coords else []
    ends = []
    if fi_rec.sizes.get("iteration", 0) == k and tuple(fi_rec.latents.shape[2:]) == tuple(canon.shape):
        for i, it in enumerate(res.iterations):
            last = int(fi_rec.num_steps.values[i]) - 1 if "num_steps" in fi_rec.coords else -1
            ends.append(_max_abs_diff(torch.from_numpy(fi_rec.latents.isel(iteration=i, step=last).values),
                                      it.clean_latent))
    add("probe tags every pass", tags == list(range(k)) and len(ends) == k and max(ends, default=np.inf) <= tol,
        f"{fi_rec.sizes.get('iteration', 0)} recorded passes tagged {tags}; max |record end - pass's clean latent| = "
        f"{max(ends, default=float('nan')):.3g}")
    if fi_rec.sizes.get("iteration", 0) == k and tuple(fi_rec.latents_in.shape[2:]) == tuple(canon.shape):
        starts = []  # (pass, |first step's sample - sigma * FreeInit's latent|, its tolerance)
        for it in res.iterations[1:]:
            sigma = sigmas[plan.steps_per_pass[it.index]]
            handed = (it.initial_latent.to(plain.dtype) * sigma).double()  # as prepare_latents scales latents=
            ulp = float(torch.finfo(plain.dtype).eps) * float(handed.abs().max())
            got_in = torch.from_numpy(fi_rec.latents_in.isel(iteration=it.index, step=0).values)
            starts.append((it.index, _max_abs_diff(got_in, handed), _tolerance(handed, rtol, atol) + ulp))
        off = [i for i, d, t in starts if not d <= t]
        add("every pass starts from FreeInit's latent", not off,
            f"max |first step's sample - init_noise_sigma * FreeInit's latent| = "
            f"{max((d for _, d, _ in starts), default=float('nan')):.3g} over passes 1..{k - 1} (init_noise_sigma "
            f"{', '.join(f'{sigmas[n]:.4g}' for n in dict.fromkeys(plan.steps_per_pass[1:]))}); passes off: "
            f"{off or 'none'}")
    else:
        add("every pass starts from FreeInit's latent", False,
            "not comparable: the probe did not record one pass per FreeInit pass with the output's latent shape")
    n_first = plan.steps_per_pass[0]
    if n_first == plan.steps:
        first, tol_first, what = canon, tol, "plain run"
    else:  # fast_sampling: pass 0 is the plain run of its own, smaller step count
        short = read_pipeline_output(pipe(**{**call_kwargs, "num_inference_steps": n_first}, generator=gen(),
                                          output_type="latent"))
        evals += int(round(per_step * counted[n_first]))
        first = layout.to_canonical(short).detach().float().cpu()
        tol_first, what = _tolerance(first, rtol, atol), f"plain run of pass 0's {n_first} steps"
    d_first = _max_abs_diff(res.iterations[0].clean_latent, first)
    add("first pass is the plain run", d_first <= tol_first,
        f"max |pass 0 - {what}| = {d_first:.3g} (tol {tol_first:.3g})")
    bad = [it.index for it in res.iterations
           if not (bool(torch.isfinite(it.clean_latent).all()) and bool(torch.isfinite(it.initial_latent).all()))]
    add("every pass is finite", not bad and bool(torch.isfinite(canon).all()),
        f"non-finite passes: {bad or 'none'}; plain run {'finite' if bool(torch.isfinite(canon).all()) else 'NOT finite'}")

    report = PipelineCheck(items=items, pipeline=name, record=rec, plain_latents=plain, freeinit=res,
                           freeinit_record=fi_rec, num_denoiser_evals=evals,
                           settings={"seed": int(seed), "rtol": rtol, "atol": atol, **asdict(settings)})
    if raise_on_failure and not report.passed:
        raise PipelineCheckError(report)
    return report
