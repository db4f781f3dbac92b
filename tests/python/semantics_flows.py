"""Orchestration semantics through the real coflux 0.12.0 SDK: suspension, wait_for, defer,
recurrence, workflows calling workflows, run-level memo and unretryable errors."""

import os
import time

import coflux as cf


@cf.task()
def slow_value(x, seconds):
    time.sleep(seconds)
    return x * 10


@cf.workflow()
def patient(x):
    # Waits at most 0.2 s before suspending; the resumed attempt gets the same child.
    handle = slow_value.submit(x, 1.5)
    with cf.suspense(0.2):
        return handle.result() + 1


@cf.workflow()
def suspend_once(marker):
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("suspended")
        cf.suspend(1.0)
    return "resumed"


@cf.task(wait=["upstream"])
def downstream(upstream):
    return upstream.result() + 1


@cf.workflow()
def waits():
    upstream = slow_value.submit(4, 1.0)
    return downstream(upstream)


@cf.task(defer=True, delay=1.0)
def debounced(key):
    return f"ran {key}"


@cf.workflow()
def debounce():
    first = debounced.submit("k")
    second = debounced.submit("k")
    return [first.result(), second.result()]


@cf.workflow(recurrent=True, delay=0.3)
def ticker(counter):
    count = 1
    if os.path.exists(counter):
        with open(counter) as f:
            count = int(f.read()) + 1
    with open(counter, "w") as f:
        f.write(str(count))
    return count if count >= 3 else None


@cf.workflow()
def inner(x):
    return x + 1


@cf.workflow()
def outer(x):
    return inner(x) * 2


@cf.workflow()
def sleeper(seconds):
    time.sleep(seconds)
    return "woke"


@cf.workflow()
def outer_sleeper():
    return sleeper(60)


@cf.task()
def counted(x):
    return x


@cf.workflow(memo=True)
def memo_run():
    first = counted.submit(1)
    second = counted.submit(1)
    return [first.result(), second.result()]


@cf.task(retries=cf.Retries(3, backoff=(0, 0), when=ValueError))
def picky(kind):
    if kind == "value":
        raise ValueError("retry me")
    raise TypeError("do not retry me")


@cf.workflow()
def unretryable():
    return picky("type")


@cf.workflow()
def grouped():
    with cf.group("batch"):
        handles = [counted.submit(i) for i in range(3)]
    alone = counted.submit(9)
    return sum(h.result() for h in handles) + alone.result()


@cf.workflow()
def limited_fan_out():
    handles = [slow_value.submit(i, 0.5) for i in range(3)]
    return [h.result() for h in handles]


@cf.task()
def agent_here():
    return os.environ.get("AGENT_NAME", "?")


@cf.workflow(requires={"gpu": "yes"})
def on_gpu():
    return [agent_here() for _ in range(3)]


@cf.task()
def big_text(n):
    return "x" * n


@cf.task()
def text_length(text):
    return len(text)


@cf.workflow()
def big_round_trip(n):
    # A large result, then the same value as another task's argument.
    return text_length(big_text(n))


@cf.workflow()
def first_wins():
    # Submitted in this order on every attempt, so a resumed attempt gets the same children.
    slow = slow_value.submit(1, 4.0)
    quick = slow_value.submit(2, 1.0)
    with cf.suspense(0.2):
        winner, remaining = cf.select([slow, quick], cancel_remaining=True)
    return {"winner": winner.result(), "remaining": len(remaining)}


@cf.task(cache=cf.Cache(params=["key"], namespace="shared", version="1"))
def cached_a(key, noise):
    return f"a:{key}:{noise}"


@cf.task(cache=cf.Cache(params=["key"], namespace="shared", version="1"))
def cached_b(key, noise):
    return f"b:{key}:{noise}"


@cf.task(cache=cf.Cache(params=["key"], namespace="shared", version="2"))
def cached_v2(key, noise):
    return f"v2:{key}:{noise}"


@cf.task(cache=cf.Cache(0.5))
def short_lived(x):
    return time.time()


@cf.workflow()
def cache_options():
    a = cached_a("k", 1)
    b = cached_b("k", 2)  # same namespace, version and chosen parameter: a's result
    v2 = cached_v2("k", 3)  # another version: not cached
    t1 = short_lived(1)
    t2 = short_lived(1)  # within max age: t1's result
    time.sleep(0.8)
    t3 = short_lived(1)  # past max age: runs again
    return {"a": a, "b": b, "v2": v2, "same": t1 == t2, "expired": t3 != t1}


@cf.task()
def forever():
    time.sleep(60)


@cf.workflow(timeout=1.5, retries=1)
def times_out():
    return forever.submit().result()


@cf.workflow()
def polls():
    quick = slow_value.submit(5, 0.0)
    slow = slow_value.submit(6, 10.0)
    # quick has finished by now (even spawned on a busy machine); slow has not
    time.sleep(3.0)
    return {
        "ready": quick.poll(),
        "not_ready": slow.poll(default="pending"),
        "within": slow.poll(0.1, default="pending"),
    }
