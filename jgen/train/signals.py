"""Stopping a run cleanly: SIGINT/SIGTERM become a flag that the loop checks after each step,
so that it writes a checkpoint before it exits. In a multi-process run the processes agree on
the flag every `AGREEMENT_EVERY` steps (one small all-gather), so all of them stop at the same
step."""

from __future__ import annotations

import signal

from jgen.parallel.distributed import agree

__all__ = ["AGREEMENT_EVERY", "StopSignal"]

# In a multi-process run, how often (in steps) the processes agree on whether to stop.
AGREEMENT_EVERY = 10


class StopSignal:
    """Context manager: while inside, SIGINT/SIGTERM set `received` (the signal's name) instead
    of stopping the process; a second signal gets the default behaviour (e.g.
    KeyboardInterrupt), so that a hung step can still be interrupted."""

    def __init__(self, *, multi_process: bool = False):
        self.received: str | None = None
        self.multi_process = multi_process
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name
        self._restore()

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __exit__(self, *exc):
        self._restore()

    def stop_message(self, done: int, last: bool) -> str | None:
        """After step ``done``: why the run stops, or None to go on. In a multi-process run
        the processes agree every `AGREEMENT_EVERY` steps and at the ``last`` step (every
        process must call this at the same steps)."""
        received = self.received is not None
        if self.multi_process:
            if done % AGREEMENT_EVERY and not last:
                return None
            received = agree(received)
        if not received:
            return None
        name = self.received or "a stop signal on another process"
        return f"received {name} at step {done}; checkpoint written"
