"""Progress output: every step says what it does and how long it took; long steps show a heartbeat.

Progress goes to stderr, so stdout carries only the result (the ``export KUBECONFIG=...`` line).
"""
import contextlib
import subprocess
import sys
import threading
import time


class Failure(Exception):
    """A step failed; str() is the user-facing message (names the log to read)."""


def say(msg):
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(what, heartbeat=None):
    """Print ``==> what``, then ``    done in Xs``; with ``heartbeat`` seconds, print a line that often."""
    say(f"==> {what}")
    start = time.monotonic()
    stop = threading.Event()
    if heartbeat:
        def beat():
            while not stop.wait(heartbeat):
                say(f"    ... still {what} ({time.monotonic() - start:.0f}s)")
        threading.Thread(target=beat, daemon=True).start()
    try:
        yield
    except BaseException:
        say(f"    FAILED after {time.monotonic() - start:.1f}s: {what}")
        raise
    finally:
        stop.set()
    say(f"    done in {time.monotonic() - start:.1f}s")


def run(cmd, log=None, check=True, env=None, cwd=None, input=None):
    """Run argv; with ``log`` (a path), append its output there. Returns CompletedProcess (text)."""
    cmd = [str(c) for c in cmd]
    if log is None:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, input=input)
        if check and proc.returncode != 0:
            raise Failure(f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                          f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
                              input=input)
    if check and proc.returncode != 0:
        raise Failure(f"command failed ({proc.returncode}): {' '.join(cmd)}\n    see log: {log}")
    return proc
