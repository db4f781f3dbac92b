"""Trivial workflows for the remote benchmark (`cargo bench -p coflux-server --bench remote`)."""

import coflux as cf


@cf.task()
def noop():
    return None


@cf.workflow()
def chain(n):
    for _ in range(n):
        noop()
    return n


@cf.workflow()
def fanout(n):
    handles = [noop.submit() for _ in range(n)]
    for h in handles:
        h.result()
    return n
