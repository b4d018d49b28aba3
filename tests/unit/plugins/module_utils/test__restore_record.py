# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore record: Velero's Restore object, its phases, results per namespace, resource list with
outcomes, logs, listing; the files as Velero names them, owner-only."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import json
import os
import stat

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout
from ansible_collections.kubehooks.backup.plugins.module_utils import _record
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_record as rr
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

NOW = 1764489600.0  # 2025-11-30T08:00:00Z


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read_gz_json(path):
    with gzip.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


@pytest.fixture
def rdir(tmp_path):
    return _layout.claim_backup_dir(_layout.restore_dir(str(tmp_path), "prod", "r1"), "r1", what="restore")


def spec():
    return {"backupName": "b1", "includedNamespaces": ["*"], "existingResourcePolicy": "none"}


def test_new_record_is_a_velero_restore_object():
    record = rr.new_record("r1", spec(), cluster="prod", backup_dir="/s/prod/backups/b1", now=NOW)
    assert record == {
        "apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": "r1", "namespace": "velero", "creationTimestamp": "2025-11-30T08:00:00Z",
                     "annotations": {_record.ANNOTATION_CLUSTER: "prod", rr.ANNOTATION_BACKUP_DIR: "/s/prod/backups/b1"}},
        "spec": spec(), "status": {"phase": "New"}}


def test_phases_from_new_to_completed_partially_failed_or_failed():
    record = rr.mark_started(rr.new_record("r1", spec(), now=NOW), total_items=5, now=NOW)
    assert record["status"] == {"phase": "InProgress", "startTimestamp": "2025-11-30T08:00:00Z",
                                "progress": {"totalItems": 5, "itemsRestored": 0}}
    rr.set_progress(record, 3, 5)
    assert record["status"]["progress"] == {"totalItems": 5, "itemsRestored": 3}
    done = rr.finish_record(dict(record, status=dict(record["status"])), errors=[], warnings=[{"message": "w"}],
                            now=NOW + 60)
    assert done["status"]["phase"] == "Completed" and done["status"]["completionTimestamp"] == "2025-11-30T08:01:00Z"
    assert (done["status"]["errors"], done["status"]["warnings"]) == (0, 1)
    partial = rr.finish_record(rr.new_record("r1", spec()), errors=[{"message": "e"}])
    assert partial["status"]["phase"] == "PartiallyFailed" and partial["status"]["errors"] == 1
    failed = rr.finish_record(rr.new_record("r1", spec()), failure_reason="archive truncated")
    assert failed["status"]["phase"] == "Failed" and failed["status"]["failureReason"] == "archive truncated"
    assert failed["status"]["errors"] == 1


def test_record_file_round_trip_is_owner_only(rdir):
    record = rr.new_record("r1", spec(), now=NOW)
    path = rr.write_record(rdir, record)
    assert path == os.path.join(rdir, "velero-restore.json")
    assert mode(path) == 0o600 and mode(rdir) == 0o700
    assert rr.load_record(rdir) == record


def test_load_record_names_the_problem(rdir):
    with pytest.raises(KubehooksError, match="no readable restore record at .*velero-restore.json"):
        rr.load_record(rdir)
    with open(os.path.join(rdir, "velero-restore.json"), "w") as handle:
        handle.write("{")
    with pytest.raises(KubehooksError, match="the restore record .* is not valid JSON"):
        rr.load_record(rdir)
    _record.write_record(rdir, {"kind": "Backup"})
    os.rename(os.path.join(rdir, "velero-backup.json"), os.path.join(rdir, "velero-restore.json"))
    with pytest.raises(KubehooksError, match="is not a Velero Restore object"):
        rr.load_record(rdir)


def test_results_per_namespace_and_cluster(rdir):
    errors = [{"namespace": "shop", "resource": "secrets", "message": "error restoring secrets/shop/creds"},
              {"namespace": None, "resource": "persistentvolumes", "message": "error reading pv-1"},
              {"message": "archive truncated"}]
    warnings = [{"namespace": "shop", "resource": "configmaps", "message": "could not restore, ConfigMap 'cfg'"},
                {"namespace": "db", "resource": "configmaps", "message": "w2"}]
    path = rr.write_results(rdir, "r1", errors, warnings)
    assert path == os.path.join(rdir, "restore-r1-results.gz") and mode(path) == 0o600
    assert read_gz_json(path) == {
        "errors": {"namespaces": {"shop": ["error restoring secrets/shop/creds"]}, "cluster": ["error reading pv-1"],
                   "velero": ["archive truncated"]},
        "warnings": {"namespaces": {"shop": ["could not restore, ConfigMap 'cfg'"], "db": ["w2"]}}}
    assert rr.read_results(rdir, "r1") == read_gz_json(path)


def test_resource_list_has_each_items_outcome(rdir):
    outcomes = rr.Outcomes()
    for name, ns, key, outcome in [("cfg", "shop", "v1/ConfigMap", "created"), ("old", "shop", "v1/ConfigMap", "skipped"),
                                   ("pv-1", "", "v1/PersistentVolume", "updated"), ("x", "shop", "v1/Secret", "failed")]:
        outcomes.add({"target_namespace": ns, "name": name, "resource_key": key, "outcome": outcome})
    assert outcomes.counts == {"created": 1, "updated": 1, "skipped": 1, "failed": 1} and outcomes.restored == 4
    path = outcomes.write(rdir, "r1")
    assert path == os.path.join(rdir, "restore-r1-resource-list.json.gz") and mode(path) == 0o600
    assert rr.read_resource_list(rdir, "r1") == {
        "v1/ConfigMap": ["shop/cfg(created)", "shop/old(skipped)"], "v1/PersistentVolume": ["pv-1(updated)"],
        "v1/Secret": ["shop/x(failed)"]}


def test_logs_are_velero_lines_naming_the_restore(rdir):
    rr.append_log(rdir, "r1", [{"msg": "one"}, {"msg": "two", "level": "error"}])
    rr.append_log(rdir, "r1", [{"msg": "three"}])
    path = os.path.join(rdir, "restore-r1-logs.gz")
    entries = _record.read_log(path)
    assert [(e["msg"], e["level"], e["restore"]) for e in entries] == [
        ("one", "info", "velero/r1"), ("two", "error", "velero/r1"), ("three", "info", "velero/r1")]
    assert all("time" in e for e in entries) and mode(path) == 0o600


def test_default_name_is_velero_backup_and_utc_stamp():
    assert rr.default_name("b1", NOW) == "b1-20251130080000"


def test_list_records_and_summaries(tmp_path):
    storage = str(tmp_path)
    _layout.ensure_dir(_layout.backups_root(storage, "prod"))   # a location root: it has backups
    good = _layout.claim_backup_dir(_layout.restore_dir(storage, "prod", "a"), "a", what="restore")
    record = rr.mark_started(rr.new_record("a", dict(spec(), labelSelectors=["app=web"]), cluster="prod", now=NOW),
                             2, now=NOW)
    rr.set_progress(record, 2, 2)
    rr.write_record(good, rr.finish_record(record, now=NOW))
    _layout.claim_backup_dir(_layout.restore_dir(storage, "prod", "b"), "b", what="restore")  # no record
    rows = rr.list_records(storage)
    assert rows == rr.list_records(storage, "prod")
    assert [r["name"] for r in rows] == ["a", "b"]
    assert rows[0] == {"name": "a", "backup": "b1", "status": "Completed", "started": "2025-11-30T08:00:00Z",
                       "completed": "2025-11-30T08:00:00Z", "errors": 0, "warnings": 0,
                       "created": "2025-11-30T08:00:00Z", "selector": "app=web", "total_items": 2,
                       "items_restored": 2, "cluster": "prod", "path": good}
    assert rows[1]["status"] == "Unknown" and "no readable restore record" in rows[1]["error"]
    assert rr.list_records(str(tmp_path / "nowhere")) == []


def test_find_restore_in_the_only_cluster_that_has_it(tmp_path):
    storage = str(tmp_path)
    for cluster in ("prod", "staging"):
        _layout.ensure_dir(_layout.backups_root(storage, cluster))
    prod = _layout.claim_backup_dir(_layout.restore_dir(storage, "prod", "r1"), "r1", what="restore")
    assert rr.find_restore(storage, "r1") == prod == rr.find_restore(storage, "r1", "prod")
    with pytest.raises(KubehooksError, match="no restore r1 in .*staging/restores"):
        rr.find_restore(storage, "r1", "staging")
    _layout.claim_backup_dir(_layout.restore_dir(storage, "staging", "r1"), "r1", what="restore")
    with pytest.raises(KubehooksError, match=r"restore r1 exists for several clusters \(prod, staging\): give cluster"):
        rr.find_restore(storage, "r1")
    with pytest.raises(KubehooksError, match="no restore r2 in"):
        rr.find_restore(storage, "r2")
    with pytest.raises(KubehooksError, match="invalid restore name"):
        rr.find_restore(storage, "../r1")
