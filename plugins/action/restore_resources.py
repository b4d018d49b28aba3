# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of kubehooks.backup.restore_resources: the restore runs in the controller's task worker when
the module would run on this machine with this Python anyway (``plugin_utils._in_process``), else as a module."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubehooks.backup.plugins.module_utils import _restore
from ansible_collections.kubehooks.backup.plugins.plugin_utils._in_process import InProcessAction


class ActionModule(InProcessAction):

    ARGUMENT_SPEC = _restore.ARGUMENT_SPEC
    MODULE_OPTIONS = _restore.MODULE_OPTIONS

    def work(self, params, factory, check_mode):
        return _restore.run(params, factory, check_mode)
