"""Benchmark: the freeze window the application sees on Velero's walkthrough, the role vs the real Velero v1.18.3.

On namespace nginx-example (Velero's nginx walkthrough: one pod, pre hook ``fsfreeze --freeze /var/log/nginx``,
post hook ``--unfreeze``), while each tool backs the namespace up, ../shared/peer/freeze_probe.py writes and
fsyncs a small file on the nginx-logs PV from the host every ~5 ms: a write that lands while the filesystem is
frozen blocks until the thaw, so the longest blocked write is the freeze window the application sees.
Sides, alternating in the same rounds:
- ours without volume capture: the role kubehooks.backup.create;
- ours with volume capture: the same with ``create_default_volumes_to_fs_backup: true`` (when this checkout's
  role has that variable; otherwise reported as not measurable yet);
- Velero: ``velero backup create --include-namespaces nginx-example --snapshot-volumes=false --wait``
  (its run captures no volume data here: its file-system backup needs a node agent).
Targets: ours without capture <= 1.0x Velero's window, with capture <= 2x.

Holds /tmp/kubehooks-nginx-example.lock (as `make demo` and the tests do) while it uses the namespace; removes
the namespace at the end.

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/bench_freeze.py [--rounds 3] [--no-velero]
    .venv/bin/python bench/bench_freeze.py --smoke     # CI: 1 round, no Velero
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from _common import kubeconfig, load_line, median, ratio_line, spread  # noqa: E402
import _peer  # noqa: E402
import _walkthrough  # noqa: E402
from bench_role import role_has, run_role  # noqa: E402

SLOW = re.compile(r"slow write: started \S+ blocked ([0-9.]+) ms")
CAPTURE_VAR = "create_default_volumes_to_fs_backup"


def probed(pv_path, seconds, action):
    """Run ``action()`` while freeze_probe.py writes on the PV for ``seconds``; returns (its result, the longest
    blocked write in seconds, whether the probe outlasted the action)."""
    target = os.path.join(pv_path, ".kubehooks-bench-probe-%d" % os.getpid())
    probe = subprocess.Popen([sys.executable, _peer.probe_script(), target, "%.1f" % seconds],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)  # the probe is writing before the backup starts
        start = time.monotonic()
        result = action()
        covered = time.monotonic() - start + 0.3 < seconds
        out, err = probe.communicate(timeout=seconds + 60)
    finally:
        if probe.poll() is None:
            _walkthrough.thaw_from_host(pv_path)  # never leave the probe (or the application) blocked
            probe.kill()
            probe.wait(timeout=30)
    blocked = [float(m.group(1)) / 1000.0 for m in SLOW.finditer(out)]
    if probe.returncode != 0 or not blocked:
        raise SystemExit("freeze_probe.py failed (exit %s): %s %s" % (probe.returncode, out[-500:], err[-1000:]))
    return result, max(blocked), covered


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-velero", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="CI smoke: 1 round, no Velero")
    opts = parser.parse_args()
    if opts.smoke:
        opts.rounds, opts.no_velero = 1, True
    why_not = "--no-velero" if opts.no_velero else _peer.missing()
    print("== bench_freeze: freeze window on the walkthrough, the role vs Velero; %s" % load_line(), flush=True)
    if why_not and not opts.no_velero:
        print(why_not)
    sides = ["role"]
    if role_has(CAPTURE_VAR):
        sides.append("role+capture")
    else:
        print("ours with volume capture: not measurable yet (this checkout's role has no %s)" % CAPTURE_VAR)
    if not why_not:
        sides.append("velero")
    config_path = kubeconfig()
    storage = tempfile.mkdtemp(prefix="kubehooks-bench-freeze-")
    windows, took = {s: [] for s in sides}, {s: [] for s in sides}
    velero = _peer.Velero() if not why_not else None
    try:
        with _walkthrough.walkthrough() as pv_path:
            # The walkthrough may opt nginx-logs in to the capture (backup.velero.io/backup-volumes); without it,
            # "role" captures nothing and Velero attempts no file-system backup (it has no node agent here), and
            # "role+capture" selects the volume with create_default_volumes_to_fs_backup.
            _walkthrough.kubectl("annotate", "pod", "--namespace", _walkthrough.NAMESPACE, "-l", "app=nginx",
                                 "backup.velero.io/backup-volumes-")
            if velero:
                velero.use(1)
            for rnd in range(opts.rounds):
                for side in (sides if rnd % 2 == 0 else list(reversed(sides))):
                    if side == "velero":
                        name = "bench-freeze-%d-%d" % (rnd, os.getpid())
                        action = lambda name=name: velero.backup(name, _walkthrough.NAMESPACE)[0]  # noqa: E731
                    else:
                        extra = {CAPTURE_VAR: side == "role+capture"} if role_has(CAPTURE_VAR) else {}
                        action = lambda extra=extra: run_role(  # noqa: E731
                            config_path, _walkthrough.NAMESPACE, storage, extra_vars=extra)[0]
                    seconds = 2 * median(took[side]) + 2 if took[side] else (4.0 if side == "velero" else 20.0)
                    elapsed, window, covered = probed(pv_path, seconds, action)
                    if not covered:
                        raise SystemExit("the probe ended before the %s backup (%.1f s): raise its duration" % (side, elapsed))
                    took[side].append(elapsed)
                    windows[side].append(window)
                    print("  round %d, %-13s backup %.2f s, longest blocked write %.0f ms"
                          % (rnd + 1, side, elapsed, 1000 * window), flush=True)
    finally:
        if velero:
            velero.__exit__(None, None, None)
        shutil.rmtree(storage, ignore_errors=True)
    print("== results (%s at the end), %d alternating rounds" % (load_line(), opts.rounds))
    for side in sides:
        print("  %-13s longest blocked write %s; backup %s" % (side, spread(windows[side], "ms", 1000, "%.0f"),
                                                               spread(took[side])))
    if "velero" in sides:
        print("  " + ratio_line("freeze window role/velero (no capture)", windows["role"], windows["velero"], 1.0))
        if "role+capture" in sides:
            print("  " + ratio_line("freeze window role+capture/velero", windows["role+capture"], windows["velero"], 2.0))


if __name__ == "__main__":
    main()
