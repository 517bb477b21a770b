"""Telling FreeInit passes and pipeline calls apart in the stream of scheduler steps a probe observes.

A probe sees ``scheduler.step`` calls, ``set_timesteps`` calls, pipeline calls and the engine's pass events
(:mod:`freeinit_lab.hooks.events`). :class:`PassTracker` turns them into passes: a new pass starts when a pass
event arrives, when the scheduler's timesteps are set again after steps ran, or when the timestep rises (FreeInit
restarts at the noisiest step); each pass records the call it belongs to, the FreeInit run and iteration, the
call's seed and its step count. It holds no tensors and knows nothing of records or sinks.
"""

from __future__ import annotations

from collections.abc import Callable

from freeinit_lab.probes.sinks import _PassInfo

__all__ = ["PassTracker"]


class PassTracker:
    """Pass bookkeeping of one probe.

    Attributes
    ----------
    passes : list of _PassInfo
        One entry per pass seen so far (call index, FreeInit run, FreeInit iteration, seed, step count).
    call_index, run_index : int
        Index of the current pipeline call and FreeInit run (``-1`` before the first).
    call_seed : int
        Seed of the current call's first generator (``-1`` when unknown).
    pending_mark : int or None
        FreeInit iteration announced by a pass event and not yet started.
    pass_steps : int
        ``scheduler.step`` calls in the current pass.
    """

    def __init__(self) -> None:
        self.passes: list[_PassInfo] = []
        self.call_index = -1
        self.run_index = -1
        self.call_seed = -1
        self.new_pass = True
        self.pending_mark: int | None = None
        self.pass_steps = 0
        self.last_t: float | None = None

    def begin_call(self, seed: int) -> None:
        """A new pipeline call starts (its first step opens a new pass)."""
        self.call_index += 1
        self.call_seed = seed
        self.new_pass = True

    def mark(self, iteration: int) -> None:
        """The engine announced FreeInit iteration ``iteration``: the next step opens that pass."""
        self.new_pass = True
        self.pending_mark = iteration

    def boundary(self) -> bool:
        """The scheduler's timesteps were set again; a new pass starts if steps ran since. Returns whether."""
        if self.pass_steps > 0:
            self.new_pass = True
            return True
        return False

    def start_pass(self, num_steps: int) -> None:
        """Open a pass of ``num_steps`` steps (``-1``: unknown) in the current call."""
        mark, self.pending_mark = self.pending_mark, None
        first_of_call = not self.passes or self.passes[-1].call != self.call_index
        if mark is not None:
            new_run = mark == 0
            fi = mark
        else:
            new_run = first_of_call
            fi = 0 if new_run else self.passes[-1].freeinit_iteration + 1
        if new_run or self.run_index < 0:
            self.run_index += 1
        self.passes.append(_PassInfo(self.call_index, self.run_index, fi, self.call_seed, num_steps))
        self.new_pass = False
        self.pass_steps = 0
        self.last_t = None

    def advance(self, t: float, num_steps: Callable[[], int]) -> int:
        """Account for one ``scheduler.step`` at timestep ``t``; returns its step index within its pass.

        A rising timestep, a pending boundary or the very first step opens a pass of ``num_steps()`` steps.
        """
        if self.last_t is not None and t > self.last_t + 1e-9:
            self.new_pass = True  # the timestep rose: a new pass (FreeInit restarts at the noisiest step)
        if self.new_pass or not self.passes:
            self.start_pass(num_steps())
        step = self.pass_steps
        self.pass_steps += 1
        self.last_t = t
        return step

    def split_before(self, steps_of_previous: int, num_steps: int) -> None:
        """The pipeline restarted its step index: the last step opens a new pass; the previous one had
        ``steps_of_previous`` steps."""
        self.passes[-1].num_steps = steps_of_previous
        self.start_pass(num_steps)
        self.pass_steps = 1

    @property
    def current(self) -> int:
        """Index of the current pass (``-1`` before the first)."""
        return len(self.passes) - 1
