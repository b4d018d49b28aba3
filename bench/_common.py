"""Shared set-up of the benchmarks: the local cluster's API, fake-node pods, namespaces."""
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import conftest  # noqa: E402,F401  (makes ansible_collections.kubehooks.backup importable)
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


def hook_pods(core, namespace, count, annotations=None):
    """``count`` Running pods on kwok fake nodes, with pre and post hooks (``/bin/true``)."""
    core.create_namespace({"metadata": {"name": namespace}})
    for i in range(count):
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": "bench-%d" % i, "annotations": annotations or HOOK_ANNOTATIONS},
            "spec": {"nodeSelector": dict(lc_fake.NODE_SELECTOR), "tolerations": [dict(lc_fake.TOLERATION)],
                     "containers": [{"name": "main", "image": "fake-image"}]}})
    deadline = time.monotonic() + 300
    while True:
        items = json.loads(core.list_namespaced_pod(namespace, _preload_content=False).data)["items"]
        if sum(1 for p in items if p.get("status", {}).get("phase") == "Running") == count:
            return [p["metadata"]["name"] for p in items]
        if time.monotonic() > deadline:
            raise SystemExit("pods did not reach Running")
        time.sleep(0.5)


def module_env():
    return dict(os.environ, PYTHONPATH=os.environ["ANSIBLE_COLLECTIONS_PATH"])
