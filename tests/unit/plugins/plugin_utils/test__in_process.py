"""When the action plugin runs a module's work in the controller's task worker, and what it keeps of a module
run. The path through ansible-playbook, against the real cluster: tests/integration/test_in_process.py."""
import logging
import os
import signal
import sys
import tempfile
import time
import warnings

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar

from ansible_collections.kubehooks.backup.plugins.action.restore_resources import ActionModule
from ansible_collections.kubehooks.backup.plugins.module_utils import _args, _restore
from ansible_collections.kubehooks.backup.plugins.plugin_utils import _in_process

OURS = {"ansible_python_interpreter": sys.executable}


def action(environment=None, delegate_to=None, become=False, async_val=0, transport=None):
    task = Task()
    task.action = "kubehooks.backup.restore_resources"
    task.args = {"backup": "b"}
    task.environment = environment
    task.delegate_to = delegate_to
    task.async_val = async_val
    context = PlayContext()
    context.become = become
    connection = connection_loader.get("local", context, None)
    if transport:
        connection.transport = transport
    loader = DataLoader()
    return ActionModule(task, connection, context, loader, Templar(loader=loader), None)


def needed(act, task_vars):
    environment = {}
    return act._module_needed(task_vars, environment), environment


def test_a_local_task_with_the_controllers_python_runs_here_with_its_environment():
    assert needed(action(), OURS) == (None, {})
    assert needed(action(environment=[{"K8S_AUTH_KUBECONFIG": "/k"}, {"A": "1"}]), OURS) == (
        None, {"K8S_AUTH_KUBECONFIG": "/k", "A": "1"})
    discovered = {"ansible_facts": {"discovered_interpreter_python": sys.executable}}
    assert needed(action(), discovered)[0] is None


@pytest.mark.parametrize("case, expected", [
    ("switched off", "kubehooks_backup_in_process is false"),
    ("ssh", "the connection is not local"),
    ("become", "become is set"),
    ("async", "async is set"),
    ("another python", "the module's interpreter is /usr/bin/python3, not the controller's "),
    ("discovery not run", "the module's interpreter is discovered, not the controller's "),
    ("delegated to a host with another python", "the module's interpreter is /opt/py, not the controller's "),
])
def test_otherwise_the_module_runs_and_says_why(case, expected):
    act, task_vars = action(), dict(OURS)
    if case == "switched off":
        task_vars["kubehooks_backup_in_process"] = "no"
    elif case == "ssh":
        act = action(transport="ssh")
    elif case == "become":
        act = action(become=True)
    elif case == "async":
        act = action(async_val=30)
    elif case == "another python":
        task_vars["ansible_python_interpreter"] = "/usr/bin/python3"
    elif case == "discovery not run":
        task_vars = {"ansible_python_interpreter": "auto_silent"}
    else:
        act = action(delegate_to="box")
        task_vars["ansible_delegated_vars"] = {"box": {"ansible_python_interpreter": "/opt/py"}}
    reason, environment = needed(act, task_vars)
    assert reason.startswith(expected) and environment == {}


def test_the_environment_is_applied_while_the_work_runs_then_put_back(monkeypatch):
    monkeypatch.setenv("KEEP", "1")
    monkeypatch.delenv("K8S_AUTH_HOST", raising=False)
    with _in_process._environment({"K8S_AUTH_HOST": "https://h", "KEEP": 2}):
        assert os.environ["K8S_AUTH_HOST"] == "https://h" and os.environ["KEEP"] == "2"
    assert "K8S_AUTH_HOST" not in os.environ and os.environ["KEEP"] == "1"
    with pytest.raises(RuntimeError):
        with _in_process._environment({"K8S_AUTH_HOST": "https://h"}):
            raise RuntimeError()
    assert "K8S_AUTH_HOST" not in os.environ


def test_validation_messages_are_the_modules():
    def message(args):
        validation = ArgumentSpecValidator(_args.argument_spec(_restore.ARGUMENT_SPEC),
                                           **_restore.MODULE_OPTIONS).validate(args)
        return _in_process._validation_message(validation, "kubehooks.backup.restore_resources")
    assert message({"backup": "b", "bogus": 1}).startswith(
        "Unsupported parameters for (kubehooks.backup.restore_resources) module: bogus. Supported parameters include: ")
    assert message({"backup": "b", "backup_dir": "/d", "cluster": "c"}) == (
        "parameters are mutually exclusive: backup_dir|cluster")
    assert message({}) == "missing required arguments: backup"
    assert _in_process._alias_warning({"option": "validate_certs", "alias": "verify_ssl"}) == (
        "Both option validate_certs and its alias verify_ssl are set.")


def test_light_is_whether_the_kubernetes_library_is_needed(tmp_path, monkeypatch):
    for name in ("KUBECONFIG", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert _in_process._light({"host": "http://127.0.0.1:1", "api_key": "t"})
    assert not _in_process._light({"host": "http://127.0.0.1:1", "api_key": "t", "proxy": "http://proxy:3128"})
    assert _in_process._light({"kubeconfig": str(tmp_path / "missing")}) is False   # the library reports it


def test_the_tasks_tmpdir_is_the_one_tempfile_uses(tmp_path):
    before = tempfile.gettempdir()
    with _in_process._environment({"TMPDIR": str(tmp_path)}):
        assert tempfile.gettempdir() == str(tmp_path)
    assert tempfile.gettempdir() == before


def test_warnings_and_library_logs_stay_quiet(capsys):
    with _in_process._quiet():
        warnings.warn("InsecureRequestWarning: unverified HTTPS request")
        logging.getLogger("urllib3.connectionpool").warning("Retrying after connection broken")
    assert capsys.readouterr().err == ""


def test_a_signal_unwinds_the_work_then_reaches_the_workers_own_handler():
    """The work's finally blocks run (the extracted archive, the record), a second signal does not break into
    them, and the first one is delivered again to the handler that was there before."""
    seen, cleaned = [], []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with pytest.raises(KeyboardInterrupt):   # the worker's handler let the process live
            with _in_process._signals_unwind():
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
                finally:
                    os.kill(os.getpid(), signal.SIGTERM)   # ansible-playbook's SIGTERM, during the cleanup
                    cleaned.append(True)
        assert cleaned == [True] and seen == []
    finally:
        signal.signal(signal.SIGTERM, previous)
