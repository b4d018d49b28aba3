#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: restore_resources
short_description: Restore the resources of a backup with Velero's restore semantics
version_added: 0.1.0
description:
  - Restores the resources of a backup made by this collection (or any Velero archive of format 1.x) into
    the cluster, in Velero v1.18's restore order (CRDs, namespaces, storage classes, PVs, PVCs, RBAC, service
    accounts, secrets, config maps, ..., pods, replica sets, endpoints, services, then everything else
    alphabetically), cleaned as Velero's restore item actions clean them (server-set metadata and status
    dropped; pods without C(nodeName) and service-account token volumes; services without cluster IPs and
    automatic node ports; PVCs and PVs rebound; jobs without controller labels).
  - Each item is recorded with its outcome (created, updated, skipped, failed); an item that exists or fails
    never stops the others.
  - Writes a Velero-shaped record in C(<storage>/<cluster>/restores/<name>/) - C(velero-restore.json) (the
    Restore object, with C(status.progress) rewritten at most every second while it runs),
    C(restore-<name>-logs.gz), C(restore-<name>-results.gz) and C(restore-<name>-resource-list.json.gz).
  - When it starts (not in check mode) it prints on stderr the restore's name and the M(kubehooks.backup.restore_info)
    command that follows its progress while it runs, since Ansible shows a task's result only when the task ends.
  - Static PersistentVolumes that still exist - a C(Released) one whose claimRef names the claim being
    restored gets its stale claimRef uid removed, so the restored claim binds to it again; one bound to
    another claim (restoring into a mapped namespace while the original runs) is left alone and the claim
    is restored without C(volumeName), so it binds to a free matching volume or a newly provisioned one.
  - Claims with a CSI snapshot in the backup (C(method=csi-snapshot) in its volumes index C(<backup>-volumes.json.gz),
    see M(kubehooks.backup.backup_capture)) are restored from it, as Velero's CSI restore does - without
    C(volumeName), with the VolumeSnapshot as C(dataSource), so a new volume is provisioned from the snapshot; their
    PV is not restored. The VolumeSnapshot is used when it exists in the target namespace; otherwise (a deleted or
    mapped namespace) a VolumeSnapshotContent is pre-provisioned from the snapshot handle (deletion policy
    C(Retain), named after the snapshot and the restore) and a VolumeSnapshot of the backup's name bound to it, before
    the claim. When they cannot be created the claim fails rather than coming back empty. The archive's own
    VolumeSnapshot and VolumeSnapshotContent items are not restored as they are.
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.auth
attributes:
  action:
    support: full
    description:
      - An action plugin runs the restore in the controller's task process when the module would run on the
        controller with the controller's Python anyway - a C(local) connection (C(delegate_to=localhost) included),
        no C(become), no C(async), C(ansible_python_interpreter) the controller's (as for the implicit localhost),
        and connection settings the collection reads itself (not an exec credential plugin or a proxy).
        That saves Ansible's module start-up, 0.4-0.8 s per restore. Options, check mode, the task's
        C(environment), results, messages and masked secrets are the module's (ansible-core 2.19 titles a
        failure "Action failed" instead of "Module failed"). Ctrl-C, SIGTERM and the task's C(timeout) still let
        the restore remove its temporary files and finish its record as Failed.
      - Otherwise, or with the variable C(kubehooks_backup_in_process=false), it runs as a module.
        C(-vvv) says which, and why.
  check_mode:
    support: full
    description: In check mode the module returns the exact plan - every item in restore order, its target
      namespace and what would happen to it (create, update, skip with the reason) - reading the cluster only.
  diff_mode:
    support: none
    description: No diff.
options:
  backup:
    description: The name of the backup to restore.
    type: str
    required: true
  name:
    description:
      - The restore's name; default C(<backup>-<UTC time as %Y%m%d%H%M%S>), as Velero names restores.
      - The action plugin chooses the default before the restore starts, so the result's RV(name), the record and the
        printed follow-up command agree.
    type: str
  backup_dir:
    description:
      - The backup's directory (C(<storage>/<cluster>/backups/<backup>)), instead of O(storage_dir) and O(cluster).
      - The restore record goes to C(<storage>/<cluster>/restores/<name>) next to it.
    type: path
  storage_dir:
    description: The backup storage directory; default C($XDG_DATA_HOME/kubehooks/storage), else C(~/.local/share/kubehooks/storage).
    type: path
  cluster:
    description: The cluster's directory under O(storage_dir); default derived from the API server URL, as the backup's.
    type: str
  included_namespaces:
    description: Namespaces (of the backup) to restore, names or globs; empty or V(*) means all.
    type: list
    elements: str
    default: []
  excluded_namespaces:
    description: Namespaces left out; an exclusion wins.
    type: list
    elements: str
    default: []
  included_resources:
    description:
      - Resource types to restore (plural, singular, kind or short name, optionally C(.group); globs); empty means all.
      - Nodes, events, Velero's own objects, CSINodes and VolumeAttachments are never restored.
    type: list
    elements: str
    default: []
  excluded_resources:
    description: Resource types left out.
    type: list
    elements: str
    default: []
  label_selectors:
    description: Label selectors (kubectl syntax, ANDed) that items must match.
    type: list
    elements: str
    default: []
  namespace_mappings:
    description: "Restore the items of a namespace into another one, C({old: new})."
    type: dict
    default: {}
  include_cluster_resources:
    description:
      - V(false) restores no cluster-scoped item; V(true) those passing the resource filter; unset only when
        every namespace is restored. A restored claim's PV is restored with it unless this is V(false).
    type: bool
  existing_resource_policy:
    description:
      - What to do with an item that exists and differs from the backup - V(none) leaves it and warns (Velero's
        default), V(update) patches it to the backed-up version.
    type: str
    choices: [none, update]
    default: none
  restore_status:
    description: Resource types whose backed-up status is restored too (through the status subresource).
    type: list
    elements: str
    default: []
  preserve_node_ports:
    description: Keep every service node port (by default only those set explicitly are kept).
    type: bool
    default: false
  terminating_timeout:
    description: Seconds to wait for a Terminating target namespace to go away before the items in it fail.
    type: int
    default: 600
  request_timeout:
    description: Seconds each API request may take.
    type: float
  volume_data:
    description:
      - Write the volume data the backup captured (C(<backup>-volumes.json.gz)) into the claims this restore
        creates, before any pod is created - so a workload's pods start on their data.
      - Per claim, a short-lived helper pod mounts it, the archive (its sha256 checked first) is streamed into
        C(tar -x) through C(pods/exec), the member count and checksum are compared with the backup's, and the
        helper is deleted. A missing or corrupted archive, a full volume or a helper that cannot start is that
        volume's error (the restore ends PartiallyFailed, naming it); the other volumes are unaffected.
      - A claim that already existed keeps its data (reported in the log). C(emptyDir) data is not restored
        (a warning).
    type: bool
    default: true
  volume_helper_image:
    description:
      - The helper pod's image. It needs C(tar) (GNU tar or busybox, with C(--numeric-owner)) and C(sleep); it runs
        as root so that the files keep their owners and modes. It is pulled with C(IfNotPresent).
      - Default C(docker.io/library/debian:bookworm-slim). On nodes that cannot pull it (an air-gapped cluster) give
        an image they have; a volume whose helper image still fails to pull after 45 s (an invalid name at once)
        fails with the image and the kubelet's reason, instead of waiting out O(volume_helper_timeout).
    type: str
  volume_helper_timeout:
    description: Seconds one volume may take, from the helper pod's creation to the end of its data.
    type: int
    default: 600
  volume_parallelism:
    description:
      - How many volumes are written at the same time; their helper pods start together instead of one after the
        other. Each stream is decompressed on the controller, so more than its cores gains little.
    type: int
    default: 4
  hooks:
    description:
      - Restore hook rules, the items of Velero's Restore C(spec.hooks.resources) - C(name),
        C(includedNamespaces), C(excludedNamespaces), C(includedResources), C(excludedResources), C(labelSelector)
        and C(postHooks), a list of C(exec) (C(container), C(command), C(onError), C(execTimeout), C(waitTimeout),
        C(waitForReady)) or C(init) (C(initContainers), full container specs with name, image and command;
        C(timeout), unused as in Velero) hooks. Namespaces are matched after O(namespace_mappings), as Velero.
      - "Pod annotations win over the rules, per kind: C(init.hook.restore.velero.io/container-image),
        C(/container-name), C(/command) add an init container first to the restored pod;
        C(post.hook.restore.velero.io/command), C(/container), C(/on-error), C(/exec-timeout), C(/wait-timeout),
        C(/wait-for-ready) exec a command once the container is running (or ready)."
      - Exec hooks run after every item is restored, one pod's hooks in order (on-error V(Fail), the default,
        stops that pod's later hooks), pods in parallel. Defaults - exec timeout 30s, wait timeout
        O(hook_wait_timeout), wait-for-ready false.
      - An invalid rule fails the task before anything is written. An invalid annotation value is that hook's
        error (Velero would silently use a default) - an exec hook fails without running; an init hook fails
        its pod's item (the pod is not restored). Results are counted in the record's C(status.hookStatus)
        and logged with Velero's field names (C(hookCommand), C(hookContainer), ...).
    type: list
    elements: dict
    default: []
  hook_wait_timeout:
    description:
      - How long an exec hook waits for its container when it sets no wait timeout (a Go duration or seconds).
        Velero waits without a limit.
    type: str
    default: 10m
  hook_parallelism:
    description: Pods whose exec hooks run at the same time.
    type: int
    default: 8
notes:
  - "RBAC: get on the discovery endpoints; get/create (and patch for existing items) on every restored type;
    get/create on namespaces; get/patch on persistentvolumes; for volume data get/create/delete on pods and
    get/create on pods/exec (the helper pods). The collection ships a least-privilege example
    in C(files/rbac/restore.yml)."
  - A backup written by the collection's earlier release restores as well (same archive layout).
seealso:
  - module: kubehooks.backup.restore_info
  - module: kubehooks.backup.resource_export
"""

EXAMPLES = r"""
- name: Restore backup nightly into the same namespaces
  kubehooks.backup.restore_resources:
    backup: nightly
    cluster: prod

- name: What a restore into a copy of the namespace would do (nothing is created)
  kubehooks.backup.restore_resources:
    backup: nightly
    included_namespaces: [shop]
    namespace_mappings: {shop: shop-copy}
  check_mode: true
  register: plan
"""

RETURN = r"""
name:
  description: The restore's name.
  returned: always
  type: str
phase:
  description: New (check mode), Completed, PartiallyFailed (some items failed) or Failed (the restore could not run).
  returned: always
  type: str
restore_dir:
  description: The restore record's directory.
  returned: always
  type: str
backup_dir:
  description: The backup's directory.
  returned: always
  type: str
files:
  description: The record's files (record, logs, results, resource_list).
  returned: always
  type: dict
record:
  description: The Velero Restore object.
  returned: always
  type: dict
total_items:
  description: Items planned.
  returned: always
  type: int
items_restored:
  description: Items processed (created, updated, skipped or failed), as Velero's progress.itemsRestored.
  returned: always
  type: int
outcomes:
  description: Items per outcome (created, updated, skipped, failed; in check mode create, update, skip).
  returned: always
  type: dict
plan:
  description: In check mode, every item in restore order with group_resource, namespace, target_namespace, name, stage, outcome and message.
  returned: check mode
  type: list
  elements: dict
plan_truncated:
  description: In check mode, true when the plan had more than 10000 items (only the first are returned).
  returned: check mode
  type: bool
error_messages:
  description: The errors (also in the results file).
  returned: always
  type: list
  elements: str
warning_messages:
  description: The warnings (also in the results file).
  returned: always
  type: list
  elements: str
volumes:
  description:
    - One entry per volume whose data was (or, in check mode, would be) written - namespace (the backup's),
      target_namespace, pvc, pod and volume (where the backup captured it), archive, bytes, files, helper_pod,
      status (succeeded, failed; planned in check mode), and when written error, written_bytes, written_files,
      duration, and warning when the helper pod could not be deleted.
  returned: always
  type: list
  elements: dict
hooks:
  description:
    - The restore exec hooks' results, as M(kubehooks.backup.pod_hooks) returns them (namespace, pod, container,
      command, source, name, on_error, timeout, status, exit_code, stdout, stderr, duration, error, reason).
    - In check mode, the restored pods' planned exec hooks - namespace, pod, hooks, errors.
  returned: always
  type: list
  elements: dict
hooks_attempted:
  description: Velero's C(hookStatus.hooksAttempted) of the exec hooks.
  returned: always
  type: int
hooks_failed:
  description: Velero's C(hookStatus.hooksFailed).
  returned: always
  type: int
init_hooks:
  description: The pods that got init containers - namespace, pod, source (annotation or spec), containers.
  returned: always
  type: list
  elements: dict
peak_rss_kib:
  description:
    - The peak resident memory in KiB of the process that ran the restore (memory stays flat with the number of
      objects).
    - That is the module's process, or the controller's task process when the action plugin ran the restore there;
      the latter includes the controller's own memory.
  returned: always
  type: int
duration:
  description: Seconds the restore took.
  returned: always
  type: float
"""

from ansible_collections.kubehooks.backup.plugins.module_utils import _restore
from ansible_collections.kubehooks.backup.plugins.module_utils._module import KubehooksModule


def execute(km):
    return _restore.run(km.params, km.client_factory(), km.check_mode)


def main():
    KubehooksModule(_restore.ARGUMENT_SPEC, **_restore.MODULE_OPTIONS).run(execute)


if __name__ == "__main__":
    main()
