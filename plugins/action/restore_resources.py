# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of kubehooks.backup.restore_resources: the restore runs in the controller's task worker when
the module would run on this machine with this Python anyway (``plugin_utils._in_process``), else as a module.

Before either, it names the restore (Velero's ``<backup>-<UTC time>`` when ``name`` is unset, so the module
and the message below use the same name) and, unless in check mode, prints how to follow its progress."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import shlex

from ansible.utils.display import Display

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _restore
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_record as rr
from ansible_collections.kubehooks.backup.plugins.plugin_utils._in_process import InProcessAction

display = Display()


class ActionModule(InProcessAction):

    ARGUMENT_SPEC = _restore.ARGUMENT_SPEC
    MODULE_OPTIONS = _restore.MODULE_OPTIONS

    def run(self, tmp=None, task_vars=None):
        # this run's copy: an until/retries attempt runs the action again with the task's own arguments, and gets
        # a name of its own
        args, self._task.args = self._task.args, dict(self._task.args)
        try:
            name = name_restore(self._task.args)
            if name is not None and not self._task.check_mode:
                # on stderr: stdout may be a callback's JSON
                display.display(follow_hint(self._task.args.get("backup"), name, self._task.args), stderr=True)
            result = super(ActionModule, self).run(tmp, task_vars)
        finally:
            self._task.args = args
        if name is not None:
            result.setdefault("name", name)
        return result

    def work(self, params, factory, check_mode):
        return _restore.run(params, factory, check_mode)


def name_restore(args):
    """The restore's name: ``args['name']``, else Velero's default, which is set in ``args``; None when the
    arguments are not usable (their validation then says why)."""
    name, backup = args.get("name"), args.get("backup")
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        name = str(name)   # the module's type conversion: a name of digits comes as a number from native types
    if isinstance(name, str) and name:
        return name
    if name not in (None, "") or not isinstance(backup, str) or not backup:
        return None
    args["name"] = rr.default_name(backup)
    return args["name"]


def follow_hint(backup, name, args):
    """The line that says how to follow the restore while it runs, with the ``restore_info`` arguments that find
    its record: k=v words, or JSON when a value has characters that the shell or Ansible's k=v parser would read."""
    where = {}
    if isinstance(args.get("backup_dir"), str) and args["backup_dir"]:
        # the record goes beside the backup's location: <storage>/<cluster>/restores/<name>
        root = _layout.location_of_backup_dir(args["backup_dir"])
        where = {"storage_dir": os.path.dirname(root), "cluster": os.path.basename(root)}
    else:
        for option in ("storage_dir", "cluster"):
            if isinstance(args.get(option), str) and args[option]:
                where[option] = args[option]
    options = dict(name=name, **where)
    if all(_PLAIN.match(value) for value in options.values()):
        argument = " ".join("%s=%s" % pair for pair in options.items())
    else:
        argument = json.dumps(options)
    return ("Restore %s as %s; follow it (status.progress of its velero-restore.json, rewritten every second): "
            "ansible localhost -m kubehooks.backup.restore_info -a %s" % (backup, name, shlex.quote(argument)))


_PLAIN = re.compile(r"^[A-Za-z0-9_@%+:,./~-]+$")
