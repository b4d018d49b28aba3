"""The action plugin of restore_resources names the restore before it runs (so that the module and the line
saying how to follow it use the same name) and builds that line.  Through ansible-playbook against the real
cluster: tests/integration/test_role_restore.py (the hint and the restore found by that name)."""
import re
import shlex
import time

from ansible_collections.kubehooks.backup.plugins.action.restore_resources import follow_hint, name_restore


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
    for args in ({}, {"backup": ""}, {"backup": ["a"]}, {"backup": "b", "name": 5}, {"backup": "b", "name": ["x"]}):
        before = dict(args)
        assert name_restore(args) is None
        assert args == before


def test_the_hint_names_the_restore_and_where_its_record_is():
    line = follow_hint("nightly", "nightly-20261130090000", {"storage_dir": "/srv/backups", "cluster": "c1"})
    assert line.startswith("Restore nightly as nightly-20261130090000; follow it")
    assert line.endswith("ansible localhost -m kubehooks.backup.restore_info "
                         "-a 'name=nightly-20261130090000 storage_dir=/srv/backups cluster=c1'")


def test_the_hint_leaves_out_unset_options_and_quotes_what_the_shell_would_split():
    assert follow_hint("b", "b-1", {"storage_dir": None, "cluster": ""}).endswith("-a name=b-1")
    line = follow_hint("b", "b-1", {"storage_dir": "/srv/my backups", "cluster": "c1"})
    argument = shlex.split(line.split(" -a ", 1)[1])
    assert len(argument) == 1                                   # one -a argument for the shell
    assert shlex.split(argument[0]) == ["name=b-1", "storage_dir=/srv/my backups", "cluster=c1"]  # Ansible's k=v
