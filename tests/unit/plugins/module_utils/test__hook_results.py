"""Unit tests for _hook_results: Velero's hook counters, JSON log entries and their file."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import stat

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._hook_results import (
    append_jsonl,
    totals,
    velero_log_entry,
)


# --- totals ---------------------------------------------------------------------

def test_totals_counts():
    results = [{"status": s} for s in ("succeeded", "failed", "not_run", "skipped", "failed", "succeeded")]
    assert totals(results) == {"hooks_attempted": 5, "hooks_failed": 2}
    assert totals([]) == {"hooks_attempted": 0, "hooks_failed": 0}


# --- log entries --------------------------------------------------------------------------

NOW = datetime.datetime(2026, 11, 25, 8, 30, 1, 250000, tzinfo=datetime.timezone.utc)


def a_result(**overrides):
    result = dict(namespace="nginx-example", pod="nginx-1", container="fsfreeze",
                  command=["/sbin/fsfreeze", "--freeze", "/var/log/nginx"], source="annotation",
                  name="<from-annotation>", phase="pre", index=0, on_error="Fail", timeout=30,
                  status="succeeded", exit_code=0, stdout="", stderr="", truncated=False, duration=0.048,
                  error=None, reason=None)
    result.update(overrides)
    return result


def test_velero_log_entry_fields():
    entry = velero_log_entry(a_result(), backup="nginx-hook-test", now=NOW)
    assert entry == {
        "time": "2026-11-25T08:30:01Z", "level": "info", "msg": "exec hook succeeded",
        "backup": "velero/nginx-hook-test", "namespace": "nginx-example", "pod": "nginx-1",
        "status": "succeeded", "hookCommand": ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"],
        "hookContainer": "fsfreeze", "hookName": "<from-annotation>", "hookPhase": "pre",
        "hookSource": "annotation", "hookType": "exec", "hookOnError": "Fail", "hookTimeout": "30s",
        "exitCode": 0, "duration": 0.048}
    assert '"hookCommand": ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"]' in json.dumps(entry)


def test_velero_log_entry_levels_and_details():
    failed = velero_log_entry(a_result(status="failed", exit_code=7, error="command exited with code 7",
                                       stderr="oops", timeout=90, truncated=True), now=NOW)
    assert failed["level"] == "error" and failed["msg"] == "exec hook failed: command exited with code 7"
    assert failed["hookTimeout"] == "1m30s" and failed["exitCode"] == 7
    assert failed["stderr"] == "oops" and failed["truncated"] is True and "backup" not in failed
    not_run = velero_log_entry(a_result(status="not_run", exit_code=None, reason="not run: x"), now=NOW)
    assert not_run["level"] == "warning" and not_run["reason"] == "not run: x"
    skipped = velero_log_entry(a_result(status="skipped", reason="pod is in phase Succeeded"), now=NOW)
    assert skipped["level"] == "info"
    bad = velero_log_entry(a_result(status="failed", command=None, container=None, timeout=None,
                                    error="invalid hook: x"), now=NOW)
    assert bad["hookTimeout"] is None and bad["hookCommand"] is None
    assert velero_log_entry(a_result(), backup="ops/b1", now=NOW)["backup"] == "ops/b1"


def test_velero_log_entry_time():
    assert velero_log_entry(a_result(), now=0)["time"] == "1970-01-01T00:00:00Z"
    naive = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert velero_log_entry(a_result(), now=naive)["time"] == "2026-01-02T03:04:05Z"
    tz = datetime.timezone(datetime.timedelta(hours=2))
    assert velero_log_entry(a_result(), now=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz))["time"] \
        == "2026-01-02T01:04:05Z"
    assert velero_log_entry(a_result())["time"].endswith("Z")


def test_append_jsonl_owner_only(tmp_path):
    path = tmp_path / "new" / "dir" / "hooks.jsonl"
    old = os.umask(0)
    try:
        append_jsonl(str(path), [{"a": 1}])
        append_jsonl(str(path), [{"b": [2]}, {"c": "x"}])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}, {"b": [2]}, {"c": "x"}]


def test_append_jsonl_tightens_an_existing_file(tmp_path):
    path = tmp_path / "hooks.jsonl"
    path.write_text('{"old": true}\n')
    path.chmod(0o644)
    append_jsonl(str(path), [{"new": True}])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == '{"old": true}\n{"new": true}\n'


def test_append_jsonl_error_is_clear(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(KubehooksError, match="could not append to the hook log"):
        append_jsonl(str(blocker / "x.jsonl"), [{}])
