"""Streams through the real coflux 0.12.0 SDK: generator tasks and `cf.stream`, several
consumers each reading from the start, slice/partition views, errors raised in the producer,
and a slow producer whose items must survive a server restart."""

import os
import time

import coflux as cf


@cf.task()
def squares(n):
    for i in range(n):
        yield i * i


@cf.task()
def collect(stream):
    return list(stream)


@cf.workflow()
def consume(n):
    return list(squares(n))


@cf.workflow()
def two_consumers(n):
    stream = squares(n)
    first = collect.submit(stream)
    second = collect.submit(stream)
    mine = list(stream)
    return [first.result(), second.result(), mine]


@cf.workflow()
def views(n):
    stream = squares(n)
    return {
        "slice": collect(stream.slice(1, 4)),
        "even": collect(stream.partition(2, 0)),
        "odd": list(stream.partition(2, 1)),
        "stride": list(stream.stride(0, None, 3)),
    }


@cf.task()
def failing(n):
    for i in range(n):
        yield i
    raise ValueError(f"failed after {n}")


@cf.workflow()
def catch_error(n):
    seen = []
    try:
        for item in failing(n):
            seen.append(item)
    except ValueError as e:
        return {"seen": seen, "error": str(e)}
    return {"seen": seen, "error": None}


def _letters(text):
    for c in text:
        yield c


@cf.task()
def explicit(text):
    # Two streams from one task, through cf.stream, the second unbounded.
    return [cf.stream(_letters(text)), cf.stream(_letters(text.upper()), buffer=None)]


@cf.workflow()
def explicit_streams(text):
    lower, upper = explicit(text)
    return ["".join(lower), "".join(upper)]


@cf.task(streams=cf.Streams(buffer=2))
def slow(n, pause):
    for i in range(n):
        time.sleep(pause)
        yield {"i": i, "pid": os.getpid()}


@cf.workflow()
def slow_consumer(n, pause):
    return [item["i"] for item in slow(n, pause)]


@cf.task(streams=cf.Streams(timeout=0.5))
def stalls():
    yield 1
    time.sleep(5)
    yield 2


@cf.workflow()
def idle_timeout():
    seen = []
    try:
        for item in stalls():
            seen.append(item)
    except cf.ExecutionTimeout:
        return {"seen": seen, "timed_out": True}
    return {"seen": seen, "timed_out": False}


@cf.task()
def stamped(n):
    # Default buffer (0): lockstep with the slowest consumer.
    for _ in range(n):
        yield time.time()


@cf.task(streams=cf.Streams(buffer=2))
def stamped_ahead(n):
    for _ in range(n):
        yield time.time()


@cf.task(streams=cf.Streams(buffer=None))
def stamped_free(n):
    for _ in range(n):
        yield time.time()


@cf.workflow()
def paced(kind, n, pause):
    producer = {
        "lockstep": stamped,
        "ahead": stamped_ahead,
        "free": stamped_free,
        # A call-site override: the lockstep task, called with an unbounded buffer.
        "free_here": stamped.with_streams(cf.Streams(buffer=None)),
    }[kind]
    produced, finished = [], []
    for produced_at in producer(n):
        produced.append(produced_at)
        time.sleep(pause)
        finished.append(time.time())
    return {"produced": produced, "finished": finished}


progress = cf.Checkpoint("progress", default=0)


@cf.task()
def pausing(n, pause_at):
    # Suspends once, mid-stream; the attempt that resumes the step continues the same stream
    # from where the checkpoint says the first one stopped.
    start = progress.get()
    for i in range(start, n):
        if i == pause_at and start < pause_at:
            cf.suspend(0.3)
        yield {"i": i, "pid": os.getpid()}
        progress.set(i + 1)


@cf.workflow()
def resumed_stream(n, pause_at):
    items = list(pausing(n, pause_at))
    return {"items": [item["i"] for item in items], "pids": len({item["pid"] for item in items})}


seen = cf.Checkpoint("seen", default=[])


@cf.workflow()
def patient(n, pause):
    # Gives up its slot between items (a suspense scope shorter than the producer's pace): each
    # resumed attempt reads on from its cursor; what it derived is kept in a checkpoint.
    with cf.suspense(0.2):
        for item in slow(n, pause):
            seen.set(seen.get() + [item["i"]])
    return seen.get()


@cf.task()
def endless():
    i = 0
    while True:
        yield i
        i += 1


@cf.workflow()
def takes_two_then_waits():
    iterator = iter(endless())
    taken = [next(iterator), next(iterator)]
    cf.log_info("took {taken}", taken=taken)
    time.sleep(60)
    return taken
