"""The walkthrough namespace (nginx-example) for the benchmarks: exclusive use under the lock that `make demo`
and the integration tests take, deployed by the walkthrough playbook, removed afterwards.

SAFETY: only the local cluster's loop-mounted PVs are written to or thawed (their host paths are checked to be
under the cluster's PV dir); a write that may block on a frozen filesystem runs in a separate process with a
time limit; cleanup thaws with a time limit.
"""
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error

from _common import ROOT, kubeconfig
from localcluster import config as lc_config
from localcluster import storage as lc_storage
from localcluster.api import Api, ApiError

NAMESPACE = "nginx-example"
LOCK = "/tmp/kubehooks-nginx-example.lock"


def admin_api():
    return Api.admin(lc_config.load(), timeout=30)


def check_pv_path(path):
    pv_dir = str(lc_config.load().pv_dir) + "/"
    if not path.startswith(pv_dir):
        raise SystemExit("%s is not one of the local cluster's PV mounts (%s)" % (path, pv_dir))
    return path


def thaw_from_host(path):
    """Best-effort thaw with a time limit (EINVAL when it is not frozen is fine)."""
    try:
        subprocess.run(["fsfreeze", "--unfreeze", check_pv_path(path)], capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        pass


def delete_namespace(name=NAMESPACE, timeout=180):
    """Delete the namespace and wait until it is gone; an API server that is briefly away (other work on this
    machine restarts it) is waited for within ``timeout``."""
    deadline = time.monotonic() + timeout
    deleted = False
    while time.monotonic() < deadline:
        try:
            api = admin_api()
            if not deleted:
                try:
                    api.delete("/api/v1/namespaces/%s" % name)
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                deleted = True
            try:
                api.get("/api/v1/namespaces/%s" % name)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                lc_storage.recycle_released(api)
                return
        except (urllib.error.URLError, OSError):
            pass  # the API server is away for a moment: try again
        time.sleep(0.5)
    raise SystemExit("namespace %s was not deleted within %d s" % (name, timeout))


@contextlib.contextmanager
def lock(timeout=1800):
    fd = os.open(LOCK, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("== waiting: another run is using namespace %s (%s)" % (NAMESPACE, LOCK), flush=True)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise SystemExit("%s held for %d s by another run" % (LOCK, timeout))
                    time.sleep(1)
        yield
    finally:
        os.close(fd)


def playbook_env():
    bindir = os.path.dirname(sys.executable)
    return dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1",
                ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                PATH=bindir + os.pathsep + os.environ["PATH"], KUBECONFIG=kubeconfig())


def kubectl(*args):
    cfg = lc_config.load()
    proc = subprocess.run([str(cfg.kubectl)] + list(args), capture_output=True, text=True, env=playbook_env(),
                          check=False)
    if proc.returncode != 0:
        raise SystemExit("kubectl %s failed: %s" % (" ".join(args), proc.stderr[-1000:]))
    return proc.stdout


def deploy():
    """Velero's nginx walkthrough (the collection's playbook: apply with-pv.yaml, annotate, one backup);
    returns the host path of the nginx-logs PV."""
    cfg = lc_config.load()
    lc_storage.recycle_released(admin_api())
    storage = tempfile.mkdtemp(prefix="kubehooks-bench-walkthrough-")
    extra = {"kubectl": str(cfg.kubectl), "nginx_image": cfg.node_image, "fsfreeze_image": cfg.node_image,
             "storage_dir": storage}
    bindir = os.path.dirname(sys.executable)
    proc = subprocess.run([os.path.join(bindir, "ansible-playbook"), os.path.join(ROOT, "playbooks", "nginx_fsfreeze.yml"),
                           "-e", json.dumps(extra)], capture_output=True, text=True, env=playbook_env(), cwd=ROOT,
                          check=False)
    subprocess.run(["rm", "-rf", storage], check=False)
    if proc.returncode != 0:
        raise SystemExit("the walkthrough playbook failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
    api = admin_api()
    pvc = api.get("/api/v1/namespaces/%s/persistentvolumeclaims/nginx-logs" % NAMESPACE)
    pv = api.get("/api/v1/persistentvolumes/%s" % pvc["spec"]["volumeName"])
    return check_pv_path(pv["spec"]["local"]["path"])


@contextlib.contextmanager
def walkthrough():
    """Under the lock: a fresh nginx-example (an earlier one is removed first); yields the PV's host path."""
    with lock():
        delete_namespace()
        path = None
        try:
            path = deploy()
            yield path
        finally:
            if path:
                thaw_from_host(path)
            delete_namespace()
