"""One rule for counts across the library (``freeinit_lab._checks.require_int``), at the entry points users call."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from freeinit_lab._checks import require_int
from freeinit_lab.analysis.fidelity import fidelity_report
from freeinit_lab.core.reinit import FreeInitSettings
from freeinit_lab.embedded.world import subject_videos
from freeinit_lab.sweep import SweepSpec
from freeinit_lab.sweep.spec import SweepSpecError


@given(st.integers(-5, 50), st.integers(-3, 10), st.one_of(st.none(), st.integers(0, 40)))
def test_an_integer_in_range_is_returned_as_int_and_any_other_is_refused_with_the_range(value, low, high):
    inside = value >= low and (high is None or value <= high)
    for v in (value, np.int64(value), np.int32(value)):
        if inside:
            out = require_int("n", v, low=low, high=high)
            assert out == value and type(out) is int
        else:
            with pytest.raises(ValueError, match=rf"^n={re.escape(repr(v))} must be an integer (>= {low}|in \[{low}, {high}\])$"):
                require_int("n", v, low=low, high=high)


@pytest.mark.parametrize("value", [True, False, np.True_, 2.0, 2.5, "2", None, [2]])
def test_booleans_floats_and_strings_are_not_counts(value):
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        require_int("n", value, low=0)


def test_the_error_class_and_hint_are_the_callers():
    with pytest.raises(SweepSpecError, match=r"videos=0 must be an integer >= 1 \(per seed\)$"):
        require_int("videos", 0, why=" (per seed)", error=SweepSpecError)


def test_entry_points_refuse_non_integer_counts_before_work():
    """Before, fidelity_report took folds=4.0 and LatentProbe every=True; each entry point now applies one rule."""
    ref = subject_videos(48, 4, 8, seed=0)
    for kw in (dict(folds=4.0), dict(folds=True), dict(repeats=np.float64(2))):
        with pytest.raises(ValueError, match=f"{next(iter(kw))}=.* must be an integer"):
            fidelity_report(ref[:16], ref[16:], **kw)
    for n in (True, 2.0, np.int64(0)):
        with pytest.raises(ValueError, match="num_iters=.* must be an integer >= 1"):
            FreeInitSettings(num_iters=n)
    assert FreeInitSettings(num_iters=np.int64(4)).num_iters == 4
    for n in (True, 1.0, 0):
        with pytest.raises(SweepSpecError, match="videos_per_seed=.* must be an integer >= 1"):
            SweepSpec(study="freeinit", grid={"d_s": [0.25]}, seeds=[0], videos_per_seed=n).validate()


def test_a_probe_refuses_every_true():
    """``every=True`` kept every step before (True is 1 to Python); ``numpy`` integers are counts."""
    from freeinit_lab import LatentProbe, load_analytic_pipeline

    pipe = load_analytic_pipeline(num_frames=4, height=8)
    with pytest.raises(ValueError, match=r"every=True must be an integer >= 1"):
        LatentProbe(pipe, every=True)
    assert LatentProbe(pipe, every=np.int64(2)).every == 2


@given(st.integers(-(2**63), 2**64 + 5))
def test_a_seed_is_an_integer_torch_reads_as_itself(value):
    from freeinit_lab._checks import require_seed

    for v in (value, *([np.int64(value)] if -(2**63) <= value < 2**63 else [])):
        if 0 <= value <= 2**64 - 1:
            out = require_seed(v)
            assert out == value and type(out) is int
            # what torch's generator records is the seed itself, not another one it aliases
            assert torch.Generator().manual_seed(out).initial_seed() == value
        else:
            with pytest.raises(ValueError,
                               match=r"^seed=.* must be an integer in \[0, 18446744073709551615\] \(a generator seed"):
                require_seed(v)


def test_a_negative_seed_would_alias_a_large_one_in_torch_so_the_data_generators_refuse_it(tmp_path):
    from freeinit_lab.embedded.data import dead_leaves_videos
    from freeinit_lab.embedded.pipelines import default_training_videos

    # the alias the check guards against: torch draws the same numbers for -1 and 2**64 - 1
    assert torch.equal(torch.randn(4, generator=torch.Generator().manual_seed(-1)),
                       torch.randn(4, generator=torch.Generator().manual_seed(2**64 - 1)))
    for call in (lambda: subject_videos(1, 2, 8, seed=-1), lambda: dead_leaves_videos(1, 2, 8, seed=-1),
                 lambda: default_training_videos(1, seed=-1)):
        with pytest.raises(ValueError, match=r"seed=-1 must be an integer in \[0, 18446744073709551615\] \(a "
                                             r"generator seed; torch would read -1 as 18446744073709551615\)"):
            call()
    for bad in (2.0, True, "3"):
        with pytest.raises(ValueError, match="seed=.* must be an integer"):
            default_training_videos(1, seed=bad)
    with pytest.raises(ValueError, match=r"n=2.5 must be an integer >= 1 \(videos to draw\)"):
        default_training_videos(2.5, seed=0)
    assert subject_videos(1, 2, 8, seed=2**64 - 1).shape == (1, 3, 2, 8, 8)


def test_the_studies_refuse_a_negative_seed_before_sampling():
    """Each study seeds its noises with ``seed``: -1 would be 2**64 - 1's noise under another name."""
    from freeinit_lab import load_analytic_pipeline
    from freeinit_lab.embedded.pipelines import held_out_videos
    from freeinit_lab.studies.decomposition import decompose_freeinit
    from freeinit_lab.studies.evidence import measure_evidence
    from freeinit_lab.studies.refinement import refinement_study
    from freeinit_lab.studies.strategies import InitStrategy, TerminalMarginal, evaluate_strategies

    pipe = load_analytic_pipeline(num_frames=4, height=8)
    data = pipe.unet.sample_prior(4, generator=torch.Generator().manual_seed(5))
    marginal = TerminalMarginal.from_latents(data, pipe.scheduler)
    calls = []
    denoiser = pipe.unet
    denoiser.register_forward_pre_hook(lambda *a: calls.append(1))
    studies = {
        "measure_evidence": lambda: measure_evidence(pipe, num_videos=2, seed=-1, num_inference_steps=2,
                                                     progress=False),
        "decompose_freeinit": lambda: decompose_freeinit(pipe, num_videos=8, seed=-1, num_inference_steps=2,
                                                         progress=False),
        "refinement_study": lambda: refinement_study(pipe, num_videos=2, seed=-1, num_inference_steps=2,
                                                     progress=False),
        "evaluate_strategies": lambda: evaluate_strategies(pipe, [InitStrategy("plain")], data=data,
                                                           marginal=marginal, num_videos=2, seed=-1,
                                                           num_inference_steps=2),
        "held_out_videos": lambda: held_out_videos(pipe, 2, -1),
    }
    for name, call in studies.items():
        with pytest.raises(ValueError, match=r"seed=-1 must be an integer in \[0, 18446744073709551615\]"):
            call()
        assert not calls, f"{name} ran the denoiser before refusing the seed"
