"""_create: the sequence of one backup run (discover -> start -> section -> export -> finish) and what a failed
step does. The steps are the real record code on a temporary storage dir; discovery, the critical section and
the export are stand-ins recording their calls (their own modules are tested on the real cluster, and so is this
sequence, through the role: tests/integration/test_role_create.py)."""

import json
import os

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _args, _create, _critical
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

POD = {"namespace": "ns", "name": "web", "hooks": {"pre": [{"name": "a", "command": ["true"]}], "post": []},
       "errors": []}


class Factory(object):
    host = "https://10.0.0.1:6443"


def params(tmp_path, **extra):
    base = dict(name="b1", storage_dir=str(tmp_path), cluster=None, backup_dir=None, included_namespaces=["ns"],
                excluded_namespaces=[], label_selectors=[], hooks=[], max_hook_timeout=None, included_resources=[],
                excluded_resources=[], include_cluster_resources=None, ttl=None, page_size=500)
    base.update((key, spec.get("default")) for key, spec in _args.SECTION_ARG_SPEC.items())
    base.update(extra)
    return base


class Steps(object):
    def __init__(self, pods=(POD,), fail=None, capture=None):
        self.pods, self.fail, self.capture, self.calls = list(pods), fail or {}, capture, []

    def _maybe_fail(self, step):
        if step in self.fail:
            raise self.fail[step]

    def discover(self, factory, p):
        self.calls.append(("discover", p))
        self._maybe_fail("discover")
        return dict(pods=self.pods, errors=[])

    def section(self, p, factory, check_mode):
        self.calls.append(("section", p))
        self._maybe_fail("section")
        if self.capture is not None:
            return self.capture
        return dict(hooks=[], volumes=[], not_thawed=[], failed_pods=["ns/web"], freeze_window_seconds=0.05,
                    plan=[{"group": 1}] if check_mode else None)

    def export(self, factory, p, check_mode):
        self.calls.append(("export", p))
        self._maybe_fail("export")
        return dict(changed=True, backup_dir=p["backup_dir"], path=os.path.join(p["backup_dir"], "b1.tar.gz"),
                    items_backed_up=3, total_items=3, errors=[], warning_messages=["w1"], duration=0.1)

    def run(self, p, check_mode=False, warnings=None):
        return _create.run(p, Factory(), self.discover, self.section, self.export, check_mode=check_mode,
                           warn=(warnings.append if warnings is not None else None))


def record(result):
    with open(os.path.join(result["backup_dir"], "velero-backup.json")) as handle:
        return json.load(handle)


def test_the_steps_run_in_order_and_hand_on_what_the_next_needs(tmp_path):
    steps, warnings = Steps(), []
    result = steps.run(params(tmp_path), warnings=warnings)
    assert [c[0] for c in steps.calls] == ["discover", "section", "export"]
    assert steps.calls[0][1]["check_exec"] is True
    section = steps.calls[1][1]
    started = result["steps"]["started"]
    assert section["stage"] == "all" and section["plan"] == [POD] and section["backup_dir"] == started["backup_dir"]
    assert section["run_id"] == started["run_id"] and section["log_path"] == started["hook_log"]
    assert steps.calls[2][1]["exclude_pods"] == ["ns/web"]  # a pod whose pre hook failed with Fail
    # the cluster's directory comes from the API host, as the role derived it
    assert result["backup_dir"] == os.path.join(str(tmp_path), "10.0.0.1_6443", "backups", "b1")
    assert result["phase"] == "Completed" and result["steps"]["failure"] is None
    # the plan is not returned again (it is in the hook-plan file); the count is
    assert "pods" not in result["steps"]["discovered"] and result["steps"]["discovered"]["pod_count"] == 1
    assert "plan" not in result["steps"]["started"] and "hooks" not in result["steps"]["capture"]
    assert record(result)["status"]["phase"] == "Completed"
    assert warnings == ["w1"]
    assert [d["step"] for d in result["step_seconds"]] == [_create.DISCOVER, _create.START, _create.SECTION,
                                                           _create.EXPORT, _create.FINISH]
    assert all(d["seconds"] >= 0 for d in result["step_seconds"])


def test_no_pod_in_scope_runs_no_section_but_exports(tmp_path):
    steps = Steps(pods=[])
    result = steps.run(params(tmp_path))
    assert [c[0] for c in steps.calls] == ["discover", "export"]
    assert result["steps"]["capture"] is None and result["phase"] == "Completed"


def test_bad_rules_fail_discovery_and_the_failure_is_recorded(tmp_path):
    steps = Steps(fail={"discover": KubehooksError("hooks[0]: missing name")})
    result = steps.run(params(tmp_path))
    assert [c[0] for c in steps.calls] == ["discover"]
    assert result["steps"]["failure"] == "%s: hooks[0]: missing name" % _create.DISCOVER
    assert result["steps"]["discovered"]["failed"] is True
    assert result["phase"] == "Failed"
    assert "missing name" in " ".join(result["error_messages"])
    assert record(result)["status"]["phase"] == "Failed"


def test_a_section_that_could_not_run_skips_the_export_and_the_record_says_why(tmp_path):
    steps = Steps(fail={"section": KubehooksError("the Lease is held by other/run")})
    result = steps.run(params(tmp_path))
    assert [c[0] for c in steps.calls] == ["discover", "section"]
    assert result["steps"]["failure"].startswith(_create.SECTION + ": the Lease is held")
    assert result["steps"]["export"] is None and result["phase"] == "Failed"


def test_a_section_result_without_hooks_is_the_sections_failure_not_the_exports(tmp_path):
    steps = Steps(capture=dict(failed=True, msg="cannot start the watchdog"))
    result = steps.run(params(tmp_path))
    assert [c[0] for c in steps.calls] == ["discover", "section"]
    assert result["steps"]["failure"] == _create.SECTION + ": cannot start the watchdog"
    assert result["steps"]["capture"]["msg"] == "cannot start the watchdog" and result["steps"]["export"] is None
    assert result["phase"] == "Failed"


def test_an_unexpected_error_is_recorded_not_lost(tmp_path):
    steps = Steps(fail={"export": ZeroDivisionError("boom")})
    result = steps.run(params(tmp_path))
    assert result["steps"]["failure"] == "%s: Unexpected error (please report it): ZeroDivisionError: boom" % _create.EXPORT
    assert result["phase"] == "Failed" and record(result)["status"]["phase"] == "Failed"


def test_pods_that_may_still_be_frozen_keep_the_record_in_progress(tmp_path):
    steps = Steps(capture=dict(hooks=[], volumes=[], not_thawed=["ns/web"], failed_pods=[]))
    result = steps.run(params(tmp_path))
    assert result["not_thawed"] == ["ns/web"] and result["phase"] == "InProgress"


def test_a_name_already_taken_leaves_the_existing_backup_untouched(tmp_path):
    first = Steps().run(params(tmp_path))
    before = record(first)
    steps = Steps()
    result = steps.run(params(tmp_path))
    assert [c[0] for c in steps.calls] == ["discover"]
    assert result["steps"]["started"]["failed"] is True and "already exists" in result["steps"]["failure"]
    assert result["phase"] == "Failed" and result["steps"]["finished"] is None
    assert record(first) == before


def test_check_mode_writes_nothing_and_returns_the_plan(tmp_path):
    steps = Steps()
    result = steps.run(params(tmp_path), check_mode=True)
    assert [c[0] for c in steps.calls] == ["discover", "section", "export"]
    assert result["steps"]["capture"]["plan"] == [{"group": 1}]
    assert not os.listdir(str(tmp_path))


def test_the_section_defaults_are_the_critical_sections():
    assert _args.SECTION_ARG_SPEC["max_freeze_seconds"]["default"] == _critical.DEFAULT_MAX_FREEZE_SECONDS
    assert _args.SECTION_ARG_SPEC["thaw_retry_seconds"]["default"] == _critical.DEFAULT_THAW_RETRY_SECONDS


@pytest.mark.parametrize("key", sorted(_args.SECTION_ARG_SPEC))
def test_every_section_option_reaches_the_section(tmp_path, key):
    steps = Steps()
    steps.run(params(tmp_path))
    assert key in steps.calls[1][1]
