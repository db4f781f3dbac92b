"""Workflows for the end-to-end tests, written with the real coflux 0.12.0 SDK."""

import os
import time

import coflux as cf


def agent_name():
    return os.environ.get("AGENT_NAME", "?")


@cf.task(cache=True)
def square(x):
    print(f"squaring {x}")
    return x * x


@cf.task()
def boom(n):
    raise ValueError(f"bad value {n}")


@cf.workflow()
def squares(n):
    cf.log_info("squaring {n} numbers", n=n)
    handles = [square.submit(i) for i in range(n)]
    cf.select(handles)
    total = sum(h.result() for h in handles)
    try:
        boom(n)
    except ValueError as e:
        return {"total": total, "caught": str(e)}
    return {"total": total}


@cf.workflow()
def fails(n):
    boom(n)


@cf.task(requires={"gpu": ["yes"]})
def where_gpu():
    return agent_name()


@cf.task()
def where_any():
    return agent_name()


@cf.workflow()
def routed():
    return {"gpu": where_gpu(), "any": where_any()}


@cf.task(retries=1)
def slow(seconds):
    time.sleep(seconds)
    return agent_name()


@cf.workflow()
def sleepy(seconds):
    return slow(seconds)


@cf.workflow(retries=1)
def nap(seconds):
    if agent_name() == "a":
        time.sleep(seconds)
    return agent_name()


@cf.task(cache=True)
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


@cf.workflow()
def fib_flow(n):
    return fib(n)


@cf.task(memo=True)
def remembered(x):
    return {"x": x, "agent": agent_name()}


@cf.workflow()
def memo_twice(x):
    a = remembered(x)
    b = remembered(x)
    c = remembered(x + 1)
    return [a == b, a == c]


@cf.workflow(timeout=1)
def hang_flow():
    time.sleep(30)


@cf.task(delay=1)
def later():
    return "later"


@cf.workflow()
def delayed():
    return later()


@cf.task()
def effect(tag, pause):
    """After `pause` seconds, appends `tag` to the file named by COFLUX_SIDE_EFFECTS."""
    time.sleep(pause)
    path = os.environ.get("COFLUX_SIDE_EFFECTS")
    if path:
        with open(path, "a") as f:
            f.write(tag + "\n")
    return tag


@cf.workflow()
def effects(name, n, pause):
    return [effect(f"{name}:{i}", pause) for i in range(n)]
