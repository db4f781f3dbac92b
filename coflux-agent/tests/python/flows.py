"""Workflows and tasks for the executor pool's tests, written with the real SDK."""

import os
import time

import coflux as cf

# Import-time output goes straight to stdout, outside the protocol.
print("flows imported")


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


@cf.task(cache=True, retries=2, memo=True, requires={"gpu": True})
def add(a: int, b: int = 1) -> int:
    """Adds two numbers."""
    print(f"adding {a}+{b}")
    return a + b


@cf.task()
def boom(n: int) -> int:
    raise ValueError(f"bad value {n}")


@cf.task()
def make_point(x: int, y: int) -> Point:
    return Point(x, y)


@cf.task()
def big(n: int) -> str:
    return "x" * n


@cf.task()
def sleepy(seconds: float) -> float:
    cf.log_info("sleeping in {pid}", pid=os.getpid())
    time.sleep(seconds)
    return seconds


@cf.workflow()
def calls(n: int) -> int:
    cf.log_info("starting with {n}", n=n)
    return add(n, 1)


@cf.workflow()
def fan_out(n: int) -> dict:
    handles = [add.submit(i, i) for i in range(n)]
    winner, _remaining = cf.select(handles)
    slow = sleepy.submit(30)
    polled = slow.poll(0.05, default="pending")
    slow.cancel()
    return {
        "total": sum(h.result() for h in handles),
        "winner": winner.result(),
        "polled": polled,
    }


@cf.workflow()
def catches(n: int) -> str:
    try:
        boom(n)
    except ValueError as e:
        return f"caught {type(e).__name__}: {e}"
    return "not caught"


@cf.workflow()
def points(x: int) -> list:
    p = make_point(x, x * 2)
    return [type(p).__name__, p.x, p.y]


@cf.workflow()
def measure(n: int) -> int:
    return len(big(n))


@cf.task()
def crash(code: int) -> None:
    # Straight to the process's stderr, outside the adapter's capture.
    os.write(2, b"about to crash\n")
    os._exit(code)


@cf.task()
def killed() -> None:
    # Killed by a signal, without a word.
    os.kill(os.getpid(), 9)


# Module-level state that executions mutate: each execution runs in its own process, so none
# sees another's changes.
COUNTER = {"n": 0}


@cf.task()
def bump(pause: float) -> list:
    COUNTER["n"] += 1
    time.sleep(pause)
    return [COUNTER["n"], os.getpid(), os.getppid()]
