# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE plugin_utils: run a module's work in the controller's task worker. Not a public API.

Why: to run a module, Ansible builds its AnsiballZ zip (parsing every module_util it imports, once per
playbook run), starts a Python, and compiles those module_utils again from the zip, which keeps no
bytecode. For ``restore_resources`` that is 0.4-0.6 s before the first request. The action plugin
already runs in a process Ansible forked for the task. When the module would run on this machine with
this Python anyway, the work runs there. The module_utils are then imported once, in the controller, where
Ansible's collection loader compiles them from source as it does for every plugin (~0.07 s here).

When: all of the following hold, otherwise the module runs as usual (``-vvv`` says which and why):
- the task's connection is ``local`` (``delegate_to: localhost`` included);
- no ``become``, no ``async``;
- the interpreter Ansible would run the module with is ``sys.executable``;
- the arguments are plain data (not vaulted values);
- the kubernetes library is installed, as the module requires;
- the connection settings are ones ``_kubeconfig`` reads (no exec plugin, proxy, ...);
- the variable ``kubehooks_backup_in_process`` is not false.

What stays as in a module run:
- the arguments are validated with the module's own spec (types, defaults, aliases, choices, mutually
  exclusive options, no_log values);
- the task's ``environment`` is applied while the work runs, then put back;
- check mode is kept;
- the result and failure messages come from the same code (``_module.outcome``);
- secrets are masked as ``AnsibleModule`` masks them, ``invocation`` included;
- the private files of a kubeconfig given inline are removed when the work ends. A task worker leaves
  with ``os._exit``, so atexit handlers do not run.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import warnings

from ansible import constants as C
from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display

from ansible_collections.kubehooks.backup.plugins.module_utils import _args, _client, _kubeconfig, _module, _rest

display = Display()

SWITCH = "kubehooks_backup_in_process"
DISCOVERY_MODES = ("", "auto", "auto_legacy", "auto_silent", "auto_legacy_silent")


class InProcessAction(NormalAction):
    """The action plugin of a module whose work ``work(params, factory, check_mode)`` can run here."""

    ARGUMENT_SPEC = None   # the module's own options, without the connection's
    MODULE_OPTIONS = {}    # mutually_exclusive, required_together, ... as given to AnsibleModule

    def work(self, params, factory, check_mode):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        task_vars = {} if task_vars is None else task_vars
        environment = {}
        reason = self._module_needed(task_vars, environment)
        args = None
        if reason is None:
            try:
                # Plain data, as a module reads it: tagged or unsafe strings become str; a vaulted value is refused.
                args = json.loads(json.dumps(dict(self._task.args)))
            except (TypeError, ValueError):
                reason = "an argument is not plain data (a vaulted value?)"
        if reason is None:
            result = ActionBase.run(self, tmp, task_vars)
            with _environment(environment):
                try:
                    answer = self._run_here(args)
                finally:
                    _kubeconfig.remove_private_files()
            if answer is not None:
                result.update(answer)
                return result
            reason = "the kubernetes library reads this connection's configuration"
        display.vvv("%s runs as a module: %s" % (self._task.action, reason), host=self._host_name())
        return super(InProcessAction, self).run(tmp, task_vars)

    def _host_name(self):
        return getattr(self._play_context, "remote_addr", None)

    def _module_needed(self, task_vars, environment):
        """Why the module must run as a module, or None."""
        if not boolean(self._templar.template(task_vars.get(SWITCH, True)), strict=False):
            return "%s is false" % SWITCH
        if getattr(self._connection, "transport", None) != "local":
            return "the connection is not local"
        if self._play_context.become:
            return "become is set"
        if self._task.async_val:
            return "async is set"
        if _client.KUBERNETES_IMPORT_ERROR is not None or _rest.URLLIB3_IMPORT_ERROR is not None:
            return "a required library is missing"
        interpreter = self._interpreter(task_vars)
        if interpreter is None or os.path.abspath(interpreter) != os.path.abspath(sys.executable):
            return "the module's interpreter is %s, not the controller's %s" % (interpreter or "discovered",
                                                                                sys.executable)
        self._compute_environment_string(environment)
        return None

    def _interpreter(self, task_vars):
        """The Python Ansible would run the module with (``_get_shebang``'s rules), or None for discovery."""
        use_vars = task_vars
        if self._task.delegate_to:
            use_vars = (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to, task_vars)
        value = C.config.get_config_value("INTERPRETER_PYTHON", variables=use_vars)
        # templated before it is stripped: 2.19 templates only the (trusted) string it was given
        value = self._templar.template(value) if isinstance(value, str) else value
        value = value.strip() if isinstance(value, str) else value
        if not value or value in DISCOVERY_MODES:
            value = (use_vars.get("ansible_facts") or {}).get("discovered_interpreter_python")
        return value if isinstance(value, str) and value else None

    def _run_here(self, args):
        """The module's result, or None when the module must run after all (the library's configuration)."""
        validation = ArgumentSpecValidator(_args.argument_spec(self.ARGUMENT_SPEC),
                                           **self.MODULE_OPTIONS).validate(args)
        no_log = set(validation._no_log_values)  # pylint: disable=protected-access  # as AnsibleModule reads it
        if isinstance(args.get("kubeconfig"), dict):
            no_log.update(_args.kubeconfig_secrets(args["kubeconfig"]))
        params = validation.validated_parameters
        if not validation.error_messages and not _light(params):
            return None
        display.vvv("%s runs in the controller's process" % self._task.action, host=self._host_name())
        if validation.error_messages:
            failed, result = True, dict(msg=_validation_message(validation, self._task.action))
        elif params.get("query") and _module.jmespath is None:
            failed, result = True, dict(msg=missing_required_lib("jmespath"), exception=_module.JMESPATH_IMPORT_ERROR)
        else:
            # Ansible's task timeout and the signals below are BaseExceptions: they pass through, after the
            # work's own cleanup (the record finished as Failed, the extracted archive removed)
            with _quiet(), _signals_unwind():
                failed, result = _module.outcome(
                    lambda: self.work(params, _client.ClientFactory(params), bool(self._task.check_mode)), params)
        if failed:
            result["failed"] = True
        result.setdefault("changed", False)
        result["invocation"] = dict(module_args=params)
        warnings = [_alias_warning(item) for item in getattr(validation, "_warnings", [])]
        if warnings:
            result["warnings"] = warnings
        return remove_values(result, no_log)


def _light(params):
    """True when ``_kubeconfig`` reads the configuration (no kubernetes library needed)."""
    try:
        return _kubeconfig.load(_client.resolve_auth(params)) is not None
    except Exception:  # pylint: disable=broad-except  # the run reports it: ClientFactory meets the same error
        return True


def _validation_message(validation, name):
    # AnsibleModule's message: the first error, named after the module when an option is unknown
    msg = validation.errors.msg
    if isinstance(validation.errors[0], UnsupportedError):
        msg = "Unsupported parameters for (%s) module: %s" % (name, msg)
    return msg


def _alias_warning(item):
    # AnsibleModule's wording for an option given together with its alias
    if isinstance(item, dict) and "option" in item and "alias" in item:
        return "Both option %s and its alias %s are set." % (item["option"], item["alias"])
    return str(item)


@contextlib.contextmanager
def _environment(environment):
    """The task's ``environment`` in ``os.environ`` while the work runs, as a module process would have it
    (``TMPDIR`` included: ``tempfile`` forgets the directory it chose, and finds it again)."""
    saved, saved_tempdir = dict(os.environ), tempfile.tempdir
    os.environ.update(dict((str(key), str(value)) for key, value in environment.items()))
    tempfile.tempdir = None
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        tempfile.tempdir = saved_tempdir


@contextlib.contextmanager
def _quiet():
    """Python warnings and library log records (urllib3's InsecureRequestWarning, its retries) stay out of the
    controller's terminal, as a module's stderr does."""
    handler = logging.NullHandler()
    loggers = [logging.getLogger(name) for name in ("urllib3", "websocket", "kubernetes")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


class _Signalled(BaseException):
    def __init__(self, signum):
        super(_Signalled, self).__init__("signal %d" % signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_unwind(signals=(signal.SIGINT, signal.SIGTERM)):
    """SIGINT and SIGTERM unwind the work (its ``finally`` blocks remove the extracted archive and finish the
    record), then reach the worker's own handlers. Ansible's task worker would otherwise leave at once with
    ``os._exit``, and leave the extracted archive, with the backup's Secrets, behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    first = []

    def unwind(signum, frame):
        # Ctrl-C reaches the worker, then ansible-playbook sends it SIGTERM: the first one unwinds, the next ones
        # must not break into that cleanup.
        if not first:
            first.append(signum)
            raise _Signalled(signum)
    previous = dict((signum, signal.signal(signum, unwind)) for signum in signals)
    received = None
    try:
        yield
    except _Signalled as exc:
        received = exc.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received is not None:
        _kubeconfig.remove_private_files()
        os.kill(os.getpid(), received)   # the worker's own handling now
        raise KeyboardInterrupt()        # when that handler let the process live
