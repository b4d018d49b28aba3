"""Overlapping runs (issue 11 item 4) on the real API server: the coordination.k8s.io Lease.

- two runs over the same pod: while the first is in its section (a pre hook sleeps) the second, with a
  short lease_wait_seconds, fails naming the holder and runs no hook; with a longer wait it runs after
  the first one's post hooks ended; the Lease is held (holder ``<name>/<run id>``, a duration covering the
  freeze and both thaw retries) during a section and gone after it;
- the thaw playbook refuses a backup whose run still holds its Lease, and thaw_force runs anyway;
- two standalone exports of one name: the second fails clearly, the finished archive is never overwritten.

Each test uses a Lease name of its own (lease_name), so that other tests' backups on the shared cluster
(which take the default Lease) are not held up.
"""
import json
import os
import threading
import time
import uuid

from modrun import auth_args, run_module, run_playbook
from test_critical_section import plan_of, rule
from test_playbooks import PLAYBOOKS, kill_group
from test_role_create import backup_dir_of, load, start_create
from test_faults import wait_for

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases/"


def get_lease(cluster, name):
    proc = cluster.kubectl_run("-n", "default", "get", "lease", name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def test_a_second_run_over_the_same_pods_waits_for_the_first_ones_lease(cluster, namespace, pods, tmp_path):
    pods.real_pod("db", labels={"app": "db"})
    lease_name = "kh-test-" + uuid.uuid4().hex[:8]
    plan = plan_of(cluster, namespace, [rule(namespace, "db", [{"command": ["/bin/sleep", "3"]}],
                                             [{"command": ["/bin/true"]}])])

    def args(name, **extra):
        bdir = tmp_path / name
        values = dict(auth_args(cluster), plan=plan, name=name, backup_dir=str(bdir), log_path=str(bdir / "hooks.jsonl"),
                      lease_name=lease_name, run_id="run-" + name, thaw_retry_seconds=5, max_freeze_seconds=30)
        values.update(extra)
        return values

    box = {}
    first = threading.Thread(target=lambda: box.update(first=run_module("backup_capture", args("first"))))
    first.start()
    try:
        wait_for((tmp_path / "first" / "first-watchdog.json").exists, 60, "the first run's section")
        lease = get_lease(cluster, lease_name)
        assert lease and lease["spec"]["holderIdentity"] == "first/run-first", lease
        assert lease["spec"]["leaseDurationSeconds"] == 30 + 2 * 5 + 70
        refused = run_module("backup_capture", args("second", lease_wait_seconds=1))
        assert refused.get("failed"), refused
        for part in ("another backup holds the Lease default/%s" % lease_name, "holder first/run-first",
                     "nothing was frozen"):
            assert part in refused["msg"], refused["msg"]
        assert not (tmp_path / "second" / "hooks.jsonl").exists() or not (tmp_path / "second" / "hooks.jsonl").read_text()
        waited = run_module("backup_capture", args("third", lease_wait_seconds=60))
    finally:
        first.join(120)
    one, three = box["first"], waited
    assert not one.get("failed") and not three.get("failed"), (one, three)
    first_post_end = max(h["finished_at"] for h in one["hooks"] if h["phase"] == "post")
    third_pre_start = min(h["finished_at"] - h["duration"] for h in three["hooks"] if h["phase"] == "pre")
    assert third_pre_start >= first_post_end, (first_post_end, third_pre_start)
    assert three["lease"]["holder"] == "third/run-third"
    wait_for(lambda: get_lease(cluster, lease_name) is None, 30, "the Lease to be released")


def test_the_thaw_playbook_refuses_a_run_that_still_holds_its_lease_unless_forced(cluster, namespace, pods, tmp_path):
    pods.real_pod("db", labels={"app": "db"})
    lease_name = "kh-test-" + uuid.uuid4().hex[:8]
    hooks = [rule(namespace, "db", [{"command": ["/bin/sleep", "40"], "timeout": "1m"}], [{"command": ["/bin/true"]}])]
    storage = tmp_path / "storage"
    name = "held-" + uuid.uuid4().hex[:6]
    proc = start_create(cluster, storage, name, str(tmp_path / "run.log"), included_namespaces=[namespace],
                        hooks=hooks, lease_name=lease_name)
    try:
        wait_for(lambda: get_lease(cluster, lease_name) is not None, 90, "the run's Lease")
        bdir = backup_dir_of(storage, name)
        assert load(bdir)["status"]["phase"] == "InProgress"
        started = time.monotonic()
        refused = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"),
                               {"thaw_backup": name, "kubehooks_storage_dir": str(storage)},
                               env={"KUBECONFIG": cluster.kubeconfig})
        assert refused.returncode != 0 and "still holds the Lease default/%s" % lease_name in refused.stdout, \
            refused.stdout[-4000:]
        assert time.monotonic() - started < 40
        assert load(bdir)["status"]["phase"] == "InProgress"
        forced = run_playbook(os.path.join(PLAYBOOKS, "thaw.yml"),
                              {"thaw_backup": name, "kubehooks_storage_dir": str(storage), "thaw_force": "true"},
                              env={"KUBECONFIG": cluster.kubeconfig})
        assert forced.returncode == 0, forced.stdout[-4000:]
        assert "Post hooks: 1 attempted, 0 failed" in forced.stdout, forced.stdout[-4000:]
    finally:
        kill_group(proc)
    # Cancelled: its watchdog takes over (holding the Lease while it thaws), then releases it.
    wait_for(lambda: get_lease(cluster, lease_name) is None, 30, "the Lease to be released by the watchdog")


def test_two_exports_of_one_name_never_overwrite_or_interleave(cluster, namespace, pods, tmp_path):
    pods.fake_pods(3)
    args = dict(auth_args(cluster), name="exp", backup_dir=str(tmp_path / "exp"), included_namespaces=[namespace])
    first = run_module("resource_export", args)
    assert not first.get("failed"), first
    archive = first["path"]
    before = open(archive, "rb").read()
    again = run_module("resource_export", args)
    assert again.get("failed") and "already exists: a finished backup is never overwritten" in again["msg"], again
    assert open(archive, "rb").read() == before
    # While one export holds the name (its .partial is locked), a second one fails at once.
    import fcntl  # pylint: disable=import-outside-toplevel
    other = dict(args, name="exp2")
    os.makedirs(str(tmp_path / "exp"), exist_ok=True)
    partial = str(tmp_path / "exp" / "exp2.tar.gz.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # stands in for a running export of the same name (same lock)
        busy = run_module("resource_export", other)
        assert busy.get("failed") and "another export of backup archive" in busy["msg"], busy
    finally:
        os.close(fd)
    done = run_module("resource_export", other)  # the lock released: the stale partial is taken over
    assert not done.get("failed"), done
