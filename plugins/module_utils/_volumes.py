# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: which pod volumes a file-system copy captures (pure). Not a public API.

Velero's opt-in / opt-out API for file-system backup, read from Velero v1.18.1
(``pkg/util/podvolume/pod_volume.go`` ``GetVolumesByPod`` and ``pkg/podvolume/backupper.go``
``BackupPodVolumes``):

- ``default_volumes_to_fs_backup`` false (Velero's default, opt-in): exactly the volumes named in
  the pod annotation ``backup.velero.io/backup-volumes`` (comma-separated); the excludes annotation
  is not read.
- ``default_volumes_to_fs_backup`` true (opt-out): every volume of the pod except those named in
  ``backup.velero.io/backup-volumes-excludes``, volumes whose name starts with ``default-token``,
  and hostPath, secret, configMap, projected (the service-account token ``kube-api-access-*``
  volume is one) and downwardAPI volumes.
- Then, per volume: a pod that is not Running (or not scheduled, or being deleted) has all its
  volumes skipped; a block volume (``volumeDevices``) is skipped; a volume mounted by no container
  is skipped.

Where this differs from Velero, on purpose, and every difference is reported, never silent:

- A name in ``backup-volumes`` that is not a volume of the pod: Velero logs a warning and goes on
  (the backup stays Completed); here it is a per-volume error (the backup becomes PartiallyFailed),
  as is a name with surrounding spaces (``"a, b"``: Velero looks for a volume named ``" b"``) or an
  empty name (``"a,,b"``, a trailing comma).  Names in the excludes annotation that match no volume
  are ignored, as Velero does (excluding nothing loses nothing).
- A volume mounted by no container: Velero skips it with a warning (its data is then silently
  missing from the backup); here it is a per-volume error in both modes.  The same holds for a
  volume mounted only through ``subPath`` (no container sees the whole volume) and a volume whose
  containers are not running (a copy needs a running container: ``pods/exec``).
- In opt-in mode Velero copies a hostPath-free secret, configMap, projected or downwardAPI volume
  named in the annotation; here those are skipped in both modes (their content is API state, exported
  with the resources, and a Secret's data never lands in a volume archive), with the reason.
- Only ``persistentVolumeClaim`` and ``emptyDir`` volumes are copied; other volume types (nfs, csi,
  ephemeral, iscsi, ...), which Velero's node agent would copy from the node, are skipped with the
  reason "type not supported by fs-copy".
- A PVC bound to a hostPath PV (Velero skips it after looking the PV up) is not detected here: this
  module does no API call.

Each selected volume is ``dict(volume, pvc, kind, container, mount_path, error)``: ``error`` is None
when the volume can be copied from ``container`` at ``mount_path``, else the message of the
per-volume error (``container``/``mount_path`` are then None), so that every selected volume gives
exactly one entry in the volumes index.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import json
import os

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._layout import atomic_write, ensure_dir

ANNOTATION_BACKUP_VOLUMES = "backup.velero.io/backup-volumes"
ANNOTATION_EXCLUDE_VOLUMES = "backup.velero.io/backup-volumes-excludes"

CAPTURED_KINDS = ("persistentVolumeClaim", "emptyDir")
CSI_SNAPSHOT_METHOD = "csi-snapshot"  # _csi_snapshot.METHOD (that module imports the API client)
# Volume types whose content is API state or the node's: skipped as Velero's fs backup skips them.
_SKIPPED_KINDS = (
    ("hostPath", "hostPath volume: not copied (as Velero's file-system backup skips it)"),
    ("secret", "secret volume: its content is the Secret, exported with the resources"),
    ("configMap", "configMap volume: its content is the ConfigMap, exported with the resources"),
    ("projected", "projected volume: its content comes from API state (service-account token, "
                  "Secrets, ConfigMaps, downward API)"),
    ("downwardAPI", "downwardAPI volume: its content comes from the pod's own fields"),
)


# --------------------------------------------------------------------------------------------
# Names that become paths (``_layout.volume_archive``)

def safe_path_part(value):
    """True when ``value`` (a namespace, pod or volume name) is one safe path component."""
    return (isinstance(value, str) and value not in ("", ".", "..") and "/" not in value
            and "\0" not in value and "\\" not in value)


# --------------------------------------------------------------------------------------------
# Selection

def volume_kind(volume):
    """The volume source key of a pod volume (``persistentVolumeClaim``, ``emptyDir``, ...) or None."""
    for key in volume:
        if key != "name":
            return key
    return None


def _pod_running_problem(pod):
    """Velero's ``kube.IsPodRunning``: a reason string when the pod's volumes cannot be copied."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Unknown"
    if not spec.get("nodeName"):
        return "pod is not scheduled (phase %s)" % phase
    if phase != "Running":
        return "pod is not running (phase %s)" % phase
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "pod is being deleted"
    return None


def _containers(pod):
    """Containers that may mount a volume: ``spec.containers`` and native sidecars, in order."""
    spec = pod.get("spec") or {}
    out = list(spec.get("containers") or [])
    out += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return out


def _container_states(pod):
    status = pod.get("status") or {}
    states = {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for entry in status.get(key) or []:
            if isinstance(entry, dict) and entry.get("name"):
                states[entry["name"]] = entry.get("state") or {}
    return states


def _state_text(state):
    for key, value in (state or {}).items():
        reason = (value or {}).get("reason") if isinstance(value, dict) else None
        return "%s: %s" % (key, reason) if reason else key
    return "no status"


def _find_mount(pod, volume_name):
    """``(container, mount_path, None)`` of a running container mounting the whole volume, else
    ``(None, None, problem)``."""
    states = _container_states(pod)
    whole, partial, stopped = [], [], []
    for container in _containers(pod):
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") != volume_name:
                continue
            if mount.get("subPath") or mount.get("subPathExpr"):
                partial.append(container.get("name"))
                continue
            if "running" not in states.get(container.get("name"), {}):
                stopped.append("%s (%s)" % (container.get("name"), _state_text(states.get(container.get("name")))))
                continue
            whole.append((container.get("name"), mount.get("mountPath")))
    if whole:
        return whole[0][0], whole[0][1], None
    if stopped:
        return None, None, "volume %s is mounted only in containers that are not running: %s" % (
            volume_name, ", ".join(stopped))
    if partial:
        return None, None, ("volume %s is mounted only through subPath (containers %s): no container sees "
                            "the whole volume" % (volume_name, ", ".join(partial)))
    return None, None, "volume %s is declared in the pod but mounted by no container" % volume_name


def _split_names(value):
    """Velero's ``strings.Split(value, ",")``; empty value -> no names."""
    if not value:
        return []
    return value.split(",")


def _name_problem(name):
    if name == "":
        return "an empty volume name (a doubled or trailing comma?)"
    if name != name.strip():
        return "volume name %r has surrounding spaces (Velero would look for a volume of exactly that name)" % name
    return None


def select_volumes(pod, default_volumes_to_fs_backup=False):
    """Which volumes of ``pod`` (API JSON dict) a file-system copy captures: ``(selected, skipped)``.

    ``selected``: ``dict(volume, pvc, kind, container, mount_path, error)`` in the pod's volume order
    (opt-out) or the annotation's order (opt-in); ``error`` not None means the volume was asked for
    but cannot be copied (it must be recorded as failed).  ``skipped``: ``dict(volume, reason)``.
    """
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    volumes = [v for v in (pod.get("spec") or {}).get("volumes") or [] if isinstance(v, dict)]
    by_name = dict((v.get("name"), v) for v in volumes)
    where = "pod %s/%s" % (meta.get("namespace"), meta.get("name"))
    selected, skipped = [], []

    def fail(volume_name, kind, pvc, message):
        selected.append(dict(volume=volume_name, pvc=pvc, kind=kind, container=None, mount_path=None,
                             error="%s: %s" % (where, message)))

    if default_volumes_to_fs_backup:
        excluded = set(_split_names(annotations.get(ANNOTATION_EXCLUDE_VOLUMES)))
        candidates = [(v.get("name"), True) for v in volumes]
    else:
        candidates = []
        seen = set()
        for volume_name in _split_names(annotations.get(ANNOTATION_BACKUP_VOLUMES)):
            if volume_name in seen:
                continue
            seen.add(volume_name)
            candidates.append((volume_name, False))
        excluded = set()

    running_problem = _pod_running_problem(pod)
    devices = set(d.get("name") for c in _containers(pod) for d in c.get("volumeDevices") or [])
    for volume_name, implicit in candidates:
        if not implicit:
            problem = _name_problem(volume_name)
            if problem is None and volume_name not in by_name:
                problem = "no volume named %r in the pod (annotation %s: %r)" % (
                    volume_name, ANNOTATION_BACKUP_VOLUMES, annotations.get(ANNOTATION_BACKUP_VOLUMES))
            elif problem is not None:
                problem = "annotation %s=%r: %s" % (ANNOTATION_BACKUP_VOLUMES,
                                                    annotations.get(ANNOTATION_BACKUP_VOLUMES), problem)
            if problem is not None:
                fail(volume_name, None, None, problem)
                continue
        volume = by_name[volume_name]
        kind = volume_kind(volume)
        reason = dict(_SKIPPED_KINDS).get(kind)
        if reason is None and implicit:
            if volume_name in excluded:
                reason = "opted out by annotation %s" % ANNOTATION_EXCLUDE_VOLUMES
            elif volume_name.startswith("default-token"):
                reason = "default service-account token volume"
        if reason is None and kind not in CAPTURED_KINDS:
            reason = "volume type %s is not supported by the fs-copy method (only %s)" % (
                kind, " and ".join(CAPTURED_KINDS))
        if reason is None and running_problem:
            reason = running_problem
        if reason is None and volume_name in devices:
            reason = "block volume (volumeDevices): not supported by a file-system copy"
        if reason is not None:
            skipped.append(dict(volume=volume_name, reason=reason))
            continue
        pvc = (volume.get("persistentVolumeClaim") or {}).get("claimName") if kind == "persistentVolumeClaim" else None
        if not safe_path_part(volume_name):
            fail(volume_name, kind, pvc, "volume name %r cannot name a file" % volume_name)
            continue
        container, mount_path, problem = _find_mount(pod, volume_name)
        if problem is not None:
            fail(volume_name, kind, pvc, problem)
            continue
        selected.append(dict(volume=volume_name, pvc=pvc, kind=kind, container=container,
                             mount_path=mount_path, error=None))
    return selected, skipped


# ---------------------------------------------------------------------------------------------
# The volumes index (<name>-volumes.json.gz): what a backup holds of each volume

def write_json_gz(path, data, what):
    """Write ``data`` as gzip JSON atomically, owner-only; returns ``path``; KubehooksError naming ``what``."""
    blob = gzip.compress(json.dumps(data, sort_keys=True).encode("utf-8"), mtime=0)
    try:
        ensure_dir(os.path.dirname(os.path.abspath(path)))
    except OSError as exc:
        raise KubehooksError("cannot write %s %s: %s" % (what, path, exc.strerror or exc))
    return atomic_write(path, blob, what=what)


def write_volumes_index(path, entries):
    """Write the volumes index (a gzip JSON list) atomically, owner-only; returns ``path``.

    ``path`` is ``_layout.volumes_index(bdir, name)``; KubehooksError when it cannot be written."""
    return write_json_gz(path, list(entries), "the volumes index")


def read_volumes_index(path):
    """The entries of a volumes index; [] when the file does not exist; KubehooksError if unreadable."""
    try:
        with gzip.open(path, "rb") as handle:
            entries = json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            return []
        raise KubehooksError("cannot read the volumes index %s: %s" % (path, getattr(exc, "strerror", None) or exc))
    except ValueError as exc:
        raise KubehooksError("the volumes index %s is not valid JSON: %s" % (path, exc))
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise KubehooksError("the volumes index %s is not a list of entries" % path)
    return entries


def volume_totals(entries):
    """Totals of volumes-index entries for the record: volumes, succeeded, failed, bytes, files; with CSI
    snapshots among them also ``csi_snapshots`` (attempted) and ``csi_snapshots_completed`` (ready)."""
    entries = list(entries or [])
    totals = dict(
        volumes=len(entries),
        succeeded=sum(1 for e in entries if e.get("status") == "succeeded"),
        failed=sum(1 for e in entries if e.get("status") != "succeeded"),
        bytes=sum(int(e.get("bytes") or 0) for e in entries),
        files=sum(int(e.get("files") or 0) for e in entries),
    )
    snapshots = [e for e in entries if e.get("method") == CSI_SNAPSHOT_METHOD]
    if snapshots:
        totals["csi_snapshots"] = sum(1 for e in snapshots if e.get("volume_snapshot"))
        totals["csi_snapshots_completed"] = sum(1 for e in snapshots if e.get("status") == "succeeded")
    return totals
