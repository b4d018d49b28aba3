# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: file-system copy of pod volumes through ``pods/exec``. Not a public API.

``capture_volume`` runs ``tar -c -f - -C <mount path> .`` (an argv, no shell) in a container that
mounts the volume, through the ``pods/exec`` websocket opened by ``_api.open_exec``, and streams
stdout into ``<volume>.tar.gz``: frames are read straight from the websocket (the client's
``WSClient`` would accumulate a whole channel in memory between reads), cut into 1 MiB segments
that a small thread pool gzip-compresses (zlib, on the controller; each segment one gzip member,
already-compressed data stored), and a writer thread writes the members in order to a temporary
file in the destination directory, hashing them (sha256 of the ``.tar.gz``) and counting the
archive's members from the tar headers as they pass.  Memory stays bounded by a few segments
whatever the volume size.  Only a complete capture is renamed into place; a failed one leaves no
archive (its temporary file is removed).  zlib and hashlib release the GIL, so receiving and
compressing use every core.

Pure parts: ``tar_command``, the index entries (the tar stream's check is ``_tar.TarCounter``).
I/O parts: ``capture_volume``, ``capture_pod_volumes``, ``capture_volumes``, the index files.
Which volumes are copied (Velero's annotations) is decided in ``_volumes``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import queue
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.kubehooks.backup.plugins.module_utils._api import ThreadClients, open_exec
from ansible_collections.kubehooks.backup.plugins.module_utils._exec_socket import STDERR_CHANNEL, STDOUT_CHANNEL
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._exec import (
    DEFAULT_OUTPUT_CAP,
    ERROR_CHANNEL,
    _CappedBuffer,
    exec_error_message,
    parse_exec_status,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._layout import ensure_dir, volume_archive
from ansible_collections.kubehooks.backup.plugins.module_utils._tar import TarCounter
from ansible_collections.kubehooks.backup.plugins.module_utils._volumes import safe_path_part

try:
    from websocket import ABNF, WebSocketConnectionClosedException, WebSocketTimeoutException
    WEBSOCKET_IMPORT_ERROR = None
except ImportError as exc:  # reported through _api's KUBERNETES_IMPORT_ERROR first
    ABNF = WebSocketConnectionClosedException = WebSocketTimeoutException = None
    WEBSOCKET_IMPORT_ERROR = exc

METHOD = "fs-copy"
# zlib level of the .tar.gz: see bench/bench_capture.py for the measurement that chose it.
DEFAULT_COMPRESSLEVEL = 1
DEFAULT_CAPTURE_PARALLELISM = 2
DEFAULT_RETRIES = 1
_V5_CLOSE_CHANNEL = 255
_POLL_SECONDS = 0.5
_PROGRESS_SECONDS = 0.5
_SEGMENT = 1 << 20          # stream bytes per gzip member (the unit of parallel compression)
_QUEUE_SEGMENTS = 4         # segments queued for compression and writing: bounds the memory
_COMPRESS_WORKERS = 2
_SAMPLE = 65536             # bytes of a segment tried at level 1 ...
_STORE_RATIO = 0.97         # ... stored when they do not shrink below this ratio
_STATUS_CAP = 65536         # the error channel carries one small JSON Status


def tar_command(mount_path):
    """The argv that streams the volume mounted at ``mount_path`` as a tar archive on stdout."""
    return ["tar", "-c", "-f", "-", "-C", mount_path, "."]


def gzip_member(raw, level):
    """``raw`` as one gzip member (mtime 0).  A segment whose first 64 KiB do not shrink at level 1
    (already compressed data: media, archives, encrypted files) is stored (level 0): deflating it
    would cost the most CPU for nothing."""
    if level > 0 and len(raw) >= 2 * _SAMPLE:
        sample = raw[:_SAMPLE]
        if len(zlib.compress(sample, 1)) >= len(sample) * _STORE_RATIO:
            level = 0
    deflate = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip wrapper
    return deflate.compress(raw) + deflate.flush()


class _ArchiveWriter(object):
    """Cut the stream into segments, compress them in a small thread pool (zlib releases the GIL),
    and write the gzip members in order from a writer thread that hashes them and counts the tar
    members of the raw segments.  A multi-member gzip file is one valid ``.tar.gz`` (RFC 1952;
    gzip, tar and Python's tarfile read it whole).  Memory: at most ``_QUEUE_SEGMENTS + 2``
    segments in flight, whatever the volume size."""

    _STOP = object()
    _ABORT = object()

    def __init__(self, fd, compresslevel, workers=_COMPRESS_WORKERS):
        self._file = os.fdopen(fd, "wb")
        self._level = compresslevel
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.counter = TarCounter()
        self.error = None
        self._chunks = []
        self._pending = 0
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._queue = queue.Queue(_QUEUE_SEGMENTS)
        self._thread = threading.Thread(target=self._run, name="kubehooks-capture-writer")
        self._thread.daemon = True
        self._thread.start()

    def _write(self, data):
        if data:
            self._hash.update(data)
            self._file.write(data)
            self.bytes += len(data)

    def _run(self):
        try:
            while True:
                item = self._queue.get()
                if item is self._ABORT:
                    return
                if item is self._STOP:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                    return
                raw, member = item.result()
                self.counter.feed(raw)
                self._write(member)
        except Exception as exc:  # pylint: disable=broad-except  # reported by the capture
            self.error = exc
            self._drain()
        finally:
            try:
                self._file.close()
            except OSError as exc:
                if self.error is None:
                    self.error = exc

    def _drain(self):
        """After an error: empty the queue so that a blocked ``put`` returns."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _enqueue(self, item, deadline):
        while self.error is None:
            timeout = _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - time.monotonic())
            if timeout <= 0:
                return False
            try:
                self._queue.put(item, timeout=timeout)
                return True
            except queue.Full:
                continue
        return True  # the error is reported by the capture

    def _submit(self, deadline):
        raw = b"".join(self._chunks)
        self._chunks, self._pending = [], 0
        level = self._level
        return self._enqueue(self._pool.submit(lambda: (raw, gzip_member(raw, level))), deadline)

    def put(self, data, deadline=None):
        """Add one chunk of the stream; False when the deadline passed first (the writer is too slow)."""
        self._chunks.append(data)
        self._pending += len(data)
        if self._pending >= _SEGMENT:
            return self._submit(deadline)
        return True

    def finish(self, timeout=None):
        """Flush and close; True when everything was written (``error`` says otherwise)."""
        if self._pending and self.error is None:
            self._submit(None)
        self._enqueue(self._STOP, None)
        self._thread.join(timeout)
        self._pool.shutdown(wait=False)
        if self._thread.is_alive():
            self.error = self.error or OSError("writing the archive did not finish in time")
            return False
        return self.error is None

    def abort(self):
        self._chunks = []
        self._drain()
        try:
            self._queue.put(self._ABORT, timeout=5)
        except queue.Full:  # pragma: no cover - the writer drains after an error
            pass
        self._thread.join(10)
        self._pool.shutdown(wait=False)

    @property
    def sha256(self):
        return self._hash.hexdigest()


# ---------------------------------------------------------------------------------------------
# One volume

def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def capture_volume(api_client, namespace, pod, container, mount_path, dest_path, deadline=None, progress=None,
                   output_cap=DEFAULT_OUTPUT_CAP, volume=None, tar_argv=None,
                   compresslevel=DEFAULT_COMPRESSLEVEL, retries=DEFAULT_RETRIES):
    """Copy the directory ``mount_path`` of ``container`` into the gzip tar archive ``dest_path``.

    Returns ``dict(status, bytes, tar_bytes, files, sha256, duration, error, stderr, attempts)``:
    ``status`` ``succeeded`` or ``failed``; ``bytes`` and ``sha256`` of the ``.tar.gz``;
    ``tar_bytes`` the uncompressed stream; ``files`` the archive's members (see ``TarCounter``);
    ``error`` None or a message naming namespace/pod/volume; ``stderr`` tar's stderr, capped at
    ``output_cap``; ``attempts`` how many copies were made.  ``deadline`` is an absolute
    ``time.monotonic()`` value: when it passes the copy is abandoned.  ``progress(tar_bytes_done)``
    (bytes of the current attempt) is called at most every 0.5 s, and once at the end.
    ``tar_argv`` replaces ``tar_command(mount_path)``.

    A stream that the API server ends with a success status but without the end of the tar
    archive (seen under heavy load: the tail of the stream missing) or without any exit status is
    copied again, up to ``retries`` more times while the deadline allows; tar's own failures are
    not retried.  Never raises for exec, stream or file problems; on failure no file is left at
    ``dest_path`` (nor a temporary one).  ``api_client`` must not be used by another thread meanwhile.
    """
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        result = _capture_once(api_client, namespace, pod, container, mount_path, dest_path, deadline, progress,
                               output_cap, volume, tar_argv, compresslevel)
        retry = result.pop("_retry", False)
        if not retry or attempt > retries or (deadline is not None and time.monotonic() >= deadline):
            break
    if result["status"] != "succeeded" and attempt > 1:
        result["error"] += " (%d attempts)" % attempt
    result["attempts"] = attempt
    result["duration"] = round(time.monotonic() - start, 3)
    return result


def _capture_once(api_client, namespace, pod, container, mount_path, dest_path, deadline, progress, output_cap,
                  volume, tar_argv, compresslevel):
    """One copy (see ``capture_volume``); ``_retry`` True in the result when a new copy may succeed."""
    start = time.monotonic()
    what = "volume %s of pod %s/%s" % (volume or mount_path, namespace, pod)
    stderr = _CappedBuffer(output_cap)
    status_raw = _CappedBuffer(_STATUS_CAP)
    result = dict(status="failed", bytes=0, tar_bytes=0, files=0, sha256=None, duration=0.0, error=None,
                  stderr="")
    argv = list(tar_argv) if tar_argv is not None else tar_command(mount_path)
    writer = ws = tmp = None
    tar_bytes = 0
    reported = [0, start]

    def report(force=False):
        now = time.monotonic()
        if progress is not None and (force or now - reported[1] >= _PROGRESS_SECONDS) and \
                (tar_bytes != reported[0] or not force):
            reported[0], reported[1] = tar_bytes, now
            try:
                progress(tar_bytes)
            except Exception:  # pylint: disable=broad-except  # progress is advisory
                pass

    def fail(message):
        result["error"] = "%s: %s" % (what, message)

    try:
        if WEBSOCKET_IMPORT_ERROR is not None:
            raise KubehooksError("the websocket-client library is required: %s" % WEBSOCKET_IMPORT_ERROR)
        if deadline is not None and time.monotonic() >= deadline:
            fail("not copied: the deadline had passed before the copy started")
            return result
        directory = os.path.dirname(os.path.abspath(dest_path))
        try:
            ensure_dir(directory)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(dest_path),
                                       suffix=".partial")
        except OSError as exc:
            fail("cannot create the archive in %s: %s" % (directory, exc.strerror or exc))
            return result
        writer = _ArchiveWriter(fd, compresslevel)
        connect = None if deadline is None else max(deadline - time.monotonic(), 0.1)
        try:
            ws = open_exec(api_client, namespace, pod, container, argv, timeout=connect)
        except Exception as exc:  # pylint: disable=broad-except  # the exec could not start
            fail(exec_error_message(exc, namespace, pod, container))
            return result
        sock = ws.sock
        timed_out = closed = False
        wait = None
        while writer.error is None:
            want = _POLL_SECONDS
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                want = min(remaining, _POLL_SECONDS)
            if want != wait:  # a syscall: only when it changes
                sock.settimeout(want)
                wait = want
            try:
                opcode, frame = sock.recv_data_frame(True)
            except WebSocketTimeoutException:
                report()
                continue
            except WebSocketConnectionClosedException:
                closed = True
                break
            if opcode == ABNF.OPCODE_CLOSE:
                closed = True
                break
            if opcode not in (ABNF.OPCODE_BINARY, ABNF.OPCODE_TEXT):
                continue
            data = frame.data
            if isinstance(data, str):
                data = data.encode("utf-8")
            if len(data) < 2:
                continue
            channel = data[0]
            if channel == STDOUT_CHANNEL:
                chunk = memoryview(data)[1:]
                tar_bytes += len(chunk)
                if not writer.put(chunk, deadline):
                    timed_out = True
                    break
                report()
            elif channel == STDERR_CHANNEL:
                stderr.add(data[1:])
            elif channel == ERROR_CHANNEL:
                status_raw.add(data[1:])
            # channel 255 (v5 close of a channel) and others: nothing to keep
        result["tar_bytes"] = tar_bytes
        result["stderr"] = stderr.text()
        if writer.error is not None:
            fail("cannot write %s: %s" % (dest_path, getattr(writer.error, "strerror", None) or writer.error))
            return result
        if timed_out:
            fail("abandoned: the deadline passed after %d bytes of the tar stream (copy not complete)" % tar_bytes)
            return result
        state, exit_code, message = parse_exec_status(status_raw.text() if status_raw.size else None)
        if state != "succeeded":
            tail = result["stderr"].strip()[-500:]
            if exit_code is not None:
                fail("tar exited with code %d in container %s%s" % (
                    exit_code, container, (": " + tail) if tail else ""))
            elif not closed or status_raw.size:
                fail("tar could not run in container %s: %s" % (container, message))
            else:
                fail("the exec stream in container %s ended without an exit status (connection lost?)" % container)
                result["_retry"] = True
            return result
        if not writer.finish(timeout=max(30.0, (deadline - time.monotonic()) if deadline else 30.0)):
            fail("cannot write %s: %s" % (dest_path, getattr(writer.error, "strerror", None) or writer.error))
            return result
        counter = writer.counter
        if counter.error is not None or not counter.ended:
            fail("the stream from tar is not a complete tar archive although tar reported success (%s)" % (
                counter.error or "no end-of-archive block after %d bytes" % tar_bytes))
            result["_retry"] = True
            return result
        try:
            os.chmod(tmp, 0o600)
            os.replace(tmp, dest_path)
        except OSError as exc:
            fail("cannot put the archive in place at %s: %s" % (dest_path, exc.strerror or exc))
            return result
        tmp = None
        result.update(status="succeeded", bytes=writer.bytes, files=counter.members, sha256=writer.sha256)
        return result
    except Exception as exc:  # pylint: disable=broad-except  # every failure is this volume's result
        if ws is not None:
            fail(exec_error_message(exc, namespace, pod, container))
        else:
            fail("%s: %s" % (type(exc).__name__, exc))
        return result
    finally:
        if ws is not None:
            try:
                if result["status"] != "succeeded":
                    ws.sock.abort()  # abandoned: no wait for the rest of the stream
                ws.close(timeout=1)
            except Exception:  # pylint: disable=broad-except
                pass
        if writer is not None and result["status"] != "succeeded":
            writer.abort()
        if tmp is not None:
            _remove(tmp)
        result["tar_bytes"] = tar_bytes
        result["duration"] = round(time.monotonic() - start, 3)
        report(force=True)


# ---------------------------------------------------------------------------------------------
# Volumes of pods

def _pod_identity(pod):
    """(namespace, name) of a pod given as an API object or as a plan entry (``namespace``, ``name``)."""
    meta = pod.get("metadata")
    if isinstance(meta, dict):
        return meta.get("namespace"), meta.get("name")
    return pod.get("namespace"), pod.get("name")


def index_entry(namespace, pod, item, outcome=None, path=None):
    """One volumes-index entry for a selected volume (``_volumes.select_volumes``) and its outcome."""
    outcome = outcome or {}
    succeeded = outcome.get("status") == "succeeded"
    return dict(
        namespace=namespace,
        pod=pod,
        volume=item.get("volume"),
        pvc=item.get("pvc"),
        path=path if succeeded else None,
        bytes=int(outcome.get("bytes") or 0),
        files=int(outcome.get("files") or 0),
        sha256=outcome.get("sha256") if succeeded else None,
        method=item.get("method") or METHOD,
        status="succeeded" if succeeded else "failed",
        error=None if succeeded else (outcome.get("error") or item.get("error") or "not copied"),
        tar_bytes=int(outcome.get("tar_bytes") or 0),
        duration=float(outcome.get("duration") or 0.0),
    )


class _Progress(object):
    """Sum of the tar bytes done over several volumes; ``callback(total)`` at most every 0.5 s."""

    def __init__(self, callback):
        self.callback = callback
        self.done = {}
        self.lock = threading.Lock()
        self.last = 0.0

    def for_volume(self, key):
        if self.callback is None:
            return None

        def update(tar_bytes):
            with self.lock:
                self.done[key] = tar_bytes
                now = time.monotonic()
                if now - self.last < _PROGRESS_SECONDS:
                    return
                self.last = now
                total = sum(self.done.values())
            try:
                self.callback(total)
            except Exception:  # pylint: disable=broad-except  # progress is advisory
                pass
        return update

    def final(self):
        if self.callback is not None:
            with self.lock:
                total = sum(self.done.values())
            try:
                self.callback(total)
            except Exception:  # pylint: disable=broad-except
                pass


def _capture_one(get_client, pod, item, backup_dir, name, deadline, progress, capture_fn, options):
    namespace, pod_name = _pod_identity(pod)
    if item.get("error"):
        return index_entry(namespace, pod_name, item)
    for part in (namespace, pod_name, item.get("volume")):
        if not safe_path_part(part):
            return index_entry(namespace, pod_name, item, dict(
                error="pod %s/%s volume %s: %r cannot name a file" % (namespace, pod_name, item.get("volume"), part)))
    dest = volume_archive(backup_dir, name, namespace, pod_name, item["volume"])
    relative = os.path.relpath(dest, backup_dir)
    try:
        outcome = capture_fn(get_client(), namespace, pod_name, item["container"], item["mount_path"], dest,
                             deadline=deadline, progress=progress, volume=item["volume"], **options)
    except Exception as exc:  # pylint: disable=broad-except  # one volume's failure, never the run's
        outcome = dict(status="failed", error="pod %s/%s volume %s: %s: %s" % (
            namespace, pod_name, item["volume"], type(exc).__name__, exc))
    return index_entry(namespace, pod_name, item, outcome, relative)


def capture_volumes(client_factory, jobs, backup_dir, name, deadline, progress=None,
                    parallelism=DEFAULT_CAPTURE_PARALLELISM, capture_fn=capture_volume, **options):
    """Copy the selected volumes of several pods, up to ``parallelism`` volumes at a time.

    ``jobs``: ``[(pod, selected), ...]``: ``pod`` an API object or a plan entry (only its namespace
    and name are read), ``selected`` from ``_volumes.select_volumes``.  Each
    worker thread gets its own ApiClient from ``client_factory()`` (closed at the end).  Returns one
    volumes-index entry per selected volume, in job order.  ``progress(tar_bytes_done)`` reports the
    sum over all volumes at most every 0.5 s.  Never raises for a volume's failure; a volume whose
    turn comes after ``deadline`` fails as "not copied".  ``options`` go to ``capture_fn``
    (``capture_volume``: ``compresslevel``, ``output_cap``, ``tar_argv``).
    """
    if int(parallelism) < 1:
        raise KubehooksError("parallelism must be at least 1, got %s" % parallelism)
    work = [(pod, item) for pod, selected in jobs for item in selected]
    if not work:
        return []
    tracker = _Progress(progress)
    with ThreadClients(client_factory) as clients:

        def job(index_and_work):
            index, (pod, item) = index_and_work
            return _capture_one(clients.get, pod, item, backup_dir, name, deadline, tracker.for_volume(index),
                                capture_fn, options)

        with ThreadPoolExecutor(max_workers=min(int(parallelism), len(work))) as pool:
            entries = list(pool.map(job, enumerate(work)))
    tracker.final()
    return entries


def capture_pod_volumes(get_client, pod, selected, backup_dir, name, deadline, progress=None,
                        parallelism=DEFAULT_CAPTURE_PARALLELISM, capture_fn=capture_volume, **options):
    """Copy the selected volumes of one pod (up to ``parallelism`` at a time); index entries in order.

    ``get_client()`` is called in each worker thread and must return an ApiClient that thread may
    use alone (e.g. a thread-local one, as ``_exec.run_phase`` gives); ``capture_volumes`` does this
    for several pods with one bounded pool.
    """
    if int(parallelism) < 1:
        raise KubehooksError("parallelism must be at least 1, got %s" % parallelism)
    selected = list(selected)
    if not selected:
        return []
    tracker = _Progress(progress)

    def job(index_and_item):
        index, item = index_and_item
        return _capture_one(get_client, pod, item, backup_dir, name, deadline, tracker.for_volume(index),
                            capture_fn, options)

    with ThreadPoolExecutor(max_workers=min(int(parallelism), len(selected))) as pool:
        entries = list(pool.map(job, enumerate(selected)))
    tracker.final()
    return entries
