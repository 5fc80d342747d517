"""How processors are chained, one definition for the agent and for ``kinefuse analyze``'s replay: each
processor in config order first ``observe``s (where it defines it) what the processors before it made of the
same input, then makes its own of it (``process`` of a batch, or ``flush``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def run_chain(processors: Iterable[tuple[str, Any]], call: Callable[[Any], Iterable], first: Iterable = (),
              on_error: Callable[[str], None] | None = None) -> list[tuple[str, Any]]:  # fmt: skip
    """(processor id, item) for every item each processor makes of ``call`` after observing what those
    before it made (and ``first``, items made before the chain). With ``on_error``, an exception is handed
    to it (called inside the ``except``, so it can log the traceback), what the processor made before it
    is kept, and the others go on; without, it propagates."""
    earlier, made = list(first), []
    for pid, processor in processors:
        out: list = []
        try:
            observe = getattr(processor, "observe", None)
            if observe is not None and earlier:
                out.extend(observe(list(earlier)))
            out.extend(call(processor))
        except Exception:
            if on_error is None:
                raise
            on_error(pid)
        earlier += out
        made += [(pid, item) for item in out]
    return made
