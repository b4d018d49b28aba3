"""Faults made for real (issue 11 items 1 and 3): storage that turns read-only or full mid-run, storage
without room, a pod deleted between its pre and post hooks, and the API server stopped while pods are
frozen.

- the backup storage is a small ext4 filesystem in a loop FILE (under the test's tmp_path), remounted
  read-only or filled by the test while a pre hook sleeps: the thaw still runs (the volume is writable
  again, the post hook ran exactly once), what was written before stays readable, the run reports
  what it could not write;
- a storage directory with less room than the volumes to capture: refused before any pre hook;
- a pod force-deleted while its pre hook sleeps: its post hook's exec gets 404, recorded as gone, not
  as "may still be frozen"; the thaw playbook does not fail on it;
- ``fault`` tests stop the SHARED cluster's API server (``python3 -m localcluster stop kube-apiserver``)
  for a few seconds while a real volume is frozen: back within ``create_thaw_retry_seconds`` -> thawed
  and recorded honestly; down past it -> the play fails, the record stays InProgress naming the pod, the
  volume is still frozen, and the thaw playbook thaws it once the API server is back.  Each outage is
  kept under ~10 s (a node turns NotReady after ~40 s) and the API server is restarted in a finally.

SAFETY: only the PV mounts the ``pvc`` fixture hands out are frozen; the loop filesystems are files under
tmp_path, unmounted and detached in cleanup; writes that may block run in separate processes with time
limits; only processes started here are killed.
"""
import contextlib
import errno
import glob
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from localcluster import cluster as lc_cluster
from localcluster import config as lc_config
from localcluster import processes as lc_processes
from modrun import ROOT, auth_args, run_module, run_playbook
from test_critical_section import UNFREEZE, FREEZE, plan_of, rule
from test_playbooks import PLAYBOOKS, Writers, kill_group
import test_role_create
from test_role_create import (
    backup_dir_of,
    freezer_pod,
    load,
    log_entries,
    output,
    run_create,
    start_create,
)

thaw_guard = test_role_create.thaw_guard  # the fixture, for the tests here

SLEEP_MARK = "/bin/sleep"


# --------------------------------------------------------------------------------------------------
# helpers

@pytest.fixture
def loopfs(tmp_path):
    """``make(mib)`` -> the mount point of a fresh ext4 filesystem in a loop FILE under tmp_path."""
    made = []

    def make(mib):
        image = tmp_path / ("fs-%d.ext4" % len(made))
        mount = tmp_path / ("mnt-%d" % len(made))
        mount.mkdir()
        with open(image, "wb") as handle:
            handle.truncate(mib * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True, timeout=60)
        device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                                text=True, timeout=30).stdout.strip()
        made.append((mount, device))
        subprocess.run(["mount", device, str(mount)], check=True, capture_output=True, timeout=30)
        os.chmod(mount, 0o700)
        return mount
    yield make
    for mount, device in made:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True, timeout=30)
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True, timeout=30)


def remount_read_only(mount, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        proc = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True, text=True, timeout=30,
                              check=False)
        if proc.returncode == 0:
            return
        assert time.monotonic() < deadline, proc.stderr  # busy: a file open for writing; retried
        time.sleep(0.05)


def fill(mount):
    """Write zeros until ENOSPC (the test process writes to its own loop fs, never to a frozen one)."""
    with open(os.path.join(str(mount), "filler"), "wb") as handle:
        block = b"\0" * (256 * 1024)
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    small = os.path.join(str(mount), "filler-small")
    with contextlib.suppress(OSError), open(small, "wb", buffering=0) as handle:
        while True:
            handle.write(b"\0" * 1024)
    assert os.statvfs(str(mount)).f_bavail == 0


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def json_lines(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def count_in_pod(cluster, namespace, pod, path):
    proc = cluster.kubectl_run("-n", namespace, "exec", pod, "-c", "main", "--", "/bin/sh", "-c",
                               "cat %s 2>/dev/null | wc -l" % path, check=False)
    return int(proc.stdout.strip() or 0)


# Post hooks: the unfreeze, then a line in the container's own /tmp (never frozen) to count the thaws.
COUNT_THAW = ["/bin/sh", "-c", "echo thawed >> /tmp/thaws"]


# --------------------------------------------------------------------------------------------------
# storage faults (item 3)

@pytest.mark.real_node
@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_storage_turning_read_only_or_full_mid_run_still_thaws(cluster, namespace, pvc, pods, thaw_guard, loopfs,
                                                               tmp_path, fault):
    claim, host_path = pvc("data")
    thaw_guard(host_path)
    freezer_pod(pods, "db", claim, annotations={"backup.velero.io/backup-volumes": "data"})
    hooks = [rule(namespace, "db", [{"command": FREEZE}, {"command": [SLEEP_MARK, "3"]}],
                  [{"command": UNFREEZE}, {"command": COUNT_THAW}])]
    plan = plan_of(cluster, namespace, hooks)
    storage = loopfs(96)  # room for the 64 MiB PV: the room check passes
    bdir = storage / "b1"
    log = bdir / "hooks.jsonl"
    args = dict(auth_args(cluster), plan=plan, name="b1", backup_dir=str(bdir), log_path=str(log),
                thaw_retry_seconds=5, max_freeze_seconds=60)
    box = {}
    runner = threading.Thread(target=lambda: box.update(result=run_module("backup_capture", args, timeout=120)))
    writers = Writers(host_path)
    try:
        runner.start()
        # The freeze hook ended (first log line): the second pre hook sleeps; the storage fails now.
        wait_for(lambda: log.exists() and log.read_text().count("\n") >= 1, 60, "the freeze hook")
        before = {name: (bdir / name).read_bytes() for name in ("hooks.jsonl", "b1-watchdog.json")}
        if fault == "read-only":
            remount_read_only(storage)
        else:
            fill(storage)
        runner.join(120)
        result = box["result"]
        assert writers.writable(10), "the volume is still frozen after the storage failed"
    finally:
        runner.join(120)
        writers.cleanup()
    # The thaw ran, exactly once (the watchdog stood down: told by a signal when `done` could not be written).
    post = [h for h in result["hooks"] if h["phase"] == "post"]
    assert [(h["command"], h["status"]) for h in post] == [(UNFREEZE, "succeeded"), (COUNT_THAW, "succeeded")], result
    assert result["not_thawed"] == []
    time.sleep(2)
    assert count_in_pod(cluster, namespace, "db", "/tmp/thaws") == 1
    # The run reports what it could not write; the hooks are all in its result (the record's one door).
    assert result["failed"] and result["write_errors"], result
    reason = "Read-only file system" if fault == "read-only" else "No space left on device"
    assert reason in result["msg"], result["msg"]
    [volume] = result["volumes"]
    assert volume["status"] == "failed", volume
    # Nothing written before is corrupted: every complete line of the hook log and thaw state parses.
    assert (bdir / "hooks.jsonl").read_bytes().startswith(before["hooks.jsonl"])
    assert json_lines(log)[0]["hookCommand"] == FREEZE
    assert json_lines(bdir / "b1-thaw-state.jsonl")
    assert json.loads((bdir / "b1-watchdog.json").read_text())["pid"]
    assert not glob.glob(str(bdir / "**" / "*.partial"), recursive=True)


@pytest.mark.real_node
def test_a_thaw_stage_on_read_only_storage_runs_the_post_hooks_once(cluster, namespace, pods, loopfs, tmp_path):
    """The split section (stage freeze, then stage thaw, as create_frozen_tasks and the thaw playbook run it):
    the storage turns read-only in between; the thaw stage still runs the post hook, exactly once."""
    pods.real_pod("db", labels={"app": "db"})
    plan = plan_of(cluster, namespace, [rule(namespace, "db", [{"command": ["/bin/true"]}], [{"command": COUNT_THAW}])])
    storage = loopfs(8)
    bdir = storage / "b1"
    args = dict(auth_args(cluster), plan=plan, name="b1", backup_dir=str(bdir), log_path=str(bdir / "hooks.jsonl"),
                thaw_retry_seconds=5, max_freeze_seconds=60)
    frozen = run_module("backup_capture", dict(args, stage="freeze"))
    assert not frozen.get("failed") and frozen["frozen_pods"] == ["%s/db" % namespace], frozen
    remount_read_only(storage)
    thawed = run_module("backup_capture", dict(args, stage="thaw"))
    assert [(h["command"], h["status"]) for h in thawed["hooks"]] == [(COUNT_THAW, "succeeded")], thawed
    assert thawed["not_thawed"] == [] and thawed["failed"] and "Read-only file system" in thawed["msg"], thawed
    time.sleep(2)  # the watchdog was told to stand down: it must not run the post hook again
    assert count_in_pod(cluster, namespace, "db", "/tmp/thaws") == 1


@pytest.mark.real_node
def test_a_storage_without_room_for_the_volumes_is_refused_before_anything_is_frozen(
        cluster, namespace, pvc, pods, thaw_guard, loopfs):
    claim, host_path = pvc("data")
    thaw_guard(host_path)
    freezer_pod(pods, "db", claim, annotations={"backup.velero.io/backup-volumes": "data",
                                                "pre.hook.backup.velero.io/command": json.dumps(FREEZE),
                                                "post.hook.backup.velero.io/command": json.dumps(UNFREEZE)})
    storage = loopfs(8)
    name = "room-" + uuid.uuid4().hex[:6]
    proc = run_create(cluster, storage, name, included_namespaces=[namespace])
    assert proc.returncode != 0, output(proc)
    assert "not enough room in %s" % storage in proc.stdout and "64.0 MiB" in proc.stdout, output(proc)
    assert "check_storage_room=false" in proc.stdout
    bdir = backup_dir_of(storage, name)
    record = load(bdir)
    assert record["status"]["phase"] == "Failed" and "not enough room" in record["status"]["failureReason"]
    assert record["status"]["hookStatus"] == {"hooksAttempted": 0, "hooksFailed": 0}
    assert not os.path.exists(os.path.join(bdir, name + "-hooks.jsonl")) or \
        not json_lines(os.path.join(bdir, name + "-hooks.jsonl"))


@pytest.mark.real_node
def test_a_pod_deleted_between_its_pre_and_post_hooks_is_recorded_as_gone(cluster, namespace, pods, core_v1,
                                                                          tmp_path):
    pods.real_pod("db", labels={"app": "db"})
    hooks = [rule(namespace, "db", [{"command": [SLEEP_MARK, "4"], "onError": "Continue"}],
                  [{"command": ["/bin/true"]}])]
    storage = tmp_path / "storage"
    name = "gone-" + uuid.uuid4().hex[:6]
    log_path = tmp_path / "run.log"
    proc = start_create(cluster, storage, name, str(log_path), included_namespaces=[namespace], hooks=hooks,
                        thaw_retry_seconds=10)
    try:
        wait_for(lambda: glob.glob(os.path.join(str(storage), "*", "backups", name, name + "-watchdog.json")), 60,
                 "the critical section")
        time.sleep(1)  # the pre hook sleeps
        core_v1.delete_namespaced_pod("db", namespace, grace_period_seconds=0)
        proc.wait(timeout=120)
    finally:
        kill_group(proc)
    text = log_path.read_text()
    assert proc.returncode == 0, text[-6000:]
    bdir = backup_dir_of(storage, name)
    record = load(bdir)
    annotations = record["metadata"]["annotations"]
    assert record["status"]["phase"] == "PartiallyFailed", record["status"]
    assert json.loads(annotations.get("backup.kubehooks.io/not-thawed", "[]")) == []
    [post] = [e for e in log_entries(bdir, name) if e.get("hookPhase") == "post"]
    assert post["notExecuted"] == "gone" and "not found" in post["error"] and post["status"] == "failed", post
    assert "NOT THAWED" not in text and "pod(s) may still be frozen" not in text

    # The thaw playbook (forced: the record is finished) does not fail on the pod that is gone.
    thaw = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"),
                        {"thaw_backup": name, "kubehooks_storage_dir": str(storage), "thaw_force": "true"},
                        env={"KUBECONFIG": cluster.kubeconfig})
    assert thaw.returncode == 0, thaw.stdout[-4000:]


# --------------------------------------------------------------------------------------------------
# the API server stopped while pods are frozen (item 1)

class ApiServer:
    """Stops and starts the shared cluster's kube-apiserver (only it), timing the outage.

    The stop is localcluster's own (``processes.stop`` under the cluster lock, as ``localcluster stop
    kube-apiserver`` does) with a 1 s grace instead of 20 s: a SIGTERM'd API server stops accepting
    connections at once but waits for its long-running exec streams before it exits, and the outage must
    stay short.  The start is ``python3 -m localcluster start kube-apiserver`` (returns once /readyz answers).
    """

    NAME = "kube-apiserver"

    def __init__(self):
        self.stopped_at = None
        self.outages = []

    def stop(self):
        cfg = lc_config.load()
        self.stopped_at = time.monotonic()
        with lc_cluster.locked(cfg):
            lc_processes.stop(cfg, self.NAME, timeout=1)

    def start(self):
        if self.stopped_at is None:
            return
        subprocess.run([sys.executable, "-m", "localcluster", "start", self.NAME], cwd=ROOT, check=True,
                       capture_output=True, text=True, timeout=120)
        self.outages.append(round(time.monotonic() - self.stopped_at, 1))
        self.stopped_at = None


@pytest.fixture
def apiserver():
    server = ApiServer()
    try:
        yield server
    finally:
        server.start()
        if server.outages:
            # The controllers, kubelet, kwok and CSI sidecars may now be in client-go's list back-off (up to
            # ~60 s after two outages): the next test's namespace would wait that long for its default
            # ServiceAccount (it failed CI once). They hold no state: restart them so the cluster is as fresh
            # for the next test as it was before this one.
            subprocess.run([sys.executable, "-m", "localcluster", "restart-clients"], cwd=ROOT, check=True,
                           capture_output=True, text=True, timeout=180)
        status = subprocess.run([sys.executable, "-m", "localcluster", "status"], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=False)
        print("API server outages: %s s\n%s" % (server.outages, status.stdout[-1500:]))


def freeze_logged(storage, name):
    def check():
        found = glob.glob(os.path.join(str(storage), "*", "backups", name, name + "-hooks.jsonl"))
        return bool(found) and os.path.getsize(found[0]) > 0
    return check


@pytest.mark.real_node
@pytest.mark.fault
def test_api_server_back_within_the_thaw_retries_thaws_and_records_honestly(
        cluster, namespace, pvc, pods, thaw_guard, apiserver, tmp_path):
    claim, host_path = pvc("data")
    thaw_guard(host_path)
    freezer_pod(pods, "db", claim)
    hooks = [rule(namespace, "db", [{"command": FREEZE}, {"command": [SLEEP_MARK, "4"]}], [{"command": UNFREEZE}])]
    storage = tmp_path / "storage"
    name = "outage-" + uuid.uuid4().hex[:6]
    run_log = tmp_path / "run.log"
    writers = Writers(host_path)
    proc = start_create(cluster, storage, name, str(run_log), included_namespaces=[namespace], hooks=hooks,
                        thaw_retry_seconds=60, max_freeze_seconds=60)
    try:
        wait_for(freeze_logged(storage, name), 90, "the freeze hook")
        apiserver.stop()
        assert writers.blocks(1.0), "the volume should be frozen while the API server is down"
        time.sleep(2)  # the post hook is refused and retried meanwhile
        apiserver.start()
        proc.wait(timeout=180)
        assert writers.finish(30) and writers.writable(10), "still frozen after the API server came back"
    finally:
        kill_group(proc)
        apiserver.start()
        writers.cleanup()
    text = run_log.read_text()
    # Stop (1 s grace) + ~3 s down + the start until /readyz: a loaded machine slows the start, not the run.
    assert apiserver.outages[0] < 30, (apiserver.outages, text[-4000:])
    bdir = backup_dir_of(storage, name)
    record = load(bdir)
    assert record["status"]["phase"] in ("Completed", "PartiallyFailed"), text[-6000:]
    assert json.loads(record["metadata"]["annotations"].get("backup.kubehooks.io/not-thawed", "[]")) == []
    [post] = [e for e in log_entries(bdir, name) if e.get("hookPhase") == "post"]
    assert post["status"] == "succeeded" and post.get("attempts", 1) >= 2, (post, text[-4000:])  # refused, retried
    # The pre hook whose stream the outage cut is recorded as failed: PartiallyFailed, honestly.
    pre = [e for e in log_entries(bdir, name) if e.get("hookPhase") == "pre"]
    if any(e["status"] == "failed" for e in pre):
        assert record["status"]["phase"] == "PartiallyFailed"
    assert proc.returncode == 0, text[-6000:]
    print("outage %.1f s; phase %s" % (apiserver.outages[0], record["status"]["phase"]))


@pytest.mark.real_node
@pytest.mark.fault
def test_api_server_down_past_the_thaw_retries_fails_the_play_and_the_thaw_playbook_thaws(
        cluster, namespace, pvc, pods, thaw_guard, apiserver, tmp_path):
    claim, host_path = pvc("data")
    thaw_guard(host_path)
    freezer_pod(pods, "db", claim)
    hooks = [rule(namespace, "db", [{"command": FREEZE}, {"command": [SLEEP_MARK, "4"]}], [{"command": UNFREEZE}])]
    storage = tmp_path / "storage"
    name = "outage-" + uuid.uuid4().hex[:6]
    run_log = tmp_path / "run.log"
    writers = Writers(host_path)
    proc = start_create(cluster, storage, name, str(run_log), included_namespaces=[namespace], hooks=hooks,
                        thaw_retry_seconds=3, max_freeze_seconds=30, fail_on_partial=False)
    try:
        wait_for(freeze_logged(storage, name), 90, "the freeze hook")
        apiserver.stop()
        bdir = backup_dir_of(storage, name)
        state = os.path.join(bdir, name + "-thaw-state.jsonl")
        wait_for(lambda: '"released"' in open(state).read(), 20, "the thaw retries to end")
        apiserver.start()
        proc.wait(timeout=180)
        text = run_log.read_text()
        assert proc.returncode != 0, text[-6000:]
        # The summary names the pod; the play fails although create_fail_on_partial is false.
        assert "NOT THAWED (may still be frozen): %s/db" % namespace in text, text[-6000:]
        record = load(bdir)
        assert record["status"]["phase"] == "InProgress", record["status"]
        assert json.loads(record["metadata"]["annotations"]["backup.kubehooks.io/not-thawed"]) == ["%s/db" % namespace]
        assert writers.blocks(1.0), "the volume was thawed although the run said it may still be frozen"

        thaw = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"),
                            {"thaw_backup": name, "kubehooks_storage_dir": str(storage)},
                            env={"KUBECONFIG": cluster.kubeconfig})
        assert thaw.returncode == 0, thaw.stdout[-4000:]
        assert writers.finish(30) and writers.writable(10), "still frozen after the thaw playbook"
        after = load(bdir)
        assert after["status"]["phase"] in ("PartiallyFailed", "Failed"), after["status"]
        assert json.loads(after["metadata"]["annotations"]["backup.kubehooks.io/not-thawed"]) == []
    finally:
        kill_group(proc)
        apiserver.start()
        writers.cleanup()
    print("outage %.1f s" % apiserver.outages[0])
