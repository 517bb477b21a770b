"""Argument checks shared by every layer: one rule, one message, for each kind of count the library takes.

A count (videos, steps, folds, workers, ...) is a Python or numpy integer, never a bool (``True`` is 1 to
Python, but nobody means one video by it) and never a float (``2.5`` videos has no meaning, and ``2.0`` usually
comes from arithmetic that should be checked by its author). The error names the argument, the value and the
accepted range, plus a hint of what the count is for, before any work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["require_int", "require_seed", "require_frames"]


def require_int(name: str, value: Any, *, low: int = 1, high: int | None = None, why: str = "",
                error: type[Exception] = ValueError) -> int:
    """``value`` as an ``int`` if it is an integer with ``low <= value <= high``; else raise ``error``.

    Parameters
    ----------
    name
        The argument's name, as the caller passes it (shown in the message).
    low, high
        Inclusive bounds; ``high=None`` has no upper bound.
    why
        Appended to the message, e.g. ``" (videos per pipeline call)"``.
    error
        The exception class (a caller's own ``ValueError`` subclass, e.g. a spec error).

    Examples
    --------
    >>> require_int("chunk_size", 4)
    4
    >>> require_int("chunk_size", True)
    Traceback (most recent call last):
    ...
    ValueError: chunk_size=True must be an integer >= 1
    >>> require_int("folds", 1, low=2, high=32, why=" (cross-validation folds)")
    Traceback (most recent call last):
    ...
    ValueError: folds=1 must be an integer in [2, 32] (cross-validation folds)
    """
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))
    if ok and value >= low and (high is None or value <= high):
        return int(value)
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise error(f"{name}={value!r} must be an integer {bounds}{why}")


#: The largest seed a torch generator takes (``manual_seed`` reads it as an unsigned 64-bit integer).
MAX_SEED = 2**64 - 1


def require_seed(value: Any, name: str = "seed") -> int:
    """``value`` as an ``int`` if it is a generator seed: an integer in ``[0, 2**64 - 1]``; else a ValueError.

    ``torch.Generator.manual_seed`` also takes negative seeds, reading ``-k`` as ``2**64 - k``: ``seed=-1`` would
    silently be the same videos as ``seed=18446744073709551615``, outside the seed ranges the docs name. So the data
    generators refuse it, and bools and floats as :func:`require_int` does.

    Examples
    --------
    >>> require_seed(930_000_000)
    930000000
    >>> require_seed(-1)
    Traceback (most recent call last):
    ...
    ValueError: seed=-1 must be an integer in [0, 18446744073709551615] (a generator seed; torch would read -1 as ...)
    """
    why = f" (a generator seed; torch would read {value} as {int(value) + 2**64})" \
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and -(2**63) <= value < 0 \
        else " (a generator seed)"
    return require_int(name, value, low=0, high=MAX_SEED, why=why)


def require_frames(study: str, shape: Any, *, frame_axis: int = -3) -> int:
    """The frame count of latents of canonical ``shape`` (``(..., channel, frame, height, width)``), at least 2.

    A study that scores temporal consistency (a cosine between frames) has nothing to score on single-frame
    videos; it calls this before sampling, so the error comes before the work and names the study.

    Examples
    --------
    >>> require_frames("my_study", (3, 8, 16, 16))
    8
    >>> require_frames("my_study", (3, 1, 16, 16))
    Traceback (most recent call last):
    ...
    ValueError: my_study scores temporal consistency between frames, which needs videos of at least 2 frames; ...
    """
    shape = tuple(int(s) for s in shape)
    frames = shape[frame_axis]
    if frames < 2:
        raise ValueError(
            f"{study} scores temporal consistency between frames, which needs videos of at least 2 frames; the "
            f"pipeline samples latents of {frames} frame (canonical shape {shape}). Sample videos of several "
            "frames (e.g. a pipeline built or called with num_frames >= 2)"
        )
    return frames
