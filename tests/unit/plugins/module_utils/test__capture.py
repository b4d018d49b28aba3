# -*- coding: utf-8 -*-
"""Unit tests for _capture: the stream handling of
``capture_volume`` and the orchestration over volumes and pods, the volumes index and totals.

``capture_volume`` is driven here through a FAKE websocket (``_FakeSocket``, put in place of
``open_exec``): it plays frames as the API server sends them (channel byte + payload) to reach
faults that a real container cannot be made to produce on demand: a stream that ends without an
exit status, a "successful" exec whose stdout is not a complete tar archive, a writer that cannot
write.  Real copies (content, exit codes, missing tar, deadline) are tested against the local
cluster in tests/integration/test_capture.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import hashlib
import io
import os
import stat
import tarfile
import threading
import time

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _capture
from ansible_collections.kubehooks.backup.plugins.module_utils._capture import (
    gzip_member,
    capture_pod_volumes,
    capture_volume,
    capture_volumes,
    tar_command,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from tar_archives import tar_archive

try:
    from websocket import ABNF, WebSocketTimeoutException
except ImportError:  # pragma: no cover
    ABNF = WebSocketTimeoutException = None


# --- capture_volume through a fake websocket -------------------------------------------------

class _Frame(object):
    def __init__(self, data):
        self.data = data


class _FakeSocket(object):
    """Plays ``events``: bytes = one data frame, "timeout" = one poll with nothing, "close"."""

    def __init__(self, events):
        self.events = list(events)
        self.timeouts = []

    def settimeout(self, value):
        self.timeouts.append(value)

    def abort(self):
        self.aborted = True

    def recv_data_frame(self, control):
        if not self.events:
            return ABNF.OPCODE_CLOSE, _Frame(b"")
        event = self.events.pop(0)
        if event == "timeout":
            time.sleep(0.01)
            raise WebSocketTimeoutException("timed out")
        if event == "close":
            return ABNF.OPCODE_CLOSE, _Frame(b"")
        return ABNF.OPCODE_BINARY, _Frame(event)


class _FakeWS(object):
    def __init__(self, events):
        self.sock = _FakeSocket(events)
        self.closed = False

    def close(self, **kwargs):
        self.closed = True


def _stdout_frames(data, size=4096):
    return [b"\x01" + data[i:i + size] for i in range(0, len(data), size)]


SUCCESS = b'\x03{"metadata":{},"status":"Success"}'
EXIT_2 = (b'\x03{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","details":{"causes":'
          b'[{"reason":"ExitCode","message":"2"}]}}')


@pytest.fixture
def fake_exec(monkeypatch):
    calls = []

    def install(events, *later):
        plays = [events] + list(later)

        def opener(api_client, namespace, pod, container, argv, timeout=None):
            ws = _FakeWS(plays[min(len(calls), len(plays) - 1)])
            calls.append(dict(namespace=namespace, pod=pod, container=container, argv=argv, ws=ws, timeout=timeout))
            return ws
        monkeypatch.setattr(_capture, "open_exec", opener)
        return calls
    return install


def _listing(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_capture_writes_gzip_archive_hash_and_counts(tmp_path, fake_exec):
    data, members = tar_archive(tarfile.GNU_FORMAT)
    calls = fake_exec([b"\x02tar: a warning\n"] + _stdout_frames(data) + [SUCCESS, "close"])
    dest = str(tmp_path / "bk-volumes" / "ns" / "p" / "data.tar.gz")
    seen = []
    result = capture_volume(object(), "ns", "p", "app", "/data", dest, progress=seen.append, volume="data")
    assert result["status"] == "succeeded", result
    assert calls[0]["argv"] == tar_command("/data") == ["tar", "-c", "-f", "-", "-C", "/data", "."]
    assert calls[0]["ws"].closed
    raw = open(dest, "rb").read()
    assert gzip.decompress(raw) == data
    assert result["bytes"] == len(raw) and result["sha256"] == hashlib.sha256(raw).hexdigest()
    assert result["tar_bytes"] == len(data) and result["files"] == members
    assert result["stderr"] == "tar: a warning\n" and result["error"] is None
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    for part in ("bk-volumes", "bk-volumes/ns", "bk-volumes/ns/p"):
        assert stat.S_IMODE(os.stat(str(tmp_path / part)).st_mode) == 0o700
    assert _listing(os.path.dirname(dest)) == ["data.tar.gz"]
    assert seen and seen[-1] == len(data)


@pytest.mark.parametrize("events, fragment", [
    ([EXIT_2], "tar exited with code 2 in container app: tar: ./x: Cannot open"),
    ([b'\x03{"status":"Failure","reason":"InternalError","message":"OCI runtime exec failed: '
      b'exec: \\"tar\\": executable file not found in $PATH"}'], "tar could not run in container app: OCI runtime"),
    (["close"], "ended without an exit status (connection lost?) (2 attempts)"),
    ([SUCCESS], "not a complete tar archive although tar reported success (no end-of-archive block after 3000 "
                "bytes) (2 attempts)"),
])
def test_capture_failures_leave_no_file(tmp_path, fake_exec, events, fragment):
    data, _members = tar_archive(tarfile.GNU_FORMAT)
    calls = fake_exec([b"\x02tar: ./x: Cannot open\n"] + _stdout_frames(data[:3000]) + events + ["close"])
    dest = str(tmp_path / "v.tar.gz")
    result = capture_volume(object(), "ns", "p", "app", "/data", dest, volume="data")
    assert result["status"] == "failed"
    assert result["attempts"] == len(calls) == (2 if "attempts" in fragment else 1)
    assert result["error"].startswith("volume data of pod ns/p: ")
    assert fragment in result["error"], result["error"]
    assert result["sha256"] is None and result["bytes"] == 0
    assert _listing(str(tmp_path)) == []


def test_truncated_stream_is_copied_again(tmp_path, fake_exec):
    data, members = tar_archive(tarfile.GNU_FORMAT)
    last = tarfile.open(fileobj=io.BytesIO(data)).getmembers()[-1]
    tail_missing = data[:last.offset + 512]  # every member, no end-of-archive blocks
    calls = fake_exec(_stdout_frames(tail_missing) + [SUCCESS, "close"], _stdout_frames(data) + [SUCCESS, "close"])
    dest = str(tmp_path / "v.tar.gz")
    result = capture_volume(object(), "ns", "p", "app", "/data", dest, volume="data")
    assert (result["status"], result["attempts"], len(calls)) == ("succeeded", 2, 2)
    assert gzip.decompress(open(dest, "rb").read()) == data and result["files"] == members
    assert _listing(str(tmp_path)) == ["v.tar.gz"]
    fake_exec(_stdout_frames(tail_missing) + [SUCCESS, "close"])
    result = capture_volume(object(), "ns", "p", "app", "/data", str(tmp_path / "w.tar.gz"), retries=0)
    assert (result["status"], result["attempts"]) == ("failed", 1)


def test_capture_deadline_abandons_mid_stream(tmp_path, fake_exec):
    data, _members = tar_archive(tarfile.GNU_FORMAT)
    fake_exec(_stdout_frames(data[:4096]) + ["timeout"] * 1000)
    dest = str(tmp_path / "v.tar.gz")
    start = time.monotonic()
    result = capture_volume(object(), "ns", "p", "app", "/data", dest, deadline=time.monotonic() + 0.3,
                            volume="data")
    assert time.monotonic() - start < 3
    assert result["status"] == "failed" and "deadline passed after 4096 bytes" in result["error"]
    assert _listing(str(tmp_path)) == []


def test_capture_deadline_already_passed_does_not_exec(tmp_path, fake_exec):
    calls = fake_exec([SUCCESS])
    result = capture_volume(object(), "ns", "p", "app", "/data", str(tmp_path / "v.tar.gz"),
                            deadline=time.monotonic() - 1, volume="data")
    assert result["status"] == "failed" and "before the copy started" in result["error"]
    assert calls == [] and _listing(str(tmp_path)) == []


def test_capture_exec_handshake_error_is_reported(tmp_path, monkeypatch):
    from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError

    def opener(*args, **kwargs):
        raise ApiRequestError(400, 'container "nope" is not valid for pod "p"')
    monkeypatch.setattr(_capture, "open_exec", opener)
    result = capture_volume(object(), "ns", "p", "nope", "/data", str(tmp_path / "v.tar.gz"), volume="data")
    assert result["status"] == "failed"
    assert "volume data of pod ns/p" in result["error"] and "is not valid for pod" in result["error"]
    assert _listing(str(tmp_path)) == []


def test_capture_unwritable_destination(tmp_path, fake_exec):
    fake_exec([SUCCESS])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = capture_volume(object(), "ns", "p", "app", "/data", str(blocker / "sub" / "v.tar.gz"), volume="data")
    assert result["status"] == "failed" and "cannot create the archive" in result["error"]


def test_capture_stderr_is_capped(tmp_path, fake_exec):
    fake_exec([b"\x02" + b"e" * 5000, EXIT_2])
    result = capture_volume(object(), "ns", "p", "app", "/data", str(tmp_path / "v.tar.gz"), output_cap=100)
    assert len(result["stderr"]) == 100 and "code 2" in result["error"]


def test_gzip_member_stores_incompressible_segments():
    noise = os.urandom(1 << 20)
    stored = gzip_member(noise, 6)
    assert gzip.decompress(stored) == noise and len(noise) < len(stored) < len(noise) + 1024
    zeros = b"\0" * (1 << 20)
    packed = gzip_member(zeros, 1)
    assert gzip.decompress(packed) == zeros and len(packed) < 10000
    assert gzip.decompress(gzip_member(b"", 1)) == b""


def test_multi_segment_archive_is_one_valid_tar_gz(tmp_path, fake_exec):
    """Several 1 MiB segments (random and zeros) become gzip members of ONE .tar.gz that gzip and
    tarfile read whole, in order; the counter sees every member across segment boundaries."""
    out = io.BytesIO()
    noise, zeros = os.urandom(3 << 20), b"\0" * (2 << 20)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, payload in (("./noise", noise), ("./zeros", zeros), ("./small", b"x" * 100)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    data = out.getvalue()
    fake_exec(_stdout_frames(data, 65536) + [SUCCESS, "close"])
    dest = str(tmp_path / "v.tar.gz")
    result = capture_volume(object(), "ns", "p", "app", "/data", dest, volume="data")
    assert result["status"] == "succeeded", result
    raw = open(dest, "rb").read()
    assert gzip.decompress(raw) == data and result["files"] == 3
    assert len(noise) < result["bytes"] < len(noise) + (1 << 20)  # noise stored, zeros compressed
    with tarfile.open(dest, "r:gz") as tar:
        assert tar.extractfile("./noise").read() == noise and tar.extractfile("./zeros").read() == zeros


# --- orchestration ----------------------------------------------------------------------------

POD = {"metadata": {"namespace": "ns", "name": "p"}}


def _fake_capture(outcomes, log):
    def capture(api_client, namespace, pod, container, mount_path, dest, deadline=None, progress=None,
                volume=None, **options):
        log.append(dict(client=api_client, thread=threading.current_thread().name, volume=volume, dest=dest,
                        container=container, mount_path=mount_path, options=options))
        if progress:
            progress(100)
        outcome = outcomes.get(volume, dict(status="succeeded", bytes=10, tar_bytes=100, files=3, sha256="ab",
                                            duration=0.5, error=None))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    return capture


def _item(volume, error=None, pvc=None):
    return dict(volume=volume, pvc=pvc, kind="persistentVolumeClaim" if pvc else "emptyDir",
                container=None if error else "app", mount_path=None if error else "/" + volume, error=error)


def test_capture_pod_volumes_entries_in_order(tmp_path):
    log = []
    outcomes = {"b": dict(status="failed", error="volume b of pod ns/p: tar exited with code 2", tar_bytes=7),
                "c": RuntimeError("boom")}
    items = [_item("a", pvc="claim-a"), _item("b"), _item("c"), _item("d", error="pod ns/p: mounted by no container")]
    progress = []
    entries = capture_pod_volumes(lambda: "client", POD, items, str(tmp_path), "bk", None, progress=progress.append,
                                  parallelism=2, capture_fn=_fake_capture(outcomes, log), compresslevel=6)
    assert [e["volume"] for e in entries] == ["a", "b", "c", "d"]
    a, b, c, d = entries
    assert a == dict(namespace="ns", pod="p", volume="a", pvc="claim-a", path="bk-volumes/ns/p/a.tar.gz",
                     bytes=10, files=3, sha256="ab", method="fs-copy", status="succeeded", error=None,
                     tar_bytes=100, duration=0.5)
    assert b["status"] == "failed" and b["path"] is None and "code 2" in b["error"] and b["tar_bytes"] == 7
    assert c["status"] == "failed" and "RuntimeError: boom" in c["error"] and "volume c" in c["error"]
    assert d["status"] == "failed" and d["error"] == "pod ns/p: mounted by no container"
    assert sorted(x["volume"] for x in log) == ["a", "b", "c"]  # d never execs
    assert log[0]["dest"] == str(tmp_path / "bk-volumes" / "ns" / "p" / "a.tar.gz")
    assert all(x["options"] == {"compresslevel": 6} for x in log)
    assert progress[-1] == 300


def test_capture_volumes_one_client_per_worker_and_closed(tmp_path):
    made = []

    class Client(object):
        closed = False

        def close(self):
            self.closed = True

    def factory():
        made.append(Client())
        return made[-1]
    log = []
    jobs = [(dict(metadata=dict(namespace="ns", name="p%d" % i)) if i % 2 else dict(namespace="ns", name="p%d" % i),
             [_item("a"), _item("b")]) for i in range(4)]  # API objects and plan entries
    entries = capture_volumes(factory, jobs, str(tmp_path), "bk", time.monotonic() + 60, parallelism=3,
                              capture_fn=_fake_capture({}, log))
    assert [(e["pod"], e["volume"]) for e in entries] == [("p%d" % i, v) for i in range(4) for v in "ab"]
    assert 1 <= len(made) <= 3 and all(c.closed for c in made)
    by_thread = {}
    for x in log:
        by_thread.setdefault(x["thread"], set()).add(id(x["client"]))
    assert all(len(ids) == 1 for ids in by_thread.values())
    assert capture_volumes(factory, [], str(tmp_path), "bk", None) == []
    with pytest.raises(KubehooksError):
        capture_volumes(factory, jobs, str(tmp_path), "bk", None, parallelism=0)


def test_unsafe_names_never_reach_the_filesystem(tmp_path):
    log = []
    entries = capture_pod_volumes(lambda: None, {"metadata": {"namespace": "ns", "name": ".."}}, [_item("a")],
                                  str(tmp_path), "bk", None, capture_fn=_fake_capture({}, log))
    assert entries[0]["status"] == "failed" and "cannot name a file" in entries[0]["error"] and log == []
