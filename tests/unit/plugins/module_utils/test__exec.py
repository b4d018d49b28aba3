# -*- coding: utf-8 -*-
"""Unit tests for the executor's pure logic: status parsing, orchestration, totals, log entries.

``run_phase`` is tested with a FAKE ``exec_fn`` injected in place of ``exec_hook``: what is under
test here is pure orchestration (order, on-error Fail/Continue, not_run, skipped, parallelism,
one client per worker thread, the result shape).  The real exec over the websocket is covered by
tests/integration/test_exec.py against the local cluster; the status payloads below are the ones
that cluster's real node and kwok actually send (the local cluster of the README).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import threading
import time

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _exec
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError, status_message
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import ExecError, KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._exec import (
    exec_error_message,
    parse_exec_status,
    run_phase,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import totals
from ansible_collections.kubehooks.backup.plugins.module_utils._on_error import fail_summary

# --- parse_exec_status --------------------------------------------------------------------

REAL_NODE_EXIT_7 = json.dumps({
    "metadata": {}, "status": "Failure",
    "message": "command terminated with non-zero exit code: error executing command "
               "[/bin/sh -c exit 7], exit code 7",
    "reason": "NonZeroExitCode",
    "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}})
KWOK_EXIT_7 = json.dumps({
    "metadata": {}, "status": "Failure", "message": "cmd wait: exit status 7",
    "reason": "InternalError", "details": {"causes": [{"message": "cmd wait: exit status 7"}]},
    "code": 500})
OCI_MISSING = json.dumps({
    "metadata": {}, "status": "Failure",
    "message": "Internal error occurred: error executing command in container: failed to exec in "
               "container: failed to start exec \"abc\": OCI runtime exec failed: exec failed: unable "
               "to start container process: exec: \"/nope\": stat /nope: no such file or directory: unknown",
    "reason": "InternalError",
    "details": {"causes": [{"message": "error executing command in container: ..."}]}, "code": 500})
KWOK_MISSING = json.dumps({
    "metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
    "message": "fork/exec /nope: no such file or directory"})


@pytest.mark.parametrize("raw, status, code, message_part", [
    ('{"metadata":{},"status":"Success"}', "succeeded", 0, None),
    (b'{"metadata":{},"status":"Success"}', "succeeded", 0, None),
    (REAL_NODE_EXIT_7, "failed", 7, "exited with code 7"),
    (REAL_NODE_EXIT_7.encode(), "failed", 7, "exited with code 7"),
    (KWOK_EXIT_7, "failed", None, "cmd wait: exit status 7"),
    (OCI_MISSING, "failed", None, "OCI runtime exec failed"),
    (KWOK_MISSING, "failed", None, "fork/exec /nope"),
    (None, "failed", None, "without reporting an exit status"),
    ("", "failed", None, "without reporting an exit status"),
    (b"  \n", "failed", None, "without reporting an exit status"),
    ('{"status":"Succ', "failed", None, "could not be parsed"),
    (b"\xff\xfe", "failed", None, "could not be parsed"),
    ('["Success"]', "failed", None, "not a JSON object"),
    ('"Success"', "failed", None, "not a JSON object"),
    ("{}", "failed", None, "neither Success nor Failure"),
    ('{"status":"success"}', "failed", None, "neither Success nor Failure"),
    ('{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}',
     "failed", None, "not a number"),
    ('{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":7}]}}',
     "failed", None, "not a number"),
    ('{"status":"Failure","reason":"NonZeroExitCode","message":"boom","details":{"causes":[]}}',
     "failed", None, "did not report: boom"),
    ('{"status":"Failure","reason":"NonZeroExitCode","details":"garbage"}', "failed", None, "did not report"),
    ('{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":["x",{"reason":"Other"},'
     '{"reason":"ExitCode","message":"130"}]}}', "failed", 130, "code 130"),
    ('{"status":"Failure","reason":"Forbidden"}', "failed", None, "reason Forbidden"),
    ('{"status":"Failure"}', "failed", None, "reason unknown"),
])
def test_parse_exec_status(raw, status, code, message_part):
    got_status, got_code, message = parse_exec_status(raw)
    assert (got_status, got_code) == (status, code)
    if message_part is None:
        assert message is None
    else:
        assert message_part in message


# --- exec error messages ------------------------------------------------------------------

def test_exec_error_handshake_403_names_both_verbs():
    body = json.dumps({"kind": "Status", "message": 'pods "p" is forbidden: User "x" cannot get '
                                                    'resource "pods/exec"', "code": 403})
    exc = ApiRequestError(403, status_message(body, "Forbidden"), body)
    message = exec_error_message(exc, "db", "p", "c")
    assert "get AND create" in message and "pods/exec" in message and "namespace db" in message
    assert 'cannot get resource "pods/exec"' in message


def test_exec_error_404_is_pod_deleted():
    exc = ApiRequestError(404, 'pods "p" not found')
    message = exec_error_message(exc, "db", "p", "c")
    assert message.startswith("pod db/p not found (deleted since discovery?)")
    assert 'pods "p" not found' in message


def test_exec_error_other():
    exc = ApiRequestError(400, status_message('{"message":"container c is not valid for pod p"}', "Bad Request"))
    message = exec_error_message(exc, "db", "p", "c")
    assert "API error 400" in message and "container c is not valid" in message
    assert "ConnectionRefusedError: refused" in exec_error_message(ConnectionRefusedError("refused"), "db", "p", "c")


# --- run_phase ----------------------------------------------------------------------------

def hook(index, command, on_error="Fail", name="<from-annotation>", source="annotation", container="app",
         timeout=30):
    return dict(source=source, name=name, container=container, command=command, on_error=on_error,
                timeout=timeout, index=index)


def pod(name, pre=(), post=(), errors=(), phase="Running", namespace="ns"):
    errors = [dict(e, namespace=namespace, pod=name) for e in errors]
    return dict(namespace=namespace, name=name, phase=phase, pre=list(pre), post=list(post), errors=errors)


def invalid(index, phase="pre", key="on-error", value="fail", source="annotation", name="<from-annotation>"):
    return dict(phase=phase, source=source, name=name, key=key, value=value, index=index,
                message="%s must be Fail or Continue, got %r" % (key, value))


class FakeExec(object):
    """Stands in for exec_hook.  argv[0]: ok | fail <code> | sleep <s> | raise."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()
        self.running = {}
        self.max_running = 0

    def __call__(self, client, namespace, pod_name, container, argv, timeout_seconds, output_cap=None):
        with self.lock:
            self.calls.append((namespace, pod_name, container, list(argv), timeout_seconds,
                               threading.get_ident(), client))
            assert pod_name not in self.running, "hooks of one pod overlapped"
            self.running[pod_name] = True
            self.max_running = max(self.max_running, len(self.running))
        try:
            if argv[0] == "sleep":
                time.sleep(float(argv[1]))
            if argv[0] == "raise":
                raise RuntimeError("kaboom")
            if argv[0] == "fail":
                return dict(status="failed", exit_code=int(argv[1]), stdout="", stderr="bad\n",
                            truncated=False, duration=0.01, error="command exited with code %s" % argv[1])
            return dict(status="succeeded", exit_code=0, stdout="out:%s\n" % pod_name, stderr="",
                        truncated=False, duration=0.01, error=None)
        finally:
            with self.lock:
                del self.running[pod_name]


class Factory(object):
    def __init__(self):
        self.made = []

    def __call__(self):
        client = object()
        self.made.append(client)
        return client


RESULT_KEYS = {"namespace", "pod", "container", "command", "source", "name", "phase", "on_error", "timeout",
               "status", "exit_code", "stdout", "stderr", "truncated", "duration", "error", "reason"}


def run(pods, phase="pre", parallelism=8, **kwargs):
    fake = FakeExec()
    results = run_phase(pods, phase, Factory(), parallelism=parallelism, exec_fn=fake, **kwargs)
    return results, fake


def test_result_shape_and_plan_order():
    pods = [pod("b", pre=[hook(0, ["ok", "1"]), hook(1, ["ok", "2"])]),
            pod("a", pre=[hook(0, ["ok", "3"])], post=[hook(0, ["ok", "post"])])]
    results, fake = run(pods)
    assert [(r["pod"], r["command"]) for r in results] == [("b", ["ok", "1"]), ("b", ["ok", "2"]), ("a", ["ok", "3"])]
    for r in results:
        assert RESULT_KEYS <= set(r)
        assert r["status"] == "succeeded" and r["exit_code"] == 0 and r["phase"] == "pre"
        assert r["error"] is None and r["reason"] is None
    assert results[0]["stdout"] == "out:b\n"
    assert [c[3] for c in fake.calls if c[1] == "b"] == [["ok", "1"], ["ok", "2"]]
    assert fake.calls[0][2] == "app" and fake.calls[0][4] == 30


def test_fail_stops_remaining_hooks_of_that_pod_only():
    pods = [pod("a", pre=[hook(0, ["ok"]), hook(1, ["fail", "3"], name="freeze"), hook(2, ["ok"]),
                          hook(3, ["ok"], on_error="Continue")]),
            pod("b", pre=[hook(0, ["ok"])])]
    results, fake = run(pods)
    assert [r["status"] for r in results] == ["succeeded", "failed", "not_run", "not_run", "succeeded"]
    assert results[1]["exit_code"] == 3 and results[1]["stderr"] == "bad\n"
    assert results[2]["reason"] == 'not run: pre hook "freeze" #1 failed with on-error Fail'
    assert len(fake.calls) == 3
    assert totals(results) == {"hooks_attempted": 5, "hooks_failed": 1}
    summary = fail_summary(results)
    assert summary == '1 hook(s) with on-error Fail failed: ns/a: pre hook "freeze" #1 in container app: ' \
                      'command exited with code 3'


def test_continue_goes_on():
    pods = [pod("a", pre=[hook(0, ["fail", "1"], on_error="Continue"), hook(1, ["ok"])])]
    results, fake = run(pods)
    assert [r["status"] for r in results] == ["failed", "succeeded"]
    assert fail_summary(results) is None
    assert totals(results) == {"hooks_attempted": 2, "hooks_failed": 1}


def test_invalid_hook_is_a_failed_fail_hook_at_its_index():
    pods = [pod("a", pre=[hook(0, ["ok"]), hook(2, ["ok"])], errors=[invalid(1)])]
    results, fake = run(pods)
    assert [r["status"] for r in results] == ["succeeded", "failed", "not_run"]
    bad = results[1]
    assert bad["on_error"] == "Fail" and bad["command"] is None and bad["container"] is None
    assert bad["error"].startswith("invalid hook: on-error must be Fail or Continue")
    assert RESULT_KEYS <= set(bad)
    assert len(fake.calls) == 1
    assert "ns/a" in fail_summary(results)


def test_invalid_hook_after_a_fail_is_not_run_and_keeps_its_message():
    pods = [pod("a", pre=[hook(0, ["fail", "2"])], errors=[invalid(1)])]
    results = run(pods)[0]
    assert [r["status"] for r in results] == ["failed", "not_run"]
    assert "also invalid: on-error must be" in results[1]["reason"]


def test_errors_of_the_other_phase_are_ignored():
    pods = [pod("a", pre=[hook(0, ["ok"])], errors=[invalid(0, phase="post")])]
    results = run(pods, phase="pre")[0]
    assert [r["status"] for r in results] == ["succeeded"]


@pytest.mark.parametrize("pod_phase", ["Succeeded", "Failed"])
def test_finished_pods_are_skipped_not_attempted(pod_phase):
    pods = [pod("done", phase=pod_phase, post=[hook(0, ["ok"]), hook(1, ["ok"])], errors=[invalid(2, "post")])]
    results, fake = run(pods, phase="post")
    assert [r["status"] for r in results] == ["skipped"] * 3
    assert all(pod_phase in r["reason"] for r in results)
    assert not fake.calls
    assert totals(results) == {"hooks_attempted": 0, "hooks_failed": 0}
    assert fail_summary(results) is None


def test_pending_pod_is_attempted():
    results, fake = run([pod("p", phase="Pending", pre=[hook(0, ["ok"])])])
    assert results[0]["status"] == "succeeded" and len(fake.calls) == 1


def test_exec_fn_exception_is_a_failed_hook():
    pods = [pod("a", pre=[hook(0, ["raise"]), hook(1, ["ok"])])]
    results = run(pods)[0]
    assert [r["status"] for r in results] == ["failed", "not_run"]
    assert results[0]["error"] == "RuntimeError: kaboom"


def test_client_factory_failure_is_a_failed_hook():
    def factory():
        raise KubehooksError("No Kubernetes API server is configured")
    results = run_phase([pod("a", pre=[hook(0, ["ok"])])], "pre", factory, exec_fn=FakeExec())
    assert results[0]["status"] == "failed"
    assert "No Kubernetes API server" in results[0]["error"]


def test_parallel_across_pods_sequential_within_pod_one_client_per_thread():
    pods = [pod("p%02d" % i, pre=[hook(0, ["sleep", "0.1"]), hook(1, ["sleep", "0.05"])]) for i in range(12)]
    factory = Factory()
    fake = FakeExec()
    start = time.monotonic()
    results = run_phase(pods, "pre", factory, parallelism=4, exec_fn=fake)
    elapsed = time.monotonic() - start
    assert [r["pod"] for r in results] == [p["name"] for p in pods for repeat in (0, 1)]
    assert all(r["status"] == "succeeded" for r in results)
    assert fake.max_running == 4
    assert 1 <= len(factory.made) <= 4
    by_thread = {}
    for call in fake.calls:
        by_thread.setdefault(call[5], set()).add(id(call[6]))
    assert all(len(ids) == 1 for ids in by_thread.values())
    assert len({id(c) for c in factory.made}) == len(factory.made)
    assert elapsed < 12 * 0.15 / 2  # serial would be 1.8 s; 4 workers about 0.45 s


def test_parallelism_one_is_serial():
    pods = [pod("p%d" % i, pre=[hook(0, ["sleep", "0.01"])]) for i in range(5)]
    results, fake = run(pods, parallelism=1)
    assert fake.max_running == 1 and len(results) == 5


def test_parallelism_must_be_positive():
    with pytest.raises(ExecError):
        run_phase([], "pre", Factory(), parallelism=0, exec_fn=FakeExec())


def test_no_pods_no_clients():
    factory = Factory()
    assert run_phase([], "pre", factory, exec_fn=FakeExec()) == []
    assert not factory.made


def test_on_result_called_once_per_hook_serialised():
    seen = []
    inside = []

    def on_result(result):
        inside.append(1)
        assert len(inside) == 1, "on_result ran concurrently"
        time.sleep(0.005)
        seen.append((result["pod"], result["index"], result["status"]))
        inside.pop()

    pods = [pod("p%d" % i, pre=[hook(0, ["ok"]), hook(1, ["fail", "1"]), hook(2, ["ok"])]) for i in range(6)]
    results = run(pods, on_result=on_result)[0]
    assert sorted(seen) == sorted((r["pod"], r["index"], r["status"]) for r in results)
    assert len(seen) == 18


def test_clients_closed_at_the_end():
    class Closable(object):
        closed = False

        def close(self):
            self.closed = True
    made = []

    def factory():
        made.append(Closable())
        return made[-1]
    run_phase([pod("a", pre=[hook(0, ["ok"])])], "pre", factory, exec_fn=FakeExec())
    assert made and all(c.closed for c in made)


def test_capped_buffer_keeps_the_first_bytes():
    buf = _exec._CappedBuffer(5)
    buf.add(b"abc")
    buf.add(b"")
    assert not buf.truncated
    buf.add(b"defg")
    buf.add(b"h")
    assert buf.truncated and buf.text() == "abcde"
    buf = _exec._CappedBuffer(4)
    buf.add("é€".encode("utf-8"))  # 2 + 3 bytes: cut inside the euro sign
    assert buf.truncated and buf.text().startswith("é")
