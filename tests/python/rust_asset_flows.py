"""Assets across the two SDKs, for tests/e2e/rust_assets.rs: a Python task persists an asset and a
Rust task (examples.assets, served by the example repository) restores it, then a Rust task
persists one and a Python task restores it.
"""

from pathlib import Path

import coflux as cf


@cf.stub("examples.assets")
def summarise(asset):
    ...


@cf.stub("examples.assets")
def persist_text(text):
    ...


@cf.task()
def py_persist(text):
    base = Path("made")
    (base / "sub").mkdir(parents=True)
    (base / "hello.txt").write_text(text)
    (base / "sub" / "data.csv").write_text("1,2\n")
    return cf.asset(at=base, name="python")


@cf.task()
def py_restore(asset):
    restored = asset.restore(match="*.txt", at="got")
    return {
        "contents": {path: p.read_text() for path, p in restored.items()},
        "entries": {e.path: [e.size, e.metadata] for e in asset.entries},
        "metadata": list(asset.metadata),
    }


@cf.workflow()
def cross_language(text):
    made_in_python = py_persist(text)
    rust_read = summarise(made_in_python)
    made_in_rust = persist_text(text)
    python_read = py_restore(made_in_rust)
    return {"rust_read": rust_read, "python_read": python_read}
