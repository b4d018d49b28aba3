"""Volume capture (fs-copy) against the local cluster's real node: real containers, real tar,
real pods/exec websocket, real loop-backed ext4 PersistentVolumes.

Each copy is checked against the volume's own content: for a PVC, the files of the bound PV's
mount on the host (the pool PVs are loop mounts under the cluster's state dir); for an emptyDir,
sha256sum run inside the pod.  Every failure is checked to name namespace, pod and volume and to
leave no archive behind.
"""
import gzip
import hashlib
import io
import os
import stat
import tarfile
import time

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils._capture import (
    capture_pod_volumes,
    capture_volume,
    capture_volumes,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._exec import exec_hook
from ansible_collections.kubehooks.backup.plugins.module_utils._volumes import (
    ANNOTATION_BACKUP_VOLUMES,
    read_volumes_index,
    select_volumes,
    volume_totals,
    write_volumes_index,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._layout import volumes_index

pytestmark = pytest.mark.real_node

# Several files, a subdirectory, a symlink, a hard link, an empty file, a name with a space,
# a long path (GNU long-name header) and a 5 MiB random file.
FILL = r"""
set -e
cd "$1"
# pool PVs are reused between tests without being wiped
find . -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +
mkdir -p sub/deeper
printf 'hello\n' > hello.txt
: > empty
printf 'spaced\n' > 'with space.txt'
head -c 5242880 /dev/urandom > big.bin
head -c 70001 /dev/urandom > sub/odd.bin
seq 1 20000 > sub/deeper/numbers.txt
ln -s hello.txt link-to-hello
ln sub/odd.bin hardlink.bin
long=sub/$(printf 'n%.0s' $(seq 1 120))
mkdir -p "$long"
printf 'long\n' > "$long/$(printf 'f%.0s' $(seq 1 110)).txt"
sync
"""


def sh(api_client, namespace, pod, container, script, *args, timeout=60):
    result = exec_hook(api_client, namespace, pod, container, ["/bin/sh", "-c", script, "sh"] + list(args), timeout)
    assert result["status"] == "succeeded", result
    return result["stdout"]


def make_pod(core_v1, pods, name, volumes, containers, annotations=None):
    """A pod on the real node with the given volumes and containers (node image, sleep)."""
    spec_containers = []
    for container in containers:
        spec_containers.append({"image": pods.cluster.node_image, "imagePullPolicy": "IfNotPresent",
                                "command": ["sleep", "infinity"], **container})
    core_v1.create_namespaced_pod(pods.namespace, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": pods.cluster.node_name},
                 "terminationGracePeriodSeconds": 1, "containers": spec_containers, "volumes": volumes}})
    pods.wait_running([name])
    return pods.get(name)


def archive_digest(path):
    """{member path: (type, sha256 of data | link target)} of a .tar.gz, read with Python's tarfile."""
    out = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = os.path.normpath(member.name)
            if member.isfile():
                out[name] = ("file", hashlib.sha256(tar.extractfile(member).read()).hexdigest())
            elif member.isdir():
                out[name] = ("dir", None)
            elif member.issym():
                out[name] = ("symlink", member.linkname)
            elif member.islnk():
                out[name] = ("file", out[os.path.normpath(member.linkname)][1])  # same content
            else:
                out[name] = ("other", None)
    return out


def host_digest(root):
    """The same mapping for a directory on the host (the PV's mount)."""
    out = {".": ("dir", None)}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            rel = os.path.relpath(path, root)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                out[rel] = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(mode):
                out[rel] = ("dir", None)
            elif stat.S_ISREG(mode):
                with open(path, "rb") as handle:
                    out[rel] = ("file", hashlib.sha256(handle.read()).hexdigest())
            else:
                out[rel] = ("other", None)
    return out


def pod_digest(api_client, namespace, pod, container, path):
    """sha256 of every regular file under ``path`` as the container sees it."""
    text = sh(api_client, namespace, pod, container, 'cd "$1" && find . -type f -exec sha256sum {} +', path)
    out = {}
    for line in text.splitlines():
        digest, name = line.split("  ", 1)
        out[os.path.normpath(name)] = ("file", digest)
    return out


def files_only(digest):
    return dict((k, v) for k, v in digest.items() if v[0] == "file")


def check_archive(result, path):
    """The result's bytes/sha256/files describe the archive at ``path`` (0600, readable by tarfile)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    assert result["bytes"] == len(raw)
    assert result["sha256"] == hashlib.sha256(raw).hexdigest()
    assert result["tar_bytes"] == len(gzip.decompress(raw))
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        assert result["files"] == len(tar.getmembers())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_pvc_volume_captured_exactly(api_client, namespace, pods, pvc, tmp_path):
    claim, host_path = pvc()
    pod = pods.real_pod("app", pvc=claim, mount_path="/data")
    sh(api_client, namespace, "app", "main", FILL, "/data")
    dest = str(tmp_path / "bk-volumes" / namespace / "app" / "data.tar.gz")
    seen = []
    result = capture_volume(api_client, namespace, "app", "main", "/data", dest, deadline=time.monotonic() + 60,
                            progress=seen.append, volume="data")
    assert result["status"] == "succeeded", result
    assert result["error"] is None
    check_archive(result, dest)
    expected = host_digest(host_path)
    got = archive_digest(dest)
    assert got == expected  # every path, type, link target and file's sha256
    assert "big.bin" in got and "sub/deeper/numbers.txt" in got and got["link-to-hello"] == ("symlink", "hello.txt")
    assert result["tar_bytes"] > 5 * 1024 * 1024
    assert seen and seen[-1] == result["tar_bytes"]
    assert sorted(os.listdir(os.path.dirname(dest))) == ["data.tar.gz"]
    assert pod["metadata"]["name"] == "app"


def test_walkthrough_like_pod_captured_while_frozen(api_client, namespace, pods, core_v1, pvc, tmp_path):
    """Velero's nginx example layout: the log volume in the nginx and the privileged fsfreeze
    containers; the volume is frozen during the copy (reads do not block), thawed afterwards."""
    claim, _host_path = pvc("nginx-logs")
    mounts = [{"name": "nginx-logs", "mountPath": "/var/log/nginx"}]
    pod = make_pod(core_v1, pods, "nginx-like",
                   [{"name": "nginx-logs", "persistentVolumeClaim": {"claimName": claim}}],
                   [{"name": "nginx", "volumeMounts": mounts},
                    {"name": "fsfreeze", "securityContext": {"privileged": True}, "volumeMounts": mounts}],
                   annotations={ANNOTATION_BACKUP_VOLUMES: "nginx-logs"})
    written = b"".join(b"10.0.0.%d - - GET /index.html 200\n" % i for i in range(2000))
    sh(api_client, namespace, "nginx-like", "nginx",
       'printf "%s" "$2" > "$1/access.log" && sync', "/var/log/nginx", written.decode())
    (item,), skipped = select_volumes(pod)
    assert skipped == [] and item["container"] == "nginx" and item["mount_path"] == "/var/log/nginx"
    freeze = exec_hook(api_client, namespace, "nginx-like", "fsfreeze", ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"],
                       30)
    assert freeze["status"] == "succeeded", freeze
    try:
        entries = capture_pod_volumes(lambda: api_client, pod, [item], str(tmp_path), "bk", time.monotonic() + 60)
    finally:
        thaw = exec_hook(api_client, namespace, "nginx-like", "fsfreeze",
                         ["/sbin/fsfreeze", "--unfreeze", "/var/log/nginx"], 30)
    assert thaw["status"] == "succeeded", thaw
    (entry,) = entries
    assert entry["status"] == "succeeded", entry
    assert (entry["namespace"], entry["pod"], entry["volume"], entry["pvc"], entry["method"]) == (
        namespace, "nginx-like", "nginx-logs", claim, "fs-copy")
    assert entry["path"] == "bk-volumes/%s/nginx-like/nginx-logs.tar.gz" % namespace
    with tarfile.open(str(tmp_path / entry["path"]), "r:gz") as tar:
        assert tar.extractfile("./access.log").read() == written


def test_emptydir_and_two_volumes_of_one_pod_with_index(api_client, namespace, pods, core_v1, pvc, tmp_path):
    claim, host_path = pvc()
    pod = make_pod(core_v1, pods, "two", [
        {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
        {"name": "scratch", "emptyDir": {}},
    ], [{"name": "main", "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                          {"name": "scratch", "mountPath": "/scratch"}]}],
        annotations={ANNOTATION_BACKUP_VOLUMES: "data,scratch"})
    sh(api_client, namespace, "two", "main",
       'printf one > /data/a && mkdir /scratch/d && head -c 300000 /dev/urandom > /scratch/d/r && sync')
    selected, skipped = select_volumes(pod)
    assert [s["volume"] for s in selected] == ["data", "scratch"] and skipped == []
    progress = []
    entries = capture_volumes(lambda: api_client.__class__(api_client.configuration), [(pod, selected)],
                              str(tmp_path), "bk", time.monotonic() + 60, progress=progress.append, parallelism=2)
    assert [e["status"] for e in entries] == ["succeeded", "succeeded"], entries
    data, scratch = entries
    assert data["pvc"] == claim and scratch["pvc"] is None
    for entry in entries:
        check_archive(entry, str(tmp_path / entry["path"]))
    assert archive_digest(str(tmp_path / data["path"])) == host_digest(host_path)
    assert files_only(archive_digest(str(tmp_path / scratch["path"]))) == pod_digest(
        api_client, namespace, "two", "main", "/scratch")
    assert progress and progress[-1] == data["tar_bytes"] + scratch["tar_bytes"]
    index = volumes_index(str(tmp_path), "bk")
    write_volumes_index(index, entries)
    assert read_volumes_index(index) == entries
    assert volume_totals(entries) == dict(volumes=2, succeeded=2, failed=0, bytes=data["bytes"] + scratch["bytes"],
                                          files=data["files"] + scratch["files"])


def test_volume_mounted_nowhere_is_a_per_volume_error(api_client, namespace, pods, core_v1, tmp_path):
    pod = make_pod(core_v1, pods, "unmounted", [{"name": "used", "emptyDir": {}}, {"name": "orphan", "emptyDir": {}}],
                   [{"name": "main", "volumeMounts": [{"name": "used", "mountPath": "/used"}]}],
                   annotations={ANNOTATION_BACKUP_VOLUMES: "used,orphan"})
    selected, _skipped = select_volumes(pod)
    entries = capture_pod_volumes(lambda: api_client, pod, selected, str(tmp_path), "bk", time.monotonic() + 60)
    by = dict((e["volume"], e) for e in entries)
    assert by["used"]["status"] == "succeeded", by["used"]
    assert by["orphan"]["status"] == "failed" and by["orphan"]["path"] is None
    assert by["orphan"]["error"] == (
        "pod %s/unmounted: volume orphan is declared in the pod but mounted by no container" % namespace)
    assert volume_totals(entries)["failed"] == 1


def test_failures_are_reported_per_volume_and_leave_no_archive(api_client, namespace, pods, core_v1, tmp_path):
    make_pod(core_v1, pods, "faults", [{"name": "data", "emptyDir": {}}],
             [{"name": "main", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
              # A container without tar: its PATH has no tar (the image has one in /usr/bin).
              {"name": "notar", "env": [{"name": "PATH", "value": "/nonexistent"}],
               "command": ["/bin/sleep", "infinity"], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}])
    sh(api_client, namespace, "faults", "main", "head -c 100000 /dev/urandom > /data/f")
    where = "volume data of pod %s/faults: " % namespace

    def run(container, mount_path, **kwargs):
        dest = str(tmp_path / container / "data.tar.gz")
        result = capture_volume(api_client, namespace, "faults", container, mount_path, dest, volume="data",
                                deadline=kwargs.pop("deadline", time.monotonic() + 60), **kwargs)
        assert result["status"] == "failed" and result["sha256"] is None, result
        assert result["error"].startswith(where), result["error"]
        assert not os.path.exists(os.path.dirname(dest)) or os.listdir(os.path.dirname(dest)) == []
        return result

    missing_container = run("nope", "/data")
    assert "container nope" in missing_container["error"]

    no_tar = run("notar", "/data")
    assert "tar could not run in container notar" in no_tar["error"]
    assert "executable file not found" in no_tar["error"]

    bad_path = run("main", "/no/such/dir")
    assert "tar exited with code 2 in container main" in bad_path["error"]
    assert "/no/such/dir: Cannot" in bad_path["error"]  # tar's own stderr, capped

    start = time.monotonic()
    slow = run("main", "/data", deadline=time.monotonic() + 1.5,
               tar_argv=["/bin/sh", "-c", "tar -c -f - -C /data .; sleep 30"])
    assert time.monotonic() - start < 6
    assert "abandoned: the deadline passed after" in slow["error"] and slow["tar_bytes"] > 100000
