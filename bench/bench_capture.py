"""Benchmark: volume copy (fs-copy) throughput and controller memory of kubehooks.backup's capture.

Baseline, measured in the same run on the same volume: ``kubectl exec POD -c C -- tar c -f - -C PATH .``
piped into ``gzip`` (CLI default level 6) writing a file on the controller.  Measured: our
``_capture.capture_volume`` (websocket read, zlib gzip at ``--levels``, sha256, tar header count),
each in a child process whose peak RSS (getrusage of that child) is the controller's memory.
Target: throughput >= 0.8x the baseline (ratio = baseline seconds / our seconds), and peak memory
flat from the small (10 MiB) to the large (1 GiB) volume.

The volume is a loop-backed ext4 file made for this run under the cluster's state dir
(<cluster dir>/bench-capture, never a device of the machine), exposed as a local PV bound to a PVC of
a pod on the real node, filled inside the pod with a mix of data: half random (incompressible), a
quarter base64 text, a quarter numbers (very compressible).  Everything is removed at the end.

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/bench_capture.py [--small-mib 10] [--large-mib 1024] [--levels 1,6] [--rounds 2]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from _common import ROOT, core_api, kubeconfig  # noqa: E402
from localcluster import config as lc_config  # noqa: E402

NAMESPACE = "kh-bench-capture"
PV = "kh-bench-capture-pv"
POD = "capture"
CONTAINER = "main"
MOUNT = "/data"

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
import conftest  # noqa: F401  (ansible_collections.kubehooks.backup importable)
from kubernetes import config
from ansible_collections.kubehooks.backup.plugins.module_utils._capture import capture_volume
client = config.new_client_from_config(config_file=sys.argv[2])
start = time.monotonic()
result = capture_volume(client, sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7],
                        deadline=time.monotonic() + 3600, compresslevel=int(sys.argv[8]))
result["wall"] = time.monotonic() - start
result.pop("stderr", None)
print(json.dumps(result))
"""


def sh(cmd, **kwargs):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def kubectl(*args, **kwargs):
    cfg = lc_config.load()
    return sh([str(cfg.kubectl), "--kubeconfig", str(cfg.kubeconfig)] + list(args), **kwargs)


def wait_gone(read, what, timeout=180):
    from kubernetes.client.rest import ApiException
    deadline = time.monotonic() + timeout
    while True:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if time.monotonic() > deadline:
            raise SystemExit("%s from an earlier run is still being deleted" % what)
        time.sleep(1)


def setup(core, cfg, size_mib, img, mnt):
    wait_gone(lambda: core.read_namespace(NAMESPACE), "namespace %s" % NAMESPACE)
    wait_gone(lambda: core.read_persistent_volume(PV), "PersistentVolume %s" % PV)
    os.makedirs(mnt, exist_ok=True)
    sh(["truncate", "-s", "%dM" % size_mib, img])
    sh(["mkfs.ext4", "-F", "-q", "-E", "root_owner=0:0", img])
    sh(["mount", "-o", "loop", img, mnt])
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    core.create_persistent_volume({
        "metadata": {"name": PV},
        "spec": {"capacity": {"storage": "%dMi" % size_mib}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "", "volumeMode": "Filesystem",
                 "claimRef": {"namespace": NAMESPACE, "name": "data"},
                 "local": {"path": mnt},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": [cfg.node_name]}]}]}}}})
    core.create_namespaced_persistent_volume_claim(NAMESPACE, {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": PV,
                 "resources": {"requests": {"storage": "%dMi" % size_mib}}}})
    core.create_namespaced_pod(NAMESPACE, {
        "metadata": {"name": POD},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": cfg.node_name}, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": CONTAINER, "image": cfg.node_image, "imagePullPolicy": "IfNotPresent",
                                 "command": ["sleep", "infinity"],
                                 "volumeMounts": [{"name": "data", "mountPath": MOUNT}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    deadline = time.monotonic() + 180
    while core.read_namespaced_pod(POD, NAMESPACE).status.phase != "Running":
        if time.monotonic() > deadline:
            raise SystemExit("the bench pod did not start")
        time.sleep(0.5)


def fill(path, mib):
    """``mib`` MiB in 16 MiB files under ``path`` in the pod: 1/2 random, 1/4 base64, 1/4 numbers."""
    script = r"""
set -e
mkdir -p "$1"; cd "$1"; n=$(( $2 / 16 )); i=0
while [ $i -lt $n ]; do
  case $(( i % 4 )) in
    0|1) head -c 16777216 /dev/urandom > r$i.bin ;;
    2) head -c 12582912 /dev/urandom | base64 | head -c 16777216 > t$i.txt ;;
    3) seq 1 100000000 | head -c 16777216 > n$i.txt ;;
  esac
  i=$(( i + 1 ))
done
sync
"""
    kubectl("exec", "-n", NAMESPACE, POD, "-c", CONTAINER, "--", "/bin/sh", "-c", script, "sh", path, str(mib),
            timeout=1800)


def baseline(path, dest):
    cfg = lc_config.load()
    start = time.monotonic()
    with open(dest, "wb") as out:
        reader = subprocess.Popen([str(cfg.kubectl), "--kubeconfig", str(cfg.kubeconfig), "exec", "-n", NAMESPACE,
                                   POD, "-c", CONTAINER, "--", "tar", "c", "-f", "-", "-C", path, "."],
                                  stdout=subprocess.PIPE)
        gz = subprocess.Popen(["gzip"], stdin=reader.stdout, stdout=out)
        reader.stdout.close()
        if gz.wait() != 0 or reader.wait() != 0:
            raise SystemExit("the baseline pipeline failed")
    return time.monotonic() - start, os.path.getsize(dest)


def ours(path, dest, level):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, ROOT, kubeconfig(), NAMESPACE, POD, CONTAINER, path, dest,
                             str(level)], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit("the capture child failed: %s" % out)
    result = json.loads(out)
    if result["status"] != "succeeded":
        raise SystemExit("the capture failed: %s" % result["error"])
    return result["wall"], result["bytes"], usage.ru_maxrss, result


def teardown(core, img, mnt, workdir):
    from kubernetes.client.rest import ApiException
    for call in (lambda: core.delete_namespace(NAMESPACE),
                 lambda: core.delete_persistent_volume(PV)):
        try:
            call()
        except ApiException:
            pass
    deadline = time.monotonic() + 120
    while subprocess.run(["mountpoint", "-q", mnt], check=False).returncode == 0:
        # the kubelet lets go of the volume once the pod is gone; then the loop mount can go
        subprocess.run(["umount", mnt], capture_output=True, check=False)
        if time.monotonic() > deadline:
            print("WARNING: %s is still mounted (umount it and remove %s)" % (mnt, workdir))
            return
        time.sleep(1)
    shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-mib", type=int, default=16)
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--levels", default="1,6", help="zlib levels of our capture to measure")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    cfg = lc_config.load()
    core = core_api()
    workdir = os.path.join(str(cfg.cluster_dir), "bench-capture")
    outdir = os.path.join(workdir, "out")
    img, mnt = os.path.join(workdir, "volume.ext4"), os.path.join(workdir, "mnt")
    try:
        os.makedirs(outdir, exist_ok=True)
        setup(core, cfg, args.large_mib + args.small_mib + 256, img, mnt)
        print("filling %d MiB + %d MiB in the pod ..." % (args.small_mib, args.large_mib), flush=True)
        fill(MOUNT + "/small", args.small_mib)
        fill(MOUNT + "/large", args.large_mib)
        rows = {}
        for rnd in range(args.rounds):
            for name in ("small", "large"):
                path = MOUNT + "/" + name
                order = ["baseline"] + ["level%d" % lv for lv in levels]
                if rnd % 2:
                    order.reverse()
                for what in order:
                    dest = os.path.join(outdir, "%s-%s.tar.gz" % (name, what))
                    if what == "baseline":
                        seconds, size = baseline(path, dest)
                        rss = None
                    else:
                        seconds, size, rss, result = ours(path, dest, int(what[5:]))
                        if result["attempts"] > 1:
                            print("  (copied %d times: the first stream(s) ended without the end of the archive)"
                                  % result["attempts"], flush=True)
                    os.remove(dest)
                    rows.setdefault((name, what), []).append((seconds, size, rss))
                    print("  round %d %-5s %-8s %6.2f s  %6.1f MiB out%s" % (
                        rnd + 1, name, what, seconds, size / 1048576.0,
                        "" if rss is None else "  peak RSS %.1f MiB" % (rss / 1024.0)), flush=True)
        print()
        print("| volume | method | best seconds | MiB/s (volume data) | .tar.gz MiB | ratio to baseline | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|")
        for name, mib in (("small", args.small_mib), ("large", args.large_mib)):
            base = min(r[0] for r in rows[(name, "baseline")])
            for what in ["baseline"] + ["level%d" % lv for lv in levels]:
                best = min(r[0] for r in rows[(name, what)])
                rss = max((r[2] or 0) for r in rows[(name, what)])
                print("| %d MiB | %s | %.2f | %.1f | %.1f | %.2f | %s |" % (
                    mib, what, best, mib / best, rows[(name, what)][0][1] / 1048576.0, base / best,
                    "%.1f" % (rss / 1024.0) if rss else "-"))
        for lv in levels:
            small = max(r[2] for r in rows[("small", "level%d" % lv)])
            large = max(r[2] for r in rows[("large", "level%d" % lv)])
            print("peak RSS level %d: large/small = %.2f (%.1f MiB / %.1f MiB)" % (
                lv, large / float(small), large / 1024.0, small / 1024.0))
    finally:
        teardown(core, img, mnt, workdir)


if __name__ == "__main__":
    main()
