#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: restore_info
short_description: List restores like velero restore get, show one like velero restore describe and logs
version_added: 0.1.0
description:
  - Reads the restore records that M(kubehooks.backup.restore_resources) writes in
    C(<storage>/<cluster>/restores/<name>/); no cluster access.
  - Without O(name), lists the restores (C(velero restore get) - name, backup, status, started, completed,
    errors, warnings, created, selector).
  - With O(name), shows that restore - its Restore object, the warning and error messages per namespace
    (C(velero restore describe)), with O(details) each item's outcome (C(velero restore describe --details)),
    with O(logs) its log entries (C(velero restore logs)).
author:
  - kubehooks.backup maintainers (@kubehooks)
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Reads only.
options:
  name:
    description: The restore to show.
    type: str
  storage_dir:
    description: The backup storage directory; default C($XDG_DATA_HOME/kubehooks/storage), else C(~/.local/share/kubehooks/storage).
    type: path
  cluster:
    description:
      - The cluster's directory under O(storage_dir).
      - Without it, the restores of every cluster are listed, and O(name) is looked up in the only cluster that has it.
    type: str
  details:
    description: With O(name), also return the resource list with each item's outcome.
    type: bool
    default: false
  logs:
    description: With O(name), also return the log entries.
    type: bool
    default: false
  query:
    description: A JMESPath expression applied to the result; its value is returned as RV(query_result).
    type: str
seealso:
  - module: kubehooks.backup.restore_resources
"""

EXAMPLES = r"""
- name: Like velero restore get
  kubehooks.backup.restore_info:
    cluster: prod

- name: Like velero restore describe --details and velero restore logs
  kubehooks.backup.restore_info:
    cluster: prod
    name: nightly-20261125090000
    details: true
    logs: true
"""

RETURN = r"""
restores:
  description: Without O(name), one row per restore (name, backup, status, started, completed, errors, warnings, created, selector, path).
  returned: without name
  type: list
  elements: dict
restore:
  description: With O(name), the restore's row.
  returned: with name
  type: dict
record:
  description: With O(name), the Velero Restore object.
  returned: with name
  type: dict
messages:
  description: With O(name), the results file - C(errors) and C(warnings), each with C(velero), C(cluster) and C(namespaces) messages.
  returned: with name
  type: dict
resource_list:
  description: With O(details), each item as C(ns/name(outcome)) per C(apiVersion/Kind).
  returned: with name and details
  type: dict
log_entries:
  description: With O(logs), the log entries.
  returned: with name and logs
  type: list
  elements: dict
query_result:
  description: The value of O(query) over this result.
  returned: when query is given
  type: raw
"""

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout, _record
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_record as rr
from ansible_collections.kubehooks.backup.plugins.module_utils._module import QUERY_SPEC, KubehooksModule


def execute(km):
    params = km.params
    storage = params.get("storage_dir") or _layout.default_storage_dir()
    cluster = params.get("cluster")
    if cluster is not None:
        _layout.check_cluster_name(cluster)
    if not params.get("name"):
        return dict(changed=False, restores=rr.list_records(storage, cluster))
    name = params["name"]
    rdir = rr.find_restore(storage, name, cluster)
    record = rr.load_record(rdir)
    result = dict(changed=False, restore=rr.summarize(record, rdir), record=record, messages=rr.read_results(rdir, name))
    if params["details"]:
        result["resource_list"] = rr.read_resource_list(rdir, name)
    if params["logs"]:
        result["log_entries"] = _record.read_log(_layout.restore_file(rdir, name, "logs"))
    return result


def main():
    spec = dict(name=dict(type="str"), storage_dir=dict(type="path"), cluster=dict(type="str"),
                details=dict(type="bool", default=False), logs=dict(type="bool", default=False), **QUERY_SPEC)
    KubehooksModule(spec, needs_client=False).run(execute)


if __name__ == "__main__":
    main()
