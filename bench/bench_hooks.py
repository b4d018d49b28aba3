"""Benchmark: pre + post hooks of N kwok pods, kubehooks.backup.pod_hooks vs the raw Python client.

Baseline (measured in the same run, on the same pods): the raw kubernetes Python client, one
ApiClient per worker thread, 8 workers, one websocket exec per hook reading the status channel
once - the floor for pods/exec from Python (~6.4 ms per hook on the local cluster).  Ours: two
invocations of the pod_hooks module (phase pre, then phase post) as Ansible runs them, start-up
included.  Target: ours / baseline <= 1.5.

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/bench_hooks.py [--pods 200] [--parallelism 8]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from _common import ROOT, core_api, hook_pods, kubeconfig, module_env  # noqa: E402

import kubernetes  # noqa: E402
from kubernetes.stream import stream  # noqa: E402

PRE = ["/bin/true"]
POST = ["/bin/true"]


def raw_client_phase(config_path, namespace, names, command, workers):
    local = threading.local()

    def one(name):
        client = getattr(local, "client", None)
        if client is None:
            cfg = kubernetes.client.Configuration()
            kubernetes.config.load_kube_config(config_file=config_path, client_configuration=cfg)
            client = local.client = kubernetes.client.ApiClient(cfg)
        core = kubernetes.client.CoreV1Api(client)
        ws = stream(core.connect_get_namespaced_pod_exec, name, namespace, container="main", command=command,
                    stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
        ws.run_forever(timeout=30)
        status = ws.read_channel(3)
        ws.close()
        if '"Success"' not in status:
            raise RuntimeError("hook failed in %s: %s" % (name, status))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, names))


def module_phase(config_path, namespace, phase, parallelism):
    args = {"ANSIBLE_MODULE_ARGS": {"kubeconfig": config_path, "included_namespaces": [namespace],
                                    "phase": phase, "parallelism": parallelism}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(args, handle)
    try:
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "plugins", "modules", "pod_hooks.py"), handle.name],
                              capture_output=True, text=True, check=False,
                              env=module_env())
    finally:
        os.unlink(handle.name)
    result = json.loads(proc.stdout)
    if result.get("failed") or result.get("hooks_failed"):
        raise RuntimeError("pod_hooks failed: %s" % result.get("msg"))
    return result["hooks_attempted"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="best of N rounds for each side")
    opts = parser.parse_args()
    config_path = kubeconfig()
    core = core_api()
    namespace = "bench-hooks-%d" % os.getpid()
    try:
        names = hook_pods(core, namespace, opts.pods)
        raw, ours = [], []
        for _ in range(opts.rounds):
            start = time.monotonic()
            raw_client_phase(config_path, namespace, names, PRE, opts.parallelism)
            raw_client_phase(config_path, namespace, names, POST, opts.parallelism)
            raw.append(time.monotonic() - start)
            start = time.monotonic()
            attempted = module_phase(config_path, namespace, "pre", opts.parallelism)
            attempted += module_phase(config_path, namespace, "post", opts.parallelism)
            ours.append(time.monotonic() - start)
            assert attempted == 2 * opts.pods, attempted
        best_raw, best_ours = min(raw), min(ours)
        print("pods: %d, hooks: %d, parallelism: %d, best of %d" % (opts.pods, 2 * opts.pods, opts.parallelism, opts.rounds))
        print("baseline raw python client (8 workers): %.2f s  (%.1f ms/hook)" % (best_raw, 1000 * best_raw / (2 * opts.pods)))
        print("kubehooks.backup.pod_hooks pre+post:    %.2f s  (%.1f ms/hook, 2 module runs)" % (
            best_ours, 1000 * best_ours / (2 * opts.pods)))
        print("ratio ours/baseline: %.2f  (target <= 1.50)" % (best_ours / best_raw))
    finally:
        core.delete_namespace(namespace)


if __name__ == "__main__":
    main()
