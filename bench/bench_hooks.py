"""Benchmark: pre + post hooks of N kwok pods, kubehooks.backup.pod_hooks vs the raw Python client.

Baseline (measured in the same run, on the same pods): the raw kubernetes Python client, one
ApiClient per worker thread, 8 workers, one websocket exec per hook reading the status channel
once - the floor for pods/exec from Python (~6.4 ms per hook on the local cluster); as it comes (it
offers the v5 subprotocol first, which the API server translates into SPDY) and offering only v4,
as pod_hooks does (the API server proxies it as it is).  Ours: two
invocations of the pod_hooks module (phase pre, then phase post) as Ansible runs them, start-up
included.  Rounds alternate; each side reports its median and spread, and the ratio of the medians with the
range of the per-round ratios.  Target: ours / baseline <= 1.3 at 200 and at 500 pods.

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/bench_hooks.py [--pods 200,500] [--parallelism 8] [--rounds 3]
    .venv/bin/python bench/bench_hooks.py --smoke      # CI: 5 pods, 1 round
    .venv/bin/python bench/bench_hooks.py --compare /path/to/other/checkout   # before/after in one run

--compare runs the pod_hooks module of another checkout of the collection as a third side of the same
alternating rounds (same pods, same load): a change's before and after, each against the same baseline.
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

from _common import ROOT, core_api, hook_pods, settle, kubeconfig, load_line, module_env, ratio_line, sizes, spread  # noqa: E402
import _walkthrough  # noqa: E402

import kubernetes  # noqa: E402
from kubernetes.stream import stream  # noqa: E402

PRE = ["/bin/true"]
POST = ["/bin/true"]


def raw_client_phase(config_path, namespace, names, command, workers, protocol=None):
    """``protocol``: the websocket subprotocol offered (None: the client's default, v5 then v4 since client 31)."""
    local = threading.local()
    extra = {"_headers": {"sec-websocket-protocol": protocol}} if protocol else {}

    def one(name):
        client = getattr(local, "client", None)
        if client is None:
            cfg = kubernetes.client.Configuration()
            kubernetes.config.load_kube_config(config_file=config_path, client_configuration=cfg)
            client = local.client = kubernetes.client.ApiClient(cfg)
        core = kubernetes.client.CoreV1Api(client)
        ws = stream(core.connect_get_namespaced_pod_exec, name, namespace, container="main", command=command,
                    stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False, **extra)
        ws.run_forever(timeout=30)
        status = ws.read_channel(3)
        ws.close()
        if '"Success"' not in status:
            raise RuntimeError("hook failed in %s: %s" % (name, status))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, names))


def module_phase(config_path, namespace, phase, parallelism, checkout=None):
    args = {"ANSIBLE_MODULE_ARGS": {"kubeconfig": config_path, "included_namespaces": [namespace],
                                    "phase": phase, "parallelism": parallelism}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(args, handle)
    try:
        env = module_env()
        if checkout is not None:
            env["PYTHONPATH"] = collections_path(checkout)
        proc = subprocess.run([sys.executable, os.path.join(checkout or ROOT, "plugins", "modules", "pod_hooks.py"),
                               handle.name], capture_output=True, text=True, check=False, env=env)
    finally:
        os.unlink(handle.name)
    result = json.loads(proc.stdout)
    if result.get("failed") or result.get("hooks_failed"):
        raise RuntimeError("pod_hooks failed: %s" % result.get("msg"))
    return result["hooks_attempted"]


def collections_path(checkout):
    """A directory where ``ansible_collections.kubehooks.backup`` is ``checkout`` (a symlink, made once)."""
    base = os.path.join(tempfile.gettempdir(), "kubehooks-bench-compare-%d" % os.getpid())
    link = os.path.join(base, "ansible_collections", "kubehooks", "backup")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.abspath(checkout), link)
    return base


def measure(core, config_path, pods, parallelism, rounds, compare=None):
    namespace = "bench-hooks-%d-%d" % (pods, os.getpid())
    raw, raw4, ours, other = [], [], [], []
    sides = ("raw", "raw4", "ours", "other") if compare else ("raw", "raw4", "ours")
    try:
        names = hook_pods(core, namespace, pods)
        for rnd in range(rounds):
            for side in (sides if rnd % 2 == 0 else sides[::-1]):
                start = time.monotonic()
                if side in ("raw", "raw4"):
                    protocol = "v4.channel.k8s.io" if side == "raw4" else None
                    raw_client_phase(config_path, namespace, names, PRE, parallelism, protocol)
                    raw_client_phase(config_path, namespace, names, POST, parallelism, protocol)
                    (raw4 if side == "raw4" else raw).append(time.monotonic() - start)
                else:
                    checkout = compare if side == "other" else None
                    attempted = module_phase(config_path, namespace, "pre", parallelism, checkout)
                    attempted += module_phase(config_path, namespace, "post", parallelism, checkout)
                    (other if side == "other" else ours).append(time.monotonic() - start)
                    assert attempted == 2 * pods, attempted
    finally:
        _walkthrough.delete_namespace(namespace, timeout=300)  # gone: its pods' deletion is the cluster's work
        settle()
    return raw, raw4, ours, other


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", default="200,500", help="comma-separated sizes (default 200,500)")
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds for each side")
    parser.add_argument("--smoke", action="store_true", help="CI smoke: 5 pods, 1 round")
    parser.add_argument("--compare", metavar="CHECKOUT",
                        help="also run the pod_hooks of this checkout of the collection (before/after)")
    opts = parser.parse_args()
    if opts.smoke:
        opts.pods, opts.rounds = "5", 1
    config_path = kubeconfig()
    core = core_api()
    print("== bench_hooks: pod_hooks pre+post vs the raw Python client; %s" % load_line(), flush=True)
    rows = [(pods,) + measure(core, config_path, pods, opts.parallelism, opts.rounds, opts.compare)
            for pods in sizes(opts.pods)]
    print("== results (%s at the end), %d alternating rounds, parallelism %d" % (load_line(), opts.rounds,
                                                                               opts.parallelism))
    for pods, raw, raw4, ours, other in rows:
        print("%d pods, %d hooks:" % (pods, 2 * pods))
        print("  baseline raw python client (%d workers): %s" % (opts.parallelism, spread(raw)))
        print("  the same offering only v4 (as ours):    %s" % spread(raw4))
        print("  kubehooks.backup.pod_hooks pre+post:     %s  (2 module runs)" % spread(ours))
        print("  " + ratio_line("ratio ours/baseline", ours, raw, 1.3))
        print("  " + ratio_line("ratio ours/baseline offering v4", ours, raw4, 1.3))
        if other:
            print("  --compare %s pre+post: %s" % (opts.compare, spread(other)))
            print("  " + ratio_line("ratio compared/baseline", other, raw, 1.3))
            print("  " + ratio_line("ratio ours/compared", ours, other, 1.0))


if __name__ == "__main__":
    main()
