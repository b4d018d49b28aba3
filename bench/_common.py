"""Shared set-up of the benchmarks: the local cluster's API, fake-node pods, namespaces."""
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from conftest import COLLECTIONS_PATH  # noqa: E402  (importing it makes ansible_collections.kubehooks.backup importable)
from localcluster import config as lc_config, fake as lc_fake  # noqa: E402

import kubernetes  # noqa: E402

HOOK_ANNOTATIONS = {"pre.hook.backup.velero.io/command": json.dumps(["/bin/true"]),
                    "post.hook.backup.velero.io/command": json.dumps(["/bin/true"])}


def kubeconfig():
    return str(lc_config.load().kubeconfig)


def core_api():
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=kubeconfig(), client_configuration=cfg)
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(cfg))


def wait_for_default_service_account(core, namespace, timeout=120):
    """Pod admission needs the namespace's ``default`` ServiceAccount, which the controller-manager creates a
    moment after the namespace (longer just after it restarted)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account("default", namespace, _preload_content=False)
            return
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def hook_pods(core, namespace, count, annotations=None):
    """``count`` Running pods on kwok fake nodes, with pre and post hooks (``/bin/true``)."""
    core.create_namespace({"metadata": {"name": namespace}})
    wait_for_default_service_account(core, namespace)
    for i in range(count):
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": "bench-%d" % i, "annotations": annotations or HOOK_ANNOTATIONS},
            "spec": {"nodeSelector": dict(lc_fake.NODE_SELECTOR), "tolerations": [dict(lc_fake.TOLERATION)],
                     "containers": [{"name": "main", "image": "fake-image"}]}})
    deadline = time.monotonic() + 300
    while True:
        items = json.loads(core.list_namespaced_pod(namespace, _preload_content=False).data)["items"]
        if sum(1 for p in items if p.get("status", {}).get("phase") == "Running") == count:
            settle()
            return [p["metadata"]["name"] for p in items]
        if time.monotonic() > deadline:
            raise SystemExit("pods did not reach Running")
        time.sleep(0.5)


def cpu_idle_share(window=1.0):
    """The share of the machine's CPU time that was idle during the next ``window`` seconds (/proc/stat)."""
    def sample():
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all
    idle0, total0 = sample()
    time.sleep(window)
    idle1, total1 = sample()
    return (idle1 - idle0) / float(max(total1 - total0, 1))


def settle(idle=0.8, timeout=90):
    """Wait until the cluster has done with earlier work (pods just started, a namespace being deleted):
    at least ``idle`` of the CPU idle over one second, at most ``timeout`` seconds.  Rounds started on a
    busy machine measure the leftovers of the set-up, not the tools."""
    deadline = time.monotonic() + timeout
    while cpu_idle_share() < idle and time.monotonic() < deadline:
        pass


def module_env():
    return dict(os.environ, PYTHONPATH=COLLECTIONS_PATH)


# -- reporting: median and spread of alternating rounds, the machine's load --------------------------------

def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def spread(values, unit="s", scale=1.0, fmt="%.2f"):
    """``median 1.23 s (1.10-1.40, n=3)``."""
    vals = [v * scale for v in values]
    return ("median " + fmt + " %s (" + fmt + "-" + fmt + ", n=%d)") % (median(vals), unit, min(vals), max(vals),
                                                                       len(vals))


def ratio_line(label, ours, theirs, target):
    """The ratio of the medians, and the range of the per-round ratios (rounds alternate, so a round's pair
    shares the machine's load); ``target`` is the largest ratio that meets it."""
    per_round = [a / b for a, b in zip(ours, theirs)]
    value = median(ours) / median(theirs)
    verdict = "met" if value <= target else "NOT met"
    return "%s: %.2f (per round %.2f-%.2f; target <= %.2f: %s)" % (label, value, min(per_round), max(per_round),
                                                                     target, verdict)


def load_line():
    one, five, fifteen = os.getloadavg()
    return "load average %.2f %.2f %.2f on %d cores" % (one, five, fifteen, os.cpu_count() or 0)


def sizes(text):
    return [int(part) for part in str(text).split(",") if part.strip()]
