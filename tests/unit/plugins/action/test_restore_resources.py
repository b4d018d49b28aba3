"""The action plugin of restore_resources names the restore before it runs (so that the module and the line
saying how to follow it use the same name) and builds that line.  Through ansible-playbook against the real
cluster: tests/integration/test_role_restore.py (the hint and the restore found by that name)."""
import json
import re
import shlex
import time

from ansible.parsing.splitter import parse_kv
from ansible.playbook.task import Task

from ansible_collections.kubehooks.backup.plugins.action import restore_resources
from ansible_collections.kubehooks.backup.plugins.action.restore_resources import follow_hint, name_restore
from ansible_collections.kubehooks.backup.plugins.plugin_utils._in_process import InProcessAction


def test_a_given_name_is_kept():
    args = {"backup": "nightly", "name": "mine"}
    assert name_restore(args) == "mine" and args["name"] == "mine"


def test_without_a_name_the_restore_gets_velero_default_name_in_its_arguments():
    for unset in ({}, {"name": None}, {"name": ""}):
        args = dict(unset, backup="nightly")
        before = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        name = name_restore(args)
        after = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        assert re.match(r"^nightly-\d{14}$", name) and before <= name[len("nightly-"):] <= after
        assert args["name"] == name          # what the module (either path) receives


def test_unusable_arguments_are_left_to_the_validation():
    for args in ({}, {"backup": ""}, {"backup": ["a"]}, {"backup": "b", "name": True}, {"backup": "b", "name": ["x"]}):
        before = dict(args)
        assert name_restore(args) is None
        assert args == before


def test_the_hint_names_the_restore_and_where_its_record_is():
    line = follow_hint("nightly", "nightly-20261130090000", {"storage_dir": "/srv/backups", "cluster": "c1"})
    assert line.startswith("Restore nightly as nightly-20261130090000; follow it")
    assert line.endswith("ansible localhost -m kubehooks.backup.restore_info "
                         "-a 'name=nightly-20261130090000 storage_dir=/srv/backups cluster=c1'")


def restore_info_arguments(line):
    """What ``ansible -m restore_info -a ...`` receives, as the shell and then Ansible's ad-hoc CLI read it."""
    words = shlex.split(line.split(" -m kubehooks.backup.restore_info ", 1)[1])
    assert len(words) == 2 and words[0] == "-a"                 # one -a argument for the shell
    argument = words[1]
    return json.loads(argument) if argument.startswith("{") else parse_kv(argument)


def test_the_hint_leaves_out_unset_options():
    line = follow_hint("b", "b-1", {"storage_dir": None, "cluster": ""})
    assert line.endswith("-a name=b-1") and restore_info_arguments(line) == {"name": "b-1"}


def test_values_the_shell_or_the_k_v_parser_would_change_are_given_as_json():
    for storage in ("/srv/my backups", "/srv/it's", "/srv/a\\nb", '/srv/"x"', "/srv/a=b c"):
        line = follow_hint("b", "b-1", {"storage_dir": storage, "cluster": "c1"})
        assert restore_info_arguments(line) == {"name": "b-1", "storage_dir": storage, "cluster": "c1"}, line
    line = follow_hint("b", "b-1", {"storage_dir": "/srv/backups", "cluster": "c1"})
    assert restore_info_arguments(line) == {"name": "b-1", "storage_dir": "/srv/backups", "cluster": "c1"}
    assert "{" not in line                                       # plain values stay k=v words


def test_with_backup_dir_the_hint_points_where_the_record_goes():
    line = follow_hint("b", "b-1", {"backup_dir": "/data/kh/prod/backups/b", "storage_dir": "/elsewhere"})
    assert restore_info_arguments(line) == {"name": "b-1", "storage_dir": "/data/kh", "cluster": "prod"}


def test_a_name_of_digits_is_the_name_the_module_will_use():
    assert name_restore({"backup": "b", "name": 20261201}) == "20261201"


def test_each_run_of_the_action_names_its_own_restore_and_leaves_the_arguments_as_they_were(monkeypatch):
    """until/retries run the same action again with the same task arguments (TaskExecutor._execute)."""
    seen, clock = [], iter([1700000000, 1700000005])
    monkeypatch.setattr(InProcessAction, "run", lambda self, tmp=None, task_vars=None: seen.append(
        dict(self._task.args)) or {"changed": True})
    monkeypatch.setattr(restore_resources.rr.time, "time", lambda: next(clock))
    shown = []
    monkeypatch.setattr(restore_resources.display, "display", lambda msg, **kwargs: shown.append((msg, kwargs)))
    task = Task()
    task.args = {"backup": "nightly"}
    action = restore_resources.ActionModule(task, None, None, None, None, None)
    first, second = action.run(task_vars={}), action.run(task_vars={})
    assert [args["name"] for args in seen] == ["nightly-20231114221320", "nightly-20231114221325"]
    assert first["name"] == "nightly-20231114221320" and second["name"] == "nightly-20231114221325"
    assert task.args == {"backup": "nightly"}
    assert [kwargs for _msg, kwargs in shown] == [{"stderr": True}] * 2      # stdout may be a callback's JSON
    assert "name=nightly-20231114221325" in shown[1][0]


def test_in_check_mode_nothing_is_printed_and_a_given_name_is_kept(monkeypatch):
    seen, shown = [], []
    monkeypatch.setattr(InProcessAction, "run", lambda self, tmp=None, task_vars=None: seen.append(
        dict(self._task.args)) or {"changed": False})
    monkeypatch.setattr(restore_resources.display, "display", lambda msg, **kwargs: shown.append(msg))
    task = Task()
    task.args = {"backup": "nightly", "name": "mine"}
    task.check_mode = True
    result = restore_resources.ActionModule(task, None, None, None, None, None).run(task_vars={})
    assert shown == [] and seen == [{"backup": "nightly", "name": "mine"}] and result["name"] == "mine"
    assert task.args == {"backup": "nightly", "name": "mine"}
