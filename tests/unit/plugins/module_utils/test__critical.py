# -*- coding: utf-8 -*-
"""Unit tests for the critical section's logic: groups, deadlines, retry classification, marks.

The exec is a FAKE injected in place of ``exec_hook`` (pure orchestration is under test here: the
order pre -> capture -> post, the deadline arithmetic, the retries and the thaw marks).  The real
exec, a real frozen filesystem and a killed ansible-playbook are in
tests/integration/test_critical_section.py.  Retry classification of real exceptions is tested on
the exception objects the client raises (a refused connection cannot be made to happen half-way
through one process's post phase for real; the integrator's apiserver stop/start test does that).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import socket
import ssl
import threading
import time

import pytest
from websocket import WebSocketAddressException, WebSocketTimeoutException

from ansible_collections.kubehooks.backup.plugins.module_utils import _critical, _exec
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError
from ansible_collections.kubehooks.backup.plugins.module_utils._critical import (
    Options,
    ThawState,
    deadline_capped,
    plan_groups,
    retrying,
    run_critical_section,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError


def hook(index, command, on_error="Fail", timeout=30):
    return dict(source="annotation", name="<from-annotation>", container="app", command=list(command),
                on_error=on_error, timeout=timeout, index=index)


def pod(name, pre=(), post=(), namespace="ns", phase="Running"):
    return dict(namespace=namespace, name=name, phase=phase, pre=list(pre), post=list(post), errors=[])


FREEZE = hook(0, ["freeze"])
THAW = hook(0, ["thaw"])


class FakeExec(object):
    """Stands in for exec_hook; argv[0]: freeze | thaw | fail | sleep <s> | down (not executed)."""

    def __init__(self, down_times=0, events=None):
        self.calls = []
        self.lock = threading.Lock()
        self.down_times = down_times
        self.events = events if events is not None else []

    def __call__(self, api_client, namespace, pod_name, container, argv, timeout, output_cap=None):
        with self.lock:
            self.calls.append((namespace, pod_name, tuple(argv), timeout))
            self.events.append(("%s:%s" % (pod_name, argv[0]), time.monotonic()))
        if argv[0] == "sleep":
            time.sleep(min(float(argv[1]), timeout))
            if float(argv[1]) > timeout:
                return dict(status="failed", error="timed out after %ss" % timeout, duration=timeout)
        if argv[0] == "fail":
            return dict(status="failed", exit_code=1, error="command exited with code 1")
        if argv[0] == "down":
            with self.lock:
                self.down_times -= 1
                still_down = self.down_times >= 0
            if still_down:
                return dict(status="failed", error="connection refused", not_executed=_exec.UNREACHABLE)
        if argv[0] == "gone":
            return dict(status="failed", error="pod not found", not_executed=_exec.GONE)
        return dict(status="succeeded", exit_code=0, duration=0.0)


def factory():
    return object()


# --- plan_groups ------------------------------------------------------------------------------

def test_one_group_per_pod_in_plan_order_and_pods_with_nothing_to_do_left_out():
    pods = [pod("a", [FREEZE], [THAW]), pod("b"), pod("c", post=[THAW]), pod("d")]
    groups = plan_groups(pods, volumes_by_pod={"ns/d": [{"name": "data"}]})
    assert [[p["name"] for p in g["pods"]] for g in groups] == [["a"], ["c"], ["d"]]
    assert [g["id"] for g in groups] == [0, 1, 2]
    assert groups[2]["volumes"] == {"ns/d": [{"name": "data"}]}  # capture without freeze


def test_pods_sharing_a_claim_form_one_group_transitively_per_namespace():
    pods = [pod("a", [FREEZE]), pod("b", [FREEZE]), pod("c", [FREEZE]), pod("d", [FREEZE]),
            pod("a", [FREEZE], namespace="other")]
    claims = {"ns/a": ["one"], "ns/b": ["two", "one"], "ns/c": ["two"], "ns/d": ["three"], "other/a": ["one"]}
    groups = plan_groups(pods, claims_by_pod=claims)
    assert [[_critical.pod_key(p) for p in g["pods"]] for g in groups] == [
        ["ns/a", "ns/b", "ns/c"], ["ns/d"], ["other/a"]]


def test_freeze_together_is_one_group():
    pods = [pod("a", [FREEZE]), pod("b", post=[THAW]), pod("c")]
    groups = plan_groups(pods, freeze_together=True, volumes_by_pod={"ns/c": ["v"]})
    assert len(groups) == 1 and [p["name"] for p in groups[0]["pods"]] == ["a", "b", "c"]
    assert groups[0]["volumes"] == {"ns/c": ["v"]}


def test_describe_plan_is_the_exact_plan():
    plan = _critical.describe_plan(plan_groups([pod("a", [FREEZE], [THAW])], volumes_by_pod={"ns/a": [{"name": "d"}]}))
    assert plan == [{"id": 0, "frozen": True, "pods": [{
        "namespace": "ns", "name": "a", "volumes": ["d"],
        "pre": [dict(name="<from-annotation>", container="app", command=["freeze"], on_error="Fail", timeout=30,
                     error=None)],
        "post": [dict(name="<from-annotation>", container="app", command=["thaw"], on_error="Fail", timeout=30,
                      error=None)]}]}]


# --- deadlines ----------------------------------------------------------------------------------

def test_deadline_cuts_the_hook_timeout_to_the_time_left():
    now = [100.0]
    fake = FakeExec()
    capped = deadline_capped(fake, 130.0, 30, clock=lambda: now[0])
    capped(None, "ns", "p", "c", ["ok"], 3600)
    capped(None, "ns", "p", "c", ["ok"], 5)
    assert [call[3] for call in fake.calls] == [30.0, 5.0]
    now[0] = 130.0
    result = capped(None, "ns", "p", "c", ["ok"], 5)
    assert result["status"] == "failed" and "freeze deadline" in result["error"] and len(fake.calls) == 2


def test_a_timeout_caused_by_the_deadline_says_so():
    capped = deadline_capped(FakeExec(), time.monotonic() + 0.2, 0.2)
    result = capped(None, "ns", "p", "c", ["sleep", "5"], 3600)
    assert result["status"] == "failed"
    assert result["error"].startswith("cut by the freeze deadline (max_freeze_seconds=") and "1h" in result["error"]


def test_no_deadline_leaves_the_exec_unchanged():
    fake = FakeExec()
    assert deadline_capped(fake, None, 0) is fake


# --- retries --------------------------------------------------------------------------------------

def test_not_executed_is_retried_with_doubling_backoff_until_it_runs():
    sleeps = []
    fake = FakeExec(down_times=4)
    result = retrying(fake, until=time.monotonic() + 60, sleep=sleeps.append)(None, "ns", "p", "c", ["down"], 5)
    assert result["status"] == "succeeded" and result["attempts"] == 5
    assert sleeps == [0.2, 0.4, 0.8, 1.6]


def test_backoff_is_capped_at_two_seconds_and_stops_at_the_retry_deadline():
    now, sleeps = [0.0], []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds
    fake = FakeExec(down_times=100)
    result = retrying(fake, until=10.0, clock=lambda: now[0], sleep=sleep)(None, "ns", "p", "c", ["down"], 5)
    assert result["not_executed"] == _exec.UNREACHABLE and result["status"] == "failed"
    assert sleeps == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]  # 9.0 s; one more 2 s would pass 10 s
    assert "thaw retries ended" in result["error"] and result["attempts"] == 8


@pytest.mark.parametrize("argv", [["fail"], ["gone"], ["sleep", "1"]])
def test_a_hook_that_ran_or_a_permanent_failure_is_not_retried(argv):
    fake = FakeExec()
    result = retrying(fake, until=time.monotonic() + 60, sleep=lambda s: None)(None, "ns", "p", "c", argv, 0.01)
    assert result["attempts"] == 1 and len(fake.calls) == 1


@pytest.mark.parametrize("exc, kind", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), _exec.UNREACHABLE),
    (ConnectionResetError(errno.ECONNRESET, "reset"), _exec.UNREACHABLE),
    (OSError(errno.EHOSTUNREACH, "no route"), _exec.UNREACHABLE),
    (socket.gaierror(-2, "Name or service not known"), _exec.UNREACHABLE),
    (WebSocketAddressException("dns"), _exec.UNREACHABLE),
    (ApiRequestError(503, "unavailable"), _exec.UNREACHABLE),
    (ApiRequestError(500, "internal"), _exec.UNREACHABLE),
    (ApiRequestError(429, "too many"), _exec.UNREACHABLE),
    (ApiRequestError(404, "not found"), _exec.GONE),
    (ApiRequestError(403, "forbidden"), None),
    (ApiRequestError(401, "unauthorized"), None),
    (ApiRequestError(400, "no such container"), None),
    (WebSocketTimeoutException("handshake timed out"), None),
    (socket.timeout("timed out"), None),
    (ssl.SSLCertVerificationError("certificate verify failed"), None),
    (ValueError("bug"), None),
])
def test_not_executed_classification(exc, kind):
    assert _exec.not_executed_kind(exc) == kind


def test_exec_hook_reports_not_executed_for_a_refused_connection(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    monkeypatch.setattr(_exec, "open_exec", refuse)
    result = _exec.exec_hook(object(), "ns", "p", "c", ["true"], 5)
    assert result["status"] == "failed" and result["not_executed"] == _exec.UNREACHABLE


# --- the thaw state ---------------------------------------------------------------------------------

def test_claims_marks_and_steal(tmp_path):
    state = ThawState(str(tmp_path / "s.jsonl")).create()
    assert (tmp_path / "s.jsonl").stat().st_mode & 0o777 == 0o600
    assert state.claim(["ns/a", "ns/b"], "controller") == ["ns/a", "ns/b"]
    assert state.claim(["ns/a", "ns/b"], "watchdog") == []  # claimed by a live controller
    state.mark("thawed", "ns/a", "controller")
    assert state.claim(["ns/a", "ns/b"], "watchdog", steal=True) == ["ns/b"]  # never a thawed pod
    state.mark("released", "ns/b", "watchdog")
    assert state.claim(["ns/b"], "controller") == ["ns/b"]  # released: may be tried again
    state.done("controller")
    seen = state.read()
    assert seen["done"] and seen["thawed"] == {"ns/a": "controller"} and seen["claimed"]["ns/b"] == "controller"


def test_reading_a_missing_or_half_written_state(tmp_path):
    path = tmp_path / "s.jsonl"
    assert ThawState(str(path)).read()["thawed"] == {}
    path.write_text('{"event": "thawed", "pod": "ns/a", "by": "controller"}\n{"event": "thaw')
    assert ThawState(str(path)).read()["thawed"] == {"ns/a": "controller"}


# --- the critical section -----------------------------------------------------------------------------

def run(tmp_path, pods, fake, capture=None, volumes=None, stage="all", on_result=None, **options):
    marks = ThawState(str(tmp_path / "state.jsonl")).create()
    groups = plan_groups(pods, volumes_by_pod=volumes)
    result = run_critical_section(groups, factory, capture, Options(**options), marks, exec_fn=fake,
                                  on_result=on_result, stage=stage)
    return result, marks.read()


def test_each_group_pre_capture_post_in_order_and_marks(tmp_path):
    events = []
    fake = FakeExec(events=events)

    def capture(group, deadline):
        events.append(("capture:%s" % group["pods"][0]["name"], time.monotonic()))
        return [dict(namespace="ns", pod=group["pods"][0]["name"], volume="data", status="captured")]

    pods = [pod("a", [FREEZE], [THAW]), pod("b", [FREEZE], [THAW])]
    logged = []
    result, state = run(tmp_path, pods, fake, capture, {"ns/a": ["data"], "ns/b": ["data"]}, parallelism=1,
                        on_result=logged.append)
    assert [event[0] for event in events] == ["a:freeze", "capture:a", "a:thaw", "b:freeze", "capture:b", "b:thaw"]
    assert [r["phase"] for r in result["hooks"]] == ["pre", "pre", "post", "post"]
    assert len(logged) == 4
    assert [v["status"] for v in result["volumes"]] == ["captured", "captured"]
    assert state["thawed"] == {"ns/a": "controller", "ns/b": "controller"}
    assert result["not_thawed"] == [] and result["failed_pods"] == []
    groups = result["groups"]
    assert [g["pods"] for g in groups] == [["ns/a"], ["ns/b"]]
    assert all(g["frozen"] and g["freeze_window_seconds"] >= 0 for g in groups)
    assert result["freeze_window_seconds"] == round(groups[1]["ended"] - groups[0]["started"], 3)
    assert state["freeze"][0]["pods"] == ["ns/a"]


def test_groups_run_in_parallel(tmp_path):
    pods = [pod(n, [hook(0, ["sleep", "0.3"])], [THAW]) for n in "abcd"]
    started = time.monotonic()
    result = run(tmp_path, pods, FakeExec(), parallelism=4)[0]
    assert time.monotonic() - started < 1.0
    assert len(result["groups"]) == 4


def test_the_section_makes_one_client_per_group_thread_not_one_per_group_and_phase(tmp_path):
    made, threads = [], set()

    def counting_factory():
        made.append(threading.current_thread().name)
        return object()

    def fake(client, namespace, pod_name, container, argv, timeout, output_cap=None):
        threads.add(threading.current_thread().name)
        return dict(status="succeeded", exit_code=0, duration=0.0)

    pods = [pod("p%d" % i, [FREEZE], [THAW]) for i in range(40)]
    marks = ThawState(str(tmp_path / "state.jsonl")).create()
    result = run_critical_section(plan_groups(pods), counting_factory, None, Options(parallelism=4), marks,
                                  exec_fn=fake)
    assert len(result["hooks"]) == 80 and result["not_thawed"] == []
    # single-pod groups run their hooks in the group's own thread: 4 threads, 4 clients (was 80)
    assert len(threads) <= 4 and len(made) == len(set(made)) <= 4


def test_a_failed_fail_pre_hook_skips_the_capture_of_that_pod_but_not_its_thaw(tmp_path):
    captured = []

    def capture(group, deadline):
        captured.extend(group["volumes"])
        return [dict(namespace="ns", pod=k.split("/")[1], volume="v", status="captured") for k in group["volumes"]]

    pods = [pod("a", [hook(0, ["fail"]), hook(1, ["freeze"])], [THAW]), pod("b", [FREEZE], [THAW])]
    result, state = run(tmp_path, pods, FakeExec(), capture, {"ns/a": ["v"], "ns/b": ["v"]})
    assert result["failed_pods"] == ["ns/a"]
    assert captured == ["ns/b"]
    assert {(v["pod"], v["status"]) for v in result["volumes"]} == {("a", "not_captured"), ("b", "captured")}
    assert [r["status"] for r in result["hooks"] if r["pod"] == "a"] == ["failed", "not_run", "succeeded"]
    assert set(state["thawed"]) == {"ns/a", "ns/b"}


def test_max_freeze_cuts_a_long_pre_hook_and_abandons_a_capture_then_thaws(tmp_path):
    release = threading.Event()

    def slow_capture(group, deadline):
        release.wait(10)
        return []

    pods = [pod("a", [hook(0, ["sleep", "30"], timeout=3600)], [THAW]), pod("b", [FREEZE], [THAW])]
    started = time.monotonic()
    try:
        result, state = run(tmp_path, pods, FakeExec(), slow_capture, {"ns/b": ["v"]}, max_freeze_seconds=0.5)
    finally:
        release.set()
    assert time.monotonic() - started < 3
    pre_a = [r for r in result["hooks"] if r["pod"] == "a" and r["phase"] == "pre"][0]
    assert pre_a["status"] == "failed" and "freeze deadline" in pre_a["error"]
    assert [v["status"] for v in result["volumes"]] == ["abandoned"]
    assert set(state["thawed"]) == {"ns/a", "ns/b"}
    assert all(r["status"] == "succeeded" for r in result["hooks"] if r["phase"] == "post")


def test_a_post_hook_that_cannot_be_executed_leaves_the_pod_not_thawed(tmp_path):
    pods = [pod("a", [FREEZE], [hook(0, ["down"])]), pod("b", [FREEZE], [THAW])]
    result, state = run(tmp_path, pods, FakeExec(down_times=1000), thaw_retry_seconds=0.5)
    assert result["not_thawed"] == ["ns/a"]
    assert state["released"] == {"ns/a": "controller"} and "ns/a" not in state["thawed"]
    post_a = [r for r in result["hooks"] if r["pod"] == "a" and r["phase"] == "post"][0]
    assert post_a["attempts"] >= 2 and post_a["not_executed"] == _exec.UNREACHABLE


def test_retries_that_succeed_thaw_the_pod(tmp_path):
    pods = [pod("a", [FREEZE], [hook(0, ["down"])])]
    result, state = run(tmp_path, pods, FakeExec(down_times=2), thaw_retry_seconds=30)
    assert result["not_thawed"] == [] and state["thawed"] == {"ns/a": "controller"}
    assert result["hooks"][-1]["attempts"] == 3 and result["hooks"][-1]["status"] == "succeeded"


def test_a_pod_claimed_by_the_watchdog_is_not_thawed_twice(tmp_path):
    marks = ThawState(str(tmp_path / "state.jsonl")).create()
    marks.claim(["ns/a"], "watchdog")
    marks.mark("thawed", "ns/a", "watchdog")
    fake = FakeExec()
    result = run_critical_section(plan_groups([pod("a", [FREEZE], [THAW])]), factory, None, Options(), marks,
                                  exec_fn=fake)
    assert [call[2] for call in fake.calls] == [("freeze",)]
    assert [r["phase"] for r in result["hooks"]] == ["pre"]


def test_stage_freeze_leaves_the_pods_frozen_and_thaw_stage_thaws_them(tmp_path):
    pods = [pod("a", [FREEZE], [THAW]), pod("b", post=[THAW])]
    result, state = run(tmp_path, pods, FakeExec(), stage="freeze")
    assert [r["phase"] for r in result["hooks"]] == ["pre"] and state["thawed"] == {}
    marks = ThawState(str(tmp_path / "state.jsonl"))
    thawed = _critical.thaw_stage(pods, factory, marks, Options(), exec_fn=FakeExec())
    assert thawed["thawed"] == ["ns/a", "ns/b"] and thawed["not_thawed"] == []
    assert thawed["freeze_window_seconds"] >= 0


@pytest.mark.parametrize("key, value", [("max_freeze_seconds", -1), ("thaw_retry_seconds", "x"),
                                        ("parallelism", 0), ("output_cap", True)])
def test_bad_options_are_refused(key, value):
    with pytest.raises(KubehooksError, match=key):
        Options(**{key: value}).check()


# --- storage that stops accepting writes (issue 11 item 3) --------------------------------------
# The write failure is injected (EROFS from the append): the real read-only and full filesystems are in
# tests/integration/test_faults.py.

def test_a_thaw_state_that_cannot_be_written_never_stops_the_thaw(tmp_path, monkeypatch):
    marks = ThawState(str(tmp_path / "state.jsonl")).create()
    fake = FakeExec()
    calls = []

    def refuse(*entries):
        calls.append(entries)
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(marks, "_append", refuse)
    result = run_critical_section(plan_groups([pod("a", [FREEZE], [THAW]), pod("b", [FREEZE], [THAW])]), factory,
                                  None, Options(), marks, exec_fn=fake)
    assert sorted(call[1] for call in fake.calls if call[2] == ("thaw",)) == ["a", "b"]
    assert result["not_thawed"] == [] and calls
    assert marks.errors and all("Read-only file system" in e for e in marks.errors)
    assert len(set(marks.errors)) == len(marks.errors)  # each failed write is reported once
    assert marks.done("controller") is False


def test_a_thaw_state_that_cannot_be_created_refuses_before_anything_is_frozen(tmp_path):
    with pytest.raises(KubehooksError, match="cannot create the thaw state .*before anything is frozen"):
        ThawState(str(tmp_path / "missing" / "state.jsonl")).create()


def test_a_deleted_pod_counts_as_thawed_not_as_possibly_frozen(tmp_path):
    result, state = run(tmp_path, [pod("a", [FREEZE], [hook(0, ["gone"])])], FakeExec(), thaw_retry_seconds=5)
    assert result["not_thawed"] == [] and state["thawed"] == {"ns/a": "controller"}
    post = [r for r in result["hooks"] if r["phase"] == "post"][0]
    assert post["not_executed"] == _exec.GONE and post["attempts"] == 1


def test_thaw_state_reads_only_what_was_appended_since_and_waits_for_a_whole_line(tmp_path):
    path = str(tmp_path / "b-thaw-state.jsonl")
    marks = ThawState(path).create()
    other = ThawState(path)  # the watchdog's own view of the same file
    assert marks.claim(["ns/a", "ns/b"], "controller") == ["ns/a", "ns/b"]
    assert other.claim(["ns/a"], "watchdog") == []  # claimed by the controller
    marks.mark("thawed", "ns/a", "controller")
    with open(path, "a") as handle:
        handle.write('{"event": "thawed", "pod": "ns/b", "by": "contr')  # a line still being written
    assert other.read()["thawed"] == {"ns/a": "controller"}
    with open(path, "a") as handle:
        handle.write('oller"}\n')
    assert other.read()["thawed"] == {"ns/a": "controller", "ns/b": "controller"}
    first = other.read()
    first["thawed"].clear()  # callers get a copy
    assert other.read()["thawed"] == {"ns/a": "controller", "ns/b": "controller"}
    ThawState(path).create()  # a new file for a new run: the old view starts over
    assert other.read() == {"claimed": {}, "thawed": {}, "released": {}, "done": False, "freeze": []}
