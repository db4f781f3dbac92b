"""Parity with coflux 0.12.0 through the real SDK: checkpoints read back by later attempts of
a step (retries, recurrences), `cf.flush()`, and crashed executions (`cf.ExecutionCrashed`)."""

import os

import coflux as cf

cursor = cf.Checkpoint("cursor", default=0)
total = cf.Checkpoint("total", default=0)
crashed_before = cf.Checkpoint("crashed_before", default=False)


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
