# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the critical section (freeze, capture, thaw) that backup_capture and backup_create share."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  freeze_together:
    description:
      - Freeze every pod of the plan, capture everything, then thaw every pod, instead of one group per pod
        (or per shared PersistentVolumeClaim).
    type: bool
    default: false
  default_volumes_to_fs_backup:
    description:
      - Capture every volume of a pod unless it is opted out (Velero's C(--default-volumes-to-fs-backup));
        otherwise only the volumes opted in with the C(backup.velero.io/backup-volumes) annotation.
      - Each selected volume (PersistentVolumeClaim or emptyDir) is copied with C(tar) through C(pods/exec), while its
        pod is frozen, into C(<backup dir>/<name>-volumes/<namespace>/<pod>/<volume>.tar.gz); the index
        C(<name>-volumes.json.gz) (size, file count and sha256 per volume) is written as soon as the captures end,
        and C(<name>-progress.json) shows the bytes copied so far.
    type: bool
    default: false
  snapshot_volumes:
    description:
      - Take a CSI snapshot of each PersistentVolumeClaim mounted by a pod of the plan (Velero's
        C(--snapshot-volumes) with its CSI plugin), while the pod is frozen. A volume selected for the file-system copy
        is copied, not snapshotted (fs backup wins, as in Velero); a claim mounted by several pods is snapshotted once.
      - The VolumeSnapshotClass is chosen as Velero chooses it, among the classes of the PV's CSI driver - the one
        named by the claim's annotation C(velero.io/csi-volumesnapshot-class), else the one labelled
        C(velero.io/csi-volumesnapshot-class), else the one annotated
        C(snapshot.storage.kubernetes.io/is-default-class=true), else the only one. No class is an error of that
        volume (the backup ends C(PartiallyFailed)), found before anything is frozen; so is an annotation that names a
        missing class or a class of another driver (Velero falls back to the label there).
      - A claim that is not bound, or whose PV is not a CSI volume (a local or hostPath PV), is skipped with a note in
        RV(kubehooks.backup.backup_capture#module:volumes_skipped), as Velero skips a volume it has no snapshotter for.
      - Each VolumeSnapshot (C(velero-<claim>-<random>), labelled C(velero.io/backup-name)) is created while its
        group is frozen; the post hooks run as soon as every snapshot of the group is cut (bound to its
        VolumeSnapshotContent with a C(creationTime)), not when it is C(readyToUse). C(readyToUse) is awaited after
        the thaw. When the section is split (M(kubehooks.backup.backup_capture) with C(stage=freeze)), that wait
        happens before the freeze stage returns, so the pods are still frozen.
      - Each snapshot is an entry of the volumes index C(<name>-volumes.json.gz) with C(method=csi-snapshot), the
        VolumeSnapshot, its content and the snapshot handle.
    type: bool
    default: true
  csi_snapshot_timeout:
    description:
      - Seconds a VolumeSnapshot may take to become C(readyToUse), from its creation (Velero's
        C(--csi-snapshot-timeout), 10 minutes). Its cut is also bounded by O(max_freeze_seconds); a snapshot not cut
        in time is deleted and its volume fails; one cut but not ready in time fails its volume and is kept.
    type: float
    default: 600
  check_storage_room:
    description:
      - Before anything is frozen, check that the backup directory has room for the volumes to capture - the sum of
        their PersistentVolumeClaims' sizes (capacity, else request) and emptyDir size limits - and fail,
        naming the directory, the space needed and free, when it does not.
      - Conservative - the copy is gzip-compressed and volumes are rarely full, so the data written is usually
        smaller. Set V(false) to skip the check (and its C(get) on the PersistentVolumeClaims).
    type: bool
    default: true
  lease:
    description:
      - Take a C(coordination.k8s.io/v1) Lease (O(lease_namespace)/O(lease_name)) before the first pre hook and hold
        it until the pods are thawed, so that two backups of one cluster never freeze and thaw at the same time
        (one run's thaw could unfreeze the other's pods mid-capture). A second run waits up to
        O(lease_wait_seconds), then fails naming the holder, with nothing frozen. Taken only when some pod has pre
        hooks. The holder is C(<name>/<run_id>).
      - Its C(leaseDurationSeconds) is O(max_freeze_seconds) (600 when 0) + 2 x O(thaw_retry_seconds) + 70, so an
        API server outage cannot let it lapse while the run's pods may be frozen. The watchdog renews it every 10 s
        while it watches and thaws (it is taken over with the section when the run dies) and deletes it when the
        pods are thawed (retried while the API server is unreachable).
    type: bool
    default: true
  lease_namespace:
    description:
      - The namespace of the Lease. RBAC - C(create), C(get), C(update) and C(delete) on C(leases) there.
    type: str
    default: default
  lease_name:
    description:
      - The name of the Lease. One name per cluster (the default) serialises every backup's frozen section; backups
        whose scopes never share pods may use names of their own to overlap.
    type: str
    default: kubehooks-backup-freeze
  lease_wait_seconds:
    description:
      - How long to wait for the Lease while another run holds it.
    type: float
    default: 300
  max_freeze_seconds:
    description:
      - The frozen section's deadline in seconds, from the first pre hook. V(0) means no deadline (Velero's
        behaviour; the watchdog then acts only when the run dies).
      - The default, 10 minutes, is far above what a freeze around a file-system copy of a few GB needs and
        bounds how long a bad hook timeout (a tenant's C(2562047h)) can hold a slot. Raise it for volumes whose
        copy takes longer.
    type: float
    default: 600
  thaw_retry_seconds:
    description:
      - How long post hooks that could not be executed are retried, from the start of a group's post phase.
      - The default, 5 minutes, outlasts the restart of an API server.
    type: float
    default: 300
  parallelism:
    description:
      - How many groups run at a time, and how many pods of one group run their hooks at a time.
    type: int
    default: 8
  output_limit:
    description:
      - Bytes of stdout and of stderr kept per hook.
    type: int
    default: 65536
"""
