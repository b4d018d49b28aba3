"""Benchmark: volume data restore, the role kubehooks.backup.restore vs ``kubectl exec -i ... tar -xzf -``.

One backup made by our role with ``create_default_volumes_to_fs_backup: true`` of a pod on the real node whose
claim holds --mib MiB of mixed data (1/2 random, 1/4 base64 text, 1/4 numbers, in 4 MiB files, and 200 small
files of several modes and owners).  Then, in alternating rounds (the order is reversed every round):
- ours: ``ansible-playbook`` running the role kubehooks.backup.restore with ``restore_volume_data: true`` into
  a new namespace (``namespace_mappings``), start-up and resources included, as users run it; the module's
  own volume-data duration (``restore_result.volumes[].duration``: helper pod created, Running, the archive
  streamed into ``tar -x``, helper deleted) is reported too;
- baseline: a fresh namespace with an equivalent fresh, empty claim mounted by a pod (created and Running
  before the clock starts), then ``kubectl exec -i POD -- tar -x -z -p --numeric-owner -f - -C /data`` with
  the same archive file of the backup on stdin.  The pod's start (create -> Running) is timed apart, so that
  "pod start + exec" compares with the module's duration, which includes its helper pod's start.
Every round checks that the restored volume holds exactly the backed-up files (sha256, owner, mode of every
entry, lost+found left out), on each side.  Ratio = ours / baseline seconds (throughput target >= 0.8x, i.e.
ratio <= 1.25).

Volumes: loop-backed ext4 files made for this run under the cluster's state dir (<cluster dir>/
bench-restore-volumes-<pid>, never a device of the machine), each exposed as a local PV pre-bound
(``claimRef``) to the claim that will use it: the source, and per round one for each side, so the shared pool
of 64 MiB PVs is not touched.  Namespaces, PVs, mounts and files are removed at the end (and each round's
as soon as it is measured).

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/bench_restore_volumes.py [--mib 32] [--rounds 3]
    .venv/bin/python bench/bench_restore_volumes.py --smoke    # CI: 2 MiB, 1 round
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from _common import (ROOT, core_api, kubeconfig, load_line, median, ratio_line, spread,  # noqa: E402
                     wait_for_default_service_account)
import _walkthrough  # noqa: E402
from bench_role import backup_dir, run_role  # noqa: E402
from localcluster import config as lc_config  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from fstree import tree  # noqa: E402  (the same comparison as the volume-data tests)
from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _volumes  # noqa: E402

POD = "app"
CONTAINER = "main"
MOUNT = "/data"
CLAIM = "data"
PLAYBOOK = """---
- name: Restore with kubehooks.backup.restore (bench_restore_volumes.py)
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Run the role
      ansible.builtin.include_role:
        name: kubehooks.backup.restore
    - name: Keep the volume results
      ansible.builtin.copy:
        content: "{{ restore_result.volumes | to_json }}"
        dest: "{{ bench_volumes_out }}"
        mode: "0600"
"""
# The module's volume writer alone, in a new process as the module runs it, each phase timed: the archive's
# sha256 check, the helper pod's create, its wait for Running, the stream (exec open, gunzip + send, the
# wait for tar to end) and the helper's delete (and wait until it is gone).
PHASES = r"""
import json, os, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
import conftest  # noqa: F401  (ansible_collections.kubehooks.backup importable)
from ansible_collections.kubehooks.backup.plugins.module_utils import _api, _restore_volumes as rv
from ansible_collections.kubehooks.backup.plugins.module_utils._client import ClientFactory
kubeconfig, bdir, backup, source, target, claim, image = sys.argv[2:9]
phases, marks = {}, {}


def timed(name, fn):
    def wrapper(*args, **kwargs):
        start = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            marks[name] = time.monotonic()
            phases[name] = phases.get(name, 0.0) + marks[name] - start
    return wrapper


def timed_open(*args, **kwargs):
    ws = timed("exec open", _api.open_exec)(*args, **kwargs)
    write = ws.write_stdin

    def write_stdin(data):
        write(data)
        marks["last write"] = time.monotonic()
    ws.write_stdin = write_stdin
    return ws


factory = ClientFactory({"kubeconfig": kubeconfig})
writer = rv.VolumeWriter(_api.api_caller(factory()), factory(), "phases", backup, image=image, timeout=600,
                         open_exec_fn=timed_open)
for method in ("_check_archive", "_create_helper", "_wait_running", "_stream", "_delete_helper"):
    setattr(writer, method, timed(method.strip("_"), getattr(writer, method)))
jobs, _notes = rv.plan_volumes(rv.read_index(bdir, backup), {(source, claim): (target, "created")}, bdir, backup)
start = time.monotonic()
result = writer.write(jobs[0])
result["wall"] = time.monotonic() - start
result["phases"] = dict([("check_archive", phases["check_archive"]), ("create_helper", phases["create_helper"]),
                         ("wait_running", phases["wait_running"]), ("stream: exec open", phases["exec open"]),
                         ("stream: gunzip + send", marks["last write"] - marks["exec open"]),
                         ("stream: tar's end + close", marks["stream"] - marks["last write"]),
                         ("delete_helper", phases["delete_helper"])])
print(json.dumps(result))
"""
SMALL = r"""
set -e
cd "$1"
mkdir -p small/deeper
i=0
while [ $i -lt 200 ]; do printf 'file %s\n' $i > small/f$i.txt; i=$((i + 1)); done
chown 1234:5678 small/f1.txt small/deeper
chmod 0640 small/f1.txt
chmod 0750 small/deeper
ln -s f0.txt small/link
: > small/empty
"""


def sh(cmd, **kwargs):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


class Volumes(object):
    """Loop-backed ext4 PVs made for this run, each pre-bound to one claim."""

    def __init__(self, core, cfg, size_mib):
        self.core, self.cfg, self.size_mib = core, cfg, size_mib
        self.workdir = os.path.join(str(cfg.cluster_dir), "bench-restore-volumes-%d" % os.getpid())
        self.made = {}   # PV name -> mount dir

    def make(self, name, namespace):
        img, mnt = os.path.join(self.workdir, name + ".ext4"), os.path.join(self.workdir, name)
        os.makedirs(mnt, exist_ok=True)
        sh(["truncate", "-s", "%dM" % self.size_mib, img])
        sh(["mkfs.ext4", "-F", "-q", "-E", "root_owner=0:0", img])
        sh(["mount", "-o", "loop", img, mnt])
        self.made[name] = mnt
        self.core.create_persistent_volume({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": "%dMi" % self.size_mib}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "", "volumeMode": "Filesystem",
                     "claimRef": {"namespace": namespace, "name": CLAIM},
                     "local": {"path": mnt},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [self.cfg.node_name]}]}]}}}})
        return mnt

    def remove(self, name):
        from kubernetes.client.rest import ApiException
        mnt = self.made.pop(name)
        try:
            self.core.delete_persistent_volume(name)
        except ApiException:
            pass
        deadline = time.monotonic() + 120
        while subprocess.run(["mountpoint", "-q", mnt], check=False).returncode == 0:
            # the kubelet lets go of the volume once the pods using it are gone
            subprocess.run(["umount", mnt], capture_output=True, check=False)
            if time.monotonic() > deadline:
                print("WARNING: %s is still mounted (umount it and remove %s)" % (mnt, self.workdir))
                return
            time.sleep(0.5)
        os.rmdir(mnt)
        os.remove(mnt + ".ext4")

    def remove_all(self):
        for name in list(self.made):
            self.remove(name)
        if not self.made:
            shutil.rmtree(self.workdir, ignore_errors=True)


def cleanup(vols, namespaces, names):
    """Delete the namespaces ``names`` at once, wait until they are gone, then remove their volumes (a volume is
    named as the namespace of its claim)."""
    with ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
        list(pool.map(lambda namespace: _walkthrough.delete_namespace(namespace, timeout=300), names))
    for name in names:
        namespaces.remove(name)
        if name in vols.made:
            vols.remove(name)


def fill(path, mib):
    """``mib`` MiB in 4 MiB files: 1/2 random, 1/4 base64 text, 1/4 numbers; plus 200 small files."""
    chunk = 4 << 20
    for i in range(max(mib * (1 << 20) // chunk, 1)):
        kind = ("random", "random", "text", "numbers")[i % 4]
        size = min(chunk, mib << 20)
        with open(os.path.join(path, "%s-%d" % (kind, i)), "wb") as out:
            if kind == "random":
                out.write(os.urandom(size))
            elif kind == "text":
                out.write(base64.encodebytes(os.urandom(size * 3 // 4 + 3))[:size])
            else:
                text, n = [], 0
                while sum(map(len, text)) < size:
                    block = "".join("%d\n" % k for k in range(n, n + 100000)).encode()
                    text.append(block)
                    n += 100000
                out.write(b"".join(text)[:size])
    sh(["sh", "-c", SMALL, "sh", path])
    sh(["sync"])


def check_same(side, before, path):
    after = tree(path)
    if after != before:
        wrong = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        raise SystemExit("%s: the restored volume differs from the backed-up one in %d entries, e.g. %s"
                         % (side, len(wrong), wrong[:5]))


def pod_body(cfg):
    return {"metadata": {"name": POD, "annotations": {"backup.velero.io/backup-volumes": CLAIM}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": cfg.node_name}, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": CONTAINER, "image": cfg.node_image, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "infinity"],
                                     "volumeMounts": [{"name": CLAIM, "mountPath": MOUNT}]}],
                     "volumes": [{"name": CLAIM, "persistentVolumeClaim": {"claimName": CLAIM}}]}}


def claim_and_pod(core, cfg, namespace, pv, request_mib, pod=True):
    """The namespace, a claim bound to ``pv`` and (``pod``) a pod mounting it; returns the pod's start seconds."""
    core.create_namespace({"metadata": {"name": namespace}})
    wait_for_default_service_account(core, namespace)
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": CLAIM},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": pv,
                 "resources": {"requests": {"storage": "%dMi" % request_mib}}}})
    if not pod:
        return 0.0
    start = time.monotonic()
    core.create_namespaced_pod(namespace, pod_body(cfg))
    deadline = start + 180
    while core.read_namespaced_pod(POD, namespace).status.phase != "Running":
        if time.monotonic() > deadline:
            raise SystemExit("the pod in %s did not start" % namespace)
        time.sleep(0.1)
    return time.monotonic() - start


def the_archive(storage, name, namespace):
    """(path, sha256) of the captured archive of the source pod's claim, checked to be as recorded."""
    bdir = backup_dir(storage, name)
    entries = _volumes.read_volumes_index(_layout.volumes_index(bdir, name))
    (entry,) = [e for e in entries if e.get("pvc") == CLAIM and e.get("status") == "succeeded"]
    path = _layout.volume_archive(bdir, name, namespace, entry["pod"], entry["volume"])
    return path, entry


def run_restore(config_path, backup, storage, mappings, image, workdir, rnd):
    playbook = os.path.join(workdir, "restore.yml")
    out = os.path.join(workdir, "volumes-%d.json" % rnd)
    with open(playbook, "w") as handle:
        handle.write(PLAYBOOK)
    extra = {"restore_backup": backup, "restore_name": "%s-r%d" % (backup, rnd), "restore_storage_dir": storage,
             "restore_cluster": "bench", "restore_namespace_mappings": mappings, "restore_volume_data": True,
             "restore_volume_helper_image": image, "restore_auth": {"kubeconfig": config_path},
             "bench_volumes_out": out}
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1",
               PATH=bindir + os.pathsep + os.environ["PATH"])
    start = time.monotonic()
    proc = subprocess.run([os.path.join(bindir, "ansible-playbook"), playbook, "-e", json.dumps(extra)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("the restore role failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
    with open(out) as handle:
        volumes = json.load(handle)
    if [v.get("status") for v in volumes] != ["succeeded"]:
        raise SystemExit("the restore did not write the volume: %s" % volumes)
    return elapsed, volumes[0]


def run_baseline(cfg, namespace, archive):
    start = time.monotonic()
    with open(archive, "rb") as stdin:
        proc = subprocess.run([str(cfg.kubectl), "--kubeconfig", str(cfg.kubeconfig), "exec", "-i", "-n", namespace,
                               POD, "-c", CONTAINER, "--", "tar", "-x", "-z", "-p", "--numeric-owner", "-f", "-",
                               "-C", MOUNT], stdin=stdin, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("the baseline's tar failed: %s" % proc.stderr[-2000:])
    return elapsed


def run_phases(cfg, storage, name, source, target):
    """The module's volume writer alone, each phase timed (PHASES)."""
    proc = subprocess.run([sys.executable, "-c", PHASES, ROOT, kubeconfig(), backup_dir(storage, name), name, source,
                           target, CLAIM, cfg.node_image], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("the phases child failed: %s%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    result = json.loads(proc.stdout)
    if result["status"] != "succeeded":
        raise SystemExit("the phases child did not write the volume: %s" % result["error"])
    return result


def report(results, mib, opts):
    print("== results (%s at the end), %d alternating rounds, %d MiB of data" % (load_line(), opts.rounds, mib))
    labels = (("role", "ours: restore role, whole run"), ("module", "ours: the module's volume-data duration"),
              ("writer", "ours: the volume writer alone (phases)"),
              ("exec", "baseline: kubectl exec -i ... tar -xzf"), ("podexec", "baseline: pod start + exec"))
    for key, label in labels:
        if results[key]:
            print("  %-42s %s" % (label, spread(results[key])))
    print("  " + ratio_line("ratio module volume data / baseline exec", results["module"], results["exec"], 1.25))
    print("  " + ratio_line("ratio module volume data / baseline pod start + exec", results["module"],
                            results["podexec"], 1.25))
    print("  " + ratio_line("ratio whole role run / baseline exec", results["role"], results["exec"], 1.25))
    if results["phases"]:
        print("  where the module's volume-data time goes (the writer alone, in its own process; median of %d):"
              % len(results["phases"]))
        for phase in results["phases"][0]:
            print("    %-32s %s" % (phase, spread([p[phase] for p in results["phases"]], "s")))
        stream = [sum(v for k, v in p.items() if k.startswith("stream")) for p in results["phases"]]
        print("    %-32s %s" % ("stream, all of it", spread(stream)))
        print("  " + ratio_line("ratio the writer's stream alone / baseline exec", stream, results["exec"], 1.25))
    print("  throughput (data MiB / median s): module %.1f MiB/s, baseline exec %.1f MiB/s, baseline pod start + "
          "exec %.1f MiB/s" % (mib / median(results["module"]), mib / median(results["exec"]),
                               mib / median(results["podexec"])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=32, help="MiB of file data in the volume")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-phases", action="store_true", help="leave out the timed phases of the writer alone")
    parser.add_argument("--smoke", action="store_true", help="CI smoke: 2 MiB, 1 round, no phases")
    opts = parser.parse_args()
    if opts.smoke:
        opts.mib, opts.rounds, opts.no_phases = 2, 1, True
    print("== bench_restore_volumes: volume data restore, the role vs kubectl exec -i ... tar -xzf; %s"
          % load_line(), flush=True)
    cfg = lc_config.load()
    core = core_api()
    config_path = kubeconfig()
    size = max(opts.mib * 2 + 32, 48)     # MiB of each loop-backed volume; ext4 takes some of it
    request = size // 2
    vols = Volumes(core, cfg, size)
    tag = os.getpid()
    source = "kh-bench-rv-src-%d" % tag
    storage = os.path.join(vols.workdir, "storage")
    namespaces = [source]
    results = {"role": [], "module": [], "exec": [], "podexec": [], "phases": [], "writer": []}
    try:
        os.makedirs(storage, mode=0o700)
        path = vols.make(source, source)
        fill(path, opts.mib)
        before = tree(path)
        claim_and_pod(core, cfg, source, source, request)
        name = "bench-rv-%d" % tag
        seconds, _timing, _out = run_role(config_path, source, storage, name=name,
                                          extra_vars={"create_default_volumes_to_fs_backup": True})
        archive, entry = the_archive(storage, name, source)
        print("backup with volume data: %.1f s; archive %.1f MiB (%d files, %.1f MiB of tar)" % (
            seconds, os.path.getsize(archive) / 1048576.0, entry["files"], entry.get("tar_bytes", 0) / 1048576.0),
            flush=True)
        for rnd in range(opts.rounds):
            sides = ("role", "baseline") if opts.no_phases else ("role", "baseline", "phases")
            done = []
            for side in (sides if rnd % 2 == 0 else tuple(reversed(sides))):
                target = pv = "kh-bench-rv-%s-%d-%d" % (side, rnd, tag)
                namespaces.append(target)
                mnt = vols.make(pv, target)
                try:
                    if side == "role":
                        elapsed, volume = run_restore(config_path, name, storage, {source: target}, cfg.node_image,
                                                      vols.workdir, rnd)
                        check_same(side, before, mnt)
                        results["role"].append(elapsed)
                        results["module"].append(volume["duration"])
                        print("  round %d role     %.2f s (the module's volume data %.2f s, %d files)"
                              % (rnd + 1, elapsed, volume["duration"], volume["written_files"]), flush=True)
                    elif side == "phases":
                        claim_and_pod(core, cfg, target, pv, request, pod=False)
                        result = run_phases(cfg, storage, name, source, target)
                        check_same(side, before, mnt)
                        results["writer"].append(result["wall"])
                        results["phases"].append(result["phases"])
                        print("  round %d phases   %.2f s: %s" % (rnd + 1, result["wall"], ", ".join(
                            "%s %.2f" % item for item in result["phases"].items())), flush=True)
                    else:
                        started = claim_and_pod(core, cfg, target, pv, request)
                        elapsed = run_baseline(cfg, target, archive)
                        check_same(side, before, mnt)
                        results["exec"].append(elapsed)
                        results["podexec"].append(started + elapsed)
                        print("  round %d baseline %.2f s exec (pod start %.2f s)" % (rnd + 1, elapsed, started),
                              flush=True)
                finally:
                    done.append(target)
            cleanup(vols, namespaces, done)    # the round's namespaces and volumes, before the next round
    finally:
        cleanup(vols, namespaces, list(namespaces))
        vols.remove_all()
    report(results, opts.mib, opts)


if __name__ == "__main__":
    main()
