"""Pass events: code that runs a pipeline several times for one result (FreeInit) announces each pass here;
observers (probes) subscribe per pipeline. The publisher needs no observer, the observer no publisher.

>>> from freeinit_lab.hooks.events import publish_pass, subscribe
>>> seen = []
>>> pipe = object()
>>> sub = subscribe(pipe, lambda i, settings: seen.append((i, settings["num_iters"])))
>>> publish_pass(pipe, 0, num_iters=2); publish_pass(pipe, 1, num_iters=2)
>>> sub.remove(); publish_pass(pipe, 2, num_iters=2)
>>> seen
[(0, 2), (1, 2)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["PassListener", "Subscription", "publish_pass", "subscribe"]

#: ``listener(iteration, settings)``: called before pass ``iteration`` starts, with the run's settings as plain values
PassListener = Callable[[int, dict[str, Any]], None]

_LISTENERS: dict[int, list[PassListener]] = {}


class Subscription:
    """Handle of one listener; :meth:`remove` unsubscribes it (idempotent, in any order)."""

    def __init__(self, key: int, listener: PassListener) -> None:
        self._key, self._listener = key, listener

    def remove(self) -> None:
        listeners = _LISTENERS.get(self._key, [])
        if self._listener in listeners:
            listeners.remove(self._listener)
        if not listeners:
            _LISTENERS.pop(self._key, None)


def subscribe(pipe: Any, listener: PassListener) -> Subscription:
    """Call ``listener`` on every pass announced for ``pipe`` until the returned handle is removed."""
    _LISTENERS.setdefault(id(pipe), []).append(listener)
    return Subscription(id(pipe), listener)


def publish_pass(pipe: Any, iteration: int, **settings: Any) -> None:
    """Announce that the next call of ``pipe`` is pass ``iteration`` (0-based) of one multi-pass run.

    Does nothing without subscribers, so publishers call it unconditionally.
    """
    for listener in list(_LISTENERS.get(id(pipe), ())):
        listener(int(iteration), dict(settings))
