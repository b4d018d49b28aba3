"""Deleting a backup (velero backup delete) and finding the expired ones (Velero's garbage collection)."""
import os

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _delete, _layout, _record
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

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
