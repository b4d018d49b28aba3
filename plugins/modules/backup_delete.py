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
  - The CSI snapshots the backup took (the entries with C(method=csi-snapshot) of its volumes index) are deleted first,
    as C(velero backup delete) does - the VolumeSnapshotContent's C(deletionPolicy) is set back to C(Delete) (the backup
    set it to C(Retain)), the VolumeSnapshot is deleted, then the content if it is still there, so that the CSI driver
    deletes the snapshot itself. A snapshot already gone is fine. A VolumeSnapshot of the same name that is not
    labelled C(velero.io/backup-name) with this backup (for example one a restore re-created) is left alone.
  - A snapshot that cannot be deleted (no permission, API server unreachable) fails the task naming it, and the backup's
    directory is kept, so that nothing is lost and deleting again retries.
  - Only a backup with CSI snapshots contacts the cluster (with the connection options, and the C(kubernetes) Python
    library); any other backup is deleted offline - files only - and the connection options are then not used.
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.auth
  - kubehooks.backup.backup_location
attributes:
  check_mode:
    support: full
    description: In check mode nothing is deleted and nothing in the cluster is changed (not even read);
      RV(deleted) lists what would be, with the snapshots that would be deleted.
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
  - RBAC for the snapshots - C(get) and C(delete) on C(volumesnapshots) in the backup's namespaces, C(patch) and
    C(delete) on the cluster-scoped C(volumesnapshotcontents) (the shipped C(files/rbac/backup.yml) grants them).
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

- name: Delete the expired backups of cluster prod (for a schedule), with their CSI snapshots
  kubehooks.backup.backup_delete:
    expired: true
    cluster: prod
    storage_dir: /var/lib/kubehooks/storage
    kubeconfig: /etc/kubehooks/prod.kubeconfig
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
      description:
        - The CSI snapshots deleted with it, one per VolumeSnapshot the backup took (empty for a backup without any).
        - When a snapshot cannot be deleted (O(name)), the failed task's result holds this list as C(snapshots).
      type: list
      elements: dict
      contains:
        namespace:
          description: The VolumeSnapshot's namespace.
          type: str
        name:
          description: The VolumeSnapshot's name.
          type: str
        content:
          description: Its VolumeSnapshotContent (null when it had none).
          type: str
        outcome:
          description: C(deleted), C(already gone), C(would delete) (check mode) or C(failed).
          type: str
        error:
          description: Why it could not be deleted (with C(failed)), naming the snapshot; else null.
          type: str
skipped_in_progress:
  description: With O(expired=true), the expired backups left because their run may still be going (C(New) or C(InProgress)).
  returned: always
  type: list
  elements: str
errors:
  description: With O(expired=true), why some expired backups were not deleted (the task then fails after deleting the
    others).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.kubehooks.backup.plugins.module_utils import _delete, _layout
from ansible_collections.kubehooks.backup.plugins.module_utils._args import argument_spec
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._module import KubehooksModule


def _caller(km):
    """A function returning the API transport, built on first use (only a backup with CSI snapshots uses it)."""
    box = {}

    def caller():
        if "call" not in box:
            from ansible_collections.kubehooks.backup.plugins.module_utils import _api, _client
            if _client.KUBERNETES_IMPORT_ERROR is not None:
                raise KubehooksError("deleting the CSI snapshots of a backup needs the cluster: %s"
                                     % missing_required_lib("kubernetes"))
            box["call"] = _api.api_caller(km.client_factory()())
        return box["call"]

    return caller


def execute(km):
    params = km.params
    caller = _caller(km)
    storage = params.get("storage_dir") or _layout.default_storage_dir()
    if params.get("cluster") is not None:
        _layout.check_cluster_name(params["cluster"])
    if params["expired"]:
        if params.get("name") or params.get("backup_dir"):
            km.fail("expired=true deletes every expired backup: give neither name nor backup_dir")
        rows, running = _delete.expired(storage, params.get("cluster"))
        deleted, errors = [], []
        for row in rows:  # one backup that cannot be deleted does not keep the others
            try:
                deleted.append(_delete.delete_backup(row["path"], row["name"], km.check_mode, caller))
            except KubehooksError as exc:
                errors.append(str(exc))
        result = dict(changed=bool(deleted), deleted=deleted, skipped_in_progress=[row["name"] for row in running],
                      errors=errors)
        if errors:
            result.update(failed=True, msg="; ".join(errors))
        return result
    if not params.get("name"):
        km.fail("give the backup to delete (name), or expired=true")
    if params.get("backup_dir"):
        bdir = params["backup_dir"] if os.path.isdir(params["backup_dir"]) else None
    else:
        bdir = _delete.resolve(storage, params["name"], params.get("cluster"))
    if bdir is None:
        return dict(changed=False, deleted=[], skipped_in_progress=[], errors=[])
    return dict(changed=True, deleted=[_delete.delete_backup(bdir, params["name"], km.check_mode, caller)],
                skipped_in_progress=[], errors=[])


def main():
    spec = dict(
        name=dict(type="str"),
        expired=dict(type="bool", default=False),
        storage_dir=dict(type="path"),
        cluster=dict(type="str"),
        backup_dir=dict(type="path"),
    )
    # The connection options, but no kubernetes library check here: a backup without CSI snapshots is deleted
    # offline, and the library is required only when snapshots are (see _caller).
    KubehooksModule(
        argument_spec(spec), needs_client=False,
        mutually_exclusive=[("backup_dir", "storage_dir"), ("backup_dir", "cluster")],
    ).run(execute)


if __name__ == "__main__":
    main()
