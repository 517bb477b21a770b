"""One reversible patching layer: wrap a method of one object, get a handle, remove it in any order.

Every patched ``(object, name)`` gets one dispatcher that calls the stack of wrappers currently installed on it;
:meth:`PatchHandle.remove` takes one wrapper out of the stack wherever it sits, and removing the last one puts
back exactly what was there before (an instance attribute or nothing). Methods that Python looks up on the class
(``__call__``) are patched on one subclass made for that instance — at most one class swap per object, undone
when its last patch goes. Other instances are never affected.

>>> class Greeter:
...     def hello(self, name):
...         return f"hello {name}"
>>> g = Greeter()
>>> loud = patch(g, "hello", lambda inner: lambda name: inner(name).upper())
>>> polite = patch(g, "hello", lambda inner: lambda name: inner(name) + ", please")
>>> g.hello("ann")
'HELLO ANN, please'
>>> loud.remove(); g.hello("ann")
'hello ann, please'
>>> polite.remove(); g.hello("ann"), "hello" in vars(g)
('hello ann', False)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["PatchHandle", "patch", "patch_class_method"]

Wrapper = Callable[[Callable], Callable]


class _Slot:
    """The stack of wrappers on one attribute of one target (an instance, or an instance's own subclass)."""

    def __init__(self, target: Any, name: str, original: Callable, on_empty: Callable[[], None]) -> None:
        self.target, self.name, self.original = target, name, original
        own = vars(target)
        self.had_own, self.previous = name in own, own.get(name)
        self.layers: list[tuple[object, Wrapper]] = []
        self.chain: Callable = original
        self.on_empty = on_empty
        slot = self

        def dispatcher(*args: Any, **kwargs: Any) -> Any:
            return slot.chain(*args, **kwargs)

        functools.update_wrapper(dispatcher, original)
        try:
            dispatcher.__signature__ = inspect.signature(original)  # pipelines inspect e.g. scheduler.step
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            pass
        self.dispatcher = dispatcher
        setattr(target, name, dispatcher)

    def rebuild(self) -> None:
        fn = self.original
        for _, make in self.layers:
            fn = make(fn)
        self.chain = fn

    def remove(self, token: object) -> None:
        self.layers = [(t, m) for t, m in self.layers if t is not token]
        if self.layers:
            self.rebuild()
            return
        self.chain = self.original  # an inert pass-through if someone wrapped on top of the dispatcher
        if vars(self.target).get(self.name) is self.dispatcher:
            if self.had_own:
                setattr(self.target, self.name, self.previous)
            else:
                delattr(self.target, self.name)
        self.on_empty()


#: live slots, keyed by (id(target), name); each slot holds its target alive
_SLOTS: dict[tuple[int, str], _Slot] = {}
#: per-instance subclasses made by :func:`patch_class_method`: id(obj) -> (obj, original class, subclass, count)
_SUBCLASSES: dict[int, list[Any]] = {}


class PatchHandle:
    """One installed wrapper. :meth:`remove` (idempotent) takes it out; also a context manager."""

    def __init__(self, slot: _Slot, token: object) -> None:
        self._slot, self._token = slot, token

    @property
    def active(self) -> bool:
        return self._slot is not None

    def remove(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.remove(self._token)

    def __enter__(self) -> PatchHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _add(target: Any, name: str, original: Callable, make_wrapper: Wrapper, on_empty: Callable[[], None]):
    key = (id(target), name)
    slot = _SLOTS.get(key)
    if slot is None or slot.target is not target:
        def forget() -> None:
            _SLOTS.pop(key, None)
            on_empty()

        slot = _SLOTS[key] = _Slot(target, name, original, forget)
    token = object()
    slot.layers.append((token, make_wrapper))
    slot.rebuild()
    return PatchHandle(slot, token)


def patch(obj: Any, name: str, make_wrapper: Wrapper) -> PatchHandle:
    """Wrap ``obj.name`` as an instance attribute: calls go to ``make_wrapper(inner)``.

    ``inner`` is what the attribute was (the bound method, or the next wrapper down). ``make_wrapper`` may be
    called again when a wrapper below it is removed, so it should only build the wrapper.
    """
    original = getattr(obj, name)
    return _add(obj, name, original, make_wrapper, lambda: None)


def patch_class_method(obj: Any, name: str, make_wrapper: Wrapper) -> PatchHandle:
    """Wrap a method Python looks up on the class (``__call__``) for ``obj`` alone.

    The first such patch swaps ``obj.__class__`` for a subclass made for this instance; the last one removed swaps
    it back (unless someone swapped the class again on top, in which case the subclass stays, with no overrides).
    ``make_wrapper(inner)`` gets and returns functions taking ``self`` first.
    """
    entry = _SUBCLASSES.get(id(obj))
    if entry is None or entry[0] is not obj:
        base = type(obj)
        sub = type(base.__name__, (base,), {"__module__": base.__module__, "__qualname__": base.__qualname__})
        obj.__class__ = sub
        entry = _SUBCLASSES[id(obj)] = [obj, base, sub, 0]
    _, base, sub, _ = entry

    def release() -> None:  # when one of the subclass's slots empties
        entry[3] -= 1
        if entry[3] == 0:
            _SUBCLASSES.pop(id(obj), None)
            if type(obj) is sub:
                obj.__class__ = base

    if (id(sub), name) not in _SLOTS:
        entry[3] += 1
    return _add(sub, name, getattr(base, name), make_wrapper, release)
