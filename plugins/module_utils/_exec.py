# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the hook executor of kubehooks.backup. Not a public API.

``exec_hook`` runs ONE argv in one container through the ``pods/exec`` subresource (websocket,
stdout and stderr captured and capped, no stdin, no TTY, no shell) and parses the exit status
from the error channel itself: ``WSClient.returncode`` re-reads that channel and raises on real
payloads.  ``run_phase`` runs one phase of a plan (``_hooks.phase_sequence``): pods in parallel,
the hooks of one pod in order, with Velero's on-error semantics (decided in _on_error).  What is recorded about the
results (totals, the failure message, Velero-shaped log entries) is in _hook_results.

A timeout closes the stream; the process inside the container may keep running (Velero too).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.kubehooks.backup.plugins.module_utils._api import (
    ApiRequestError,
    ThreadClients,
    api_error_message,
    error_reason,
    open_exec,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import (
    ExecError,
    KubehooksError,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._durations import format_duration
from ansible_collections.kubehooks.backup.plugins.module_utils._hooks import phase_sequence
from ansible_collections.kubehooks.backup.plugins.module_utils._on_error import (
    INVALID_HOOK_ON_ERROR,
    fails_pod,
    stop_reason as on_error_stop_reason,
)

try:
    from websocket import (
        WebSocketAddressException,
        WebSocketConnectionClosedException,
        WebSocketException,
        WebSocketProxyException,
        WebSocketTimeoutException,
    )
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # reported by the module through missing_required_lib
    WebSocketException = WebSocketConnectionClosedException = WebSocketAddressException = None
    WebSocketProxyException = WebSocketTimeoutException = None
    KUBERNETES_IMPORT_ERROR = exc

DEFAULT_OUTPUT_CAP = 65536
DEFAULT_PARALLELISM = 8
ERROR_CHANNEL = 3
# Longest single wait on the socket: bounds how late a deadline is noticed.
_POLL_SECONDS = 0.5
# Added to a hook's timeout for its socket (connect, handshake, each read): see open_exec.
_SOCKET_MARGIN_SECONDS = 5
# ``not_executed`` values: the exec could not be opened, so the command certainly did not run.
UNREACHABLE = "unreachable"  # no connection / no upgrade: retrying may work
GONE = "gone"  # 404: the pod no longer exists (nothing of it can still be frozen)
_RETRYABLE_ERRNOS = (errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ENETUNREACH,
                     errno.EHOSTUNREACH, errno.EPIPE, errno.ETIMEDOUT, errno.ENETDOWN, errno.EHOSTDOWN)
FINISHED_POD_PHASES = ("Succeeded", "Failed")


# ---------------------------------------------------------------------------------------------
# Exit status (pure)

def parse_exec_status(raw):
    """Parse the error-channel payload of an exec: ``(status, exit_code, message)``.

    ``status`` is ``"succeeded"`` or ``"failed"``; ``exit_code`` is an int when the API reported
    one (0 on success), else None; ``message`` says why it failed (None on success).  Any payload
    that is not a clear ``Success`` is a failure with a message: never a crash, never a success.
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if raw is None or not raw.strip():
        return "failed", None, ("the exec ended without reporting an exit status "
                                "(the error channel was empty: connection lost?)")
    try:
        status = json.loads(raw)
    except ValueError:
        return "failed", None, "the exec status could not be parsed as JSON: %r" % raw[:300]
    if not isinstance(status, dict):
        return "failed", None, "the exec status is not a JSON object: %r" % raw[:300]
    outcome = status.get("status")
    if outcome == "Success":
        return "succeeded", 0, None
    if outcome != "Failure":
        return "failed", None, "the exec status is neither Success nor Failure: %r" % raw[:300]
    reason = status.get("reason")
    message = status.get("message")
    message = message.strip() if isinstance(message, str) and message.strip() else None
    if reason == "NonZeroExitCode":
        details = status.get("details")
        causes = details.get("causes") if isinstance(details, dict) else None
        for cause in causes if isinstance(causes, list) else []:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                code = cause.get("message")
                if isinstance(code, str) and re.match(r"^\s*-?\d+\s*$", code):
                    return "failed", int(code), "command exited with code %d" % int(code)
                return "failed", None, "command failed; its exit code is not a number: %r" % (code,)
        return "failed", None, "command exited with a non-zero code the API did not report: %s" % (
            message or raw[:300])
    if message:
        return "failed", None, message
    return "failed", None, "exec failed (reason %s) without a message" % (reason or "unknown")


# ---------------------------------------------------------------------------------------------
# One exec

class _CappedBuffer(object):
    """Keep the first ``cap`` bytes written; remember whether anything was dropped."""

    def __init__(self, cap):
        self.cap = cap
        self.parts = []
        self.size = 0
        self.truncated = False

    def add(self, data):
        if not data:
            return
        if isinstance(data, str):
            data = data.encode("utf-8")
        room = self.cap - self.size
        if len(data) > room:
            self.truncated = True
            data = data[:max(room, 0)]
        if data:
            self.parts.append(data)
            self.size += len(data)

    def text(self):
        return b"".join(self.parts).decode("utf-8", "replace")


def exec_error_message(exc, namespace, pod, container):
    """A user-facing message for an exception raised while opening or reading an exec stream."""
    where = "pod %s/%s" % (namespace, pod)
    if isinstance(exc, ApiRequestError):  # the websocket handshake's HTTP answer
        if exc.status == 404:
            return "%s not found (deleted since discovery?): %s" % (where, exc)
        return api_error_message(exc.status, "exec into %s container %s" % (where, container), error_reason(exc),
                                 "the verbs get AND create on the pods/exec subresource in namespace %s" % namespace)
    if WebSocketException is not None and isinstance(exc, WebSocketException):
        return "exec into %s container %s: websocket error: %s" % (where, container, exc)
    return "exec into %s container %s failed: %s: %s" % (where, container, type(exc).__name__, exc)


def not_executed_kind(exc):
    """Why an exception raised while OPENING an exec means the command did not run, else None.

    ``UNREACHABLE`` (worth retrying): connection refused/reset/unreachable, DNS failure, a proxy
    failure, an HTTP 5xx or 429 answer to the upgrade.  ``GONE``: 404, the pod was deleted.  None:
    anything permanent (401, 403, 400 missing container, a TLS certificate problem) or where the
    command may have started (a handshake that timed out after the request was sent).
    """
    if isinstance(exc, ApiRequestError):
        if exc.status == 404:
            return GONE
        if exc.status == 429 or 500 <= (exc.status or 0) <= 599 or exc.status == 0:
            return UNREACHABLE
        return None
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return None  # a certificate or protocol problem: permanent
    if WebSocketTimeoutException is not None and isinstance(exc, WebSocketTimeoutException):
        return None  # the upgrade request was sent: the command may be running
    if isinstance(exc, socket.timeout):
        return None
    if WebSocketAddressException is not None and isinstance(exc, (WebSocketAddressException, WebSocketProxyException)):
        return UNREACHABLE
    if isinstance(exc, (socket.gaierror, ConnectionError)):
        return UNREACHABLE
    if isinstance(exc, OSError) and exc.errno in _RETRYABLE_ERRNOS:
        return UNREACHABLE
    if WebSocketConnectionClosedException is not None and isinstance(exc, WebSocketConnectionClosedException):
        return UNREACHABLE  # closed during the handshake: no upgrade, no exec
    return None


def exec_hook(api_client, namespace, pod, container, argv, timeout_seconds, output_cap=DEFAULT_OUTPUT_CAP):
    """Run ``argv`` in ``namespace/pod`` container ``container``; never raises for exec problems.

    Returns ``{status, exit_code, stdout, stderr, truncated, duration, error}`` where status is
    ``succeeded`` or ``failed``, plus ``not_executed`` (see ``not_executed_kind``) when the exec
    could not be opened.  ``api_client`` must not be shared with another thread while this runs
    (``stream()`` swaps its request method).  The socket's own timeout (connect, handshake, each
    read) is this hook's timeout plus a margin, for this exec only.
    """
    if KUBERNETES_IMPORT_ERROR is not None:
        raise ExecError("the kubernetes Python library is required: %s" % KUBERNETES_IMPORT_ERROR)
    start = time.monotonic()
    deadline = start + float(timeout_seconds)
    stdout, stderr = _CappedBuffer(output_cap), _CappedBuffer(output_cap)
    result = dict(status="failed", exit_code=None, stdout="", stderr="", truncated=False,
                  duration=0.0, error=None)
    ws = None
    try:
        ws = open_exec(api_client, namespace, pod, container, list(argv),
                       timeout=float(timeout_seconds) + _POLL_SECONDS + _SOCKET_MARGIN_SECONDS)
        timed_out = False
        while ws.is_open():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                ws.update(timeout=min(remaining, _POLL_SECONDS))
            except WebSocketConnectionClosedException:
                break  # closed without a close frame: whatever status arrived is parsed below
            stdout.add(ws.read_stdout(timeout=0))
            stderr.add(ws.read_stderr(timeout=0))
        stdout.add(ws.read_stdout(timeout=0))
        stderr.add(ws.read_stderr(timeout=0))
        if timed_out:
            result["error"] = "timed out after %s" % format_duration(timeout_seconds)
        else:
            raw = ws.read_channel(ERROR_CHANNEL, timeout=0)  # read once, parsed here
            result["status"], result["exit_code"], result["error"] = parse_exec_status(raw)
    except Exception as exc:  # pylint: disable=broad-except  # every failure is this hook's result
        result["status"] = "failed"
        result["error"] = exec_error_message(exc, namespace, pod, container)
        kind = not_executed_kind(exc) if ws is None else None
        if kind:
            result["not_executed"] = kind
    finally:
        if ws is not None:
            try:
                ws.close(timeout=1)  # bounded wait for the server's close frame
            except Exception:  # pylint: disable=broad-except
                pass
    result["stdout"] = stdout.text()
    result["stderr"] = stderr.text()
    result["truncated"] = stdout.truncated or stderr.truncated
    result["duration"] = round(time.monotonic() - start, 3)
    return result


# ---------------------------------------------------------------------------------------------
# One phase of a plan

def result_for(pod, item, phase):
    """A result entry (the shape pod_hooks returns as ``hooks``) for one planned hook or invalid-hook error item."""
    invalid = "message" in item
    return dict(
        namespace=pod.get("namespace"),
        pod=pod.get("name"),
        container=None if invalid else item.get("container"),
        command=None if invalid else list(item.get("command") or []),
        source=item.get("source"),
        name=item.get("name"),
        phase=phase,
        index=item.get("index"),
        on_error=INVALID_HOOK_ON_ERROR if invalid else item.get("on_error"),
        timeout=None if invalid else item.get("timeout"),
        status=None,
        exit_code=None,
        stdout="",
        stderr="",
        truncated=False,
        duration=0.0,
        error=None,
        reason=None,
        finished_at=None,
    )


def _run_pod(pod, phase, get_client, exec_fn, output_cap, report, pass_hook=False):
    """Results for one pod's hooks of ``phase``, in order; calls ``report`` per finished hook."""
    results = []
    stop_reason = None
    pod_phase = pod.get("phase")
    for item in phase_sequence(pod, phase):
        result = result_for(pod, item, phase)
        invalid = "message" in item
        if pod_phase in FINISHED_POD_PHASES:
            result["status"] = "skipped"
            result["reason"] = "pod is in phase %s: its hooks are skipped (as Velero does)" % pod_phase
        elif stop_reason:
            result["status"] = "not_run"
            result["reason"] = stop_reason
        elif invalid:
            result["status"] = "failed"
            result["error"] = "invalid hook: %s" % item["message"]
        else:
            try:
                extra = {"hook": item} if pass_hook else {}
                outcome = exec_fn(get_client(), result["namespace"], result["pod"], result["container"],
                                  result["command"], result["timeout"], output_cap=output_cap, **extra)
            except Exception as exc:  # pylint: disable=broad-except  # record it, keep going
                outcome = dict(status="failed", error="%s: %s" % (
                    "could not exec" if isinstance(exc, KubehooksError) else type(exc).__name__, exc))
            for key in ("status", "exit_code", "stdout", "stderr", "truncated", "duration", "error",
                        "not_executed", "attempts"):
                if key in outcome:
                    result[key] = outcome[key]
        if invalid and result["status"] in ("skipped", "not_run"):
            result["reason"] += " (this hook is also invalid: %s)" % item["message"]
        if fails_pod(result) and not stop_reason:
            stop_reason = on_error_stop_reason(result)
        result["finished_at"] = round(time.time(), 3)
        results.append(result)
        report(result)
    return results


def run_phase(pods, phase, client_factory, parallelism=DEFAULT_PARALLELISM, on_result=None,
              exec_fn=exec_hook, output_cap=DEFAULT_OUTPUT_CAP, pass_hook=False, clients=None):
    """Run ``phase`` (``pre``/``post``) for every pod entry of a plan; return the hook results.

    Pods run in parallel, up to ``parallelism`` at a time; one pod's hooks run in order.  Each
    worker thread gets its own ApiClient from ``client_factory()`` (created on first use, closed
    at the end).  ``on_result(result)`` is called once per finished hook, serialised by a lock,
    so it may append to a file.  ``exec_fn`` has ``exec_hook``'s signature (tests inject a fake).
    The list is in plan order: pods as given, hooks in phase order.  ``pass_hook``: ``exec_fn`` also
    gets the planned item as ``hook=`` (the restore's exec hooks read their wait-timeout from it).
    ``clients``: a ``ThreadClients`` the caller owns (and closes) instead of one of this call's own; with one
    pod (or ``parallelism`` 1) the hooks run in the calling thread, without a pool - the critical section
    runs a phase per group, hundreds of times in one run.
    """
    if int(parallelism) < 1:
        raise ExecError("parallelism must be at least 1, got %s" % parallelism)
    pods = list(pods)
    lock = threading.Lock()

    def report(result):
        if on_result is not None:
            with lock:
                on_result(result)

    results = []
    if not pods:
        return results
    own = clients is None
    if own:
        clients = ThreadClients(client_factory)
    try:
        def job(pod):
            return _run_pod(pod, phase, clients.get, exec_fn, output_cap, report, pass_hook)

        workers = min(int(parallelism), len(pods))
        if workers == 1:
            for pod in pods:
                results.extend(job(pod))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for pod_results in pool.map(job, pods):
                    results.extend(pod_results)
    finally:
        if own:
            clients.close()
    return results
