"""A module that fails to import (discovery reports it)."""

import coflux as cf


@cf.task()
def unreachable() -> None:
    pass


raise RuntimeError("broken on purpose")
