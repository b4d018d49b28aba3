# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _listing: velero backup get (rows, order, table), lookup by name, one backup with its logs."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _record
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils import _listing as lst


def make_backup(storage, name, cluster=None, phase="Completed", entries=()):
    bdir = _layout.claim_backup_dir(_layout.backup_dir(str(storage), name, cluster), name)
    record = _record.new_record(name, cluster=cluster, now=1795590000)
    _record.mark_started(record, ["ns/a"], now=1795590000)
    if phase != "InProgress":
        _record.finish_record(record, phase, {"hooks_attempted": 2, "hooks_failed": 0},
                              {"path": "x", "items_backed_up": 3, "total_items": 3}, freeze_window=0.5, now=1795590005)
    _record.write_record(bdir, record)
    if entries:
        _record.append_log(_layout.log_path(bdir, name), entries, backup=name)
    with open(os.path.join(bdir, name + "-hook-plan.json"), "w") as handle:
        json.dump([{"namespace": "ns", "name": "a", "pre": [], "post": []}], handle)
    return bdir


def test_velero_time_and_table():
    assert lst.velero_time("2026-11-25T09:10:02Z") == "2026-11-25 09:10:02 +0000 UTC"
    assert lst.velero_time(None) == "<nil>"
    lines = lst.table([{"name": "nginx-hook-test", "status": "Completed", "errors": 0, "warnings": 0,
                        "created": "2026-11-25T09:10:02Z", "expires": "n/a", "storage_location": "default",
                        "selector": "<none>"}])
    assert lines[0].split() == ["NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "STORAGE", "LOCATION",
                                "SELECTOR"]
    assert lines[1].split() == ["nginx-hook-test", "Completed", "0", "0", "2026-11-25", "09:10:02", "+0000", "UTC",
                                "n/a", "default", "<none>"]
    assert lines[0].index("STATUS") == lines[1].index("Completed")  # columns line up


def test_find_backup_across_clusters(tmp_path):
    make_backup(tmp_path, "one", cluster="c1")
    make_backup(tmp_path, "both", cluster="c1")
    make_backup(tmp_path, "both", cluster="c2")
    assert lst.find_backup(str(tmp_path), "one") == str(tmp_path / "c1" / "backups" / "one")
    with pytest.raises(KubehooksError, match="several clusters"):
        lst.find_backup(str(tmp_path), "both")
    assert lst.find_backup(str(tmp_path), "both", "c2") == str(tmp_path / "c2" / "backups" / "both")
    with pytest.raises(KubehooksError, match="no backup missing"):
        lst.find_backup(str(tmp_path), "missing")


def test_show_backup_with_hook_entries_only(tmp_path):
    entries = [{"msg": "exec hook succeeded", "hookCommand": ["/bin/true"], "hookPhase": "pre"},
               {"msg": "Backup completed", "level": "info"}]
    bdir = make_backup(tmp_path, "b1", entries=entries)
    out = lst.show_backup(bdir, hooks_only=True)
    assert out["backup"]["status"] == "Completed" and out["backup"]["freeze_window_seconds"] == 0.5
    assert out["backup"]["frozen_pods"] == ["ns/a"]
    assert [e["hookCommand"] for e in out["logs"]] == [["/bin/true"]]
    assert json.loads(out["log_lines"][0])["backup"] == "velero/b1"
    assert out["hook_plan"][0]["name"] == "a" and "archive" not in out["files"]
    assert len(lst.show_backup(bdir, logs=True)["logs"]) == 2
    assert "logs" not in lst.show_backup(bdir)
    with pytest.raises(KubehooksError, match="not other"):
        lst.show_backup(bdir, expected_name="other")


def test_logs_of_a_run_in_progress_include_the_pending_hook_lines(tmp_path):
    bdir = make_backup(tmp_path, "b2", phase="InProgress")
    with open(os.path.join(bdir, "b2-hooks.jsonl"), "w") as handle:
        handle.write(json.dumps({"hookCommand": ["/sbin/fsfreeze", "--freeze", "/data"], "hookPhase": "pre"}) + "\n")
        handle.write('{"hookCommand": ["cut')  # a line still being written: ignored
    out = lst.show_backup(bdir, hooks_only=True)
    assert out["backup"]["status"] == "InProgress"
    assert [e["hookCommand"][1] for e in out["logs"]] == ["--freeze"]
    record = _record.load_record(bdir)
    _record.set_annotation(record, _record.ANNOTATION_LOG_COPIED, "1")  # what backup_record does once it copied it
    _record.write_record(bdir, record)
    assert lst.show_backup(bdir, hooks_only=True)["logs"] == []


T0 = 1767225600  # 2026-01-01T00:00:00Z


def claim(storage, name, cluster=None):
    return _layout.claim_backup_dir(_layout.backup_dir(storage, name, cluster), name)


# --------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------

def store(tmp_path, name, cluster=None, phase="Completed", now=T0, **finish):
    bdir = claim(str(tmp_path), name, cluster)
    record = _record.new_record(name, cluster=cluster, label_selectors=finish.pop("selectors", None),
                                ttl=finish.pop("ttl", None), now=now)
    record = _record.mark_started(record, [], now=now)
    _record.finish_record(record, phase, now=now + 10, **finish)
    _record.write_record(bdir, record)
    return bdir


def test_list_records_like_velero_backup_get(tmp_path):
    store(tmp_path, "nginx-hook-test", errors=[], warnings=["w"], selectors=["app=nginx"], ttl="720h")
    store(tmp_path, "b", phase="PartiallyFailed", errors=["e1", "e2"],
          hook_totals={"hooks_attempted": 2, "hooks_failed": 1})
    rows = lst.list_records(str(tmp_path), now=T0 + 3600)
    assert [r["name"] for r in rows] == ["b", "nginx-hook-test"]
    nginx = rows[1]
    assert nginx["status"] == "Completed" and nginx["errors"] == 0 and nginx["warnings"] == 1
    assert nginx["created"] == "2026-01-01T00:00:00Z"
    assert nginx["expires"] == "29d" and nginx["storage_location"] == "default"
    assert nginx["selector"] == "app=nginx" and nginx["cluster"] is None
    assert nginx["path"] == str(tmp_path / "backups" / "nginx-hook-test")
    assert rows[0]["status"] == "PartiallyFailed" and rows[0]["errors"] == 2 and rows[0]["selector"] == "<none>"
    assert rows[0]["hooks_failed"] == 1 and rows[0]["expires"] == "n/a"


def test_list_records_across_and_per_cluster(tmp_path):
    store(tmp_path, "b1", cluster="prod")
    store(tmp_path, "b1", cluster="staging")
    store(tmp_path, "b2")
    rows = lst.list_records(str(tmp_path))
    assert [(r["cluster"], r["name"]) for r in rows] == [(None, "b2"), ("prod", "b1"), ("staging", "b1")]
    assert [r["storage_location"] for r in rows] == ["default", "prod", "staging"]
    assert [(r["cluster"], r["name"]) for r in lst.list_records(str(tmp_path), cluster="prod")] == [("prod", "b1")]


def test_list_records_sorts_scheduled_backups_newest_first(tmp_path):
    for name in ("daily-20260101000000", "daily-20260103000000", "daily-20260102000000", "adhoc"):
        store(tmp_path, name)
    assert [r["name"] for r in lst.list_records(str(tmp_path))] == [
        "adhoc", "daily-20260103000000", "daily-20260102000000", "daily-20260101000000"]


def test_list_records_reports_unreadable_records(tmp_path):
    store(tmp_path, "good")
    os.makedirs(str(tmp_path / "backups" / "broken"))
    rows = lst.list_records(str(tmp_path))
    broken = [r for r in rows if r["name"] == "broken"][0]
    assert broken["status"] == "Unknown" and "no readable backup record" in broken["error"]


def test_list_records_empty_or_missing_storage(tmp_path):
    assert lst.list_records(str(tmp_path / "nothing")) == []
    assert lst.list_records(str(tmp_path)) == []


@pytest.mark.parametrize("seconds, text", [(-5, "<invalid>"), (-0.5, "0s"), (0, "0s"), (59, "59s"), (60, "1m"),
                                           (3599, "59m"), (3600, "1h"), (86399, "23h"), (86400, "1d"),
                                           (86400 * 364, "364d"), (86400 * 365, "1y")])
def test_short_human_duration(seconds, text):
    assert lst.short_human_duration(seconds) == text


def test_expires_text():
    assert lst.expires_text(None) == "n/a"
    assert lst.expires_text("2026-01-02T00:00:00Z", now=T0) == "1d"
    assert lst.expires_text("2026-01-01T00:00:00Z", now=T0 + 7200) == "2h ago"
