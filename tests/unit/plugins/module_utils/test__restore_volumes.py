"""_restore_volumes: which claims get data (pure) and the writer's checks, with a fake API and a fake
exec websocket (the real ones are exercised in tests/integration/test_restore_volumes.py)."""
import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_volumes as rv
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError


def entry(namespace="ns", pod="p-1", volume="data", pvc="data", status="succeeded", **extra):
    out = dict(namespace=namespace, pod=pod, volume=volume, pvc=pvc, path="x", bytes=10, files=3, sha256="s",
               method="fs-copy", status=status, error=None if status == "succeeded" else "boom", tar_bytes=100,
               duration=0.1)
    out.update(extra)
    return out


def test_plan_writes_only_claims_this_restore_created_found_by_namespace_and_claim(tmp_path):
    entries = [entry(), entry(pod="p-2"),                              # two pods of one claim: written once
               entry(pvc="kept"), entry(pvc="broken", status="failed"),
               entry(pvc=None, volume="scratch"), entry(namespace="other", pvc="x")]
    claims = {("ns", "data"): ("ns-new", "created"), ("ns", "kept"): ("ns-new", "skipped"),
              ("ns", "broken"): ("ns-new", "created")}
    jobs, notes = rv.plan_volumes(entries, claims, str(tmp_path), "b1")
    assert [(j["target_namespace"], j["pvc"], j["pod"]) for j in jobs] == [("ns-new", "data", "p-1")]
    assert jobs[0]["archive"] == os.path.join(str(tmp_path), "b1-volumes", "ns", "p-1", "data.tar.gz")
    levels = sorted((level, namespace) for level, namespace, _m in notes)
    assert levels == [("info", "ns-new"), ("warning", "ns"), ("warning", "ns-new")]
    text = " ".join(m for _l, _n, m in notes)
    assert "claim ns-new/kept was not created by this restore" in text
    assert "capture of volume data of pod ns/p-1 failed" in text or "claim ns-new/broken" in text
    assert "emptyDir" in text


def test_plan_in_check_mode_takes_planned_creates_and_refuses_unsafe_paths(tmp_path):
    jobs, _notes = rv.plan_volumes([entry(pod="../evil")], {("ns", "data"): ("ns", "create")}, str(tmp_path), "b1")
    assert jobs[0]["archive"] is None
    shown = rv.plan_entry(jobs[0], None, "r1")
    assert shown["status"] == "planned" and shown["helper_image"] == rv.DEFAULT_HELPER_IMAGE


def test_helper_pod_is_root_with_the_claim_and_a_bounded_life():
    pod = rv.helper_pod("h", "data", "img", "r1", "b1", 600)
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["sleep", "600"] and container["securityContext"]["runAsUser"] == 0
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    assert pod["spec"]["activeDeadlineSeconds"] == 660 and pod["spec"]["automountServiceAccountToken"] is False
    assert rv.extract_command() == ["tar", "-x", "-p", "--numeric-owner", "-f", "-", "-C", "/restore"]
    assert rv.helper_name("r1", "ns", "data") == rv.helper_name("r1", "ns", "data") != rv.helper_name("r2", "ns", "data")


def make_archive(path, members=3):
    """A volume archive as the capture writes it: several gzip members of one tar stream."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("./")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for index in range(members - 1):
            data = (b"line %d\n" % index) * 1000
            info = tarfile.TarInfo("./f%d" % index)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    half = len(plain) // 2
    blob = gzip.compress(plain[:half]) + gzip.compress(plain[half:])
    with open(path, "wb") as handle:
        handle.write(blob)
    return dict(namespace="ns", target_namespace="ns2", pvc="data", pod="p", volume="data", archive=path,
                sha256=hashlib.sha256(blob).hexdigest(), files=members, bytes=len(blob), tar_bytes=len(plain)), plain


class FakeWs(object):
    def __init__(self, status=None, stderr=b""):
        self.stdin = bytearray()
        self.open = True
        self.status = status or json.dumps({"status": "Success"})
        self.stderr = stderr
        self.closed_channels = []

    def write_stdin(self, data):
        self.stdin += data

    def update(self, timeout=0):
        pass

    def read_stderr(self, timeout=0):
        out, self.stderr = self.stderr, b""
        return out

    def read_stdout(self, timeout=0):
        return b""

    def is_open(self):
        return self.open

    def close_channel(self, channel):
        self.closed_channels.append(channel)
        self.open = False   # tar read its end-of-archive and exited

    def read_channel(self, channel, timeout=0):
        return self.status

    def close(self, timeout=None):
        self.open = False


class FakeApi(object):
    def __init__(self):
        self.calls = []
        self.deleted = False

    def __call__(self, method, path, body=None, query=None, content_type=None):
        self.calls.append((method, path))
        if method == "GET" and self.deleted:
            raise ApiRequestError(404, "gone")
        if method == "GET":
            return {"status": {"phase": "Running", "containerStatuses": [{"name": "restore", "state": {"running": {}}}]}}
        if method == "DELETE":
            self.deleted = True
        return {}


def writer(api, ws, progress=None):
    opened = []

    def open_exec(client, namespace, pod, container, argv, timeout=None, stdin=False):
        opened.append((namespace, pod, container, argv, stdin))
        return ws
    w = rv.VolumeWriter(api, object(), "r1", "b1", image="img", timeout=60, progress=progress, open_exec_fn=open_exec,
                        sleep=lambda s: None)
    return w, opened


def test_the_plain_tar_stream_is_written_to_tar_x_and_checked(tmp_path):
    job, plain = make_archive(str(tmp_path / "a.tar.gz"))
    api, ws = FakeApi(), FakeWs()
    seen = []
    w, opened = writer(api, ws, progress=lambda done, total: seen.append((done, total)))
    (result,) = w.run([job])
    assert result["status"] == "succeeded", result
    assert bytes(ws.stdin[:len(plain)]) == plain and len(ws.stdin) % rv.TAR_RECORD == 0
    assert not any(ws.stdin[len(plain):])  # padding only
    assert ws.closed_channels == [0]
    assert opened == [("ns2", result["helper_pod"], "restore", rv.extract_command(), True)]
    assert result["written_files"] == 3 and result["written_bytes"] == len(plain)
    assert api.calls[0][0] == "POST"
    assert ("DELETE", "/api/v1/namespaces/ns2/pods/%s" % result["helper_pod"]) in api.calls
    assert seen[-1] == (len(plain), len(plain))


def test_a_checksum_mismatch_writes_nothing_and_names_the_volume(tmp_path):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))
    job["sha256"] = "0" * 64
    api = FakeApi()
    w, opened = writer(api, FakeWs())
    (result,) = w.run([job])
    assert result["status"] == "failed" and opened == [] and api.calls == []
    assert "checksum mismatch" in result["error"] and "claim ns2/data" in result["error"]
    assert "nothing written" in result["error"]


def test_a_missing_archive_is_that_volumes_error(tmp_path):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))
    job["archive"] = str(tmp_path / "gone.tar.gz")
    (result,) = writer(FakeApi(), FakeWs())[0].run([job])
    assert "is missing" in result["error"] and result["status"] == "failed"


def test_a_full_volume_is_tars_error_with_its_message_and_the_helper_is_removed(tmp_path):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))
    status = json.dumps({"status": "Failure", "reason": "NonZeroExitCode",
                         "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}})
    api = FakeApi()
    ws = FakeWs(status=status, stderr=b"tar: ./f1: Cannot write: No space left on device\n")
    (result,) = writer(api, ws)[0].run([job])
    assert result["status"] == "failed"
    assert "tar in the helper pod failed: command exited with code 2" in result["error"]
    assert "No space left on device" in result["error"] and "claim ns2/data" in result["error"]
    assert api.deleted


def test_a_member_count_different_from_the_backups_is_an_error(tmp_path):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))
    job["files"] = 7
    (result,) = writer(FakeApi(), FakeWs())[0].run([job])
    assert "3 files written, the backup recorded 7" in result["error"]


def test_a_helper_that_cannot_be_created_is_reported(tmp_path):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))

    def refuse(method, path, body=None, query=None, content_type=None):
        raise ApiRequestError(403, "pods is forbidden")
    (result,) = writer(refuse, FakeWs())[0].run([job])
    assert "cannot create the helper pod" in result["error"] and "HTTP 403" in result["error"]


def test_a_helper_that_never_starts_times_out_with_the_reason(tmp_path):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))
    ticks = iter(range(0, 10000, 30))

    def pending(method, path, body=None, query=None, content_type=None):
        if method == "GET":
            return {"status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims"}]}}
        if method == "DELETE":
            raise ApiRequestError(404, "gone")
        return {}
    w = rv.VolumeWriter(pending, object(), "r1", "b1", timeout=60, clock=lambda: next(ticks), sleep=lambda s: None)
    (result,) = w.run([job])
    assert "did not start within 1m0s" in result["error"] and "unbound immediate PersistentVolumeClaims" in result["error"]


def pull_failing(reason, ticks):
    def call(method, path, body=None, query=None, content_type=None):
        if method == "GET":
            return {"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {
                "reason": reason, "message": "Back-off pulling image \"docker.io/library/debian:bookworm-slim\""}}}]}}
        if method == "DELETE":
            raise ApiRequestError(404, "gone")
        return {}
    return rv.VolumeWriter(call, object(), "r1", "b1", timeout=600, clock=lambda: next(ticks), sleep=lambda s: None)


def test_a_helper_image_that_cannot_be_pulled_fails_the_volume_after_a_grace_not_the_timeout(tmp_path):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))
    seen = []

    def clock(values=iter(range(0, 100000, 5))):
        seen.append(next(values))
        return seen[-1]
    w = pull_failing("ImagePullBackOff", iter(()))
    w.clock = clock
    (result,) = w.run([job])
    assert result["status"] == "failed"
    assert "cannot pull its image docker.io/library/debian:bookworm-slim" in result["error"]
    assert "ImagePullBackOff" in result["error"] and "restore_volume_helper_image" in result["error"]
    # failed once the pulls had failed for the grace period, long before the 600 s helper timeout
    assert rv.IMAGE_PULL_GRACE_SECONDS <= seen[-1] < 600


def test_an_image_name_that_can_never_be_pulled_fails_at_once(tmp_path):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))
    (result,) = pull_failing("InvalidImageName", iter(range(0, 100000, 5))).run([job])
    assert "cannot pull its image" in result["error"] and "InvalidImageName" in result["error"]


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_an_archive_damaged_after_its_check_is_not_a_traceback(tmp_path, damage):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))
    with open(job["archive"], "rb") as handle:
        blob = handle.read()
    blob = blob[:len(blob) // 2] if damage == "truncate" else blob[:20] + b"\xff" * 50 + blob[70:]
    with open(job["archive"], "wb") as handle:
        handle.write(blob)
    job["sha256"] = hashlib.sha256(blob).hexdigest()   # as if it matched the index
    (result,) = writer(FakeApi(), FakeWs())[0].run([job])
    assert result["status"] == "failed" and "claim ns2/data" in result["error"]


def test_a_helper_that_cannot_be_deleted_is_a_warning_naming_it(tmp_path):
    job, _plain = make_archive(str(tmp_path / "a.tar.gz"))
    api = FakeApi()

    def no_delete(method, path, body=None, query=None, content_type=None):
        if method == "DELETE":
            raise ApiRequestError(403, "pods is forbidden: cannot delete")
        return api(method, path, body)
    (result,) = writer(no_delete, FakeWs())[0].run([job])
    assert result["status"] == "succeeded"
    assert "could not be deleted (delete it by hand)" in result["warning"] and result["helper_pod"] in result["warning"]


def test_a_claim_restored_from_its_csi_snapshot_gets_no_archive_written(tmp_path):
    snap = entry(method="csi-snapshot", path=None, sha256=None, bytes=0, files=0, volume_snapshot="velero-data-x")
    failed = entry(pvc="late", method="csi-snapshot", path=None, status="failed")
    claims = {("ns", "data"): ("ns", "created"), ("ns", "late"): ("ns", "created")}
    jobs, notes = rv.plan_volumes([snap, failed], claims, str(tmp_path), "b1")
    assert jobs == []
    assert [(level, "claim ns/late: no data to restore" in m) for level, _n, m in notes] == [("warning", True)]


def test_several_volumes_start_their_helpers_together_and_results_keep_the_jobs_order(tmp_path):
    """With parallelism 3, no helper is waited for before all three were created (a barrier in the fake API
    server's GET proves it: one volume at a time would never pass it); the progress adds up every volume."""
    import threading

    jobs = []
    for index in range(3):
        job, _plain = make_archive(str(tmp_path / ("a%d.tar.gz" % index)))
        job.update(pvc="data-%d" % index, volume="v%d" % index)
        jobs.append(job)
    barrier = threading.Barrier(3, timeout=10)
    posted = []

    class Api(FakeApi):
        def __call__(self, method, path, body=None, query=None, content_type=None):
            if method == "POST":
                posted.append(body["metadata"]["name"])
            elif method == "GET" and not path.endswith("-gone"):
                name = path.rsplit("/", 1)[1]
                if name not in waited:
                    waited.add(name)
                    barrier.wait()  # every helper was created before any is waited for
                if name in deleted:
                    raise ApiRequestError(404, "gone")
                return {"status": {"phase": "Running", "containerStatuses": [{"name": "restore", "state": {"running": {}}}]}}
            elif method == "DELETE":
                deleted.add(path.rsplit("/", 1)[1])
            return {}

    waited, deleted, seen = set(), set(), []
    w = rv.VolumeWriter(Api(), object(), "r1", "b1", image="img", timeout=60, parallelism=3,
                        progress=lambda done, total: seen.append((done, total)),
                        open_exec_fn=lambda *args, **kwargs: FakeWs(), sleep=lambda s: None)
    results = w.run(jobs)
    assert [r["status"] for r in results] == ["succeeded"] * 3, results
    assert [r["pvc"] for r in results] == ["data-0", "data-1", "data-2"]
    assert sorted(posted) == sorted(r["helper_pod"] for r in results) and len(set(posted)) == 3
    total = sum(job["tar_bytes"] for job in jobs)
    assert seen[-1] == (total, total)
