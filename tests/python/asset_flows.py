"""Asset workflows for the end-to-end tests, written with the real coflux 0.12.0 SDK.

`produce` runs on the agent providing site:a, `consume` on the one providing site:b, so the
files really travel through the server's blob store and asset records.
"""

import os
from pathlib import Path

import coflux as cf


def agent_name():
    return os.environ.get("AGENT_NAME", "?")


def files_under(directory):
    base = Path(directory)
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


@cf.task(requires={"site": ["a"]})
def produce(text):
    Path("out.txt").write_text(text)
    report = Path("report")
    (report / "data").mkdir(parents=True)
    (report / "summary.txt").write_text(f"summary of {text}")
    (report / "data" / "one.csv").write_text("1,2\n")
    (report / "data" / "two.csv").write_text("3,4\n")
    (report / "notes.md").write_text("# notes\n")
    single = cf.asset("out.txt", name="single")
    folder = cf.asset(at=report, name="folder")
    csvs = cf.asset(match="data/*.csv", at=report)
    try:
        cf.asset({"../escape.txt": "out.txt"})
        escape = "accepted"
    except RuntimeError as e:
        escape = str(e)
    return {
        "agent": agent_name(),
        "single": single,
        "folder": folder,
        "csvs": csvs,
        "escape": escape,
        "ids": [single.id, folder.id, csvs.id],
    }


@cf.task(requires={"site": ["b"]})
def consume(made):
    single, folder, csvs = made["single"], made["folder"], made["csvs"]
    restored = single.restore()
    subset = folder.restore(match="data/*.csv", at="subset")
    composed = cf.asset({"renamed/one.csv": folder["data/one.csv"]}, name="composed")
    return {
        "agent": agent_name(),
        "text": Path("out.txt").read_text(),
        "restored": {path: str(p.relative_to(Path.cwd())) for path, p in restored.items()},
        "entries": {e.path: [e.size, e.metadata] for e in folder.entries},
        "subset": sorted(subset),
        "subset_files": files_under("subset"),
        "csvs": sorted(e.path for e in csvs.entries),
        "head": folder["summary.txt"].read(0, 7).decode(),
        "composed": composed.id,
        "composed_entries": [e.path for e in composed.entries],
        "missing": "nope.txt" in folder,
    }


@cf.workflow()
def assets_across_agents(text):
    made = produce(text)
    used = consume(made)
    return {"made": {k: made[k] for k in ("agent", "escape", "ids")}, "used": used}


@cf.task(requires={"site": ["b"]})
def restore_by_id(asset_id):
    try:
        cf.Asset(asset_id).restore()
        outcome = "restored"
    except RuntimeError as e:
        outcome = str(e)
    # The working directory's parent is the execution's private scratch directory.
    return {"outcome": outcome, "escaped": Path("../escaped.txt").exists()}


@cf.workflow()
def restore_asset(asset_id):
    return restore_by_id(asset_id)
