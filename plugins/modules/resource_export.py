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
  - Resource types come from API discovery (each resource at its preferred version, as Velero). Items
    are read with paginated LIST calls, never one GET per object, and streamed to disk, so memory does
    not grow with the number of objects.
  - Items with C(metadata.deletionTimestamp) or the label C(velero.io/exclude-from-backup=true) are
    skipped, as Velero skips them; O(exclude_pods) leaves out given pods (the role passes the pods
    whose pre hook failed with on-error V(Fail)).
  - The archive is written to a C(.partial) file and renamed when complete, so a failed export never
    leaves a truncated C(<name>.tar.gz) behind.
  - "Progress: while it runs, the module rewrites C(<name>-progress.json) in the backup directory
    (the resource being exported, items so far, resource types done); C(watch cat) that file to follow
    a long export. Ansible only shows a module's result when it ends."
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.auth
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
  backup_dir:
    description:
      - The directory the files go to (created when missing, mode 0700), usually the RV(kubehooks.backup.backup_record#module:backup_dir)
        returned by M(kubehooks.backup.backup_record).
      - Mutually exclusive with O(storage_dir) and O(cluster); when it is not given, the directory is
        C(<storage_dir>/[<cluster>/]backups/<name>).
    type: path
  storage_dir:
    description:
      - The backup storage directory. Default C($XDG_DATA_HOME/kubehooks/storage), else
        C(~/.local/share/kubehooks/storage).
    type: path
  cluster:
    description:
      - A cluster name that separates the backups of several clusters under O(storage_dir)
        (C(<storage_dir>/<cluster>/backups/<name>)).
    type: str
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
  included_resources:
    description:
      - Resource types to export, by plural, singular, kind or short name, optionally with the group
        (V(deployments.apps)); glob patterns allowed. Empty or V(*) means all.
    type: list
    elements: str
    default: []
  excluded_resources:
    description:
      - Resource types left out, same forms as O(included_resources). An exclusion wins.
    type: list
    elements: str
    default: []
  label_selectors:
    description:
      - Label selectors that items must match, ANDed, in kubectl's syntax (V(app=nginx)).
    type: list
    elements: str
    default: []
  include_cluster_resources:
    description:
      - Velero's C(includeClusterResources). V(false) exports no cluster-scoped resource (not even the
        Namespace objects); V(true) exports the cluster-scoped resources that pass the resource filter;
        unset exports them only when every namespace is in scope (the Namespace objects of the namespaces
        in scope are exported either way).
    type: bool
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

import json
import time

from ansible_collections.kubehooks.backup.plugins.module_utils import _export, _layout, _record, _scope
from ansible_collections.kubehooks.backup.plugins.module_utils._args import BACKUP_LOCATION_ARG_SPEC, BACKUP_SCOPE_ARG_SPEC
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._module import KubehooksModule


class ProgressFile(object):
    """Rewrites ``<name>-progress.json`` (tmp file + rename: a reader never sees half a document).

    Written at every callback of the export (each finished resource type, and every few hundred
    items inside a big one), at most every ``interval`` seconds except for the first and last one.
    A failure to write it never stops the export; it is reported once as a warning.
    """

    def __init__(self, path, name, interval=0.5, clock=time.time):
        self.path = path
        self.clock = clock
        self.interval = interval
        self.started = clock()
        self.last = None
        self.warning = None
        self.state = {"backup": name, "phase": "export", "started": _record.timestamp(self.started),
                      "started_at": self.started,
                      "resource": None, "resource_items": 0, "items_backed_up": 0, "resource_types_done": 0,
                      "done": False}
        self.write(self.started)

    def __call__(self, event):
        self.state["resource"] = event.get("resource")
        self.state["resource_items"] = event.get("items", 0)
        self.state["items_backed_up"] = event.get("items_backed_up", 0)
        if event.get("done"):
            self.state["resource_types_done"] += 1
        now = self.clock()
        if self.last is None or now - self.last >= self.interval:
            self.write(now)

    def finish(self, **extra):
        self.state.update(extra)
        self.state["done"] = True
        self.write(self.clock())

    def write(self, now):
        self.last = now
        self.state["updated"] = _record.timestamp(now)
        self.state["updated_at"] = now
        self.state["elapsed"] = round(now - self.started, 3)
        try:
            _layout.atomic_write(self.path, (json.dumps(self.state, sort_keys=True) + "\n").encode("utf-8"),
                                 what="the progress file", sync=False)
        except KubehooksError as exc:
            if self.warning is None:
                self.warning = str(exc)


def resolve_backup_dir(params):
    """The backup directory from ``backup_dir``, or from ``storage_dir``/``cluster``/``name``."""
    return _layout.resolve_backup_dir(params["name"], params.get("backup_dir"), params.get("storage_dir"),
                                      params.get("cluster"))[0]


def check_exclude_pods(entries):
    for entry in entries or []:
        namespace, slash, name = entry.partition("/")
        if not slash or not namespace or not name or "/" in name:
            raise KubehooksError("exclude_pods: %r is not namespace/name" % (entry,))


def planned_types(get_json, params):
    """Check mode: the resource types the export would LIST, from discovery only."""
    warnings = []
    resources = _export.preferred_resources(_export.discover(get_json, warnings))
    resource_filter = _scope.ResourceFilter(params["included_resources"], params["excluded_resources"], resources)
    all_namespaces = _scope.namespaces_include_everything(params["included_namespaces"],
                                                           params["excluded_namespaces"])
    types, seen = [], set()
    namespaces = None
    for resource in resources:
        name = resource["group_resource"]
        if not _scope.include_resource_type(name, resource["namespaced"], params["include_cluster_resources"],
                                             all_namespaces, resource_filter):
            continue
        cohabitants = _export.COHABITATING.get(resource["resource"])
        if cohabitants and resource["group"] in cohabitants:
            if resource["resource"] in seen:
                continue
            seen.add(resource["resource"])
        if name == _scope.NAMESPACES:
            namespaces = name
            continue
        types.append(name)
    if namespaces:
        types.append(namespaces)
    return types, warnings


def execute(km):
    params = km.params
    check_exclude_pods(params["exclude_pods"])
    bdir = resolve_backup_dir(params)
    factory = km.client_factory()
    if km.check_mode:
        _scope.validate_namespace_scope(params["included_namespaces"], params["excluded_namespaces"])
        _scope.parse_label_selectors(params["label_selectors"])
        get_json = _export.api_getter(factory())
        types, warnings = planned_types(get_json, params)
        return dict(changed=True, backup_dir=bdir, resource_types=types, warning_messages=warnings)

    started = time.time()
    progress = None
    try:
        _layout.ensure_dir(bdir)
        progress = ProgressFile(_layout.progress_path(bdir, params["name"]), params["name"])
    except OSError:
        pass  # export() reports the unusable directory itself
    try:
        result = _export.export(
            factory(), params["name"], bdir,
            included_namespaces=params["included_namespaces"], excluded_namespaces=params["excluded_namespaces"],
            included_resources=params["included_resources"], excluded_resources=params["excluded_resources"],
            label_selector=params["label_selectors"], include_cluster_resources=params["include_cluster_resources"],
            exclude_pods=params["exclude_pods"], progress=progress, page_size=params["page_size"])
    except KubehooksError as exc:
        if progress is not None:
            progress.finish(error=str(exc))
        exc.result = dict(backup_dir=bdir, duration=round(time.time() - started, 3))
        raise
    if progress is not None:
        progress.finish(items_backed_up=result["items_backed_up"], total_items=result["total_items"],
                        errors=len(result["errors"]))
    result["started_at"], result["finished_at"] = started, time.time()
    warnings = list(result.pop("warnings"))
    if progress is not None and progress.warning:
        warnings.append(progress.warning)
    for warning in warnings:
        km.module.warn(warning)
    result.update(changed=True, backup_dir=bdir, warning_messages=warnings,
                  progress_path=progress.path if progress is not None else None,
                  duration=round(time.time() - started, 3))
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
