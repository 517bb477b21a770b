"""PassTracker: passes from pass events, repeated set_timesteps, rising timesteps, and restarted step indices."""

from freeinit_lab.probes.passes import PassTracker


def _steps(tr, ts, n=3):
    return [tr.advance(t, lambda: n) for t in ts]


def test_calls_marks_and_rising_timesteps_open_passes():
    tr = PassTracker()
    tr.begin_call(seed=7)
    assert _steps(tr, [999, 600, 200]) == [0, 1, 2]
    assert _steps(tr, [999, 500]) == [0, 1]  # the timestep rose: FreeInit's next pass
    assert [(p.call, p.run, p.freeinit_iteration, p.seed) for p in tr.passes] == [(0, 0, 0, 7), (0, 0, 1, 7)]
    tr.begin_call(seed=8)
    tr.mark(0)  # the engine announces a new FreeInit run
    _steps(tr, [999])
    tr.mark(1)
    _steps(tr, [999])
    assert [(p.call, p.run, p.freeinit_iteration) for p in tr.passes][2:] == [(1, 1, 0), (1, 1, 1)]
    assert tr.current == 3


def test_set_timesteps_again_after_steps_is_a_boundary_and_a_restart_splits_the_pass():
    tr = PassTracker()
    tr.begin_call(seed=-1)
    assert not tr.boundary()  # nothing ran yet
    _steps(tr, [999, 500], n=2)
    assert tr.boundary()
    assert _steps(tr, [400], n=5) == [0]  # same or lower timestep, but a new pass all the same
    assert [p.num_steps for p in tr.passes] == [2, 5]
    _steps(tr, [300, 200], n=5)
    tr.split_before(steps_of_previous=2, num_steps=4)  # the pipeline's step index went back to 0 at the 3rd step
    assert [p.num_steps for p in tr.passes] == [2, 2, 4] and tr.pass_steps == 1
