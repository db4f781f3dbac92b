"""Workflows for the CLI's tests with a real agent, written with the real SDK."""

import coflux as cf


@cf.workflow()
def chatty(n: int) -> int:
    """Logs n lines, then returns n."""
    for i in range(n):
        cf.log_info("line {i}", i=i)
    print("the last line")
    return n


@cf.task()
def double(x: int) -> int:
    print(f"doubling {x}")
    return x * 2


@cf.workflow()
def doubles(x: int) -> int:
    """Calls a task, so the run has two steps."""
    print("before the task")
    return double(x)
