# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: write captured volume data back into restored claims. Not a public API.

The restore calls this between the resources stage (namespaces, PVs, PVCs, config) and the first
pod (``_restore_apply.Applier``'s ``before_stage("workloads")``), so a workload's pods only start
once their claims hold the backed-up data - as Velero's file-system restore, whose init container
blocks the pod until the data is in place.  It needs nothing installed in the cluster:

1. Which volumes: the backup's ``<name>-volumes.json.gz`` entries, found by source namespace and
   claim name (restored pods may get new names), for the claims THIS restore created (a claim that
   already existed keeps its data; it is reported).  Several pods sharing a claim captured it once
   each: the first successful capture is written.  ``emptyDir`` volumes and captures that failed at
   backup time are reported as warnings (nothing to write into a claim).
2. Before anything is written, the archive file's sha256 is checked against the index: a missing
   archive or a mismatch is that volume's error and its claim is left untouched.
3. A short-lived helper pod (image configurable; it needs ``tar`` and ``sleep``) mounts the claim at
   ``/restore``, runs as root (the files keep their numeric owners and modes), and lands where the
   volume is (the scheduler follows the PV's node affinity).
4. The archive is decompressed on the controller (``gzip``: the capture writes several gzip members)
   and the plain tar stream is written to ``tar -x`` through ``pods/exec`` stdin (an argv, no
   shell; ``_api.open_exec(stdin=True)``) in 256 KiB frames; a full socket buffer blocks the write
   (flow control).  The stream is hashed again while it is read and its members counted
   (``_tar.TarCounter``); a different sha256, member count or a failing ``tar`` (a full volume:
   "No space left on device") is that volume's error, naming it.
5. The helper is deleted (and waited for) whatever happened; then the pods are created.

Up to ``parallelism`` volumes (module option ``volume_parallelism``) are written at the same time, so their
helper pods start together instead of one after the other.

Progress: ``progress(bytes_done, bytes_total)`` (plain tar bytes) at most every half second.
Check mode (``plan_only``): which archive would be written into which claim, nothing created.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

try:
    from ansible.module_utils.six.moves.urllib.parse import quote
except ImportError:  # pragma: no cover - only outside Ansible
    from urllib.parse import quote

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError, open_exec
from ansible_collections.kubehooks.backup.plugins.module_utils._tar import TarCounter
from ansible_collections.kubehooks.backup.plugins.module_utils._durations import format_duration
from ansible_collections.kubehooks.backup.plugins.module_utils._exec import (
    ERROR_CHANNEL,
    _CappedBuffer,
    exec_error_message,
    parse_exec_status,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._volumes import (
    CSI_SNAPSHOT_METHOD,
    read_volumes_index,
    safe_path_part,
)

DEFAULT_HELPER_IMAGE = "docker.io/library/debian:bookworm-slim"
DEFAULT_HELPER_TIMEOUT = 600    # seconds for one volume: helper start + the data
# Volumes written at the same time: their helper pods start together (each start ~0.5 s on the local cluster);
# each stream decompresses on the controller, so more than the controller's cores gains little.
DEFAULT_VOLUME_PARALLELISM = 4
HELPER_CONTAINER = "restore"
HELPER_MOUNT = "/restore"
HELPER_LABEL = "kubehooks.backup/restore-helper"
CHUNK = 256 * 1024
TAR_RECORD = 10240              # tar's default record: the stream is padded to it, so tar never waits
_POLL = 0.25
# The helper's image cannot be pulled: the kubelet retries with back-off, so a registry that is down for a moment
# may still answer; after this many seconds of failed pulls the volume fails, naming the image, instead of
# waiting out the whole helper timeout (10 minutes by default, per volume). A name that can never be pulled
# fails at once.
IMAGE_PULL_GRACE_SECONDS = 45
_PULL_RETRIED = ("ErrImagePull", "ImagePullBackOff")
_PULL_NEVER = ("InvalidImageName", "ErrImageNeverPull")
_PROGRESS_SECONDS = 0.5
_STDERR_CAP = 8192
_CLOSE_WAIT = 30                # seconds a deleted helper may take to go

SUCCEEDED = "succeeded"
FAILED = "failed"
PLANNED = "planned"


def extract_command(mount=HELPER_MOUNT):
    """The argv that writes a plain tar stream from stdin into ``mount`` (owners by number, modes kept)."""
    return ["tar", "-x", "-p", "--numeric-owner", "-f", "-", "-C", mount]


def helper_name(restore_name, namespace, claim):
    """A DNS-1123 pod name unique per restore and claim."""
    digest = hashlib.sha256(("%s/%s/%s" % (restore_name, namespace, claim)).encode("utf-8")).hexdigest()[:10]
    return "kubehooks-restore-%s" % digest


def helper_pod(name, claim, image, restore_name, backup_name, lifetime):
    """The helper pod: one container that sleeps ``lifetime`` seconds with the claim at /restore."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {HELPER_LABEL: "true",
                                              "app.kubernetes.io/managed-by": "kubehooks.backup",
                                              "velero.io/restore-name": restore_name[:63],
                                              "velero.io/backup-name": backup_name[:63]}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "activeDeadlineSeconds": int(lifetime) + 60,
            "containers": [{
                "name": HELPER_CONTAINER, "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", str(int(lifetime))],
                "securityContext": {"runAsUser": 0, "runAsGroup": 0},
                "volumeMounts": [{"name": "data", "mountPath": HELPER_MOUNT}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


# ---------------------------------------------------------------------------------------------
# Which volumes (pure)

def plan_volumes(entries, claims, backup_dir, backup_name):
    """The volume writes of a restore and what is reported about the others.

    ``entries``: the volumes index; ``claims``: ``{(source namespace, claim): (target namespace,
    outcome)}`` for the claims the restore reached.  Returns ``(jobs, notes)``: each job a dict
    (namespace, target_namespace, pvc, pod, volume, archive, sha256, files, bytes); each note
    ``(level, namespace, message)``.
    """
    jobs, notes, seen = [], [], set()
    for entry in entries:
        namespace, pvc = entry.get("namespace"), entry.get("pvc")
        where = "volume %s of pod %s/%s" % (entry.get("volume"), namespace, entry.get("pod"))
        if not pvc:
            if any(ns == namespace for ns, _claim in claims):
                notes.append(("warning", namespace, "%s is not a claim (emptyDir): its captured data is not "
                                                    "restored" % where))
            continue
        key = (namespace, pvc)
        if key not in claims or key in seen:
            continue
        target, outcome = claims[key]
        if entry.get("method") == CSI_SNAPSHOT_METHOD and entry.get("status") == SUCCEEDED:
            continue  # the claim was restored from its CSI snapshot (dataSource): no archive to write
        if entry.get("status") != SUCCEEDED:
            notes.append(("warning", target, "claim %s/%s: no data to restore, the backup's capture of %s failed: "
                                             "%s" % (target, pvc, where, entry.get("error"))))
            continue
        seen.add(key)
        if outcome not in ("created", "create"):
            notes.append(("info", target, "claim %s/%s was not created by this restore (%s): its data is left "
                                          "as it is" % (target, pvc, outcome)))
            continue
        parts = (namespace, entry.get("pod"), entry.get("volume"))
        archive = _layout.volume_archive(backup_dir, backup_name, *parts) if all(map(safe_path_part, parts)) else None
        jobs.append(dict(namespace=namespace, target_namespace=target, pvc=pvc, pod=entry.get("pod"),
                         volume=entry.get("volume"), archive=archive, sha256=entry.get("sha256"),
                         files=int(entry.get("files") or 0), bytes=int(entry.get("bytes") or 0),
                         tar_bytes=int(entry.get("tar_bytes") or 0)))
    return jobs, notes


def read_index(backup_dir, backup_name):
    return read_volumes_index(_layout.volumes_index(backup_dir, backup_name))


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _HashingReader(object):
    """A read-only file object that hashes what passes (the compressed bytes)."""

    def __init__(self, raw):
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def drain(self):
        for block in iter(lambda: self.read(1 << 20), b""):
            pass
        return self.digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# One volume (I/O)

class VolumeWriter(object):
    """Writes the jobs of ``plan_volumes`` through ``call`` (``_api.api_caller``) and ``api_client`` (exec)."""

    def __init__(self, call, api_client, restore_name, backup_name, image=None, timeout=None, progress=None,
                 open_exec_fn=open_exec, clock=time.monotonic, sleep=time.sleep, parallelism=None):
        self.call = call
        self.api_client = api_client
        self.restore_name = restore_name
        self.backup_name = backup_name
        self.image = image or DEFAULT_HELPER_IMAGE
        self.timeout = float(timeout or DEFAULT_HELPER_TIMEOUT)
        self.progress = progress
        self.open_exec = open_exec_fn
        self.clock = clock
        self.sleep = sleep
        self.parallelism = int(parallelism or DEFAULT_VOLUME_PARALLELISM)
        self.done_bytes = 0
        self.total_bytes = 0
        self._last_progress = 0.0
        self._done = {}  # bytes written so far, per job being (or done being) written
        self._lock = threading.Lock()

    def run(self, jobs):
        """Write every job, up to ``parallelism`` at a time (their helper pods start together); returns one
        result per job, in the jobs' order.  The ApiClient is shared: its REST calls go through urllib3's
        thread-safe pool, and an exec with stdin is a websocket of its own."""
        self.total_bytes = sum(job["tar_bytes"] for job in jobs)
        workers = max(1, min(self.parallelism, len(jobs)))
        if workers == 1:
            results = [self.write(job) for job in jobs]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(self.write, jobs))
        self._report(force=True)
        return results

    def _set_done(self, job, written):
        with self._lock:
            self._done[id(job)] = written
            self.done_bytes = sum(self._done.values())

    def _report(self, force=False):
        if self.progress is None:
            return
        with self._lock:  # one progress write at a time, whichever volume's thread calls
            now = self.clock()
            if force or now - self._last_progress >= _PROGRESS_SECONDS:
                self._last_progress = now
                try:
                    self.progress(self.done_bytes, self.total_bytes)
                except Exception:  # pylint: disable=broad-except  # progress is advisory
                    pass

    def write(self, job):
        started = self.clock()
        name = helper_name(self.restore_name, job["target_namespace"], job["pvc"])
        result = dict(job, status=FAILED, error=None, helper_pod=name, written_bytes=0, written_files=0, duration=0.0)
        label = "volume %s (claim %s/%s, backed up from pod %s/%s)" % (
            job["volume"], job["target_namespace"], job["pvc"], job["namespace"], job["pod"])
        try:
            problem = self._check_archive(job)
            if problem:
                result["error"] = "%s: %s; nothing written" % (label, problem)
                return result
            deadline = started + self.timeout
            created = False
            try:
                self._create_helper(job, name)
                created = True
                self._wait_running(job["target_namespace"], name, deadline)
                outcome = self._stream(job, name, deadline)
            except _VolumeError as exc:
                result["error"] = "%s: %s" % (label, exc)
                return result
            finally:
                if created:
                    left = self._delete_helper(job["target_namespace"], name)
                    if left:
                        result["warning"] = left
            result.update(outcome)
            problems = []
            if outcome.get("error"):
                problems.append(outcome["error"])
            if outcome.get("stream_sha256") != job["sha256"]:
                problems.append("the archive changed while it was streamed (sha256 %s, recorded %s)"
                                % (outcome.get("stream_sha256"), job["sha256"]))
            if outcome.get("count_error"):
                problems.append(outcome["count_error"])
            elif outcome["written_files"] != job["files"]:
                problems.append("%d files written, the backup recorded %d" % (outcome["written_files"], job["files"]))
            if problems:
                result["error"] = "%s: %s" % (label, "; ".join(problems))
            else:
                result["status"] = SUCCEEDED
            return result
        finally:
            self._set_done(job, job["tar_bytes"])
            result.pop("stream_sha256", None)
            result.pop("count_error", None)
            result["duration"] = round(self.clock() - started, 3)

    @staticmethod
    def _check_archive(job):
        if not job.get("archive"):
            return "the volumes index names an unsafe archive path"
        if not os.path.isfile(job["archive"]):
            return "the volume archive %s is missing" % job["archive"]
        try:
            actual = file_sha256(job["archive"])
        except (IOError, OSError) as exc:
            return "the volume archive %s cannot be read: %s" % (job["archive"], getattr(exc, "strerror", None) or exc)
        if actual != job.get("sha256"):
            return "checksum mismatch: the volume archive %s has sha256 %s, the backup recorded %s" % (
                job["archive"], actual, job.get("sha256"))
        return None

    def _pod_path(self, namespace, name=None):
        path = "/api/v1/namespaces/%s/pods" % quote(namespace, safe="")
        return path + "/" + quote(name, safe="") if name else path

    def _create_helper(self, job, name):
        body = helper_pod(name, job["pvc"], self.image, self.restore_name, self.backup_name, self.timeout)
        try:
            self.call("POST", self._pod_path(job["target_namespace"]), body)
        except ApiRequestError as err:
            if err.status == 409:  # a helper left by an earlier, killed run of this restore
                self._delete_helper(job["target_namespace"], name)  # the create below says if it stayed
                try:
                    self.call("POST", self._pod_path(job["target_namespace"]), body)
                    return
                except ApiRequestError as again:
                    err = again
            raise _VolumeError("cannot create the helper pod %s: %s%s" % (
                name, err, " (HTTP %s)" % err.status if err.status else ""))

    def _wait_running(self, namespace, name, deadline):
        last = "not scheduled yet"
        pull_failing_since = None
        while True:
            try:
                pod = self.call("GET", self._pod_path(namespace, name))
            except ApiRequestError as err:
                raise _VolumeError("cannot read the helper pod %s: %s" % (name, err))
            status = pod.get("status") or {}
            phase = status.get("phase")
            states = [(c.get("state") or {}) for c in status.get("containerStatuses") or []]
            if phase == "Running" and states and "running" in states[0]:
                return
            if phase in ("Succeeded", "Failed"):
                raise _VolumeError("the helper pod %s ended (%s) before the data was written" % (name, phase))
            last = _pending_reason(status) or last
            waiting = [(c.get("waiting") or {}).get("reason") for c in states]
            if any(reason in _PULL_NEVER for reason in waiting):
                raise _VolumeError(self._pull_error(name, last))
            if any(reason in _PULL_RETRIED for reason in waiting):
                pull_failing_since = self.clock() if pull_failing_since is None else pull_failing_since
                if self.clock() - pull_failing_since >= IMAGE_PULL_GRACE_SECONDS:
                    raise _VolumeError(self._pull_error(name, last))
            else:
                pull_failing_since = None
            if self.clock() > deadline:
                raise _VolumeError("the helper pod %s did not start within %s: %s" % (
                    name, format_duration(self.timeout), last))
            self.sleep(_POLL)

    def _pull_error(self, name, reason):
        return ("the helper pod %s cannot pull its image %s (%s); set volume_helper_image (role: "
                "restore_volume_helper_image) to an image with tar that the nodes can pull" % (name, self.image, reason))

    def _stream(self, job, name, deadline):
        namespace = job["target_namespace"]
        stderr = _CappedBuffer(_STDERR_CAP)
        counter = TarCounter()
        sent = 0
        timed_out = closed = False
        ws = None
        try:
            ws = self.open_exec(self.api_client, namespace, name, HELPER_CONTAINER, extract_command(),
                                timeout=max(deadline - self.clock(), 1) + 5, stdin=True)
        except Exception as exc:  # pylint: disable=broad-except
            raise _VolumeError(exec_error_message(exc, namespace, name, HELPER_CONTAINER))
        try:
            with open(job["archive"], "rb") as raw:
                reader = _HashingReader(raw)
                try:
                    with gzip.GzipFile(fileobj=reader, mode="rb") as plain:
                        for chunk in iter(lambda: plain.read(CHUNK), b""):
                            counter.feed(chunk)
                            ws.write_stdin(chunk)
                            sent += len(chunk)
                            self._set_done(job, min(sent, job["tar_bytes"] or sent))
                            self._report()
                            ws.update(timeout=0)
                            stderr.add(ws.read_stderr(timeout=0))
                            ws.read_stdout(timeout=0)
                            if not ws.is_open():
                                closed = True
                                break
                            if self.clock() > deadline:
                                timed_out = True
                                break
                except (IOError, OSError, EOFError) as exc:
                    if isinstance(exc, EOFError) or "gzip" in str(exc).lower() or "CRC" in str(exc):
                        raise _VolumeError("the volume archive %s is not a valid gzip stream: %s"
                                           % (job["archive"], exc))
                    raise
                stream_sha256 = reader.drain()
            if not closed and not timed_out:
                if sent % TAR_RECORD:
                    ws.write_stdin(b"\0" * (TAR_RECORD - sent % TAR_RECORD))
                # End of input (v5 protocol).  Without it (a v4 server, an older client) GNU tar still
                # exits at the end-of-archive blocks of the padded record, which is why the stream is padded.
                close_stdin = getattr(ws, "close_channel", None)
                if close_stdin is not None:
                    close_stdin(0)
                while ws.is_open():
                    if self.clock() > deadline:
                        timed_out = True
                        break
                    try:
                        ws.update(timeout=_POLL)
                    except Exception:  # pylint: disable=broad-except  # closed without a close frame
                        break
                    stderr.add(ws.read_stderr(timeout=0))
                    ws.read_stdout(timeout=0)
            stderr.add(ws.read_stderr(timeout=0))
            if timed_out:
                error = "timed out after %s (%d bytes written)" % (format_duration(self.timeout), sent)
            else:
                status, _code, message = parse_exec_status(ws.read_channel(ERROR_CHANNEL, timeout=0))
                error = None if status == "succeeded" else "tar in the helper pod failed: %s%s" % (
                    message, ": %s" % stderr.text().strip() if stderr.text().strip() else "")
        except _VolumeError:
            raise
        except Exception as exc:  # pylint: disable=broad-except  # a broken stream is this volume's error
            text = stderr.text().strip()
            raise _VolumeError("writing into the helper pod %s failed after %d bytes: %s%s" % (
                name, sent, exec_error_message(exc, namespace, name, HELPER_CONTAINER), ": %s" % text if text else ""))
        finally:
            try:
                ws.close(timeout=1)
            except Exception:  # pylint: disable=broad-except
                pass
        count_error = counter.error or (None if counter.ended else "the volume archive has no end-of-archive block")
        return dict(written_bytes=sent, written_files=counter.members, stream_sha256=stream_sha256, error=error,
                    count_error=count_error)

    def _delete_helper(self, namespace, name):
        """Delete the helper and wait until it is gone; a message when it may be left behind, else None."""
        path = self._pod_path(namespace, name)
        try:
            self.call("DELETE", path, {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0})
        except ApiRequestError as err:
            if err.status == 404:
                return None
            return "the helper pod %s/%s could not be deleted (delete it by hand): %s" % (namespace, name, err)
        stop = self.clock() + _CLOSE_WAIT
        while self.clock() < stop:
            try:
                self.call("GET", path)
            except ApiRequestError as err:
                if err.status == 404:
                    return None
            self.sleep(_POLL)
        return "the helper pod %s/%s was still there %ss after its deletion" % (namespace, name, _CLOSE_WAIT)


class _VolumeError(Exception):
    """This volume could not be written (the message says why)."""


def _pending_reason(status):
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return "%s%s" % (waiting["reason"], ": %s" % waiting["message"] if waiting.get("message") else "")
    for condition in status.get("conditions") or []:
        if condition.get("status") == "False" and condition.get("message"):
            return "%s: %s" % (condition.get("reason") or condition.get("type"), condition["message"])
    return None


def plan_entry(job, image, restore_name):
    """What check mode shows for one job."""
    return dict(namespace=job["namespace"], target_namespace=job["target_namespace"], pvc=job["pvc"],
                pod=job["pod"], volume=job["volume"], archive=job["archive"], bytes=job["bytes"], files=job["files"],
                tar_bytes=job["tar_bytes"],
                status=PLANNED, helper_pod=helper_name(restore_name, job["target_namespace"], job["pvc"]),
                helper_image=image or DEFAULT_HELPER_IMAGE)
