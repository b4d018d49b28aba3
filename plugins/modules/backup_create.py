#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_create
short_description: A whole backup in one module run - discover, record, freeze/capture/thaw, export, record
version_added: 0.1.0
description:
  - Runs in one process what the role C(kubehooks.backup.create) does with five tasks - discover the pods in scope
    and their hooks (M(kubehooks.backup.pod_hooks_info), with the C(pods/exec) permission checked), record the
    backup as started with its plan (M(kubehooks.backup.backup_record) O(kubehooks.backup.backup_record#module:state=started)),
    the critical section per group - pre hooks, volume capture, post hooks in a C(finally), under a detached watchdog
    (M(kubehooks.backup.backup_capture)), the export of the resources after the thaw
    (M(kubehooks.backup.resource_export)), and the completed record (O(kubehooks.backup.backup_record#module:state=finished)).
    Each step is the same code as its module; one module start-up instead of five.
  - The role uses it unless C(create_frozen_tasks) is set (your tasks between the freeze and the thaw need the steps as
    separate tasks).
  - A step that fails stops the later steps (the thaw is not a later step - it is the critical section's C(finally)
    and its watchdog's). The record is completed all the same, C(Failed) with the reason (C(<step> - <message>)), or
    C(InProgress) naming the pods that may still be frozen. When the run could not start its record (the name is
    taken) the existing backup is left untouched.
  - The module does not fail on the backup's phase; RV(phase), RV(not_thawed) and RV(error_messages) say how it ended,
    and the role fails the play when pods may still be frozen or the backup C(Failed). It fails only when its
    options are invalid.
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.auth
  - kubehooks.backup.backup_location
  - kubehooks.backup.resources
  - kubehooks.backup.scope
  - kubehooks.backup.critical_section
attributes:
  check_mode:
    support: full
    description: In check mode the module discovers the pods and returns the plan of the critical section and the
      resource types to export (in RV(steps)); it freezes nothing, executes no hook, starts no watchdog and writes
      nothing.
  diff_mode:
    support: none
    description: A backup writes new files; there is no diff.
options:
  name:
    description:
      - The backup name, used once per storage directory (and cluster). A Kubernetes object name (lowercase letters,
        digits, C(-) and C(.)), as Velero's backup names.
    type: str
    required: true
  ttl:
    description:
      - How long the backup should be kept (Go duration such as V(720h)); recorded in C(spec.ttl) and
        C(status.expiration). Nothing is ever deleted by this module.
    type: str
  page_size:
    description:
      - Items per page of each LIST call of the export.
    type: int
    default: 500
notes:
  - "RBAC: what M(kubehooks.backup.pod_hooks_info), M(kubehooks.backup.backup_capture) and
    M(kubehooks.backup.resource_export) need together - C(files/rbac/backup.yml)."
  - Ansible shows a module's result only when it ends. Follow a long run with C(watch cat) on
    C(<backup dir>/<name>-progress.json) (volume bytes, then export items) and C(<backup dir>/<name>-hooks.jsonl).
seealso:
  - module: kubehooks.backup.backup_capture
  - module: kubehooks.backup.backup_record
  - module: kubehooks.backup.backup_info
"""

EXAMPLES = r"""
- name: Back up nginx-example with Velero's fsfreeze hooks, copying the volumes while frozen
  kubehooks.backup.backup_create:
    name: nginx-hook-test
    included_namespaces: [nginx-example]
    default_volumes_to_fs_backup: true
    storage_dir: /var/backups/kubehooks
  register: backup

- name: Fail when the backup did not complete
  ansible.builtin.fail:
    msg: "{{ backup.summary }}"
  when: backup.phase != 'Completed'
"""

RETURN = r"""
phase:
  description: The backup's phase (C(Completed), C(PartiallyFailed), C(Failed), C(InProgress) when pods may still be
    frozen, C(New) in check mode).
  returned: always
  type: str
  sample: Completed
backup_dir:
  description: The backup's directory.
  returned: when the record was written
  type: str
summary:
  description: A few lines for a human - phase, hooks, volumes, items, freeze windows, errors.
  returned: when the record was completed
  type: list
  elements: str
error_messages:
  description: Why the backup is not C(Completed) (empty when it is).
  returned: always
  type: list
  elements: str
not_thawed:
  description: Pods (C(namespace/name)) that may still be frozen. Not empty - run the C(kubehooks.backup.thaw) playbook.
  returned: always
  type: list
  elements: str
hooks_attempted:
  description: Hooks run, as in the record's C(status.hookStatus).
  returned: when the record was completed
  type: int
hooks_failed:
  description: Hooks that failed.
  returned: when the record was completed
  type: int
items_backed_up:
  description: Items in the archive.
  returned: when the record was completed
  type: int
total_items:
  description: Items in scope.
  returned: when the record was completed
  type: int
freeze_window_seconds:
  description: The longest freeze window of the run, in seconds.
  returned: when the record was completed
  type: float
step_seconds:
  description: How long each step that ran took, in order - C(step) (its name, as in a failure reason) and
    C(seconds).
  returned: always
  type: list
  elements: dict
  sample:
    - {step: Discover the pods in scope and their hooks, seconds: 0.21}
    - {step: "Freeze, capture, thaw", seconds: 0.43}
steps:
  description:
    - What each step returned, as the separate modules return it - C(discovered)
      (M(kubehooks.backup.pod_hooks_info)), C(started) and C(finished) (M(kubehooks.backup.backup_record)),
      C(capture) (M(kubehooks.backup.backup_capture); null when no pod is in scope), C(export)
      (M(kubehooks.backup.resource_export)) - and C(failure), the failed step and its message, or null.
    - A step that did not run is null; a failed step's entry has C(failed) and C(msg).
    - Without the plan (every pod and its hooks) and the hook results, which would be most of the result at hundreds
      of pods - C(discovered) has C(pod_count) instead of C(pods), C(started) no C(plan), C(capture) no C(hooks). The
      plan is saved in C(<backup dir>/<name>-hook-plan.json), each hook's result (exit code, output) in the record's
      logs and C(<name>-hooks.jsonl) (M(kubehooks.backup.backup_info) shows both); in check mode C(capture.plan) is
      the plan of the critical section.
  returned: always
  type: dict
"""

from ansible_collections.kubehooks.backup.plugins.module_utils import _capture, _create, _volumes
from ansible_collections.kubehooks.backup.plugins.module_utils._args import (
    BACKUP_LOCATION_ARG_SPEC,
    BACKUP_SCOPE_ARG_SPEC,
    SCOPE_ARG_SPEC,
    SECTION_ARG_SPEC,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._export import export_task
from ansible_collections.kubehooks.backup.plugins.module_utils._hook_runs import discover_plan
from ansible_collections.kubehooks.backup.plugins.module_utils._module import KubehooksModule
from ansible_collections.kubehooks.backup.plugins.module_utils._section import run as run_section


def execute(km):
    def section(params, factory, check_mode):
        return run_section(params, factory, check_mode=check_mode, select_volumes=_volumes.select_volumes,
                           capture_pod_volumes=_capture.capture_pod_volumes)

    return _create.run(km.params, km.client_factory(), discover_plan, section, export_task,
                       check_mode=km.check_mode, warn=km.module.warn)


def main():
    spec = dict(BACKUP_LOCATION_ARG_SPEC, **BACKUP_SCOPE_ARG_SPEC)
    spec.update(SCOPE_ARG_SPEC)
    spec.update(SECTION_ARG_SPEC)
    spec.update(ttl=dict(type="str"), page_size=dict(type="int", default=500))
    KubehooksModule(spec, mutually_exclusive=[("backup_dir", "storage_dir"), ("backup_dir", "cluster")]).run(execute)


if __name__ == "__main__":
    main()
