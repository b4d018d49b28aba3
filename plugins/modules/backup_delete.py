#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_delete
short_description: Delete a backup, or every expired backup, like velero backup delete
version_added: 0.1.0
description:
  - With O(name), deletes that backup like C(velero backup delete) - its whole directory, with the record, the archive,
    the logs and the captured volumes it holds.
  - With O(expired=true), deletes every backup of the storage directory (or of one O(cluster)) whose C(status.expiration)
    has passed - the expiration the O(kubehooks.backup.backup_record#module:ttl) of its run set - like Velero's garbage
    collection. Backups without a TTL never expire.
  - A backup whose run may still be going (phase C(New) or C(InProgress)) is never deleted - with O(name) the task fails
    saying so, with O(expired=true) it is left and listed in RV(skipped_in_progress). A run that was killed while its pods
    were frozen stays C(InProgress) until the playbook C(kubehooks.backup.thaw) thaws it and marks it C(Failed).
  - A directory whose record is missing or names another backup is never deleted.
  - Deleting a backup that does not exist changes nothing.
  - Reads and deletes files only; it never contacts the cluster.
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.backup_location
attributes:
  check_mode:
    support: full
    description: In check mode nothing is deleted; RV(deleted) lists what would be.
  diff_mode:
    support: none
    description: Deleted files are listed in RV(deleted), not as a diff.
options:
  name:
    description:
      - The backup to delete. Exactly one of O(name) and O(expired=true) is required.
    type: str
  expired:
    description:
      - Delete every backup whose expiration has passed.
    type: bool
    default: false
notes:
  - Snapshots - the collection takes none yet; when it does, the snapshots a backup owns are deleted with it.
seealso:
  - module: kubehooks.backup.backup_info
  - name: velero backup delete
    description: The Velero command this module mirrors.
    link: https://velero.io/docs/main/backup-reference/
"""

EXAMPLES = r"""
- name: Like velero backup delete nginx-hook-test
  kubehooks.backup.backup_delete:
    name: nginx-hook-test

- name: Delete the expired backups of cluster prod (for a schedule)
  kubehooks.backup.backup_delete:
    expired: true
    cluster: prod
    storage_dir: /var/lib/kubehooks/storage
"""

RETURN = r"""
deleted:
  description: The backups deleted (in check mode - that would be deleted).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The backup name.
      type: str
    path:
      description: Its directory.
      type: str
    phase:
      description: Its phase.
      type: str
    files:
      description: The files it held, relative to its directory.
      type: list
      elements: str
    bytes:
      description: Their total size.
      type: int
    snapshots:
      description: The snapshots deleted with it (none yet; the collection takes no snapshots).
      type: list
      elements: str
skipped_in_progress:
  description: With O(expired=true), the expired backups left because their run may still be going (C(New) or C(InProgress)).
  returned: always
  type: list
  elements: str
"""

import os

from ansible_collections.kubehooks.backup.plugins.module_utils import _delete, _layout
from ansible_collections.kubehooks.backup.plugins.module_utils._module import KubehooksModule


def execute(km):
    params = km.params
    storage = params.get("storage_dir") or _layout.default_storage_dir()
    if params.get("cluster") is not None:
        _layout.check_cluster_name(params["cluster"])
    if params["expired"]:
        if params.get("name") or params.get("backup_dir"):
            km.fail("expired=true deletes every expired backup: give neither name nor backup_dir")
        rows, running = _delete.expired(storage, params.get("cluster"))
        deleted = [_delete.delete_backup(row["path"], row["name"], km.check_mode) for row in rows]
        return dict(changed=bool(deleted), deleted=deleted, skipped_in_progress=[row["name"] for row in running])
    if not params.get("name"):
        km.fail("give the backup to delete (name), or expired=true")
    if params.get("backup_dir"):
        bdir = params["backup_dir"] if os.path.isdir(params["backup_dir"]) else None
    else:
        bdir = _delete.resolve(storage, params["name"], params.get("cluster"))
    if bdir is None:
        return dict(changed=False, deleted=[], skipped_in_progress=[])
    return dict(changed=True, deleted=[_delete.delete_backup(bdir, params["name"], km.check_mode)],
                skipped_in_progress=[])


def main():
    spec = dict(
        name=dict(type="str"),
        expired=dict(type="bool", default=False),
        storage_dir=dict(type="path"),
        cluster=dict(type="str"),
        backup_dir=dict(type="path"),
    )
    KubehooksModule(
        spec, needs_client=False,
        mutually_exclusive=[("backup_dir", "storage_dir"), ("backup_dir", "cluster")],
    ).run(execute)


if __name__ == "__main__":
    main()
