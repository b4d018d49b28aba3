"""The critical section (kubehooks.backup.backup_capture) and its watchdog on REAL frozen filesystems.

Issue 10 items 2-4 and 6, issue 11 item 1 (the retry classification itself is unit-tested with
injected exec results: a post hook that cannot be executed half-way through one process's run
cannot be made for real here; the integrator's apiserver stop/start test covers it).

- each group's freeze window is reported, and a host writer is blocked on a volume only while
  that volume's group is in its section (two pods, two PVs, one group at a time);
- a capture (a real one: ``cat`` of a file in the frozen volume through the real exec) runs inside
  the group's section, between the freeze and the thaw;
- SIGKILL, then SIGTERM, of the whole process group of an ``ansible-playbook`` running the module
  while the volume is frozen: the volume is writable again within seconds, with no operator action,
  and the watchdog's record says it acted and thawed that pod;
- a normal run: the watchdog exits without acting and records so; the unfreeze ran exactly once;
- ``max_freeze_seconds`` cuts a long pre hook (``sleep 30`` with a 1h timeout) and the post hooks run;
- ``stage: freeze`` leaves the volume frozen (the watchdog waiting), ``stage: thaw`` thaws it and the
  watchdog stands down.

SAFETY: only the PV mounts the ``pvc`` fixture hands out are frozen (checked to be under the
cluster's PV directory); writes that may block run in separate processes with time limits; every
test thaws in its cleanup with a time limit; only process groups started here are killed.
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from modrun import ROOT, auth_args, run_module
from test_playbooks import Writers, check_pv_path, kill_group, playbook_env, thaw_from_host
from test_role_create import host_prober

FREEZE = ["/sbin/fsfreeze", "--freeze", "/data"]
UNFREEZE = ["/sbin/fsfreeze", "--unfreeze", "/data"]
PRE = "pre.hook.backup.velero.io/"
POST = "post.hook.backup.velero.io/"


def hooks_annotations(pre, post, timeout="30s"):
    """Velero's annotations; ``pre`` may be a list of argv (then a rule would be needed): one argv here."""
    return {PRE + "command": json.dumps(pre), PRE + "container": "main", PRE + "timeout": timeout,
            POST + "command": json.dumps(post), POST + "container": "main"}


def rule(namespace, app, pre, post):
    return {"name": "freeze-%s" % app, "includedNamespaces": [namespace], "labelSelector": {"matchLabels": {"app": app}},
            "pre": [{"exec": dict(spec)} for spec in pre], "post": [{"exec": dict(spec)} for spec in post]}


def plan_of(cluster, namespace, hooks=None):
    result = run_module("pod_hooks_info", dict(auth_args(cluster), included_namespaces=[namespace], hooks=hooks or []))
    assert not result.get("failed") and not result["errors"], result
    return result["pods"]


def capture_args(cluster, plan, bdir, name="b1", **extra):
    args = dict(auth_args(cluster), plan=plan, name=name, backup_dir=str(bdir), log_path=str(bdir / "hooks.jsonl"))
    args.update(extra)
    return args


def log_lines(bdir):
    path = bdir / "hooks.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def watchdog_record(bdir, name="b1"):
    path = bdir / ("%s-watchdog.json" % name)
    return json.loads(path.read_text()) if path.exists() else None


def pid_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def frozen_pv(pvc, pods):
    """``make(pod_name, annotations=None, labels=None)`` -> host path of the PV mounted at /data in a
    privileged pod on the real node; every path handed out is thawed from the host in cleanup."""
    paths = []

    def make(name, annotations=None, labels=None):
        claim, host_path = pvc("data-" + name)
        paths.append(check_pv_path(host_path))
        pods.real_pod(name, privileged=True, pvc=claim, mount_path="/data", labels=labels or {"app": name},
                      annotations=annotations)
        return host_path
    yield make
    for path in paths:
        thaw_from_host(path)


# --------------------------------------------------------------------------------------------------
# a normal run: windows per group, writers blocked only in their group's section, watchdog idle

@pytest.mark.real_node
def test_each_group_is_frozen_only_during_its_own_section(cluster, namespace, frozen_pv, tmp_path):
    hooks = [rule(namespace, app, [{"command": FREEZE}, {"command": ["/bin/sleep", "2"]}], [{"command": UNFREEZE}])
             for app in ("one", "two")]
    path_one, path_two = frozen_pv("one"), frozen_pv("two")
    plan = plan_of(cluster, namespace, hooks)
    bdir = tmp_path / "backup"
    with host_prober([path_one, path_two], tmp_path, limit=120) as samples:
        time.sleep(0.5)
        result = run_module("backup_capture", capture_args(cluster, plan, bdir, parallelism=1))
        time.sleep(0.5)
    assert not result.get("failed"), result
    assert result["hooks_failed"] == 0 and result["not_thawed"] == [] and result["failed_pods"] == []
    groups = {tuple(g["pods"]): g for g in result["groups"]}
    one, two = groups[("%s/one" % namespace,)], groups[("%s/two" % namespace,)]
    for group in (one, two):
        assert group["frozen"] and 2.0 <= group["freeze_window_seconds"] < 15, group
    # parallelism 1: one section after the other; the overall window spans both
    assert one["ended"] <= two["started"]
    assert result["freeze_window_seconds"] == pytest.approx(two["ended"] - one["started"], abs=0.01)

    # A host write blocks on a volume only inside its group's section (a sample is taken 0.3 s
    # after its write started: allow that much at both ends).
    margin = 0.35
    for path, group, other in ((path_one, one, two), (path_two, two, one)):
        blocked = [s["t"] for s in samples if path in s["blocked"]]
        assert blocked, (path, samples)
        assert all(group["started"] - margin <= t <= group["ended"] + margin for t in blocked), (group, blocked)
        inside_other = [s for s in samples if other["started"] + margin < s["t"] < other["ended"] - margin]
        assert inside_other and not any(path in s["blocked"] for s in inside_other), (path, other, inside_other)
    assert not samples[-1]["blocked"]

    # the watchdog watched and stood down; each unfreeze ran exactly once (a second would exit 1)
    record = result["watchdog"]
    assert record["acted"] is False and record["pid"] > 0, record
    assert pid_gone(record["pid"])
    unfreezes = [e for e in log_lines(bdir) if e["hookCommand"] == UNFREEZE]
    assert sorted(e["pod"] for e in unfreezes) == ["one", "two"]
    assert all(e["status"] == "succeeded" and e["backup"] == "velero/b1" for e in unfreezes)
    state = [json.loads(line) for line in (bdir / "b1-thaw-state.jsonl").read_text().splitlines()]
    assert sorted(e["pod"] for e in state if e["event"] == "thawed") == ["%s/one" % namespace, "%s/two" % namespace]
    assert oct((bdir / "b1-thaw-state.jsonl").stat().st_mode & 0o777) == "0o600"


@pytest.mark.real_node
def test_a_real_capture_runs_inside_the_section(cluster, namespace, frozen_pv, tmp_path):
    """run_critical_section in this process with a simple real capture: ``cat`` of a file in the
    frozen volume through the real exec (reads do not block on a frozen filesystem)."""
    from ansible_collections.kubehooks.backup.plugins.module_utils import _client, _critical, _exec
    host_path = frozen_pv("app", annotations=hooks_annotations(FREEZE, UNFREEZE))
    token = uuid.uuid4().hex
    with open(os.path.join(host_path, "payload.txt"), "w") as handle:
        handle.write(token + "\n")
    plan = plan_of(cluster, namespace)
    factory = _client.ClientFactory(auth_args(cluster))
    seen = {}

    def capture(group, deadline):
        entries = []
        for key, volumes in group["volumes"].items():
            ns, name = key.split("/", 1)
            # a PV of the pool may hold an earlier run's files: a probe file name of its own
            script = ("cat /data/payload.txt; f=/data/probe-%s; (touch $f </dev/null >/dev/null 2>&1 &); "
                      "sleep 1; test -e $f && echo writable || echo frozen" % token)
            probe = _exec.exec_hook(factory(), ns, name, "main", ["/bin/sh", "-c", script], 20)
            seen[key] = probe
            entries += [dict(namespace=ns, pod=name, volume=v, status="captured" if probe["status"] == "succeeded"
                             else "failed") for v in volumes]
        return entries

    groups = _critical.plan_groups(plan, volumes_by_pod={"%s/app" % namespace: ["data"]})
    marks = _critical.ThawState(str(tmp_path / "state.jsonl")).create()
    result = _critical.run_critical_section(groups, factory, capture, _critical.Options(max_freeze_seconds=60),
                                            marks)
    assert [v["status"] for v in result["volumes"]] == ["captured"], result
    out = seen["%s/app" % namespace]["stdout"].split()
    assert out == [token, "frozen"], seen  # read the data while the volume was frozen
    assert [(r["phase"], r["status"]) for r in result["hooks"]] == [("pre", "succeeded"), ("post", "succeeded")]
    assert Writers(host_path).writable()


# --------------------------------------------------------------------------------------------------
# the run killed while frozen: the watchdog thaws

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan
      kubehooks.backup.pod_hooks_info:
        kubeconfig: {kubeconfig}
        included_namespaces: [{namespace}]
        hooks: {hooks}
      register: plan
    - name: Critical section
      kubehooks.backup.backup_capture:
        kubeconfig: {kubeconfig}
        plan: "{{{{ plan.pods }}}}"
        name: b1
        backup_dir: {bdir}
        log_path: {bdir}/hooks.jsonl
        max_freeze_seconds: 120
"""


@pytest.mark.real_node
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_whole_playbook_process_group_while_frozen_thaws_within_seconds(
        cluster, namespace, frozen_pv, tmp_path, sig):
    hooks = [rule(namespace, "db", [{"command": FREEZE}, {"command": ["/bin/sleep", "60"], "timeout": "5m"}],
                  [{"command": UNFREEZE}])]
    host_path = frozen_pv("db")
    writers = Writers(host_path)
    bdir = tmp_path / "backup"
    playbook = tmp_path / "section.yml"
    playbook.write_text(PLAYBOOK.format(kubeconfig=cluster.kubeconfig, namespace=namespace, hooks=json.dumps(hooks),
                                        bdir=bdir))
    output = tmp_path / "run.log"
    bindir = os.path.dirname(sys.executable)
    proc = None
    try:
        with open(output, "w") as log:  # a file, not a pipe: the run never blocks on its own output
            proc = subprocess.Popen([os.path.join(bindir, "ansible-playbook"), str(playbook)], env=playbook_env(),
                                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while not (watchdog_record(bdir) and writers.blocks(1.0)):
            assert proc.poll() is None and time.monotonic() < deadline, output.read_text()
        record = watchdog_record(bdir)
        assert record["acted"] is None and record["pid"] > 0
        assert os.getsid(record["pid"]) != os.getpgid(proc.pid)  # not in the group that is killed

        os.killpg(proc.pid, sig)
        killed_at = time.monotonic()
        proc.wait(timeout=30)
        assert writers.finish(15), "the writes blocked by the freeze did not complete: still frozen?"
        thawed_after = time.monotonic() - killed_at
        assert writers.writable(5)
        assert thawed_after < 10, thawed_after
        print("writable again %.2f s after %s of the process group" % (thawed_after, sig.name))

        assert pid_gone(record["pid"], 15)
        record = watchdog_record(bdir)
        # ansible-core 2.19 runs the task's worker (and so the module) in a session of its own: the
        # signal kills ansible-playbook, and the watchdog stops the module before it thaws.
        assert record["acted"] is True and record["reason"] in ("ansible-playbook died", "controller died"), record
        print("watchdog: %s" % record["reason"])
        assert record["thawed"] == ["%s/db" % namespace] and record["not_thawed"] == []
        assert [(h["command"], h["status"]) for h in record["hooks"]] == [(UNFREEZE, "succeeded")]
        watchdog_lines = [e for e in log_lines(bdir) if e.get("thawedBy") == "watchdog"]
        assert [e["hookCommand"] for e in watchdog_lines] == [UNFREEZE]
        # nothing unfrozen twice: the killed run never reached its post hooks
        assert [e["hookCommand"] for e in log_lines(bdir) if e["hookPhase"] == "post"] == [UNFREEZE]
    finally:
        if proc is not None:
            kill_group(proc)
        writers.cleanup()


# --------------------------------------------------------------------------------------------------
# the deadline, and the freeze/thaw stages

@pytest.mark.real_node
def test_max_freeze_cuts_a_long_pre_hook_and_the_post_hooks_still_run(cluster, namespace, frozen_pv, tmp_path):
    hooks = [rule(namespace, "app", [{"command": FREEZE}, {"command": ["/bin/sleep", "30"], "timeout": "1h"}],
                  [{"command": UNFREEZE}])]
    host_path = frozen_pv("app")
    plan = plan_of(cluster, namespace, hooks)
    bdir = tmp_path / "backup"
    started = time.monotonic()
    result = run_module("backup_capture", capture_args(cluster, plan, bdir, max_freeze_seconds=3))
    elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed
    assert not result.get("failed"), result  # a Fail hook failing does not fail the task
    pre = [h for h in result["hooks"] if h["phase"] == "pre"]
    assert [h["status"] for h in pre] == ["succeeded", "failed"]
    assert pre[1]["error"].startswith("cut by the freeze deadline (max_freeze_seconds=3s)"), pre[1]
    assert result["failed_pods"] == ["%s/app" % namespace] and result["hooks_failed"] == 1
    assert [(h["command"], h["status"]) for h in result["hooks"] if h["phase"] == "post"] == [(UNFREEZE, "succeeded")]
    assert 3 <= result["freeze_window_seconds"] < 10
    assert Writers(host_path).writable()


@pytest.mark.real_node
def test_stage_freeze_keeps_the_volume_frozen_until_stage_thaw(cluster, namespace, frozen_pv, tmp_path):
    host_path = frozen_pv("app", annotations=hooks_annotations(FREEZE, UNFREEZE))
    writers = Writers(host_path)
    plan = plan_of(cluster, namespace)
    bdir = tmp_path / "backup"
    try:
        check = run_module("backup_capture", capture_args(cluster, plan, bdir, stage="freeze"), check_mode=True)
        assert [[p["name"] for p in g["pods"]] for g in check["plan"]] == [["app"]] and not bdir.exists()
        frozen = run_module("backup_capture", capture_args(cluster, plan, bdir, stage="freeze"))
        assert not frozen.get("failed"), frozen
        assert frozen["frozen_pods"] == ["%s/app" % namespace]
        assert writers.blocks(2.0), "the volume should stay frozen after stage=freeze"
        dog = frozen["watchdog"]["pid"]
        assert not pid_gone(dog, 0.5), "the watchdog should be waiting"
        thawed = run_module("backup_capture", capture_args(cluster, plan, bdir, stage="thaw"))
        assert not thawed.get("failed"), thawed
        assert [(h["command"], h["status"]) for h in thawed["hooks"]] == [(UNFREEZE, "succeeded")]
        assert thawed["not_thawed"] == [] and thawed["freeze_window_seconds"] >= 2
        assert writers.finish(15) and writers.writable()
        assert thawed["watchdog"]["acted"] is False and pid_gone(dog)
        again = run_module("backup_capture", capture_args(cluster, plan, bdir, stage="thaw"))
        assert again["hooks"] == [], again  # nothing is unfrozen twice
    finally:
        writers.cleanup()
