"""Cluster processes: started inside the cluster's netns, one log each, pid files with /proc starttime.

A pid file records the pid AND the process start time (field 22 of /proc/PID/stat), so a recycled pid is
never taken for ours and never signalled. Only recorded processes are ever stopped.
"""
import json
import os
import signal
import subprocess
import time

from .netns import NETNS_PATH
from .ui import Failure

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _starttime(pid):
    """(start time, state) of a live pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[19]), fields[0]


def _pidfile(cfg, name):
    return cfg.run_dir / f"{name}.pid"


def record(cfg, name):
    try:
        return json.loads(_pidfile(cfg, name).read_text())
    except (OSError, ValueError):
        return None


def recorded(cfg):
    """Names of every component with a pid file."""
    if not cfg.run_dir.exists():
        return []
    return sorted(p.stem for p in cfg.run_dir.glob("*.pid"))


def alive(cfg, name):
    """True when the recorded pid runs and is the very process we started (same start time)."""
    rec = record(cfg, name)
    if not rec:
        return False
    now = _starttime(rec["pid"])
    return now is not None and now[0] == rec["starttime"] and now[1] != "Z"


def log_path(cfg, name):
    return cfg.log_dir / f"{name}.log"


def start(cfg, name, argv, env=None):
    """Start argv inside the cluster netns (nsenter changes only the network namespace)."""
    argv = [str(a) for a in argv]
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    log = log_path(cfg, name)
    full_env = {"PATH": PATH, "HOME": os.environ.get("HOME", "/root"), **(env or {})}
    with open(log, "a") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(["nsenter", f"--net={NETNS_PATH}", "--", *argv],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=full_env, start_new_session=True, close_fds=True)
    st = _starttime(proc.pid)
    if st is None:
        raise Failure(f"{name} exited at once; see log: {log}")
    _pidfile(cfg, name).write_text(json.dumps({"pid": proc.pid, "starttime": st[0], "argv": argv[:1]}))
    return proc.pid


def check_alive(cfg, name):
    if not alive(cfg, name):
        raise Failure(f"{name} is not running; see log: {log_path(cfg, name)}")


def stop(cfg, name, timeout=20):
    """SIGTERM the recorded process (if it is still ours), SIGKILL after timeout; remove the pid file."""
    rec = record(cfg, name)
    if rec and alive(cfg, name):
        pid = rec["pid"]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(cfg, name) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if alive(cfg, name):
            os.kill(pid, signal.SIGKILL)
            while alive(cfg, name):
                _reap(pid)
                time.sleep(0.05)
    _pidfile(cfg, name).unlink(missing_ok=True)


def _reap(pid):
    """Reap the process if it is our own child (started by this very Python process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
