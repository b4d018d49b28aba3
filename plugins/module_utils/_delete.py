# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: a backup's end of life, like ``velero backup delete`` and Velero's garbage
collection of expired backups. Not a public API.

A backup is deleted as a whole: its directory, with the record, the archive, the logs and the
captured volumes it holds.  Nothing is deleted whose run may still be going (phase ``New`` or
``InProgress``: a run killed while frozen is thawed first by the thaw playbook, which marks it
``Failed``), nor a directory whose record is missing or names another backup.  Expired: a backup
whose ``status.expiration`` has passed.

The CSI snapshots the backup took (its volumes index) are deleted first, through
``_csi_snapshot.delete_snapshots``; the cluster is contacted only for a backup that has snapshot
entries.  A snapshot that cannot be deleted fails the deletion and the directory is kept (nothing is
lost; deleting again retries).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import time

from ansible_collections.kubehooks.backup.plugins.module_utils import _csi_snapshot, _layout, _listing, _record, \
    _volumes
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

RUNNING_PHASES = (_record.PHASE_NEW, _record.PHASE_IN_PROGRESS)


def _contents(bdir):
    """(relative file paths, total bytes) under ``bdir``."""
    files, size = [], 0
    for root, _dirs, names in os.walk(bdir):
        for name in names:
            path = os.path.join(root, name)
            files.append(os.path.relpath(path, bdir))
            try:
                size += os.lstat(path).st_size
            except OSError:
                pass
    return sorted(files), size


def check_deletable(bdir, name):
    """The backup's record when ``bdir`` may be deleted; KubehooksError saying why not."""
    record = _record.load_record(bdir)
    recorded = (record.get("metadata") or {}).get("name")
    if recorded != name:
        raise KubehooksError("%s holds backup %s, not %s: nothing deleted" % (bdir, recorded, name))
    phase = (record.get("status") or {}).get("phase") or _record.PHASE_NEW
    if phase in RUNNING_PHASES:
        raise KubehooksError(
            "backup %s is %s: its run may still be going, so it is not deleted. A run that was killed is thawed "
            "and marked Failed by the playbook kubehooks.backup.thaw; delete it after that." % (name, phase))
    return record


def delete_backup(bdir, name, check_mode=False, caller=None):
    """Delete backup ``name`` in ``bdir``; returns what was (or, in check mode, would be) removed.

    ``caller``: a function returning the API transport (``_api.api_caller``'s ``call``), called only
    when the backup has CSI snapshots to delete.  A snapshot not deleted raises KubehooksError (its
    ``result`` holds ``snapshots``) and the directory is kept.
    """
    record = check_deletable(bdir, name)
    files, size = _contents(bdir)
    result = dict(name=name, path=bdir, phase=(record.get("status") or {}).get("phase"), files=files, bytes=size,
                  snapshots=[])
    owned = _csi_snapshot.owned_snapshots(_volumes.read_volumes_index(_layout.volumes_index(bdir, name)))
    if owned:
        if check_mode:
            result["snapshots"] = _csi_snapshot.delete_snapshots(None, owned, name, check_mode=True)
        else:
            if caller is None:
                raise KubehooksError("backup %s has %d CSI snapshots to delete and no cluster connection was "
                                     "given: nothing deleted" % (name, len(owned)))
            result["snapshots"] = _csi_snapshot.delete_snapshots(caller(), owned, name)
        failed = [s["error"] for s in result["snapshots"] if s["outcome"] == "failed"]
        if failed:
            error = KubehooksError("backup %s was not deleted: %d of its %d CSI snapshots could not be deleted, so "
                                   "its directory %s is kept (delete it again to retry): %s"
                                   % (name, len(failed), len(owned), bdir, "; ".join(failed)))
            error.result = dict(snapshots=result["snapshots"])
            raise error
    if not check_mode:
        try:
            shutil.rmtree(bdir)
        except OSError as exc:
            raise KubehooksError("could not delete backup %s (%s): %s; what is left is still there"
                                 % (name, bdir, exc.strerror or exc))
    return result


def is_expired(row, now=None):
    """Whether a :func:`_listing.list_records` row's expiration has passed."""
    when = _record.parse_timestamp(row.get("expiration"))
    return when is not None and when <= (time.time() if now is None else now)


def expired(storage, cluster=None, now=None):
    """(rows to delete, rows kept because their run is going) among the expired backups of ``storage``."""
    rows = [row for row in _listing.list_records(storage, cluster, now) if is_expired(row, now)]
    running = [row for row in rows if row.get("status") in RUNNING_PHASES]
    return [row for row in rows if row not in running], running


def resolve(storage, name, cluster=None):
    """The directory of backup ``name``, or None when there is no such backup."""
    _layout.check_backup_name(name)
    try:
        return _listing.find_backup(storage, name, cluster)
    except KubehooksError as exc:
        if str(exc).startswith("no backup "):
            return None
        raise
