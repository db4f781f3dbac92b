"""Metrics and progress through the real coflux 0.12.0 SDK (tests/e2e/metrics.rs)."""

import os
import time

import coflux as cf

loss = cf.Metric("loss", group="training", throttle=None)


@cf.workflow()
def train(n):
    """Records a `loss` series (every point), then iterates with `cf.progress`."""
    for i in range(n):
        loss.record(1.0 / (i + 1), at=float(i))
    total = 0
    for i in cf.progress(range(n)):
        total += i
    return n


@cf.workflow()
def halfway(marker):
    """Stops at 3/10 of its progress until the file `marker` exists."""
    for i in cf.progress(range(10)):
        if i == 3:
            while not os.path.exists(marker):
                time.sleep(0.05)
    return "done"
