"""Parity with coflux 0.12.0 through the real SDK: checkpoints read back by later attempts of
a step (retries, recurrences, suspensions, re-runs), `cf.flush()`, crashed executions (`cf.ExecutionCrashed`), and
behaviours Coflux's own suite checks (suspending twice, a recurrent target stopping on an
error, `poll(timeout)`, two `wait_for` arguments, a workflow's delay, `Retries(when=)`, a
workflow returning None, re-running in a child environment)."""

import os
import time

import coflux as cf

cursor = cf.Checkpoint("cursor", default=0)
total = cf.Checkpoint("total", default=0)
crashed_before = cf.Checkpoint("crashed_before", default=False)
visits = cf.Checkpoint("visits", default=0)


@cf.task(retries=cf.Retries(3, backoff=(0, 0)))
def resumable(goal):
    # No flush: the agent makes the writes durable before it reports the error.
    position = cursor.get() + 1
    cursor.set(position)
    if position < goal:
        raise RuntimeError(f"only at {position}")
    return position


@cf.workflow()
def retrying(goal):
    return resumable(goal)


@cf.workflow(recurrent=True, delay=0.2)
def accumulate(goal):
    value = total.update(lambda t: t + 1)
    cf.flush()
    return value if value >= goal else None


@cf.task()
def dies():
    os._exit(1)


@cf.workflow()
def survives_crash():
    try:
        dies()
        return "no crash"
    except cf.ExecutionCrashed:
        return "crashed"


@cf.task(retries=cf.Retries(1, backoff=(0, 0)))
def crash_once():
    if crashed_before.get():
        return "recovered"
    crashed_before.set(True)
    cf.flush()
    os._exit(1)


@cf.workflow()
def recovers():
    return crash_once()


def _bump(counter):
    """Counts calls in a file; returns the new count."""
    count = 1
    if os.path.exists(counter):
        with open(counter) as f:
            count = int(f.read()) + 1
    with open(counter, "w") as f:
        f.write(str(count))
    return count


@cf.workflow()
def suspend_twice(counter):
    count = _bump(counter)
    if count < 3:
        cf.suspend(0.2)
    return count


@cf.workflow()
def counts_visits():
    """Suspends until its third attempt; each attempt counts itself in a checkpoint."""
    count = visits.update(lambda v: v + 1)
    if count < 3:
        cf.suspend(0.2)
    return count


@cf.workflow(recurrent=True, delay=0.2)
def recur_until_error(counter):
    if _bump(counter) >= 2:
        raise RuntimeError("stopped at the second occurrence")
    return None


@cf.task()
def tens(x, seconds):
    time.sleep(seconds)
    return x * 10


@cf.workflow()
def polls_within_timeout():
    return tens.submit(7, 0.5).poll(30, default="pending")


@cf.task(wait=["a", "b"])
def joined(a, b):
    return a.result() + b.result()


@cf.workflow()
def waits_for_two():
    return joined(tens.submit(1, 0.2), tens.submit(2, 1.0))


@cf.workflow(delay=1.0)
def delayed():
    return "late"


@cf.task(retries=cf.Retries(2, backoff=(0, 0), when=ValueError))
def fails_once(marker):
    if _bump(marker) == 1:
        raise ValueError("first attempt")
    return "retried"


@cf.workflow()
def retried_when_matching(marker):
    return fails_once(marker)


@cf.workflow()
def returns_none():
    return None


@cf.workflow()
def agent_name():
    return os.environ.get("AGENT_NAME")
