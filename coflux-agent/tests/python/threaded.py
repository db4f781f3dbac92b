"""A module that starts a thread at import: its executors cannot be forked safely."""

import threading
import time

import coflux as cf

_ticks = []


def _tick():
    while True:
        _ticks.append(1)
        time.sleep(0.05)


threading.Thread(target=_tick, name="ticker", daemon=True).start()


@cf.task()
def ticking() -> bool:
    # The thread runs in this process (it would not in a forked copy).
    before = len(_ticks)
    time.sleep(0.2)
    return len(_ticks) > before
