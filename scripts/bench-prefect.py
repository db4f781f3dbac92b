"""The remote bench's Python workload with Prefect 3, in-process, for comparison.

Usage: <venv with prefect 3>/bin/python scripts/bench-prefect.py [--quick]

Prefect runs in-process with its default ephemeral server (a local SQLite database, started
by the first flow run). Prints one JSON line with the same meaning as the remote bench's
Python keys: `seq_100_ms` (a flow calling a trivial task 100 times in sequence),
`fanout_100_ms` (a flow submitting 100 trivial tasks, then waiting for them all),
`latency_p50_ms` (an empty flow, called and returned).
"""

import json
import statistics
import sys
import time

from prefect import flow, task


@task
def noop():
    return None


@flow
def chain(n):
    for _ in range(n):
        noop()
    return n


@flow
def fanout(n):
    futures = [noop.submit() for _ in range(n)]
    for f in futures:
        f.result()
    return n


def timed(f, *args):
    started = time.perf_counter()
    assert f(*args) == args[0]
    return (time.perf_counter() - started) * 1000


def main():
    quick = "--quick" in sys.argv
    timed(chain, 1)  # starts the ephemeral server, warms up
    seq = statistics.median(timed(chain, 100) for _ in range(3))
    fan = statistics.median(timed(fanout, 100) for _ in range(3))
    lat = statistics.median(timed(chain, 0) for _ in range(5 if quick else 20))
    import prefect

    print(
        json.dumps(
            {
                "prefect": prefect.__version__,
                "seq_100_ms": round(seq, 1),
                "fanout_100_ms": round(fan, 1),
                "latency_p50_ms": round(lat, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
