#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_record
short_description: Keep the Velero-shaped record of a backup run (started, finished, thawed)
version_added: 0.1.0
description:
  - Writes the record of one backup into a backup storage directory laid out like a Velero backup
    storage location, C(<storage_dir>/[<cluster>/]backups/<name>/), so the files are where Velero users
    look for them. It never contacts the cluster; the role C(kubehooks.backup.create) calls it around
    the hooks and the export.
  - O(state=started) creates the backup directory (a backup name is used once), writes
    C(<name>-hook-plan.json) (the plan of every pod that has hooks, what a later thaw needs) and
    C(velero-backup.json) - a Velero C(Backup) object in phase C(InProgress) whose spec mirrors the
    inputs and whose annotation C(backup.kubehooks.io/frozen-pods) lists the pods whose pre hooks are
    about to run. Call it BEFORE any pre hook runs.
  - O(state=finished) takes what the run reports - the hook results the executor returned
    (O(hook_results)), the export's result (O(export)) and the run's own errors (O(errors),
    O(failure_reason)) - and appends the hook entries (with Velero's field names), the export entries and
    the final phase to C(<name>-logs.gz), writes
    C(<name>-results.gz), and completes C(velero-backup.json) - phase C(Completed),
    C(PartiallyFailed) or C(Failed), C(hookStatus), C(progress), completion time, error and warning
    counts, and the measured freeze window in the annotation C(backup.kubehooks.io/freeze-window-seconds).
    Calling it again for the same run (same O(run_id)) changes nothing.
  - O(state=thawed) is for a run that was killed after freezing, or that ended with pods it could not thaw.
    It appends the post hook entries of the thaw to the log, adds the annotation C(backup.kubehooks.io/thawed),
    and marks a record still in C(InProgress) as C(Failed) (Velero marks such backups C(Failed) too) - or, when
    the run had finished but left pods frozen, with the phase it had reached. The watchdog of
    M(kubehooks.backup.backup_capture) does the same after it thawed the pods of a dead run (C(by) V(watchdog)).
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.backup_location
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; the module returns what it would record.
  diff_mode:
    support: none
    description: The record is a set of files written by the run; there is no diff.
options:
  state:
    description:
      - Which step of the run to record.
    type: str
    required: true
    choices: [started, finished, thawed]
  name:
    description:
      - The backup name, a Kubernetes object name (lowercase letters, digits, C(-) and C(.)).
    type: str
    required: true
  api_host:
    description:
      - When O(cluster) is not given, the cluster name is derived from this API server URL
        (V(https://10.0.0.1:6443) gives V(10.0.0.1_6443)). Without both, the backup goes to
        C(<storage_dir>/backups/<name>). Mutually exclusive with O(backup_dir).
    type: str
  plan:
    description:
      - O(state=started) - the RV(kubehooks.backup.pod_hooks_info#module:pods) list of
        M(kubehooks.backup.pod_hooks_info). Pods without any hook are dropped; the rest is saved as
        C(<name>-hook-plan.json) and returned as RV(plan).
    type: list
    elements: dict
    default: []
  included_namespaces:
    description: O(state=started) - recorded in C(spec.includedNamespaces).
    type: list
    elements: str
    default: []
  excluded_namespaces:
    description: O(state=started) - recorded in C(spec.excludedNamespaces).
    type: list
    elements: str
    default: []
  included_resources:
    description: O(state=started) - recorded in C(spec.includedResources).
    type: list
    elements: str
    default: []
  excluded_resources:
    description: O(state=started) - recorded in C(spec.excludedResources).
    type: list
    elements: str
    default: []
  label_selectors:
    description: O(state=started) - recorded in C(spec.labelSelector) and an annotation.
    type: list
    elements: str
    default: []
  include_cluster_resources:
    description: O(state=started) - recorded in C(spec.includeClusterResources).
    type: bool
  hooks:
    description: O(state=started) - the hook rules, recorded in C(spec.hooks.resources).
    type: list
    elements: dict
    default: []
  ttl:
    description:
      - O(state=started) - how long the backup should be kept (Go duration such as V(720h)); recorded
        in C(spec.ttl) and C(status.expiration). Nothing is ever deleted by this collection.
    type: str
  run_id:
    description:
      - O(state=finished) - the RV(run_id) that O(state=started) returned. The record is only finished by
        the run that started it. Without it, a record is created (for a run that failed before it
        could start one), and an existing backup of that name is an error.
    type: str
  hook_results:
    description:
      - O(state=finished) or O(state=thawed) - the RV(kubehooks.backup.pod_hooks#module:hooks) lists of
        M(kubehooks.backup.pod_hooks) (pre and post concatenated) - the record of what ran. Their statuses
        give C(hookStatus.hooksAttempted) and C(hooksFailed), and each is logged with the time it ended.
    type: list
    elements: dict
    default: []
  hook_log:
    description:
      - The JSON-lines file given to M(kubehooks.backup.pod_hooks) as C(log_path). It only serves to
        rebuild what a killed run did - O(state=thawed) copies its entries not yet in C(<name>-logs.gz);
        O(state=finished) records O(hook_results) and counts the file's lines as copied.
      - Default C(<backup_dir>/<name>-hooks.jsonl) (RV(hook_log)).
    type: path
  export:
    description:
      - O(state=finished) - the result of M(kubehooks.backup.resource_export); omit it when the export
        failed or did not run (the backup is then C(Failed)).
    type: dict
  failure_reason:
    description:
      - O(state=finished) - why the run could not proceed (recorded as C(status.failureReason)).
    type: str
  errors:
    description:
      - O(state=finished) - other errors of the run (a hook task that could not run at all, such as the
        post hooks). Any error makes an otherwise complete backup C(PartiallyFailed).
    type: list
    elements: str
    default: []
  freeze_window:
    description:
      - O(state=finished) - seconds from just before the pre hooks to just after the post hooks. Default the
        RV(kubehooks.backup.backup_capture#module:freeze_window_seconds) of O(capture).
    type: float
  capture:
    description:
      - O(state=finished) - the result of M(kubehooks.backup.backup_capture) (for a freeze stage and a thaw stage,
        the freeze stage's result with the thaw stage's C(not_thawed), C(freeze_window_seconds) and C(watchdog)).
        Its hooks are given in O(hook_results), the one input for hooks.
      - Its volumes are logged and counted in the annotation C(backup.kubehooks.io/volumes) (C(volumes),
        C(succeeded), C(failed), C(bytes), C(files)); a volume not captured makes the backup C(PartiallyFailed).
        Per group freeze windows go to C(backup.kubehooks.io/freeze-windows).
      - When C(not_thawed) names pods that may still be frozen, the record stays C(InProgress) and names them in
        C(backup.kubehooks.io/not-thawed), so that the C(kubehooks.backup.thaw) playbook thaws exactly those.
      - When its C(watchdog) acted, the record says so in C(backup.kubehooks.io/thawed) (C(by) V(watchdog)).
    type: dict
notes:
  - It takes no connection options and is not in the C(kubehooks.backup.k8s) action group, so C(module_defaults)
    for C(group/kubehooks.backup.k8s) never passes credentials to it. It does not import the kubernetes library.
  - Directories are created with mode 0700 and files with mode 0600.
  - O(state=started) warns when the backup directory looks ephemeral - the overlay root filesystem of a container
    (the home directory of an AWX execution environment) or a tmpfs - because the backup would be lost with it.
  - "Phase: C(InProgress) while pods may still be frozen; C(Failed) when nothing was exported; C(PartiallyFailed)
    when a hook failed, a volume was not captured, the export reported errors, a pod was left out, or the run
    reported O(errors); C(Completed) otherwise. Hook failures alone never make a backup C(Failed)."
seealso:
  - module: kubehooks.backup.backup_info
  - module: kubehooks.backup.resource_export
  - module: kubehooks.backup.pod_hooks
"""

EXAMPLES = r"""
- name: Resolve the hooks
  kubehooks.backup.pod_hooks_info:
    included_namespaces: [nginx-example]
  register: discovered

- name: Record the backup and the pods about to be frozen, before freezing
  kubehooks.backup.backup_record:
    state: started
    name: nginx-hook-test
    api_host: "{{ discovered.api_host }}"
    included_namespaces: [nginx-example]
    plan: "{{ discovered.pods }}"
  register: record

- name: Freeze
  kubehooks.backup.pod_hooks:
    phase: pre
    plan: "{{ record.plan }}"
    log_path: "{{ record.hook_log }}"
    backup: nginx-hook-test
  register: pre
  failed_when: false

- name: Export
  kubehooks.backup.resource_export:
    name: nginx-hook-test
    backup_dir: "{{ record.backup_dir }}"
    included_namespaces: [nginx-example]
  register: export

- name: Thaw
  kubehooks.backup.pod_hooks:
    phase: post
    plan: "{{ record.plan }}"
    log_path: "{{ record.hook_log }}"
    backup: nginx-hook-test
  register: post
  failed_when: false

- name: Finish the record
  kubehooks.backup.backup_record:
    state: finished
    name: nginx-hook-test
    backup_dir: "{{ record.backup_dir }}"
    run_id: "{{ record.run_id }}"
    hook_results: "{{ pre.hooks + post.hooks }}"
    export: "{{ export }}"
  register: final

- name: After a killed run - mark the record once its pods were thawed
  kubehooks.backup.backup_record:
    state: thawed
    name: nginx-hook-test
    backup_dir: /root/.local/share/kubehooks/storage/backups/nginx-hook-test
    hook_results: "{{ thaw.hooks }}"
"""

RETURN = r"""
backup_dir:
  description: The backup directory.
  returned: always
  type: str
  sample: /root/.local/share/kubehooks/storage/127.0.0.1_6443/backups/nginx-hook-test
phase:
  description: The backup's phase after this step (C(InProgress), C(Completed), C(PartiallyFailed), C(Failed)).
  returned: always
  type: str
  sample: Completed
record:
  description: The Velero C(Backup) object as written to C(velero-backup.json).
  returned: always
  type: dict
run_id:
  description: Identifies the run that started the record; give it to O(state=finished).
  returned: always
  type: str
plan:
  description: The pods that have hooks (the saved hook plan), in the shape M(kubehooks.backup.pod_hooks) takes as C(plan).
  returned: when O(state=started)
  type: list
  elements: dict
frozen_pods:
  description: The pods whose pre hooks run (C(namespace/name)), as recorded in the frozen-pods annotation.
  returned: always
  type: list
  elements: str
hook_log:
  description: Where M(kubehooks.backup.pod_hooks) should log, C(<backup_dir>/<name>-hooks.jsonl).
  returned: always
  type: str
files:
  description: The record's files (C(record), C(archive), C(logs), C(resource_list), C(results), C(hook_plan),
    C(hook_log), C(progress), C(volumes_index), C(thaw_state), C(watchdog)).
  returned: always
  type: dict
time:
  description: When this step was recorded, in seconds since the epoch.
  returned: always
  type: float
hooks_attempted:
  description: C(status.hookStatus.hooksAttempted).
  returned: always
  type: int
hooks_failed:
  description: C(status.hookStatus.hooksFailed).
  returned: always
  type: int
items_backed_up:
  description: C(status.progress.itemsBackedUp).
  returned: always
  type: int
total_items:
  description: C(status.progress.totalItems).
  returned: always
  type: int
freeze_window_seconds:
  description: The measured freeze window, or null.
  returned: always
  type: float
excluded_pods:
  description: The pods left out of the archive because a pre hook with on-error C(Fail) failed (C(namespace/name)).
  returned: always
  type: list
  elements: str
storage_warning:
  description:
    - Why the backup directory looks ephemeral (on the overlay root of a container, such as an AWX execution
      environment, or on a tmpfs), also shown as a warning; null when it does not.
  returned: when O(state=started)
  type: str
volumes:
  description: The annotation C(backup.kubehooks.io/volumes) - C(volumes), C(succeeded), C(failed), C(bytes),
    C(files) of the volume capture; null when no capture was recorded.
  returned: always
  type: dict
freeze_windows:
  description: Per frozen group of the critical section - C(group), C(pods), C(seconds).
  returned: always
  type: list
  elements: dict
not_thawed:
  description: Pods that may still be frozen (the record then stays C(InProgress)); the thaw playbook thaws them.
  returned: always
  type: list
  elements: str
thawed:
  description: The annotation C(backup.kubehooks.io/thawed) - C(time), C(by) (V(thaw playbook) or V(watchdog)),
    C(reason), C(hooksAttempted), C(hooksFailed); null when no thaw after the run happened.
  returned: always
  type: dict
error_messages:
  description: The errors recorded in C(<name>-results.gz) by O(state=finished), as text.
  returned: when O(state=finished)
  type: list
  elements: str
summary:
  description: The backup in a few lines (phase, hooks, items, freeze window, files, pods left out, errors), as the role prints it.
  returned: always
  type: list
  elements: str
  sample:
    - "Backup nginx-hook-test: Completed"
    - "Hooks: 2 attempted, 0 failed (1 pods with pre hooks)"
"""

from ansible_collections.kubehooks.backup.plugins.module_utils import _record_steps, _storage
from ansible_collections.kubehooks.backup.plugins.module_utils._args import (
    BACKUP_LOCATION_ARG_SPEC,
    BACKUP_SCOPE_ARG_SPEC,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._module import KubehooksModule


def execute(km):
    state = km.params["state"]
    handler = {"started": _record_steps.start, "finished": _record_steps.finish, "thawed": _record_steps.thaw}[state]
    result = handler(km.params, km.check_mode)
    if state == "started":
        warning = _storage.ephemeral_reason(result["backup_dir"])
        if warning:
            km.module.warn(warning)
        result["storage_warning"] = warning
    return result


def main():
    spec = dict(BACKUP_LOCATION_ARG_SPEC, **BACKUP_SCOPE_ARG_SPEC)
    spec.update(
        state=dict(type="str", required=True, choices=["started", "finished", "thawed"]),
        api_host=dict(type="str"),
        plan=dict(type="list", elements="dict", default=[]),
        hooks=dict(type="list", elements="dict", default=[]),
        ttl=dict(type="str"),
        run_id=dict(type="str"),
        hook_results=dict(type="list", elements="dict", default=[]),
        hook_log=dict(type="path"),
        export=dict(type="dict"),
        failure_reason=dict(type="str"),
        errors=dict(type="list", elements="str", default=[]),
        freeze_window=dict(type="float"),
        capture=dict(type="dict"),
    )
    KubehooksModule(
        spec, needs_client=False,
        mutually_exclusive=[("backup_dir", "storage_dir"), ("backup_dir", "cluster"), ("backup_dir", "api_host")],
    ).run(execute)


if __name__ == "__main__":
    main()
