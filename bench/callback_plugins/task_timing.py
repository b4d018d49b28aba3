# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper: print each task's wall time at the end of the play (bench/ only, not shipped)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: task_timing
type: aggregate
short_description: Wall time per task, printed at the end (kubehooks.backup benchmarks)
description: Used by bench/bench_role.py to show where the role's time goes.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.started = time.monotonic()
        self.current = None
        self.times = []

    def _close(self):
        if self.current is not None:
            name, start = self.current
            self.times.append((name, time.monotonic() - start))
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.current = (task.get_name(), time.monotonic())

    def v2_playbook_on_stats(self, stats):
        self._close()
        for name, seconds in self.times:
            self._display.display("TIMING %6.2f s  %s" % (seconds, name))
        self._display.display("TIMING %6.2f s  (playbook, from the callback's start)" % (time.monotonic() - self.started))
