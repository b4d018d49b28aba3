"""velero backup describe [--details] and Velero's text log lines, from a backup directory's files."""
import gzip
import json

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _describe, _layout, _record
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

NOW = 1795597200  # 2026-11-25T09:00:00Z


@pytest.fixture
def backup(tmp_path):
    bdir = str(tmp_path / "backups" / "b1")
    _layout.claim_backup_dir(bdir, "b1")
    record = _record.new_record("b1", included_namespaces=["db"], label_selectors=["app=pg"], ttl="720h",
                                hooks=[{"name": "freeze", "includedNamespaces": ["db"],
                                        "pre": [{"exec": {"command": ["/sbin/fsfreeze", "--freeze", "/data"]}}]}],
                                now=NOW)
    _record.mark_started(record, [{"namespace": "db", "name": "pg-0"}], now=NOW)
    _record.finish_record(record, _record.PHASE_PARTIALLY_FAILED, {"hooks_attempted": 2, "hooks_failed": 1},
                          {"path": "x", "total_items": 3, "items_backed_up": 3},
                          errors=[{"namespace": "db", "message": "hook failed in db/pg-0"}],
                          warnings=["a Velero-level warning"], now=NOW + 5)
    _record.write_record(bdir, record)
    _record.write_results(bdir, "b1", errors=[{"namespace": "db", "message": "hook failed in db/pg-0"}],
                          warnings=["a Velero-level warning"])
    resources = {"v1/Pod": ["db/pg-0"], "apps/v1/StatefulSet": ["db/pg"], "v1/Namespace": ["db"]}
    _record.write_resource_list(bdir, "b1", resources)
    return bdir


def test_description_as_data(backup):
    d = _describe.describe(backup, now=NOW)
    assert (d["name"], d["phase"], d["errors"], d["warnings"]) == ("b1", "PartiallyFailed", 1, 1)
    assert d["included_namespaces"] == ["db"] and d["cluster_scoped"] == "auto"
    assert d["label_selector"] == "app=pg" and d["ttl"] == "720h0m0s"
    assert d["expiration"] == "2026-12-25T09:00:00Z" and d["expires"] == "30d"
    assert (d["hooks_attempted"], d["hooks_failed"], d["total_items"]) == (2, 1, 3)
    assert d["frozen_pods"] == ["db/pg-0"] and "resource_list" not in d


def test_details_group_resources_by_kind_and_messages_by_namespace(backup):
    d = _describe.describe(backup, details=True, now=NOW)
    assert d["resource_list"] == {"apps/v1/StatefulSet": ["db/pg"], "v1/Namespace": ["db"], "v1/Pod": ["db/pg-0"]}
    assert d["error_messages"]["namespaces"] == {"db": ["hook failed in db/pg-0"]}
    assert d["warning_messages"]["velero"] == ["a Velero-level warning"]
    assert d["volumes"] == []
    text = "\n".join(_describe.describe_lines(d))
    for expected in ("Name:         b1", "Phase:  PartiallyFailed", "Namespaces:\n  Included:  db\n  Excluded:  <none>",
                     "Label selector:  app=pg", "TTL:  720h0m0s", "freeze:\n    Namespaces:  db",
                     "Pre exec hook:  /sbin/fsfreeze --freeze /data", "Expiration:  2026-12-25 09:00:00 +0000 UTC",
                     "Resource List:\n  apps/v1/StatefulSet:\n    - db/pg\n", "    db:\n      hook failed in db/pg-0",
                     "Backup Volumes:\n  <none included>", "HooksAttempted:  2\nHooksFailed:     1"):
        assert expected in text, (expected, text)


def test_captured_volumes_are_read_from_the_index(backup):
    entry = {"namespace": "db", "pod": "pg-0", "volume": "data", "pvc": "data-pg-0", "path": "/var/lib/pg",
             "bytes": 3 * 1024 * 1024, "files": 12, "sha256": "ab" * 32, "method": "tar", "status": "Completed",
             "error": None}
    with gzip.open(_layout.volumes_index(backup, "b1"), "wb") as handle:
        handle.write(json.dumps([entry]).encode())
    d = _describe.describe(backup, details=True)
    assert d["volumes"] == [entry]
    assert "  db/pg-0: volume data (pvc data-pg-0) tar, 12 files, 3.0 MiB, Completed" in _describe.describe_lines(d)


def test_a_damaged_volume_index_is_a_clear_error(backup):
    with open(_layout.volumes_index(backup, "b1"), "wb") as handle:
        handle.write(b"not gzip")
    with pytest.raises(KubehooksError, match="cannot read the volumes index"):
        _describe.describe(backup, details=True)


def test_describe_without_details_prints_counts():
    d = {"name": "n", "namespace": "velero", "labels": {}, "annotations": {}, "phase": "Completed", "errors": 0,
         "warnings": 2, "failure_reason": None, "included_namespaces": ["*"], "excluded_namespaces": [],
         "included_resources": ["*"], "excluded_resources": [], "cluster_scoped": "auto", "label_selector": "<none>",
         "storage_location": "default", "ttl": None, "hooks": [], "format_version": "1.1.0", "started": None,
         "completed": None, "expiration": None, "total_items": 0, "items_backed_up": 0, "hooks_attempted": 0,
         "hooks_failed": 0, "details": False}
    lines = _describe.describe_lines(d)
    assert "Warnings:  2" in lines and "Errors:  <none>" in lines and "Hooks:  <none>" in lines
    assert "Expiration:  <nil>" in lines


def test_logfmt_lines_like_velero_and_grep_hookcommand_finds_them():
    entry = {"time": "2026-11-25T09:00:01Z", "level": "info", "msg": "exec hook succeeded",
             "backup": "velero/b1", "hookCommand": ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"],
             "hookContainer": "fsfreeze", "exitCode": 0, "stderr": 'say "hi"\n', "error": None, "truncated": False}
    line = _describe.logfmt_line(entry)
    assert line.startswith('time=2026-11-25T09:00:01Z level=info msg="exec hook succeeded" backup=velero/b1 ')
    assert 'hookCommand="[/sbin/fsfreeze --freeze /var/log/nginx]"' in line
    assert 'stderr="say \\"hi\\"\\n"' in line and "error=<nil>" in line and "truncated=false" in line
    assert "exitCode=0" in line and "\n" not in line
