#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: resource_export
short_description: Export Kubernetes resources into Velero's backup archive format
version_added: 0.1.0
description:
  - Exports the resources in scope into C(<name>.tar.gz), a gzipped tar in Velero's archive layout
    (C(metadata/version) V(1.1.0), C(resources/<group-resource>/namespaces/<ns>/<name>.json),
    C(resources/<group-resource>/cluster/<name>.json) and the C(<version>-preferredversion) copy of each
    item), next to C(<name>-resource-list.json.gz) (Velero's resource list), in a backup directory laid
    out like a Velero backup storage location.
  - The backup directory is created when missing (mode 0700); the role passes the
    RV(kubehooks.backup.backup_record#module:backup_dir) that M(kubehooks.backup.backup_record) returned.
  - Resource types come from API discovery (each resource at its preferred version, as Velero). Items
    are read with paginated LIST calls, never one GET per object, and streamed to disk, so memory does
    not grow with the number of objects.
  - Items with C(metadata.deletionTimestamp) or the label C(velero.io/exclude-from-backup=true) are
    skipped, as Velero skips them; O(exclude_pods) leaves out given pods (the role passes the pods
    whose pre hook failed with on-error V(Fail)).
  - VolumeSnapshots and VolumeSnapshotContents are never listed (Velero excludes them). When the backup directory
    holds a volumes index with CSI snapshots (M(kubehooks.backup.backup_capture) O(kubehooks.backup.backup_capture#module:snapshot_volumes)),
    each snapshot's VolumeSnapshot (annotated with C(velero.io/csi-volumesnapshot-handle),
    C(velero.io/csi-driver-name), C(velero.io/csi-volumesnapshot-restore-size) and C(velero.io/csi-vsc-deletion-policy)),
    its VolumeSnapshotContent and its VolumeSnapshotClass are added to the archive, as Velero's CSI actions add them
    (RBAC - C(get) on C(volumesnapshotcontents), C(list) on C(volumesnapshotclasses)).
  - The archive is written to a C(.partial) file and renamed when complete, so a failed export never
    leaves a truncated C(<name>.tar.gz) behind.
  - "Progress: while it runs, the module rewrites C(<name>-progress.json) in the backup directory
    (the resource being exported, items so far, resource types done); C(watch cat) that file to follow
    a long export. Ansible only shows a module's result when it ends."
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.auth
  - kubehooks.backup.backup_location
  - kubehooks.backup.resources
attributes:
  check_mode:
    support: full
    description: In check mode only API discovery runs; the module returns the resource types it would export and writes nothing.
  diff_mode:
    support: none
    description: The export writes new files; there is no diff.
options:
  name:
    description:
      - The backup name; the archive is C(<name>.tar.gz). A Kubernetes object name (lowercase letters,
        digits, C(-) and C(.)), as Velero's backup names.
    type: str
    required: true
  included_namespaces:
    description:
      - Namespaces to export, as names or glob patterns; empty or V(*) means every namespace.
    type: list
    elements: str
    default: []
  excluded_namespaces:
    description:
      - Namespaces left out, as names or glob patterns. An exclusion wins.
    type: list
    elements: str
    default: []
  label_selectors:
    description:
      - Label selectors that items must match, ANDed, in kubectl's syntax (V(app=nginx)).
    type: list
    elements: str
    default: []
  exclude_pods:
    description:
      - Pods left out of the archive, as C(namespace/name).
    type: list
    elements: str
    default: []
  page_size:
    description:
      - Items per page of each LIST call.
    type: int
    default: 500
notes:
  - "RBAC: C(get) on the discovery endpoints and C(list) on every resource type in scope; types that cannot
    be listed are reported in RV(errors) and the export goes on."
  - A backup that includes Secrets holds them in clear text; the files are created owner-only (0600).
seealso:
  - module: kubehooks.backup.backup_record
  - module: kubehooks.backup.backup_info
  - name: Velero backup format
    description: The archive layout this module writes.
    link: https://velero.io/docs/main/output-file-format/
"""

EXAMPLES = r"""
- name: Export the nginx example into the default storage directory
  kubehooks.backup.resource_export:
    name: nginx-backup
    included_namespaces: [nginx-example]
  register: export

- name: Export into the directory of a backup record, leaving out a pod whose freeze failed
  kubehooks.backup.resource_export:
    name: "{{ record.name }}"
    backup_dir: "{{ record.backup_dir }}"
    included_namespaces: ["team-*"]
    excluded_resources: [events, events.events.k8s.io]
    exclude_pods: [team-a/db-0]

- name: What would be exported (discovery only)
  kubehooks.backup.resource_export:
    name: dry-run
    included_namespaces: [nginx-example]
  check_mode: true
  register: types
"""

RETURN = r"""
path:
  description: The archive, C(<backup_dir>/<name>.tar.gz).
  returned: success, not in check mode
  type: str
  sample: /root/.local/share/kubehooks/storage/backups/nginx-backup/nginx-backup.tar.gz
resource_list_path:
  description: Velero's resource list, C(<backup_dir>/<name>-resource-list.json.gz).
  returned: success, not in check mode
  type: str
progress_path:
  description: The progress file, C(<backup_dir>/<name>-progress.json), rewritten while the export runs.
  returned: success, not in check mode
  type: str
backup_dir:
  description: The directory holding the files.
  returned: always
  type: str
counts:
  description: Items written per resource type (group-resource, as in the archive).
  returned: success, not in check mode
  type: dict
  sample: {pods: 1, persistentvolumeclaims: 1, deployments.apps: 1}
items_backed_up:
  description: Items written to the archive (Velero's C(progress.itemsBackedUp)).
  returned: success, not in check mode
  type: int
  sample: 12
total_items:
  description: Items found in scope, including the excluded pods (Velero's C(progress.totalItems)).
  returned: success, not in check mode
  type: int
  sample: 13
excluded_pods:
  description: The pods of O(exclude_pods) that were found and left out, as C(namespace/name).
  returned: success, not in check mode
  type: list
  elements: str
skipped_items:
  description:
    - Items skipped because they are being deleted (C(being_deleted)) or carry the exclude label (C(exclude_label)).
    - Not named C(skipped), which Ansible reads as "the task was skipped".
  returned: success, not in check mode
  type: dict
errors:
  description: Resource types or namespaces that could not be listed (the export went on without them).
  returned: success, not in check mode
  type: list
  elements: dict
  contains:
    resource:
      description: The resource type.
      type: str
    namespace:
      description: The namespace, or null.
      type: str
    message:
      description: What went wrong.
      type: str
warning_messages:
  description:
    - Warnings of the export (an API group version that could not be discovered, a list continued from
      a newer snapshot). They are also shown as task warnings.
  returned: success
  type: list
  elements: str
duration:
  description: Seconds the export took.
  returned: success, not in check mode
  type: float
started_at:
  description: When the export started, in seconds since the epoch.
  returned: success, not in check mode
  type: float
finished_at:
  description: When the export finished, in seconds since the epoch.
  returned: success, not in check mode
  type: float
resource_types:
  description: In check mode, the resource types that would be exported, in export order.
  returned: check mode
  type: list
  elements: str
"""

from ansible_collections.kubehooks.backup.plugins.module_utils._args import BACKUP_LOCATION_ARG_SPEC, BACKUP_SCOPE_ARG_SPEC
from ansible_collections.kubehooks.backup.plugins.module_utils._export import export_task
from ansible_collections.kubehooks.backup.plugins.module_utils._module import KubehooksModule


def execute(km):
    result = export_task(km.client_factory(), km.params, check_mode=km.check_mode)
    if not km.check_mode:
        for warning in result["warning_messages"]:
            km.module.warn(warning)
    return result


def main():
    spec = dict(BACKUP_LOCATION_ARG_SPEC, **BACKUP_SCOPE_ARG_SPEC)
    spec.update(
        exclude_pods=dict(type="list", elements="str", default=[]),
        page_size=dict(type="int", default=500),
    )
    KubehooksModule(spec, mutually_exclusive=[("backup_dir", "storage_dir"), ("backup_dir", "cluster")]).run(execute)


if __name__ == "__main__":
    main()
