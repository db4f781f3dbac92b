#!/usr/bin/env python3
"""Recovery time of a server with many runs in its database.

Submits N runs (default 10,000) of `examples.repo/chain(0)` through a server and a Rust agent,
kills the server with SIGKILL, restarts it, and prints (last line, JSON) how long it takes to
answer its health check, to answer a request to the project, and to finish a new run.

    cargo build --release --bins && scripts/bench-recovery.py [N]

Binaries come from $COFLUX_BIN_DIR, else target/release (or $CARGO_TARGET_DIR/release).
"""
import json, os, signal, subprocess, sys, time, urllib.request, tempfile
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = os.environ.get("COFLUX_BIN_DIR") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
data = tempfile.mkdtemp()
port = int(os.environ.get("COFLUX_BENCH_PORT", "7791"))
url = f"http://127.0.0.1:{port}"
def req(method, path, body=None, timeout=60):
    r = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")
def start():
    p = subprocess.Popen([f"{B}/coflux-server", "--data-dir", data, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.time()
    while True:
        try:
            req("GET", "/api/health", timeout=1); break
        except Exception:
            time.sleep(0.01)
    return p, t
server, _ = start()
req("POST", "/api/projects", {"name": "demo"})
req("POST", "/api/projects/demo/environments", {"name": "production"})
agent = subprocess.Popen([f"{B}/coflux-agent", "--server", url, "--project", "demo", "--environment", "production",
                          "--adapter", f"{B}/coflux-example-repo", "--directory", ROOT, "--register"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(2)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
t = time.time()
runs = []
for i in range(N):
    r = req("POST", "/api/projects/demo/environments/production/runs", {"module": "examples.repo", "target": "chain", "arguments": [0]})
    runs.append(r["run_id"])
print(f"submitted {N} runs in {time.time()-t:.1f} s")
last = req("GET", f"/api/projects/demo/runs/{runs[-1]}/result?wait=120")
print("last result", last.get("status"))
os.kill(server.pid, signal.SIGKILL); server.wait()
server, t0 = start()
t_health = time.time() - t0
req("GET", "/api/projects/demo/runs?limit=1")
t_project = time.time() - t0
r = req("POST", "/api/projects/demo/environments/production/runs", {"module": "examples.repo", "target": "chain", "arguments": [1], "allow_unregistered": True})
res = req("GET", f"/api/projects/demo/runs/{r['run_id']}/result?wait=60")
t_run = time.time() - t0
print(json.dumps({"runs_in_db": N, "health_ms": round(t_health*1000), "first_project_request_ms": round(t_project*1000), "new_run_done_ms": round(t_run*1000), "status": res.get("status")}))
agent.kill(); server.kill()
