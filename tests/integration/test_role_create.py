"""The kubehooks.backup.create role through ansible-playbook on the local cluster, with REAL frozen filesystems.

What is proven here (issue 6 item 6, issue 10 items 4-6; the playbooks, AWX and thaw-playbook parts live in
test_playbooks.py, the module alone in test_critical_section.py):
- the freeze is real and the captured data is exactly the volume's content at freeze time: a privileged
  pod on the real node runs ``/sbin/fsfreeze --freeze /data`` on a loop-mounted ext4 PV as its pre hook;
  a host-side writer (a SEPARATE process with its own time limit) appends numbered lines with an fsync
  each; the volume's archive holds a gapless prefix of them, every line written before the freeze and
  none after, and the writer's blocked write spans the freeze window; the pod's own probe, run as the
  first post hook - after the capture, before the unfreeze - sees the filesystem frozen;
- the freeze window ends before the export starts (the export runs outside the freeze); the archive's
  content matches the API objects;
- SIGKILL and SIGTERM of the whole ansible-playbook process group while frozen (stage all, and between
  stage freeze and stage thaw of create_frozen_tasks): writable again within seconds with no operator
  action, and the record says the watchdog thawed it;
- create_frozen_tasks run while the volume is frozen; check mode freezes nothing and shows the plan;
- an export that fails half-way (a storage directory on a tiny tmpfs: ENOSPC in the middle of the
  archive) still thaws every pod and records the backup as Failed; the play fails;
- a pre hook failure with on-error Fail leaves that pod out of the archive (PartiallyFailed; the play
  goes on unless create_fail_on_partial);
- two pods on separate volumes are frozen together and thawed together (create_freeze_together).

SAFETY: only the PV mounts the ``pvc`` fixture hands out are frozen (checked to be under the cluster's
PV directory); the test process never writes to a filesystem that may be frozen; every test that
freezes thaws in its cleanup with a time limit; only process groups started here are killed.
"""
import contextlib
import glob
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid

import pytest

from localcluster import config as lc_config
from modrun import ROOT, run_module, run_playbook

PLAYBOOK = os.path.join(ROOT, "tests", "integration", "playbooks", "create.yml")
PRE = "pre.hook.backup.velero.io/"
FREEZE = ["/sbin/fsfreeze", "--freeze", "/data"]
UNFREEZE = ["/sbin/fsfreeze", "--unfreeze", "/data"]
# Run inside the pod as the first post hook, i.e. after the export and before the unfreeze: a file
# creation in the background; if it has not happened a second later, the filesystem is frozen.
# Reads (test -e) never block on a frozen filesystem; the blocked touch finishes after the thaw.
# The file name is unique per test session: a PV of the pool may still hold an earlier run's files.
PROBE = ["/bin/sh", "-c", "f=/data/probe-%s-$$; (touch $f </dev/null >/dev/null 2>&1 &); sleep 1; "
                          "if [ -e $f ]; then echo writable; else echo frozen; fi" % uuid.uuid4().hex]

# The host-side prober: a separate process with its own time limit.  Each round starts one `touch`
# child per path and looks 0.3 s later whether it is done; it never waits on a child, so it cannot
# block on a frozen filesystem itself.  Samples go to a JSON file in /tmp (never frozen).
PROBER = r"""
import json, os, subprocess, sys, time
paths, out, stop, limit = sys.argv[1].split(","), sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline, samples, n = time.monotonic() + limit, [], 0
while time.monotonic() < deadline and not os.path.exists(stop):
    n += 1
    started = time.time()
    children = [(p, subprocess.Popen(["touch", os.path.join(p, ".hostprobe-%d-%d" % (os.getpid(), n))], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)) for p in paths]
    time.sleep(0.3)
    samples.append({"t": started, "blocked": [p for p, child in children if child.poll() is None]})
    with open(out + ".tmp", "w") as handle:
        json.dump(samples, handle)
    os.replace(out + ".tmp", out)
"""


def pv_path(path):
    pv_dir = str(lc_config.load().pv_dir) + "/"
    assert path.startswith(pv_dir), f"{path} is not one of the local cluster's PV mounts ({pv_dir})"
    return path


@pytest.fixture
def thaw_guard():
    """Register PV host paths that a test may freeze; cleanup unfreezes each with a time limit."""
    paths = []
    yield lambda path: paths.append(pv_path(path)) or path
    for path in paths:
        with contextlib.suppress(subprocess.TimeoutExpired):
            # "Invalid argument" when it is not frozen: that is the good case.
            subprocess.run(["fsfreeze", "--unfreeze", path], capture_output=True, timeout=10, check=False)


def writable(path, timeout=10):
    """Create a file under ``path`` from a separate process with a time limit: False if it blocks."""
    target = os.path.join(path, "after-%s" % uuid.uuid4().hex[:6])
    child = subprocess.Popen([sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('x')", target],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return child.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        return False  # left running: it finishes by itself once the filesystem is thawed


@contextlib.contextmanager
def host_prober(paths, tmp_path, limit=240):
    out, stop = str(tmp_path / "prober.json"), str(tmp_path / "prober.stop")
    proc = subprocess.Popen([sys.executable, "-c", PROBER, ",".join(paths), out, stop, str(limit)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    try:
        yield samples
    finally:
        open(stop, "w").close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if os.path.exists(out):
            with open(out) as handle:
                samples.extend(json.load(handle))


# The host-side writer: appends numbered lines with an fsync each, every few ms, from a separate process
# with a time limit (or until the stop file exists); logs [n, write start, write end] of each line to /tmp.
# A write blocked by the freeze ends on the thaw; the test never waits on it without a time limit.
WRITER = r"""
import json, os, sys, time
path, log, stop, limit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline, n = time.monotonic() + limit, 0
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
with open(log, "w") as out:
    while time.monotonic() < deadline and not os.path.exists(stop):
        n += 1
        started = time.time()
        os.write(fd, b"line %06d\n" % n)
        os.fsync(fd)
        out.write(json.dumps([n, started, time.time()]) + "\n")
        out.flush()
        time.sleep(0.005)
"""


@contextlib.contextmanager
def line_writer(path, tmp_path, limit=180):
    """Start WRITER on ``path``; yields the list its log is read into after it stopped."""
    log, stop = str(tmp_path / "writer.jsonl"), str(tmp_path / "writer.stop")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path, log, stop, str(limit)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writes = []
    try:
        deadline = time.monotonic() + 30
        while not (os.path.exists(log) and os.path.getsize(log) > 200):
            assert proc.poll() is None and time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.05)
        yield writes
    finally:
        open(stop, "w").close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass  # still blocked: the cleanup thaws, then it ends by itself
        with open(log) as handle:
            writes.extend(json.loads(line) for line in handle if line.strip())


def thaw_state_times(bdir, name, pod):
    """(when the pod's group started its freeze, when the pod was marked thawed) from the thaw state."""
    with open(os.path.join(bdir, name + "-thaw-state.jsonl")) as handle:
        events = [json.loads(line) for line in handle if line.strip()]
    frozen = min(e["time"] for e in events if e["event"] == "freeze" and pod in e["pods"])
    thawed = max(e["time"] for e in events if e["event"] == "thawed" and e["pod"] == pod)
    return frozen, thawed


def volume_entries(bdir, name):
    with gzip.open(os.path.join(bdir, name + "-volumes.json.gz"), "rt") as handle:
        return json.load(handle)


def volume_file(bdir, entry, member):
    with tarfile.open(os.path.join(bdir, entry["path"]), "r:gz") as tar:
        return tar.extractfile(member).read()


def assert_thawed_before_the_export(bdir, name, pods):
    """The export started after every pod's thaw: the freeze window ends before the export."""
    with open(os.path.join(bdir, name + "-progress.json")) as handle:
        progress = json.load(handle)
    assert progress["phase"] == "export" and progress["done"] and not progress.get("error"), progress
    for pod in pods:
        _frozen, thawed = thaw_state_times(bdir, name, pod)
        assert thawed < progress["started_at"], (pod, thawed, progress)


def freezer_pod(pods, name, claim, labels=None, annotations=None):
    return pods.real_pod(name, privileged=True, pvc=claim, mount_path="/data", labels=labels or {"app": name},
                         annotations=annotations)


def rule(name, pre=None, post=None, **extra):
    body = {"name": name}
    body.update(extra)
    if pre is not None:
        body["pre"] = [{"exec": dict(spec)} for spec in pre]
    if post is not None:
        body["post"] = [{"exec": dict(spec)} for spec in post]
    return body


def run_create(k8s, storage, name, env=None, options=(), **variables):
    """Run the role through ansible-playbook; ``variables`` are create_* without the prefix.  The process, with
    ``result``: the fact create_result as the play left it (None when the play did not get that far)."""
    result_file = os.path.join(os.path.dirname(str(storage)), "create-result-%s.json" % uuid.uuid4().hex[:6])
    extra = {"create_name": name, "create_storage_dir": str(storage),
             "create_auth": {"kubeconfig": k8s.kubeconfig}, "create_test_result_file": result_file}
    extra.update(("create_" + key, value) for key, value in variables.items())
    if env and "K8S_AUTH_KUBECONFIG" in env:
        extra.pop("create_auth")
    started = time.monotonic()
    proc = run_playbook(PLAYBOOK, extra_vars=extra, env=env, timeout=600, extra_args=options)
    proc.elapsed = time.monotonic() - started
    proc.result = None
    if os.path.exists(result_file):
        with open(result_file) as handle:
            proc.result = json.load(handle)
    return proc


def backup_dir_of(storage, name):
    found = glob.glob(os.path.join(str(storage), "*", "backups", name)) + \
        glob.glob(os.path.join(str(storage), "backups", name))
    assert len(found) == 1, found
    return found[0]


def load(bdir):
    with open(os.path.join(bdir, "velero-backup.json")) as handle:
        return json.load(handle)


def log_entries(bdir, name):
    with gzip.open(os.path.join(bdir, name + "-logs.gz"), "rt") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def archive_members(bdir, name):
    with tarfile.open(os.path.join(bdir, name + ".tar.gz"), "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def output(proc):
    return "rc=%s\n--- stdout\n%s\n--- stderr\n%s" % (proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:])


def hooks_by(entries, **match):
    return [e for e in entries if "hookCommand" in e and all(e.get(k) == v for k, v in match.items())]


@pytest.mark.real_node
def test_freeze_is_real_capture_is_the_content_at_freeze_time_and_export_follows_the_thaw(
        cluster, namespace, pods, pvc, thaw_guard, core_v1, tmp_path):
    claim, host_path = pvc("data")
    thaw_guard(host_path)
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"k": "v"}})
    # The walkthrough's shape: the freeze and the volume opt-in come from the pod annotations, the rest
    # from a rule (per phase).
    freezer_pod(pods, "app", claim, annotations={PRE + "command": json.dumps(FREEZE), PRE + "container": "main",
                                                 "backup.velero.io/backup-volumes": "data"})
    pods.real_pod("bystander", labels={"app": "other"})
    name = "freeze-" + uuid.uuid4().hex[:6]
    hooks = [rule("thaw-after-probe", post=[{"command": PROBE, "onError": "Continue"}, {"command": UNFREEZE}],
                  labelSelector={"matchLabels": {"app": "app"}})]
    storage = tmp_path / "storage"
    data_file = "writer-%s.txt" % uuid.uuid4().hex[:6]
    with line_writer(os.path.join(host_path, data_file), tmp_path) as writes:
        proc = run_create(cluster, storage, name, included_namespaces=[namespace], hooks=hooks)
    assert proc.returncode == 0, output(proc)
    assert writable(host_path), "the filesystem is still frozen after the run"

    bdir = backup_dir_of(storage, name)
    record = load(bdir)
    status, annotations = record["status"], record["metadata"]["annotations"]
    assert status["phase"] == "Completed", (status, output(proc))
    assert status["hookStatus"] == {"hooksAttempted": 3, "hooksFailed": 0}
    assert json.loads(annotations["backup.kubehooks.io/frozen-pods"]) == [f"{namespace}/app"]
    window = float(annotations["backup.kubehooks.io/freeze-window-seconds"])
    assert 0 < window < proc.elapsed
    assert json.loads(annotations["backup.kubehooks.io/not-thawed"]) == []
    assert record["spec"]["includedNamespaces"] == [namespace]
    assert record["spec"]["hooks"]["resources"][0]["name"] == "thaw-after-probe"
    assert status["startTimestamp"] <= status["completionTimestamp"]

    # The captured volume: exactly the content at freeze time.
    [entry] = volume_entries(bdir, name)
    assert (entry["namespace"], entry["pod"], entry["volume"], entry["status"]) == \
        (namespace, "app", "data", "succeeded"), entry
    with open(os.path.join(bdir, entry["path"]), "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == entry["sha256"]
    totals = json.loads(annotations["backup.kubehooks.io/volumes"])
    assert totals == {"volumes": 1, "succeeded": 1, "failed": 0, "bytes": entry["bytes"], "files": entry["files"]}
    captured = volume_file(bdir, entry, "./" + data_file).decode().splitlines()
    count = len(captured)
    assert count > 0 and captured == ["line %06d" % n for n in range(1, count + 1)], captured[-5:]
    frozen_at, thawed_at = thaw_state_times(bdir, name, f"{namespace}/app")
    by_number = {n: (started, ended) for n, started, ended in writes}
    assert max(by_number) > count + 1, "the writer should have gone on after the thaw"
    # Every line whose write ended before the freeze began is in the archive; none after.
    assert all(n <= count for n, (_s, ended) in by_number.items() if ended < frozen_at)
    blocked_start, blocked_end = by_number[count + 1]  # the first line not captured: blocked by the freeze
    assert blocked_start < thawed_at and blocked_end > frozen_at, (blocked_start, blocked_end, frozen_at, thawed_at)
    assert blocked_end - blocked_start >= 1.0, (blocked_start, blocked_end)  # spans the freeze (the probe alone: 1 s)
    assert blocked_end <= thawed_at + 1.0
    print("captured %d lines; the blocked write lasted %.2f s, freeze window %.2f s" % (
        count, blocked_end - blocked_start, window))

    # The export ran after the thaw, outside the freeze.
    assert_thawed_before_the_export(bdir, name, [f"{namespace}/app"])
    entries = log_entries(bdir, name)
    pre, post = hooks_by(entries, hookPhase="pre"), hooks_by(entries, hookPhase="post")
    assert [e["hookCommand"] for e in pre] == [FREEZE]
    assert pre[0]["hookName"] == "<from-annotation>" and pre[0]["hookSource"] == "annotation"
    assert [e["hookCommand"] for e in post] == [PROBE, UNFREEZE]
    assert all(e["status"] == "succeeded" and e["backup"] == "velero/" + name for e in pre + post)
    # The pod's own probe ran after the capture and before the unfreeze: the filesystem was frozen.
    assert post[0]["stdout"].strip() == "frozen", post[0]
    messages = [e["msg"] for e in entries]
    assert messages[-1] == "Backup completed"
    export_at = next(i for i, m in enumerate(messages) if m.startswith("Export finished"))
    volume_at = next(i for i, m in enumerate(messages) if m.startswith("Backed up volume data"))
    assert entries.index(pre[0]) < volume_at < entries.index(post[0]) < export_at

    # The archive against the API objects.
    members = archive_members(bdir, name)
    assert members["metadata/version"] == b"1.1.0\n"
    for resource, kind_path, api_path in [
            ("pods", "pods", f"/api/v1/namespaces/{namespace}/pods"),
            ("configmaps", "configmaps", f"/api/v1/namespaces/{namespace}/configmaps"),
            ("persistentvolumeclaims", "persistentvolumeclaims",
             f"/api/v1/namespaces/{namespace}/persistentvolumeclaims")]:
        live = json.loads(cluster.kubectl_run("get", "--raw", api_path).stdout)["items"]
        assert live, resource
        for obj in live:
            meta = obj["metadata"]
            plain = f"resources/{kind_path}/namespaces/{namespace}/{meta['name']}.json"
            preferred = f"resources/{kind_path}/v1-preferredversion/namespaces/{namespace}/{meta['name']}.json"
            assert plain in members and preferred in members, (plain, sorted(members)[:20])
            item = json.loads(members[plain])
            assert members[plain] == members[preferred]
            assert item["apiVersion"] == "v1" and item["metadata"]["uid"] == meta["uid"]
            assert item["metadata"]["name"] == meta["name"]
    assert f"resources/namespaces/cluster/{namespace}.json" in members
    assert not any(k.startswith("resources/nodes/") for k in members)  # namespaced scope: no cluster resources
    with gzip.open(os.path.join(bdir, name + "-resource-list.json.gz"), "rt") as handle:
        resource_list = json.load(handle)
    assert sorted(resource_list["v1/Pod"]) == sorted([f"{namespace}/app", f"{namespace}/bystander"])
    assert status["progress"]["itemsBackedUp"] == status["progress"]["totalItems"] == \
        sum(len(v) for v in resource_list.values())

    # The files sit where they are announced, owner-only; the plan was saved.
    for suffix in (".tar.gz", "-logs.gz", "-resource-list.json.gz", "-results.gz", "-hook-plan.json",
                   "-hooks.jsonl", "-progress.json", "-volumes.json.gz", "-thaw-state.jsonl", "-watchdog.json"):
        path = os.path.join(bdir, name + suffix)
        assert os.stat(path).st_mode & 0o077 == 0, path
    assert os.stat(os.path.join(bdir, entry["path"])).st_mode & 0o077 == 0
    with open(os.path.join(bdir, name + "-watchdog.json")) as handle:
        assert json.load(handle)["acted"] is False  # the run thawed: the watchdog stood down
    with open(os.path.join(bdir, name + "-hook-plan.json")) as handle:
        assert [p["name"] for p in json.load(handle)] == ["app"]  # the bystander has no hooks

    # The readable summary.
    assert f"Backup {name}: Completed" in proc.stdout
    assert "Hooks: 3 attempted, 0 failed" in proc.stdout
    assert "Freeze window: " in proc.stdout and bdir in proc.stdout
    assert "Volumes: 1 of 1 captured" in proc.stdout

    # backup_info: like velero backup get / velero backup logs | grep hookCommand.
    listing = run_module("backup_info", {"storage_dir": str(storage)})
    assert [row["name"] for row in listing["backups"]] == [name]
    assert listing["table"][0].startswith("NAME") and name in listing["table"][1] and "Completed" in listing["table"][1]
    one = run_module("backup_info", {"storage_dir": str(storage), "name": name, "hooks_only": True,
                                     "query": "logs[?hookPhase=='post'].hookCommand"})
    assert one["backup"]["status"] == "Completed" and len(one["logs"]) == 3
    assert one["query_result"] == [PROBE, UNFREEZE]
    assert one["hook_plan"][0]["name"] == "app"
    assert [v["volume"] for v in one["volumes"]] == ["data"]


@pytest.mark.real_node
def test_two_pods_on_separate_volumes_are_frozen_together_and_thawed_together(cluster, namespace, pods, pvc,
                                                                              thaw_guard, tmp_path):
    claims = [pvc("data-a"), pvc("data-b")]
    for _claim, host_path in claims:
        thaw_guard(host_path)
    assert claims[0][1] != claims[1][1]
    for pod_name, (claim, _path) in zip(("db-a", "db-b"), claims):
        freezer_pod(pods, pod_name, claim, labels={"tier": "db"})
    hooks = [rule("freeze-db", pre=[{"command": FREEZE}],
                  post=[{"command": PROBE, "onError": "Continue"}, {"command": UNFREEZE}],
                  labelSelector={"matchLabels": {"tier": "db"}})]
    name = "together-" + uuid.uuid4().hex[:6]
    storage = tmp_path / "storage"
    paths = [path for _claim, path in claims]
    with host_prober(paths, tmp_path) as samples:
        proc = run_create(cluster, storage, name, included_namespaces=[namespace], hooks=hooks,
                          freeze_together=True)
    assert proc.returncode == 0, output(proc)
    assert all(writable(path) for path in paths), "a filesystem is still frozen after the run"

    # Together: a moment where writes to BOTH volumes were blocked at once; nothing blocked at the end.
    assert any(set(s["blocked"]) == set(paths) for s in samples), samples
    assert not samples[-1]["blocked"]
    bdir = backup_dir_of(storage, name)
    assert_thawed_before_the_export(bdir, name, [f"{namespace}/db-a", f"{namespace}/db-b"])
    record = load(bdir)
    windows = json.loads(record["metadata"]["annotations"]["backup.kubehooks.io/freeze-windows"])
    assert [w["pods"] for w in windows] == [[f"{namespace}/db-a", f"{namespace}/db-b"]], windows  # one group
    assert record["status"]["phase"] == "Completed", output(proc)
    assert json.loads(record["metadata"]["annotations"]["backup.kubehooks.io/frozen-pods"]) == \
        [f"{namespace}/db-a", f"{namespace}/db-b"]
    entries = log_entries(bdir, name)
    # Every freeze ended before the first post hook started; both probes saw their volume frozen.
    freezes, probes = hooks_by(entries, hookPhase="pre"), hooks_by(entries, hookCommand=PROBE)
    assert sorted(e["pod"] for e in freezes) == ["db-a", "db-b"]
    timeline = [(e.get("time"), e["pod"], e["hookPhase"], e["status"], e["duration"], e.get("stdout")) for e in
                hooks_by(entries)]
    assert sorted((e["pod"], e["stdout"].strip()) for e in probes) == [("db-a", "frozen"), ("db-b", "frozen")], \
        (timeline, samples)
    assert sorted(e["pod"] for e in hooks_by(entries, hookCommand=UNFREEZE, status="succeeded")) == ["db-a", "db-b"]
    pods_in_archive = [k for k in archive_members(bdir, name) if k.startswith(f"resources/pods/namespaces/{namespace}/")]
    assert sorted(pods_in_archive) == [f"resources/pods/namespaces/{namespace}/db-a.json",
                                       f"resources/pods/namespaces/{namespace}/db-b.json"]


@pytest.mark.real_node
def test_a_failed_pre_hook_with_fail_leaves_the_pod_out_and_still_thaws_it(cluster, namespace, pods, tmp_path):
    pods.real_pod("good", labels={"role": "good"})
    pods.real_pod("bad", labels={"role": "bad"})
    hooks = [rule("check", pre=[{"command": ["/bin/true"]}], post=[{"command": ["/bin/echo", "thawed"]}],
                  labelSelector={"matchLabels": {"role": "good"}}),
             rule("broken", pre=[{"command": ["/bin/false"], "onError": "Fail"}, {"command": ["/bin/true"]}],
                  post=[{"command": ["/bin/echo", "thawed"]}], labelSelector={"matchLabels": {"role": "bad"}})]
    name = "partial-" + uuid.uuid4().hex[:6]
    storage = tmp_path / "storage"
    proc = run_create(cluster, storage, name, included_namespaces=[namespace], hooks=hooks)
    # PartiallyFailed is reported clearly, and does not fail the play by default.
    assert proc.returncode == 0, output(proc)
    assert f"Backup {name}: PartiallyFailed" in proc.stdout
    assert "bad" in proc.stdout and "/bin/false" in proc.stdout  # the error line names the pod and hook
    assert f"Not in the archive (a pre hook with on-error Fail failed): {namespace}/bad" in proc.stdout
    # create_result keeps its types on every supported ansible-core (< 2.19 rendered each value as a string)
    result = proc.result
    assert result["phase"] == "PartiallyFailed" and result["name"] == name
    assert (result["hooks_attempted"], result["hooks_failed"]) == (5, 1)
    assert isinstance(result["items_backed_up"], int) and result["items_backed_up"] == result["total_items"] - 1  # bad
    assert isinstance(result["freeze_window_seconds"], float) and result["not_thawed"] == []
    assert result["volumes"]["files"] == 0 and result["excluded_pods"] == [f"{namespace}/bad"]

    bdir = backup_dir_of(storage, name)
    record = load(bdir)
    status = record["status"]
    assert status["phase"] == "PartiallyFailed"
    # bad: false (failed) + true (not run); good: true; post: 2 echo.
    assert status["hookStatus"] == {"hooksAttempted": 5, "hooksFailed": 1}
    assert status["errors"] >= 1
    assert json.loads(record["metadata"]["annotations"]["backup.kubehooks.io/excluded-pods"]) == [f"{namespace}/bad"]
    members = archive_members(bdir, name)
    assert f"resources/pods/namespaces/{namespace}/good.json" in members
    assert not any(k.endswith("/bad.json") for k in members)
    with gzip.open(os.path.join(bdir, name + "-resource-list.json.gz"), "rt") as handle:
        assert json.load(handle)["v1/Pod"] == [f"{namespace}/good"]
    assert status["progress"]["totalItems"] == status["progress"]["itemsBackedUp"] + 1
    entries = log_entries(bdir, name)
    # The thaw is guaranteed: the pod whose freeze failed still ran its post hook.
    assert sorted(e["pod"] for e in hooks_by(entries, hookPhase="post", status="succeeded")) == ["bad", "good"]
    assert [e["status"] for e in hooks_by(entries, pod="bad", hookPhase="pre")] == ["failed", "not_run"]
    with gzip.open(os.path.join(bdir, name + "-results.gz"), "rt") as handle:
        results = json.load(handle)
    assert any("bad" in m for m in results["errors"]["namespaces"][namespace])

    # With create_fail_on_partial the same outcome fails the play (after recording it).
    strict = "strict-" + uuid.uuid4().hex[:6]
    proc = run_create(cluster, storage, strict, included_namespaces=[namespace], hooks=hooks, fail_on_partial=True)
    assert proc.returncode != 0, output(proc)
    assert "PartiallyFailed" in proc.stdout
    assert load(backup_dir_of(storage, strict))["status"]["phase"] == "PartiallyFailed"


@pytest.fixture
def tiny_storage(tmp_path):
    """A 256 KiB tmpfs as storage directory: the record fits, a large archive does not (ENOSPC half-way)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)], check=True,
                   capture_output=True, timeout=30)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True, timeout=30)


@pytest.mark.real_node
def test_an_export_failing_half_way_still_thaws_and_records_failed(cluster, namespace, pods, pvc, thaw_guard,
                                                                   core_v1, tiny_storage):
    claim, host_path = pvc("data")
    thaw_guard(host_path)
    freezer_pod(pods, "app", claim, annotations={PRE + "command": json.dumps(FREEZE),
                                                 "post.hook.backup.velero.io/command": json.dumps(UNFREEZE)})
    # About 1.4 MB of incompressible data (two copies in the archive): far more than the tmpfs holds.
    noise = os.urandom(512 * 1024).hex()[:700 * 1024]
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "big"}, "data": {"noise": noise}})
    name = "halfway-" + uuid.uuid4().hex[:6]
    proc = run_create(cluster, tiny_storage, name, included_namespaces=[namespace])
    assert proc.returncode != 0, output(proc)
    assert writable(host_path), "the filesystem is still frozen after the failed export"

    bdir = backup_dir_of(tiny_storage, name)
    record = load(bdir)
    status = record["status"]
    assert status["phase"] == "Failed", output(proc)
    assert "space" in status["failureReason"].lower(), status
    assert status["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 0}
    assert status["completionTimestamp"]
    assert not os.path.exists(os.path.join(bdir, name + ".tar.gz"))
    assert not glob.glob(os.path.join(bdir, "*.partial"))
    entries = log_entries(bdir, name)
    assert [(e["hookPhase"], e["status"]) for e in hooks_by(entries)] == [("pre", "succeeded"), ("post", "succeeded")]
    assert any(e["msg"].startswith("Export failed") for e in entries)
    assert entries[-1]["msg"] == "Backup failed"
    assert f"Backup {name}: Failed" in proc.stdout and f"Backup {name} Failed" in proc.stdout


@pytest.mark.real_node
def test_credentials_from_the_environment_and_the_cluster_directory(cluster, namespace, pods, tmp_path):
    names = pods.fake_pods(3, annotations={PRE + "command": json.dumps(["/bin/echo", "pre"]),
                                           "post.hook.backup.velero.io/command": json.dumps(["/bin/echo", "post"])})
    name = "env-" + uuid.uuid4().hex[:6]
    storage = tmp_path / "storage"
    proc = run_create(cluster, storage, name, env={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig},
                      included_namespaces=[namespace], excluded_resources=["events"], include_cluster_resources=False)
    assert proc.returncode == 0, output(proc)
    bdir = backup_dir_of(storage, name)
    # include_cluster_resources false: not even the Namespace object (Velero's semantics); events excluded.
    members = archive_members(bdir, name)
    # (events.events.k8s.io is another resource type: as in Velero, excluding "events" leaves it in.)
    assert not any("/cluster/" in k for k in members) and not any(k.startswith("resources/events/") for k in members)
    assert sum(1 for k in members if k.startswith(f"resources/pods/namespaces/{namespace}/")) == 3
    # <storage>/<cluster derived from the API URL>/backups/<name>
    host = cluster.host.split("://", 1)[1].rstrip("/").replace(":", "_")
    assert bdir == os.path.join(str(storage), host, "backups", name)
    record = load(bdir)
    assert record["status"]["phase"] == "Completed"
    assert record["status"]["hookStatus"] == {"hooksAttempted": 6, "hooksFailed": 0}
    assert record["spec"]["storageLocation"] == host
    assert record["spec"]["includeClusterResources"] is False and record["spec"]["excludedResources"] == ["events"]
    assert sorted(p.split("/")[1] for p in json.loads(
        record["metadata"]["annotations"]["backup.kubehooks.io/frozen-pods"])) == sorted(names)
    # The same name again: refused, and the first record is untouched.
    again = run_create(cluster, storage, name, env={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig},
                       included_namespaces=[namespace])
    assert again.returncode != 0 and "already exists" in again.stdout, output(again)
    assert load(bdir) == record


def test_invalid_rules_fail_before_anything_runs_and_are_recorded(cluster, namespace, tmp_path):
    name = "badrule-" + uuid.uuid4().hex[:6]
    storage = tmp_path / "storage"
    hooks = [rule("broken", pre=[{"command": ["/bin/true"], "onError": "Sometimes"}])]
    proc = run_create(cluster, storage, name, included_namespaces=[namespace], hooks=hooks)
    assert proc.returncode != 0, output(proc)
    assert "onError" in proc.stdout and f"Backup {name}: Failed" in proc.stdout
    bdir = backup_dir_of(storage, name)
    # Where a started backup would have been: the cluster directory comes from the API URL.
    host = cluster.host.split("://", 1)[1].rstrip("/").replace(":", "_")
    assert bdir == os.path.join(str(storage), host, "backups", name)
    record = load(bdir)
    assert record["status"]["phase"] == "Failed" and "onError" in record["status"]["failureReason"]
    assert record["status"]["hookStatus"] == {"hooksAttempted": 0, "hooksFailed": 0}
    assert not os.path.exists(os.path.join(bdir, name + ".tar.gz"))


def test_two_hundred_hook_pods(cluster, namespace, pods, tmp_path):
    """Velero's scale reference: 200 pods with pre and post hooks (kwok pods: the hooks are `true`)."""
    pods.fake_pods(200, annotations={PRE + "command": json.dumps(["/bin/true"]),
                                     "post.hook.backup.velero.io/command": json.dumps(["/bin/true"])}, timeout=300)
    name = "scale-" + uuid.uuid4().hex[:6]
    storage = tmp_path / "storage"
    proc = run_create(cluster, storage, name, included_namespaces=[namespace], parallelism=16)
    assert proc.returncode == 0, output(proc)
    record = load(backup_dir_of(storage, name))
    assert record["status"]["phase"] == "Completed"
    assert record["status"]["hookStatus"] == {"hooksAttempted": 400, "hooksFailed": 0}
    assert len(json.loads(record["metadata"]["annotations"]["backup.kubehooks.io/frozen-pods"])) == 200
    print("200 hook pods: whole role %.1f s, freeze window %s s (timing belongs to bench/bench_role.py)" % (
        proc.elapsed, record["metadata"]["annotations"]["backup.kubehooks.io/freeze-window-seconds"]))


@pytest.mark.real_node
def test_an_unusable_storage_dir_stops_the_run_before_anything_is_frozen(cluster, namespace, pods, tmp_path):
    pods.real_pod("app", annotations={PRE + "command": json.dumps(["/bin/touch", "/tmp/pre-hook-ran"])})
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the storage directory should be\n")
    name = "nodir-" + uuid.uuid4().hex[:6]
    proc = run_create(cluster, blocker / "storage", name, included_namespaces=[namespace])
    assert proc.returncode != 0, output(proc)
    assert "cannot create the backup directory" in proc.stdout and f"Backup {name}: Failed" in proc.stdout
    ran = cluster.kubectl_run("exec", "-n", namespace, "app", "--", "/bin/test", "-e", "/tmp/pre-hook-ran", check=False)
    assert ran.returncode == 1, (ran.returncode, ran.stderr)  # the pre hook never ran


def test_a_second_run_in_the_same_play_reports_its_own_outcome(cluster, namespace, pods, tmp_path):
    """Registered results outlive include_role: run 2 must neither reuse run 1's record nor its plan."""
    pods.fake_pods(1, annotations={PRE + "command": json.dumps(["/bin/echo", "pre"]),
                                   "post.hook.backup.velero.io/command": json.dumps(["/bin/echo", "post"])})
    storage = tmp_path / "storage"
    first, second = "one-" + uuid.uuid4().hex[:6], "two-" + uuid.uuid4().hex[:6]
    proc = run_playbook(os.path.join(ROOT, "tests", "integration", "playbooks", "create_twice.yml"),
                        extra_vars={"first_name": first, "second_name": second, "first_namespace": namespace,
                                    "storage": str(storage), "kubeconfig": cluster.kubeconfig}, timeout=600)
    assert proc.returncode != 0, output(proc)
    assert f"Backup {first}: Completed" in proc.stdout, output(proc)
    assert f"Backup {second}: Failed" in proc.stdout and f"Backup {second}: Completed" not in proc.stdout, output(proc)
    first_dir = backup_dir_of(storage, first)
    assert load(first_dir)["status"]["phase"] == "Completed"
    # Run 1's pod was thawed once, by run 1: run 2 never reached a plan of its own, so it ran no post
    # hook (with run 1's leftovers it would have thawed run 1's pods again, into run 1's hook log).
    with open(os.path.join(first_dir, first + "-hooks.jsonl")) as handle:
        phases = [json.loads(line)["hookPhase"] for line in handle if line.strip()]
    assert phases == ["pre", "post"]
    second_record = load(os.path.join(str(storage), "unreachable", "backups", second))
    assert second_record["status"]["phase"] == "Failed" and second_record["status"]["hookStatus"]["hooksAttempted"] == 0


def test_continue_failures_are_exported_fail_failures_are_not(cluster, namespace, pods, tmp_path):
    """Section 4: a Continue pre-hook failure keeps the pod in the archive; a Fail one leaves it out."""
    pods.fake_pods(1, prefix="cont", annotations={PRE + "command": json.dumps(["/bin/false"]),
                                                  PRE + "on-error": "Continue"})
    pods.fake_pods(1, prefix="fail", annotations={PRE + "command": json.dumps(["/bin/false"]),
                                                  PRE + "on-error": "Fail"})
    storage = tmp_path / "storage"
    name = "onerror-" + uuid.uuid4().hex[:6]
    proc = run_create(cluster, storage, name, included_namespaces=[namespace])
    assert proc.returncode == 0 and f"Backup {name}: PartiallyFailed" in proc.stdout, output(proc)
    bdir = backup_dir_of(storage, name)
    record = load(bdir)
    assert record["status"]["phase"] == "PartiallyFailed"
    assert record["status"]["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 2}
    pods_in_archive = sorted(n for n in archive_members(bdir, name)
                             if n.startswith("resources/pods/namespaces/") and n.endswith(".json"))
    assert pods_in_archive == [f"resources/pods/namespaces/{namespace}/cont-0.json"]


# --------------------------------------------------------------------------------------------------
# The watchdog through the role: the whole ansible-playbook process group killed while frozen
# --------------------------------------------------------------------------------------------------

# A task file for create_frozen_tasks: a marker, then proof that the volume is frozen right now - a write
# from a separate process that has not completed 2 s later (it is left running; it ends on the thaw).
FROZEN_TASKS = """---
- name: Leave a marker
  ansible.builtin.copy:
    content: "frozen tasks ran\\n"
    dest: {marker}
    mode: "0600"

- name: Check that the volume is frozen (a write from a separate process does not complete within 2 s)
  ansible.builtin.command:
    argv:
      - {python}
      - -c
      - |
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('x')", "{target}"])
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            print("frozen")
            sys.exit(0)
        print("writable")
        sys.exit(1)
  register: frozen_check
  changed_when: false

- name: Hold the freeze
  ansible.builtin.command:
    argv: [sleep, "{hold}"]
  changed_when: false
"""


def frozen_tasks_file(tmp_path, host_path, hold=0):
    marker = tmp_path / "frozen-tasks.marker"
    path = tmp_path / "frozen-tasks.yml"
    target = os.path.join(host_path, "frozen-task-write-%s" % uuid.uuid4().hex[:6])
    path.write_text(FROZEN_TASKS.format(marker=marker, python=sys.executable, target=target, hold=hold))
    return str(path), marker


def start_create(k8s, storage, name, log_path, **variables):
    """ansible-playbook running the role in a process group of its own, output to a file (never a pipe)."""
    from test_playbooks import playbook_env  # pylint: disable=import-outside-toplevel
    extra = {"create_name": name, "create_storage_dir": str(storage), "create_auth": {"kubeconfig": k8s.kubeconfig}}
    extra.update(("create_" + key, value) for key, value in variables.items())
    bindir = os.path.dirname(sys.executable)
    with open(log_path, "w") as log:
        return subprocess.Popen([os.path.join(bindir, "ansible-playbook"), PLAYBOOK, "-e", json.dumps(extra)],
                                env=dict(playbook_env(), ANSIBLE_PYTHON_INTERPRETER=sys.executable), cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.real_node
@pytest.mark.parametrize("sig,frozen_tasks", [(signal.SIGKILL, False), (signal.SIGTERM, False), (signal.SIGKILL, True)],
                         ids=["SIGKILL", "SIGTERM", "SIGKILL-between-freeze-and-thaw"])
def test_killing_the_playbook_while_frozen_the_watchdog_thaws_and_records_it(
        cluster, namespace, pods, pvc, thaw_guard, tmp_path, sig, frozen_tasks):
    from test_playbooks import Writers, kill_group  # pylint: disable=import-outside-toplevel
    claim, host_path = pvc("data")
    thaw_guard(host_path)
    freezer_pod(pods, "db", claim, annotations={"backup.velero.io/backup-volumes": "data"})
    pre = [{"command": FREEZE}] + ([] if frozen_tasks else [{"command": ["/bin/sleep", "20"], "timeout": "1m"}])
    hooks = [rule("freeze-db", pre=pre, post=[{"command": UNFREEZE}], labelSelector={"matchLabels": {"app": "db"}})]
    name = "killed-" + uuid.uuid4().hex[:6]
    storage = tmp_path / "storage"
    variables = dict(included_namespaces=[namespace], hooks=hooks)
    marker = None
    if frozen_tasks:
        variables["frozen_tasks"], marker = frozen_tasks_file(tmp_path, host_path, hold=60)
    writers = Writers(host_path)
    run_log = tmp_path / "run.log"
    proc = start_create(cluster, storage, name, run_log, **variables)
    try:
        deadline = time.monotonic() + 120
        while not (glob.glob(os.path.join(str(storage), "*", "backups", name, name + "-watchdog.json"))
                   and (not frozen_tasks or os.path.exists(marker)) and writers.blocks(1.0)):
            assert proc.poll() is None and time.monotonic() < deadline, run_log.read_text()[-4000:]
        bdir = backup_dir_of(storage, name)
        assert load(bdir)["status"]["phase"] == "InProgress"
        os.killpg(proc.pid, sig)
        killed_at = time.monotonic()
        proc.wait(timeout=30)
        assert writers.finish(15), "the writes blocked by the freeze did not complete: still frozen?"
        thawed_after = time.monotonic() - killed_at
        assert writers.writable(5) and thawed_after < 10, thawed_after
        print("writable again %.2f s after %s of the process group (%s)" % (
            thawed_after, sig.name, "between stage freeze and stage thaw" if frozen_tasks else "stage all"))

        # The record says the watchdog thawed it (no operator action, no thaw playbook).
        deadline = time.monotonic() + 15
        while load(bdir)["status"]["phase"] == "InProgress" and time.monotonic() < deadline:
            time.sleep(0.2)
        record = load(bdir)
        thawed = json.loads(record["metadata"]["annotations"]["backup.kubehooks.io/thawed"])
        assert record["status"]["phase"] == "Failed", record["status"]
        assert thawed["by"] == "watchdog" and thawed["hooksAttempted"] == 1 and thawed["hooksFailed"] == 0, thawed
        assert thawed["reason"] in ("ansible-playbook died", "controller died"), thawed
        assert "watchdog" in record["status"]["failureReason"]
        with open(os.path.join(bdir, name + "-watchdog.json")) as handle:
            dog = json.load(handle)
        assert dog["acted"] is True and dog["thawed"] == [f"{namespace}/db"] and dog["backup_record"] == "Failed"
        entries = log_entries(bdir, name)
        assert [(e["hookPhase"], e["hookCommand"], e.get("thawedBy")) for e in hooks_by(entries, hookPhase="post")] \
            == [("post", UNFREEZE, "watchdog")]
        if frozen_tasks:
            # the volume was captured by stage freeze, before the user's tasks
            [entry] = volume_entries(bdir, name)
            assert entry["status"] == "succeeded", entry
    finally:
        kill_group(proc)
        writers.cleanup()


@pytest.mark.real_node
def test_frozen_tasks_run_while_the_volume_is_frozen_then_it_is_thawed(
        cluster, namespace, pods, pvc, thaw_guard, tmp_path):
    claim, host_path = pvc("data")
    thaw_guard(host_path)
    freezer_pod(pods, "db", claim, annotations={PRE + "command": json.dumps(FREEZE),
                                                "post.hook.backup.velero.io/command": json.dumps(UNFREEZE),
                                                "backup.velero.io/backup-volumes": "data"})
    tasks, marker = frozen_tasks_file(tmp_path, host_path)
    name = "frozentasks-" + uuid.uuid4().hex[:6]
    storage = tmp_path / "storage"
    proc = run_create(cluster, storage, name, included_namespaces=[namespace], frozen_tasks=tasks)
    assert proc.returncode == 0, output(proc)
    assert marker.read_text() == "frozen tasks ran\n"
    assert "Check that the volume is frozen" in proc.stdout and "FAILED" not in proc.stdout, output(proc)
    assert writable(host_path)
    bdir = backup_dir_of(storage, name)
    record = load(bdir)
    assert record["status"]["phase"] == "Completed", output(proc)
    assert record["status"]["hookStatus"] == {"hooksAttempted": 2, "hooksFailed": 0}
    window = float(record["metadata"]["annotations"]["backup.kubehooks.io/freeze-window-seconds"])
    assert window >= 2.0  # the check's 2 s ran inside the window
    assert [e["status"] for e in volume_entries(bdir, name)] == ["succeeded"]
    assert_thawed_before_the_export(bdir, name, [f"{namespace}/db"])
    with open(os.path.join(bdir, name + "-watchdog.json")) as handle:
        assert json.load(handle)["acted"] is False


@pytest.mark.real_node
def test_check_mode_freezes_nothing_and_shows_the_plan(cluster, namespace, pods, pvc, thaw_guard, tmp_path):
    claim, host_path = pvc("data")
    thaw_guard(host_path)
    freezer_pod(pods, "db", claim, annotations={PRE + "command": json.dumps(FREEZE),
                                                "post.hook.backup.velero.io/command": json.dumps(UNFREEZE),
                                                "backup.velero.io/backup-volumes": "data"})
    name = "check-" + uuid.uuid4().hex[:6]
    storage = tmp_path / "storage"
    with host_prober([host_path], tmp_path, limit=120) as samples:
        proc = run_create(cluster, storage, name, options=["--check"], included_namespaces=[namespace])
    assert proc.returncode == 0, output(proc)
    assert not any(s["blocked"] for s in samples), samples
    assert not os.path.exists(str(storage)) or not glob.glob(os.path.join(str(storage), "*", "backups", name))
    # The plan: one group, the pod, its hooks and the volume to capture.
    plan_at = proc.stdout.index("The plan of the critical section")
    shown = proc.stdout[plan_at:plan_at + 4000]
    assert '"frozen": true' in shown and '"name": "db"' in shown and '"volumes": [' in shown, shown
    assert '"data"' in shown and "--freeze" in shown and "--unfreeze" in shown, shown
    assert f"Backup {name}: New - check mode" in proc.stdout, output(proc)


@pytest.mark.parametrize("cluster_resources", ["", "false", False])
def test_the_backup_playbook_takes_survey_answers_as_strings(cluster, namespace, tmp_path, cluster_resources):
    """playbooks/backup.yml, as an AWX job template runs it: every survey answer a string, the unset ones empty
    (on ansible-core < 2.19 an unset include_cluster_resources once reached the role as an empty string and
    failed its argument validation)."""
    name = "survey-" + uuid.uuid4().hex[:6]
    storage = tmp_path / "storage"
    extra = {"backup_name": name, "kubehooks_storage_dir": str(storage), "kubehooks_cluster": "c1",
             "kubehooks_auth": {"kubeconfig": cluster.kubeconfig}, "backup_included_namespaces": namespace,
             "backup_excluded_resources": "events, events.events.k8s.io", "backup_include_cluster_resources": cluster_resources,
             "backup_hooks": "", "backup_parallelism": "", "backup_fail_on_partial": "", "backup_max_freeze_seconds": ""}
    proc = run_playbook(os.path.join(ROOT, "playbooks", "backup.yml"), extra_vars=extra, timeout=600)
    assert proc.returncode == 0, output(proc)
    assert f"Backup {name}: Completed" in proc.stdout, output(proc)
    record = load(backup_dir_of(storage, name))
    assert record["spec"]["includedNamespaces"] == [namespace]
    assert record["spec"].get("includeClusterResources") is (None if cluster_resources == "" else False)
