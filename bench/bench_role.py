"""Benchmark: the whole role kubehooks.backup.create (freeze -> export -> thaw) on N hook pods.

Baseline, measured in the same run on the same pods: the floor of the same work with the raw
Python client (pre hooks of every pod with 8 workers, a raw LIST of the namespace's pods, post
hooks), i.e. what no Ansible role can beat.  For reference it also prints Velero v1.18.3's time on
this local cluster for 200 hook-annotated pods (6.2 s, measured once outside this run: Velero needs
an object store this benchmark does not start).  Target: the role <= Velero's time.

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/bench_role.py [--pods 200]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _common import ROOT, core_api, hook_pods, kubeconfig  # noqa: E402
from bench_hooks import raw_client_phase  # noqa: E402

VELERO_REFERENCE = {200: 6.2, 500: 8.3}  # seconds, Velero v1.18.3 measured on this kind of machine (README, Benchmarks)


def run_role(config_path, namespace, storage):
    playbook = os.path.join(ROOT, "tests", "integration", "playbooks", "create.yml")
    extra = {"create_name": "bench", "create_included_namespaces": [namespace], "create_storage_dir": storage,
             "create_cluster": "bench", "create_auth": {"kubeconfig": config_path}}
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
    return elapsed, [line for line in proc.stdout.splitlines() if line.startswith("TIMING")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="best of N rounds for each side")
    opts = parser.parse_args()
    config_path = kubeconfig()
    core = core_api()
    namespace = "bench-role-%d" % os.getpid()
    storage = tempfile.mkdtemp(prefix="kubehooks-bench-")
    try:
        names = hook_pods(core, namespace, opts.pods)
        floor, role = [], []
        for _ in range(opts.rounds):
            start = time.monotonic()
            raw_client_phase(config_path, namespace, names, ["/bin/true"], 8)
            core.list_namespaced_pod(namespace, _preload_content=False).data
            raw_client_phase(config_path, namespace, names, ["/bin/true"], 8)
            floor.append(time.monotonic() - start)
            shutil.rmtree(os.path.join(storage, "bench"), ignore_errors=True)
            elapsed, timing = run_role(config_path, namespace, storage)
            if not role or elapsed < min(role):
                best_timing = timing
            role.append(elapsed)
        best_floor, best_role = min(floor), min(role)
        print("pods: %d (pre + post hooks each), best of %d" % (opts.pods, opts.rounds))
        print("baseline raw client floor (pre, LIST, post; 8 workers): %.2f s" % best_floor)
        print("role kubehooks.backup.create via ansible-playbook:      %.2f s" % best_role)
        print("ratio role/floor: %.2f" % (best_role / best_floor))
        print("where the role's time went (best run):")
        for line in best_timing:
            print("  " + line[len("TIMING "):])
        if opts.pods in VELERO_REFERENCE:
            print("Velero v1.18.3 reference (not this run): %.1f s -> role/Velero: %.2f  (target <= 1.00)"
                  % (VELERO_REFERENCE[opts.pods], best_role / VELERO_REFERENCE[opts.pods]))
    finally:
        core.delete_namespace(namespace)
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
