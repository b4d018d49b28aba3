"""Deleting a backup (velero backup delete) and finding the expired ones (Velero's garbage collection).

The CSI snapshot tests below use a FAKE API ``call`` only because no cluster was available when they were
written; tests/integration/test_csi_snapshot.py::test_backup_delete_deletes_the_csi_snapshots deletes for real.
"""
import os

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _csi_snapshot, _delete, _layout, _record, _volumes
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.modules import backup_delete

NOW = 1795597200  # 2026-11-25T09:00:00Z


def make_backup(storage, name, cluster=None, phase=_record.PHASE_COMPLETED, ttl=None, created=NOW - 7200):
    bdir = _layout.backup_dir(storage, name, cluster)
    _layout.claim_backup_dir(bdir, name)
    record = _record.new_record(name, cluster=cluster, ttl=ttl, now=created)
    record["status"]["phase"] = phase
    _record.write_record(bdir, record)
    with open(_layout.archive_path(bdir, name), "wb") as handle:
        handle.write(b"x" * 100)
    os.makedirs(os.path.join(_layout.volumes_dir(bdir, name), "ns", "pod"))
    with open(_layout.volume_archive(bdir, name, "ns", "pod", "data"), "wb") as handle:
        handle.write(b"y" * 10)
    return bdir


def test_delete_removes_the_whole_directory(tmp_path):
    bdir = make_backup(str(tmp_path), "b1", "c1")
    result = _delete.delete_backup(bdir, "b1")
    assert not os.path.exists(bdir) and os.path.isdir(os.path.dirname(bdir))
    assert result["files"] == ["b1-volumes/ns/pod/data.tar.gz", "b1.tar.gz", "velero-backup.json"]
    assert result["bytes"] > 110 and result["phase"] == "Completed" and result["snapshots"] == []


def test_check_mode_deletes_nothing(tmp_path):
    bdir = make_backup(str(tmp_path), "b1")
    assert "b1.tar.gz" in _delete.delete_backup(bdir, "b1", check_mode=True)["files"]
    assert os.path.exists(_layout.archive_path(bdir, "b1"))


@pytest.mark.parametrize("phase", [_record.PHASE_NEW, _record.PHASE_IN_PROGRESS])
def test_a_backup_whose_run_may_be_going_is_refused(tmp_path, phase):
    bdir = make_backup(str(tmp_path), "b1", phase=phase)
    with pytest.raises(KubehooksError, match="backup b1 is %s: its run may still be going.*kubehooks.backup.thaw" % phase):
        _delete.delete_backup(bdir, "b1")
    assert os.path.exists(_layout.record_path(bdir))


def test_a_directory_without_the_named_record_is_refused(tmp_path):
    bdir = make_backup(str(tmp_path), "b1")
    with pytest.raises(KubehooksError, match="holds backup b1, not b2: nothing deleted"):
        _delete.delete_backup(bdir, "b2")
    empty = tmp_path / "not-a-backup"
    empty.mkdir()
    (empty / "precious").write_text("keep")
    with pytest.raises(KubehooksError, match="no readable backup record"):
        _delete.delete_backup(str(empty), "not-a-backup")
    assert (empty / "precious").exists()


def test_expired_backups(tmp_path):
    storage = str(tmp_path)
    make_backup(storage, "old", "c1", ttl="1h")                                    # expired an hour ago
    make_backup(storage, "young", "c1", ttl="720h")                                # 30 days to go
    make_backup(storage, "forever", "c1")                                          # no TTL: never expires
    make_backup(storage, "running", "c1", ttl="1h", phase=_record.PHASE_IN_PROGRESS)
    make_backup(storage, "other", "c2", ttl="1h")
    rows, running = _delete.expired(storage, "c1", now=NOW)
    assert [row["name"] for row in rows] == ["old"] and [row["name"] for row in running] == ["running"]
    rows, _running = _delete.expired(storage, now=NOW)
    assert sorted(row["name"] for row in rows) == ["old", "other"]
    assert _delete.expired(storage, "c1", now=NOW - 7200)[0] == []


def test_resolve_an_absent_backup_is_none(tmp_path):
    make_backup(str(tmp_path), "b1", "c1")
    assert _delete.resolve(str(tmp_path), "nope") is None
    assert _delete.resolve(str(tmp_path), "b1").endswith("/c1/backups/b1")
    with pytest.raises(KubehooksError, match="invalid backup name"):
        _delete.resolve(str(tmp_path), "../etc")


# ---------------------------------------------------------------------------------------------
# The CSI snapshots a backup owns.  The API is a FAKE ``call`` only because no cluster was available
# when this was written; the real deletion (VolumeSnapshot, content and the driver's snapshot file gone)
# is tests/integration/test_csi_snapshot.py::test_backup_delete_deletes_the_csi_snapshots.

SNAP = "/apis/snapshot.storage.k8s.io/v1/namespaces/db/volumesnapshots/velero-data-abcde"
CONTENT = "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/snapcontent-1"


def with_snapshot(bdir, name):
    item = dict(volume="data", pvc="data", driver="csi.example.com", pv="pv-1", volume_snapshot_class="c")
    entry = _csi_snapshot.entry("db", "app-0", item, "succeeded", volume_snapshot="velero-data-abcde",
                                volume_snapshot_content="snapcontent-1")
    _volumes.write_volumes_index(_layout.volumes_index(bdir, name), [entry])
    return bdir


class FakeApi(object):
    def __init__(self, fail=None):
        self.calls = []
        self.objects = {SNAP: {"metadata": {"labels": {_csi_snapshot.LABEL_BACKUP_NAME: "b1"}}}, CONTENT: {}}
        self.fail = dict(fail or {})

    def __call__(self, method, path, body=None, query=None, content_type=None):
        self.calls.append((method, path))
        if (method, path) in self.fail:
            raise self.fail[(method, path)]
        if path not in self.objects:
            raise ApiRequestError(404, "not found")
        return self.objects.pop(path) if method == "DELETE" else self.objects[path]


def no_client():
    raise AssertionError("a client was created")


def test_the_snapshots_are_deleted_before_the_directory(tmp_path):
    bdir = with_snapshot(make_backup(str(tmp_path), "b1"), "b1")
    api = FakeApi()
    result = _delete.delete_backup(bdir, "b1", caller=lambda: api)
    assert api.calls == [("PATCH", CONTENT), ("GET", SNAP), ("DELETE", SNAP), ("DELETE", CONTENT)]
    assert result["snapshots"] == [dict(namespace="db", name="velero-data-abcde", content="snapcontent-1",
                                        outcome="deleted", error=None)]
    assert not os.path.exists(bdir)


def test_snapshots_already_gone_do_not_keep_the_backup(tmp_path):
    bdir = with_snapshot(make_backup(str(tmp_path), "b1"), "b1")
    api = FakeApi()
    api.objects.clear()
    assert _delete.delete_backup(bdir, "b1", caller=lambda: api)["snapshots"][0]["outcome"] == "already gone"
    assert not os.path.exists(bdir)


@pytest.mark.parametrize("failure", [ApiRequestError(403, "forbidden"), ApiRequestError(0, "connection refused")])
def test_a_snapshot_not_deleted_fails_and_keeps_the_directory(tmp_path, failure):
    bdir = with_snapshot(make_backup(str(tmp_path), "b1"), "b1")
    api = FakeApi(fail={("DELETE", SNAP): failure})
    with pytest.raises(KubehooksError, match="backup b1 was not deleted: 1 of its 1 CSI snapshots could not be "
                                             "deleted.*kept.*VolumeSnapshot db/velero-data-abcde") as caught:
        _delete.delete_backup(bdir, "b1", caller=lambda: api)
    assert caught.value.result["snapshots"][0]["outcome"] == "failed"
    assert os.path.exists(_layout.archive_path(bdir, "b1")) and os.path.exists(_layout.volumes_index(bdir, "b1"))
    api.fail.clear()  # deleting again retries
    assert _delete.delete_backup(bdir, "b1", caller=lambda: api)["snapshots"][0]["outcome"] == "deleted"
    assert not os.path.exists(bdir)


def test_check_mode_reports_the_snapshots_and_calls_nothing(tmp_path):
    bdir = with_snapshot(make_backup(str(tmp_path), "b1"), "b1")
    result = _delete.delete_backup(bdir, "b1", check_mode=True, caller=no_client)
    assert [(s["name"], s["outcome"]) for s in result["snapshots"]] == [("velero-data-abcde", "would delete")]
    assert os.path.exists(bdir)


def test_a_backup_without_snapshots_never_creates_a_client(tmp_path):
    bdir = make_backup(str(tmp_path), "b1")
    assert _delete.delete_backup(bdir, "b1", caller=no_client)["snapshots"] == []
    assert not os.path.exists(bdir)


class StubModule(object):
    """The module's ``km``: its client factory must not be used for backups without snapshots."""

    def __init__(self, **params):
        self.params = dict(dict(name=None, expired=False, storage_dir=None, cluster=None, backup_dir=None), **params)
        self.check_mode = False

    def client_factory(self):
        raise AssertionError("a client was created")

    def fail(self, msg):
        raise AssertionError(msg)


def test_the_module_stays_offline_for_backups_without_snapshots(tmp_path):
    storage = str(tmp_path)
    make_backup(storage, "b1", "c1")
    result = backup_delete.execute(StubModule(name="b1", storage_dir=storage, cluster="c1"))
    assert result["changed"] and result["deleted"][0]["snapshots"] == [] and result["errors"] == []
    make_backup(storage, "old", "c1", ttl="1s")
    result = backup_delete.execute(StubModule(expired=True, storage_dir=storage, cluster="c1"))
    assert [row["name"] for row in result["deleted"]] == ["old"] and "failed" not in result


def test_expired_backups_one_failing_does_not_keep_the_others(tmp_path, monkeypatch):
    storage = str(tmp_path)
    with_snapshot(make_backup(storage, "old1", "c1", ttl="1s"), "old1")
    make_backup(storage, "old2", "c1", ttl="1s")
    api = FakeApi(fail={("PATCH", CONTENT): ApiRequestError(403, "forbidden")})
    monkeypatch.setattr(backup_delete, "_caller", lambda _km: (lambda: api))
    result = backup_delete.execute(StubModule(expired=True, storage_dir=storage, cluster="c1"))
    assert [row["name"] for row in result["deleted"]] == ["old2"]
    assert result["failed"] and "backup old1 was not deleted" in result["msg"] and len(result["errors"]) == 1
    assert os.path.isdir(_layout.backup_dir(storage, "old1", "c1"))
