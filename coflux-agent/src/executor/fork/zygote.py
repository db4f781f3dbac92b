"""Fork server of the Coflux-rs agent (shipped inside the agent, run as a script).

Usage: python zygote.py SOCKET MODULE...

Imports `coflux` and the repository's modules once, then forks one child per execution.
A child connects back to the agent's Unix socket SOCKET twice (its stdin/stdout, then its
stderr), sends a fixed-size hello (16 hex digits of token + kind + newline) on each, and
runs the `coflux` package's unchanged executor (what `python -m coflux execute` runs).

Control lines, agent -> zygote (on fd 0): `fork TOKEN`, `kill PID`.
Zygote -> agent (on fd 1): `ready JSON`, `forked TOKEN PID`, `failed TOKEN MESSAGE`,
`exited PID STATUS` (the raw wait status). Anything the imports print goes to stderr.
The zygote exits when its stdin closes; its children die with it (Linux).
"""

import gc
import io
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback

gc.disable()

# The control channel moves off fds 0 and 1, which then point at /dev/null and stderr, so
# that nothing an import prints can corrupt it.
CONTROL_IN = os.dup(0)
CONTROL_OUT = os.dup(1)
_devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(_devnull, 0)
os.close(_devnull)
os.dup2(2, 1)

SOCKET_PATH = sys.argv[1]
MODULES = sys.argv[2:]
# Like `python -m`: the working directory comes first on the import path.
sys.path[0] = os.getcwd()

STDIO_ENCODING = sys.stdout.encoding
STDIO_ERRORS = sys.stdout.errors
STDERR_ERRORS = sys.stderr.errors
# `python -u` / PYTHONUNBUFFERED
UNBUFFERED = getattr(sys.stdout, "write_through", False)


def send(line):
    data = (line + "\n").encode()
    while data:
        data = data[os.write(CONTROL_OUT, data) :]


def socket_fds():
    """Descriptors of this process that are sockets (Linux; empty elsewhere)."""
    found = []
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                found.append(int(name))
        except OSError:
            pass
    return found


def preload():
    """Imports coflux and the modules; gives why forking is unsafe (None when it is safe)."""
    import coflux  # noqa: F401
    import coflux.__main__  # noqa: F401
    import coflux.executor  # noqa: F401

    failed = []
    for module in MODULES:
        try:
            __import__(module)
        except BaseException:  # noqa: BLE001
            # The child imports it again and reports the error like the package does.
            failed.append(module)
        if threading.active_count() > 1:
            names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
            return f"module '{module}' started a thread at import ({', '.join(names)})", failed
        if socket_fds():
            return f"module '{module}' opened a socket at import", failed
    return None, failed


def stdio(fd, mode, errors):
    """A standard stream on `fd`, made the way the interpreter makes them at start."""
    unbuffered = UNBUFFERED and mode == "w"
    raw = io.FileIO(fd, mode, closefd=False)
    binary = raw if unbuffered else (io.BufferedWriter if mode == "w" else io.BufferedReader)(raw)
    return io.TextIOWrapper(
        binary,
        encoding=STDIO_ENCODING,
        errors=errors,
        line_buffering=fd == 2 and not unbuffered,
        write_through=unbuffered,
    )


def child_main(token):
    """In the forked child: connect stdio to the agent and run `coflux execute`."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.close(CONTROL_IN)
    os.close(CONTROL_OUT)
    os.close(WAKE_R)
    os.close(WAKE_W)
    if LIBC is not None:
        try:
            LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001, S110
            pass
        if os.getppid() != ZYGOTE_PID:
            os._exit(1)
    for fds, kind in (((0, 1), b"o"), ((2,), b"e")):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(SOCKET_PATH)
        conn.sendall(token.encode() + kind + b"\n")
        for fd in fds:
            os.dup2(conn.fileno(), fd)
        conn.close()
    sys.stdin = sys.__stdin__ = stdio(0, "r", STDIO_ERRORS)
    sys.stdout = sys.__stdout__ = stdio(1, "w", STDIO_ERRORS)
    sys.stderr = sys.__stderr__ = stdio(2, "w", STDERR_ERRORS)
    import coflux.__main__ as entry
    from coflux.executor import run_executor

    sys.argv = [entry.__file__, "execute"]
    gc.enable()
    code = 0
    try:
        # What `python -m coflux execute` runs once its arguments are parsed (building the
        # argument parser would cost each child more CPU than the execution itself).
        code = run_executor()
    except SystemExit as e:
        code = e.code
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    # What interpreter shutdown would do, without tearing every module down.
    try:
        if hasattr(threading, "_shutdown"):
            threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110
            pass
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    os._exit(code & 0xFF)


def fork(token, children):
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as e:
        send(f"failed {token} {e}")
        return
    if pid == 0:
        try:
            child_main(token)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            os._exit(70)
    children.add(pid)
    send(f"forked {token} {pid}")


def reap(children):
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        send(f"exited {pid} {status}")


def serve():
    children = set()
    buffer = b""
    while True:
        try:
            readable, _, _ = select.select([CONTROL_IN, WAKE_R], [], [], 1.0)
        except InterruptedError:
            readable = []
        if WAKE_R in readable:
            try:
                os.read(WAKE_R, 4096)
            except BlockingIOError:
                pass
        reap(children)
        if CONTROL_IN not in readable:
            continue
        chunk = os.read(CONTROL_IN, 65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            command, _, argument = line.decode().partition(" ")
            if command == "fork":
                fork(argument, children)
            elif command == "kill":
                pid = int(argument)
                if pid in children:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass


def libc():
    """The C library, to ask for a parent-death signal in children (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except Exception:  # noqa: BLE001
        return None


LIBC = libc()
ZYGOTE_PID = os.getpid()
signal.signal(signal.SIGINT, signal.SIG_IGN)
WAKE_R, WAKE_W = os.pipe()
os.set_blocking(WAKE_R, False)
os.set_blocking(WAKE_W, False)
signal.set_wakeup_fd(WAKE_W)
signal.signal(signal.SIGCHLD, lambda *_: None)

unsafe, failed = preload()
sys.stdout.flush()
sys.stderr.flush()
send("ready " + json.dumps({"unsafe": unsafe, "failed": failed, "pid": ZYGOTE_PID}))
if unsafe is None:
    gc.freeze()
    serve()
