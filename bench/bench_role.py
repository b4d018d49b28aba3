"""Benchmark: a whole backup of N hook pods, the role kubehooks.backup.create vs the real Velero v1.18.3.

Side by side on the same kwok pods (each with a pre and a post hook, ``/bin/true``), in the same run:
- ours: ``ansible-playbook`` running the role kubehooks.backup.create (start-up included);
- Velero: ``velero backup create NAME --include-namespaces NS --snapshot-volumes=false --wait``, with
  Velero's default of 1 item-block worker and with ``--item-block-worker-count=8`` (its parallel mode),
  the server a host process with a loopback S3 (../shared/peer/velero-up.sh).
Rounds alternate (the order is reversed every round, so the Velero server is restarted once per round;
after a restart one untimed backup of the same pods warms it up, so Velero is timed as a running server);
before each timed run the machine is left to settle (80% of the CPU idle for a second, at most 30 s), and
a size's namespace is deleted and gone before the next size starts.  Each side reports its median and spread, and the ratio ours/Velero of the medians with the range of
the per-round ratios.  Targets: ours / Velero's best setting <= 1.0 at each size, and our cost growing
no faster than Velero's from the smallest size to the largest.

When Velero is not built the Velero side is skipped with the command that builds it; the rest runs.

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/bench_role.py [--pods 200,500] [--rounds 3] [--velero-workers 1,8] [--no-velero]
    .venv/bin/python bench/bench_role.py --smoke      # CI: 5 pods, 1 round, no Velero
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _common import ROOT, core_api, hook_pods, settle, kubeconfig, load_line, median, ratio_line, sizes, spread  # noqa: E402
import _walkthrough  # noqa: E402
import _peer  # noqa: E402

ROLE_DEFAULTS = os.path.join(ROOT, "roles", "create", "defaults", "main.yml")


def role_has(variable):
    """Whether this checkout's role knows ``variable`` (the harness runs against whatever main has)."""
    with open(ROLE_DEFAULTS) as handle:
        return any(line.startswith(variable + ":") for line in handle)


def run_role(config_path, namespace, storage, name="bench", extra_vars=None):
    """ansible-playbook with the role; returns (seconds, TIMING lines of the task_timing callback, stdout)."""
    playbook = os.path.join(ROOT, "tests", "integration", "playbooks", "create.yml")
    extra = {"create_name": name, "create_included_namespaces": [namespace], "create_storage_dir": storage,
             "create_cluster": "bench", "create_auth": {"kubeconfig": config_path}}
    extra.update(extra_vars or {})
    shutil.rmtree(os.path.join(storage, "bench", "backups", name), ignore_errors=True)
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1",
               PATH=bindir + os.pathsep + os.environ["PATH"],
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "bench", "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="task_timing")
    start = time.monotonic()
    proc = subprocess.run([os.path.join(bindir, "ansible-playbook"), playbook, "-e", json.dumps(extra)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0 or "Completed" not in proc.stdout:
        raise SystemExit("the role failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
    return elapsed, [line for line in proc.stdout.splitlines() if line.startswith("TIMING")], proc.stdout


def backup_dir(storage, name="bench"):
    return os.path.join(storage, "bench", "backups", name)


def measure_size(core, config_path, pods, rounds, workers, velero, storage):
    namespace = "bench-role-%d-%d" % (pods, os.getpid())
    results = {"role": []}
    timings = []
    try:
        hook_pods(core, namespace, pods)
        order = ["role"] + ["velero-%d" % w for w in workers] if velero is not None else ["role"]
        for rnd in range(rounds):
            for side in (order if rnd % 2 == 0 else list(reversed(order))):
                if side != "role" and velero.use(int(side.split("-")[1])):
                    # A restarted server's first backup pays its start-up (plugins, discovery, caches): one
                    # untimed backup of the same pods first, so Velero is measured as a server that runs.
                    velero.backup("warm-%d-%s-%d-%d" % (pods, side, rnd, os.getpid()), namespace)
                settle(timeout=30)
                if side == "role":
                    elapsed, timing, _ = run_role(config_path, namespace, storage)
                    timings.append((elapsed, timing))
                else:
                    count = int(side.split("-")[1])
                    velero.use(count)
                    elapsed, status = velero.backup("bench-%d-%d-%d-%d" % (pods, count, rnd, os.getpid()), namespace)
                    attempted = status.get("hookStatus", {}).get("hooksAttempted", 0)
                    if attempted != 2 * pods or status.get("hookStatus", {}).get("hooksFailed"):
                        raise SystemExit("Velero ran %s hooks (expected %d): %s" % (attempted, 2 * pods, status))
                results.setdefault(side, []).append(elapsed)
                print("  %d pods, round %d, %-9s %.2f s" % (pods, rnd + 1, side, elapsed), flush=True)
    finally:
        _walkthrough.delete_namespace(namespace, timeout=300)  # gone: its pods' deletion is the cluster's work
        settle()
    mid = median(results["role"])
    timing = min(timings, key=lambda pair: abs(pair[0] - mid))[1]
    return results, timing


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", default="200,500", help="comma-separated sizes (default 200,500)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds for each side")
    parser.add_argument("--velero-workers", default="1,8", help="Velero's --item-block-worker-count settings")
    parser.add_argument("--no-velero", action="store_true", help="only our side")
    parser.add_argument("--smoke", action="store_true", help="CI smoke: 5 pods, 1 round, no Velero")
    opts = parser.parse_args()
    if opts.smoke:
        opts.pods, opts.rounds, opts.no_velero = "5", 1, True
    counts, workers = sizes(opts.pods), sizes(opts.velero_workers)
    config_path = kubeconfig()
    core = core_api()
    storage = tempfile.mkdtemp(prefix="kubehooks-bench-")
    why_not = "--no-velero" if opts.no_velero else _peer.missing()
    print("== bench_role: the role kubehooks.backup.create vs velero backup create --wait; %s" % load_line())
    if why_not and not opts.no_velero:
        print(why_not)
    rows = {}
    try:
        if why_not:
            for pods in counts:
                rows[pods] = measure_size(core, config_path, pods, opts.rounds, workers, None, storage)
        else:
            with _peer.Velero() as velero:
                for pods in counts:
                    rows[pods] = measure_size(core, config_path, pods, opts.rounds, workers, velero, storage)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    print("== results (%s at the end)" % load_line())
    best = {}
    for pods in counts:
        results, timing = rows[pods]
        print("%d pods (pre + post hook each), %d alternating rounds:" % (pods, opts.rounds))
        for side in sorted(results, key=lambda s: (s != "role", s)):
            label = "role kubehooks.backup.create" if side == "role" else (
                "velero backup create --wait, %s item-block worker(s)" % side.split("-")[1])
            print("  %-52s %s" % (label, spread(results[side])))
        veleros = [s for s in results if s != "role"]
        for side in veleros:
            print("  " + ratio_line("ratio role/%s" % side, results["role"], results[side], 1.0))
        if veleros:
            best[pods] = min(veleros, key=lambda s: median(results[s]))
            print("  Velero's best setting here: %s" % best[pods])
        print("  where the role's time went (the median run):")
        for line in timing:
            print("    " + line[len("TIMING "):])
    if len(counts) > 1 and best:
        small, large = counts[0], counts[-1]
        ours = median(rows[large][0]["role"]) / median(rows[small][0]["role"])
        theirs = median(rows[large][0][best[large]]) / median(rows[small][0][best[small]])
        print("growth %d -> %d pods: role x%.2f, Velero (best setting) x%.2f (target: role's <= Velero's: %s)"
              % (small, large, ours, theirs, "met" if ours <= theirs else "NOT met"))


if __name__ == "__main__":
    main()
