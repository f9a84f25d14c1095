"""The event loop a run goes on, and the cyclic GC eased meanwhile.

A run of many requests spends much of its driver CPU in the event loop (selecting,
scheduling callbacks, socket writes) and in the cyclic garbage collector, whose
youngest generation is collected every 700 allocations and each time walks objects
that were made to last the run (the recipe, the rules, their tables). ``run`` runs a
coroutine as :func:`asyncio.run` does, with two changes:

* the loop is the standard one unless ``TEXTSYNTH_EVENT_LOOP=uvloop`` asks for
  uvloop's (libuv, in C; the ``uvloop`` extra). uvloop takes about 3% less driver CPU,
  but it is not the default: a test process that had just run an interrupted run on it
  ended in a segmentation fault once, and uvloop has open reports of crashes in its
  handle-closing code. A crash loses the answers in flight; 3% of the client's CPU is
  not worth that;
* the objects that exist when the run starts are frozen out of the collector
  (:func:`gc.freeze`) and the youngest generation is collected every
  ``GC_YOUNG_THRESHOLD`` allocations. Both are put back as they were when the run
  ends, however it ends, so a program that calls :func:`textsynth.run_recipe` keeps
  its own settings (one that froze objects itself is left to its own freeze).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from textsynth._deps import require
from textsynth.errors import TextsynthError

__all__ = ["ENV", "GC_YOUNG_THRESHOLD", "loop_factory", "run"]

T = TypeVar("T")
ENV = "TEXTSYNTH_EVENT_LOOP"
GC_YOUNG_THRESHOLD = 10_000
_LOOPS = ("asyncio", "uvloop")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``None`` (the standard loop), or uvloop's ``new_event_loop`` when
    ``TEXTSYNTH_EVENT_LOOP=uvloop``. An unknown value is a :class:`TextsynthError`;
    uvloop asked for and not installed is a :class:`MissingDependency` naming its extra."""
    wanted = os.environ.get(ENV, "").strip().lower() or "asyncio"
    if wanted not in _LOOPS:
        raise TextsynthError(f"{ENV} must be one of {', '.join(_LOOPS)}, not {wanted!r}")
    if wanted == "asyncio":
        return None
    uvloop = require("uvloop", f"{ENV}=uvloop")
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop of :func:`loop_factory`, with the GC eased."""
    try:
        factory = loop_factory()
    except TextsynthError:
        main.close()
        raise
    thresholds = gc.get_threshold()
    # a caller that froze objects itself keeps them frozen: unfreeze() would thaw all
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(thresholds[0], GC_YOUNG_THRESHOLD), *thresholds[1:])
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()
