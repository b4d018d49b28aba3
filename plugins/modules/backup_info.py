#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_info
short_description: List backups in a backup storage directory, or show one with its logs
version_added: 0.1.0
description:
  - Without O(name), lists the backups in the storage directory - every cluster's, or one O(cluster)'s -
    with the columns of C(velero backup get) (RV(backups), and the same as text in RV(table)).
  - With O(name), returns that backup - its status, its Velero C(Backup) object, its error and warning
    messages, its hook plan - and, with O(logs=true), its log entries, like C(velero backup logs)
    (O(hooks_only=true) keeps only the hook entries, the lines C(grep hookCommand) finds).
  - With O(describe=true) (or O(details=true)) the backup is also described like C(velero backup describe
    [--details]) - phase, times, expiration, scope, hook status and, with O(details=true), the resource list
    grouped by kind, the captured volumes and the error and warning messages per namespace - as data
    (RV(description)) and as the text velero prints (RV(description_lines)).
  - With O(name) but without O(cluster), the backup is looked up in every cluster of the storage
    directory; a name found in several clusters is an error that lists them. With O(backup_dir) and
    O(name), the record there must be that backup's.
  - Reads files only; it never contacts the cluster.
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.backup_location
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  name:
    description:
      - One backup to show.
    type: str
  logs:
    description:
      - Return the backup's log entries (RV(logs) and RV(log_lines)) - those of C(<name>-logs.gz), then the hook
        entries of C(<name>-hooks.jsonl) not copied there yet (a run in progress, or killed).
    type: bool
    default: false
  hooks_only:
    description:
      - Return only the hook entries of the log (those carrying C(hookCommand)). Implies O(logs=true).
    type: bool
    default: false
  describe:
    description:
      - With O(name) or O(backup_dir), return RV(description) and RV(description_lines), like C(velero backup describe).
    type: bool
    default: false
  details:
    description:
      - Like C(velero backup describe --details) - add the resource list grouped by kind, the captured volumes and the
        error and warning messages per namespace. Implies O(describe=true).
    type: bool
    default: false
  log_format:
    description:
      - The form of RV(log_lines). V(json) - the JSON lines of the log file. V(text) - Velero's default text format
        (logfmt, C(time=... level=info msg=... hookCommand="[...]")), what C(velero backup logs) prints.
        C(grep hookCommand) finds the hook entries in both.
    type: str
    choices: [json, text]
    default: json
  volume_files:
    description:
      - List the files of each captured volume (the member names of its C(.tar.gz), at most 1000 per volume) in
        RV(volumes) as C(members).
    type: bool
    default: false
  query:
    description:
      - A JMESPath expression applied to the module's result; its value is returned as RV(query_result),
        for example V(backups[?status=='PartiallyFailed'].name) or V(logs[?hookPhase=='pre'].hookCommand).
      - An invalid expression fails the task with a message naming it.
    type: str
requirements:
  - jmespath (only for O(query))
notes:
  - It takes no connection options and is not in the C(kubehooks.backup.k8s) action group, so C(module_defaults)
    for C(group/kubehooks.backup.k8s) never passes credentials to it.
seealso:
  - module: kubehooks.backup.backup_record
  - name: velero backup get / logs
    description: The Velero commands this module mirrors.
    link: https://velero.io/docs/main/backup-reference/
"""

EXAMPLES = r"""
- name: Like velero backup get
  kubehooks.backup.backup_info:
  register: backups

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ backups.table }}"

- name: Like velero backup logs nginx-hook-test | grep hookCommand
  kubehooks.backup.backup_info:
    name: nginx-hook-test
    hooks_only: true
  register: backup

- name: Like velero backup describe nginx-hook-test --details
  kubehooks.backup.backup_info:
    name: nginx-hook-test
    details: true
  register: described

- name: Print it
  ansible.builtin.debug:
    msg: "{{ described.description_lines }}"

- name: Like velero backup logs nginx-hook-test (text) | grep hookCommand
  kubehooks.backup.backup_info:
    name: nginx-hook-test
    hooks_only: true
    log_format: text
  register: text_log

- name: The commands of the pre hooks that failed
  kubehooks.backup.backup_info:
    name: nginx-hook-test
    hooks_only: true
    query: "logs[?hookPhase=='pre' && status=='failed'].hookCommand"
  register: failed_freezes
"""

RETURN = r"""
backups:
  description: One row per backup (sorted by cluster, then as C(velero backup get) sorts); without O(name) every backup, with O(name) that one.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The backup name.
      type: str
    status:
      description: The phase (C(New), C(InProgress), C(Completed), C(PartiallyFailed), C(Failed)), or C(Unknown) when the record cannot be read.
      type: str
    errors:
      description: C(status.errors).
      type: int
    warnings:
      description: C(status.warnings).
      type: int
    created:
      description: The start time (RFC 3339).
      type: str
    expires:
      description: As Velero's EXPIRES column (V(29d), V(3h ago), V(n/a)).
      type: str
    expiration:
      description: C(status.expiration) (RFC 3339), or null when the backup has no O(kubehooks.backup.backup_record#module:ttl).
      type: str
    storage_location:
      description: The cluster name, or V(default).
      type: str
    selector:
      description: The label selector, or V(<none>).
      type: str
    cluster:
      description: The cluster directory, or null.
      type: str
    hooks_attempted:
      description: C(status.hookStatus.hooksAttempted).
      type: int
    hooks_failed:
      description: C(status.hookStatus.hooksFailed).
      type: int
    items_backed_up:
      description: C(status.progress.itemsBackedUp).
      type: int
    total_items:
      description: C(status.progress.totalItems).
      type: int
    completed:
      description: The completion time, or null.
      type: str
    path:
      description: The backup directory.
      type: str
table:
  description: RV(backups) as the text lines C(velero backup get) prints (a header line first).
  returned: always
  type: list
  elements: str
  sample:
    - "NAME              STATUS      ERRORS   WARNINGS   CREATED                         EXPIRES   STORAGE LOCATION   SELECTOR"
    - "nginx-hook-test   Completed   0        0          2026-11-25 09:10:02 +0000 UTC   n/a       default            <none>"
backup:
  description: The backup's row (see RV(backups)) plus C(freeze_window_seconds), C(frozen_pods), C(thawed), C(failure_reason).
  returned: when O(name) or O(backup_dir) is given
  type: dict
record:
  description: The Velero C(Backup) object (C(velero-backup.json)).
  returned: when O(name) or O(backup_dir) is given
  type: dict
messages:
  description:
    - The error and warning messages (C(<name>-results.gz), Velero's results format).
    - Not named C(results), which Ansible reserves for loop results and would rename.
  returned: when O(name) or O(backup_dir) is given
  type: dict
hook_plan:
  description: The saved hook plan (the pods with hooks), usable as the C(plan) of M(kubehooks.backup.pod_hooks); empty when none was saved.
  returned: when O(name) or O(backup_dir) is given
  type: list
  elements: dict
hook_plan_problem:
  description:
    - Why the saved hook plan cannot be trusted, or null - it is not a regular file owned by the running user, or
      it or its directory is writable by group or others. The C(kubehooks.backup.thaw) playbook refuses such a plan.
  returned: when O(name) or O(backup_dir) is given
  type: str
files:
  description:
    - The paths of the backup's files that exist (C(record), C(archive), C(logs), C(resource_list), C(results),
      C(hook_plan), C(hook_log), C(progress), C(volumes_index), C(thaw_state), C(watchdog)).
  returned: when O(name) or O(backup_dir) is given
  type: dict
volumes:
  description:
    - The entries of the volumes index C(<name>-volumes.json.gz) - C(namespace), C(pod), C(volume), C(pvc), C(path),
      C(bytes), C(files), C(sha256), C(status), C(error); with O(volume_files), C(members) (and C(members_truncated)).
    - Empty when no volume was captured.
  returned: when O(name) or O(backup_dir) is given
  type: list
  elements: dict
hook_log:
  description: Where the hooks of this backup are logged as they end (C(<name>-hooks.jsonl)), whether or not the file exists yet.
  returned: when O(name) or O(backup_dir) is given
  type: str
logs:
  description: The log entries (one dict per JSON line of C(<name>-logs.gz)), with Velero's field names for the hook entries.
  returned: when O(logs) or O(hooks_only)
  type: list
  elements: dict
log_lines:
  description: The same entries as lines, for display - JSON lines, or Velero's text lines with O(log_format=text).
  returned: when O(logs) or O(hooks_only)
  type: list
  elements: str
description:
  description:
    - The backup as C(velero backup describe) shows it - C(name), C(phase), C(errors), C(warnings), C(failure_reason),
      C(included_namespaces), C(excluded_namespaces), C(included_resources), C(excluded_resources), C(cluster_scoped),
      C(label_selector), C(storage_location), C(ttl), C(hooks), C(started), C(completed), C(expiration), C(expires),
      C(total_items), C(items_backed_up), C(hooks_attempted), C(hooks_failed), C(frozen_pods), C(path).
    - With O(details=true) also C(resource_list) (C({"apps/v1/Deployment" - ["ns/name"]})), C(volumes) (the entries of
      C(<name>-volumes.json.gz) - namespace, pod, volume, pvc, path, bytes, files, sha256, method, status, error; empty
      when no volume was captured), C(error_messages) and C(warning_messages) (C(velero), C(cluster), C(namespaces)).
  returned: when O(describe) or O(details)
  type: dict
description_lines:
  description: RV(description) as the text C(velero backup describe [--details]) prints.
  returned: when O(describe) or O(details)
  type: list
  elements: str
query_result:
  description: The value of O(query) applied to the result.
  returned: when O(query) is set
  type: raw
"""

from ansible_collections.kubehooks.backup.plugins.module_utils import _describe, _layout, _listing
from ansible_collections.kubehooks.backup.plugins.module_utils._module import QUERY_SPEC, KubehooksModule


def show(params, bdir, expected_name=None):
    result = _listing.show_backup(bdir, params["logs"], params["hooks_only"], expected_name,
                                  volume_files_list=params["volume_files"])
    if params["describe"] or params["details"]:
        result["description"] = _describe.describe(bdir, result["record"], params["details"])
        result["description_lines"] = _describe.describe_lines(result["description"])
    if "logs" in result and params["log_format"] == "text":
        result["log_lines"] = [_describe.logfmt_line(entry) for entry in result["logs"]]
    return result


def execute(km):
    params = km.params
    storage = params.get("storage_dir") or _layout.default_storage_dir()
    if params.get("backup_dir"):
        return show(params, params["backup_dir"], params.get("name"))
    if params.get("name"):
        return show(params, _listing.find_backup(storage, params["name"], params.get("cluster")))
    if params.get("cluster") is not None:
        _layout.check_cluster_name(params["cluster"])
    rows = _listing.list_records(storage, params.get("cluster"))
    return dict(changed=False, backups=rows, table=_listing.table(rows))


def main():
    spec = dict(
        storage_dir=dict(type="path"),
        cluster=dict(type="str"),
        name=dict(type="str"),
        backup_dir=dict(type="path"),
        logs=dict(type="bool", default=False),
        hooks_only=dict(type="bool", default=False),
        describe=dict(type="bool", default=False),
        details=dict(type="bool", default=False),
        log_format=dict(type="str", default="json", choices=["json", "text"]),
        volume_files=dict(type="bool", default=False),
    )
    spec.update(QUERY_SPEC)
    KubehooksModule(
        spec, needs_client=False,
        mutually_exclusive=[("backup_dir", "storage_dir"), ("backup_dir", "cluster")],
    ).run(execute)


if __name__ == "__main__":
    main()
