# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: CSI snapshots of a backup's volumes (Velero's CSI semantics). Not a public API.

The one owner of VolumeSnapshots in a backup, in three steps:

1. ``plan_snapshots`` (before anything is frozen; a few GETs and one LIST): for each PVC mounted by a
   pod of the plan, in plan order, unless the volume is selected for the file-system copy (Velero's
   precedence, ``pkg/util/volumehelper``: a volume opted in to fs backup is not snapshotted): the
   claim, its PV and the PV's CSI driver.  A claim that is not bound, or whose PV is not a CSI volume,
   is skipped with a note (Velero skips a volume it has no snapshotter for).  A claim mounted by
   several pods is snapshotted once.  The VolumeSnapshotClass is chosen as Velero 1.18 does
   (``pkg/util/csi/volume_snapshot.go`` ``GetVolumeSnapshotClass``, see ``choose_class``); no class
   is a per-volume error naming the driver and the label to set.
2. ``cut_snapshots`` (in the critical section, while the pods are frozen): one VolumeSnapshot per
   claim (``generateName: velero-<pvc>-``, labelled ``velero.io/backup-name``), then wait only until
   each is *cut*: bound to its VolumeSnapshotContent with ``creationTime`` set (Velero waits for the
   content's snapshot handle before the post hooks run).  Bounded by ``csi_snapshot_timeout`` and the
   freeze deadline; a snapshot not cut in time is deleted (it would be taken after the thaw) and its
   volume fails.  The entries come back with status ``cut``.
3. ``wait_ready`` (after the thaw): each cut snapshot until ``readyToUse``, bounded by
   ``csi_snapshot_timeout`` from its creation (Velero's ``--csi-snapshot-timeout``, 10m); its content's
   ``snapshotHandle``, ``restoreSize`` and ``deletionPolicy`` are recorded, and the content's deletion
   policy is set to ``Retain`` as Velero does, so that the snapshot outlives its VolumeSnapshot (a
   deleted namespace) and a restore can re-create it from the handle.  Not ready in time: the volume
   fails (the backup is PartiallyFailed); the snapshot is kept (it was cut while frozen).

Entries have the shape of the volumes index (``_capture.index_entry``) with ``method: csi-snapshot``,
``path``/``sha256`` null, ``bytes``/``files`` 0 (nothing was copied), plus ``driver``, ``pv``,
``volume_snapshot_class``, ``volume_snapshot`` (name, in the claim's namespace),
``volume_snapshot_content``, ``snapshot_handle``, ``restore_size``, ``deletion_policy``,
``creation_time`` (the snapshot's, RFC 3339), ``created_at``/``cut_at``/``ready_at`` (epoch seconds,
as this run saw them).  The restore reads them (a claim is recreated from its snapshot).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import time

from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError, api_error_message, \
    error_reason
from ansible_collections.kubehooks.backup.plugins.module_utils._volumes import CSI_SNAPSHOT_METHOD

try:
    from ansible.module_utils.six.moves.urllib.parse import quote
except ImportError:  # pragma: no cover - only outside Ansible
    from urllib.parse import quote

METHOD = CSI_SNAPSHOT_METHOD
GROUP = "snapshot.storage.k8s.io"
VERSION = "v1"
API_VERSION = GROUP + "/" + VERSION
# Velero's names (pkg/apis/velero/v1/labels_annotations.go)
ANNOTATION_PVC_CLASS = "velero.io/csi-volumesnapshot-class"      # on a PVC: the class to use
LABEL_CLASS = "velero.io/csi-volumesnapshot-class"               # on a VolumeSnapshotClass: Velero's pick
ANNOTATION_DEFAULT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
LABEL_BACKUP_NAME = "velero.io/backup-name"
MERGE_PATCH = "application/merge-patch+json"

DEFAULT_TIMEOUT_SECONDS = 600.0    # Velero's --csi-snapshot-timeout (10m)
CUT_POLL_SECONDS = 0.1             # the pods are frozen: look often
READY_POLL_SECONDS = 0.5
# A cut not seen this long before the freeze deadline is given up, so that the section records it
# (instead of abandoning the whole capture at the deadline).
DEADLINE_MARGIN_SECONDS = 1.0


def classes_path(name=None):
    return "/apis/%s/volumesnapshotclasses%s" % (API_VERSION, "/" + quote(name, safe="") if name else "")


def snapshots_path(namespace, name=None):
    return "/apis/%s/namespaces/%s/volumesnapshots%s" % (API_VERSION, quote(namespace, safe=""),
                                                         "/" + quote(name, safe="") if name else "")


def contents_path(name):
    return "/apis/%s/volumesnapshotcontents/%s" % (API_VERSION, quote(name, safe=""))


def label_value(value):
    """Velero's ``label.GetValidName``: a label value of at most 63 characters (long ones hashed)."""
    if len(value) <= 63:
        return value
    return value[:57] + hashlib.sha256(value.encode("utf-8")).hexdigest()[:6]


# ---------------------------------------------------------------------------------------------
# The class (pure)

def choose_class(driver, classes, pvc_annotations=None):
    """The VolumeSnapshotClass for a claim of CSI ``driver``: ``(name, None)`` or ``(None, error)``.

    As Velero 1.18 chooses it, among ``classes`` (VolumeSnapshotClass objects) whose ``driver`` is
    ``driver``: the one the claim's annotation ``velero.io/csi-volumesnapshot-class`` names; else the
    one labelled ``velero.io/csi-volumesnapshot-class``; else the one annotated
    ``snapshot.storage.kubernetes.io/is-default-class: "true"``; else the only one.  Where this is
    stricter than Velero: an annotation naming a class that does not exist, or is for another driver,
    is an error (Velero logs it at debug level and falls back to the label).
    """
    mine = [c for c in classes or [] if isinstance(c, dict) and c.get("driver") == driver]
    wanted = (pvc_annotations or {}).get(ANNOTATION_PVC_CLASS)
    if wanted:
        for klass in classes or []:
            if isinstance(klass, dict) and (klass.get("metadata") or {}).get("name") == wanted:
                if klass.get("driver") != driver:
                    return None, ("the claim's annotation %s names VolumeSnapshotClass %s, which is for driver %s, "
                                  "not %s" % (ANNOTATION_PVC_CLASS, wanted, klass.get("driver"), driver))
                return wanted, None
        return None, "the claim's annotation %s names VolumeSnapshotClass %s, which does not exist" % (
            ANNOTATION_PVC_CLASS, wanted)
    for test in (lambda m: LABEL_CLASS in (m.get("labels") or {}),
                 lambda m: (m.get("annotations") or {}).get(ANNOTATION_DEFAULT_CLASS) == "true"):
        for klass in mine:
            if test(klass.get("metadata") or {}):
                return klass["metadata"].get("name"), None
    if len(mine) == 1:
        return mine[0]["metadata"].get("name"), None
    if not mine:
        return None, ("no VolumeSnapshotClass for CSI driver %s: create one and label it %s=true (or annotate "
                      "the claim with %s)" % (driver, LABEL_CLASS, ANNOTATION_PVC_CLASS))
    names = ", ".join(sorted((c.get("metadata") or {}).get("name") or "?" for c in mine))
    return None, ("%d VolumeSnapshotClasses for CSI driver %s (%s) and none is labelled %s or annotated %s: "
                  "label the one to use" % (len(mine), driver, names, LABEL_CLASS, ANNOTATION_DEFAULT_CLASS))


# ---------------------------------------------------------------------------------------------
# 1. The plan (before the freeze)

def _item(volume, pvc, error=None, **extra):
    return dict(extra, volume=volume, pvc=pvc, kind="persistentVolumeClaim", method=METHOD, container=None,
                mount_path=None, error=error)


def plan_snapshots(call, pods, fs_volumes=None):
    """Which claims of ``pods`` are snapshotted: ``(items, skipped)``.

    ``call``: ``_api.api_caller``'s function; ``pods``: ``[(key "ns/name", pod object or None)]`` in plan
    order; ``fs_volumes``: ``{key: [volume names selected for the file-system copy]}``.
    ``items``: ``{key: [item]}`` (``_volumes.select_volumes``' item shape plus ``method``, ``driver``,
    ``pv``, ``volume_snapshot_class``; ``error`` not None: the volume fails without a snapshot);
    ``skipped``: ``[dict(namespace, pod, volume, pvc, method, reason)]``.
    """
    fs_volumes = fs_volumes or {}
    items, skipped, seen = {}, [], {}
    box = {}

    def classes():
        if "classes" not in box:
            try:
                box["classes"] = call("GET", classes_path()).get("items") or []
                box["error"] = None
            except ApiRequestError as err:
                box["classes"] = []
                box["error"] = ("the VolumeSnapshot API is not installed (no CRD %s)" % ("volumesnapshotclasses." + GROUP)
                                if err.status == 404 else
                                api_error_message(err.status, "list VolumeSnapshotClasses", error_reason(err),
                                                  "list on volumesnapshotclasses.%s" % GROUP))
        return box["classes"], box["error"]

    for key, pod in pods:
        namespace, pod_name = key.split("/", 1)
        for volume in ((pod or {}).get("spec") or {}).get("volumes") or []:
            if not isinstance(volume, dict) or not isinstance(volume.get("persistentVolumeClaim"), dict):
                continue
            name, claim = volume.get("name"), volume["persistentVolumeClaim"].get("claimName")

            def skip(reason, name=name, claim=claim):
                skipped.append(dict(namespace=namespace, pod=pod_name, volume=name, pvc=claim, method=METHOD,
                                    reason=reason))

            if name in (fs_volumes.get(key) or ()):
                skip("selected for the file-system copy (fs-copy wins over a snapshot, as in Velero)")
                continue
            if (namespace, claim) in seen:
                skip("claim %s is snapshotted with pod %s" % (claim, seen[(namespace, claim)]))
                continue
            seen[(namespace, claim)] = key
            try:
                pvc = call("GET", "/api/v1/namespaces/%s/persistentvolumeclaims/%s" % (
                    quote(namespace, safe=""), quote(claim or "", safe="")))
            except ApiRequestError as err:
                items.setdefault(key, []).append(_item(name, claim, "pod %s volume %s: %s" % (
                    key, name, api_error_message(err.status, "get claim %s/%s" % (namespace, claim),
                                                 error_reason(err), "get on persistentvolumeclaims"))))
                continue
            pv_name = (pvc.get("spec") or {}).get("volumeName")
            if (pvc.get("status") or {}).get("phase") != "Bound" or not pv_name:
                skip("claim %s is not bound (phase %s): nothing to snapshot" % (
                    claim, (pvc.get("status") or {}).get("phase")))
                continue
            try:
                pv = call("GET", "/api/v1/persistentvolumes/%s" % quote(pv_name, safe=""))
            except ApiRequestError as err:
                items.setdefault(key, []).append(_item(name, claim, "pod %s volume %s: %s" % (
                    key, name, api_error_message(err.status, "get PersistentVolume %s" % pv_name, error_reason(err),
                                                 "get on persistentvolumes"))))
                continue
            driver = ((pv.get("spec") or {}).get("csi") or {}).get("driver")
            if not driver:
                skip("PersistentVolume %s is not a CSI volume: no snapshot (as Velero skips a volume it has no "
                     "snapshotter for)" % pv_name)
                continue
            found, problem = classes()
            klass, error = choose_class(driver, found, (pvc.get("metadata") or {}).get("annotations"))
            if error and problem:
                error = "%s (%s)" % (error, problem)
            items.setdefault(key, []).append(_item(
                name, claim, error and "pod %s volume %s (claim %s): %s" % (key, name, claim, error),
                driver=driver, pv=pv_name, volume_snapshot_class=klass))
    return items, skipped


# ---------------------------------------------------------------------------------------------
# 2. The cut (while frozen)

def entry(namespace, pod, item, status, error=None, **extra):
    """A volumes-index entry for a snapshot item (the fields of ``_capture.index_entry``, and more)."""
    out = dict(namespace=namespace, pod=pod, volume=item.get("volume"), pvc=item.get("pvc"), path=None, bytes=0,
               files=0, sha256=None, method=METHOD, status=status, error=error, tar_bytes=0, duration=0.0,
               driver=item.get("driver"), pv=item.get("pv"), volume_snapshot_class=item.get("volume_snapshot_class"),
               volume_snapshot=None, volume_snapshot_content=None, snapshot_handle=None, restore_size=None,
               deletion_policy=None, class_deletion_policy=None, creation_time=None, created_at=None, cut_at=None, ready_at=None,
               ready_to_use=False)
    out.update(extra)
    return out


def snapshot_object(namespace, item, backup):
    return {"apiVersion": API_VERSION, "kind": "VolumeSnapshot",
            "metadata": {"generateName": "velero-%s-" % item["pvc"], "namespace": namespace,
                         "labels": {LABEL_BACKUP_NAME: label_value(backup)}},
            "spec": {"volumeSnapshotClassName": item["volume_snapshot_class"],
                     "source": {"persistentVolumeClaimName": item["pvc"]}}}


def _status_error(snapshot):
    error = (snapshot.get("status") or {}).get("error") or {}
    return error.get("message") if isinstance(error, dict) else None


def cut_snapshots(call, jobs, backup, until, clock=time.monotonic, sleep=time.sleep):
    """Create a VolumeSnapshot for each ``(namespace, pod, item)`` of ``jobs`` and wait until each is cut.

    ``until``: a ``clock`` value (the earlier of the freeze deadline, less a margin, and
    ``csi_snapshot_timeout`` from now).  Returns one entry per job, in order: status ``cut`` (to be
    completed by ``wait_ready``) or ``failed``.  Never raises for an API error: it is the volume's.
    """
    out = [None] * len(jobs)
    waiting = []
    for index, (namespace, pod, item) in enumerate(jobs):
        if item.get("error"):
            out[index] = entry(namespace, pod, item, "failed", item["error"])
            continue
        started = time.time()
        try:
            made = call("POST", snapshots_path(namespace), snapshot_object(namespace, item, backup))
        except ApiRequestError as err:
            out[index] = entry(namespace, pod, item, "failed", "pod %s/%s volume %s: %s" % (
                namespace, pod, item.get("volume"), api_error_message(
                    err.status, "create a VolumeSnapshot of claim %s/%s" % (namespace, item.get("pvc")),
                    error_reason(err), "create on volumesnapshots.%s" % GROUP)))
            continue
        name = (made.get("metadata") or {}).get("name")
        out[index] = entry(namespace, pod, item, "creating", volume_snapshot=name, created_at=round(started, 3))
        waiting.append(index)
    last = {}
    while waiting:
        for index in list(waiting):
            current = out[index]
            try:
                snap = call("GET", snapshots_path(current["namespace"], current["volume_snapshot"]))
            except ApiRequestError as err:
                last[index] = error_reason(err)
                continue
            status = snap.get("status") or {}
            last[index] = _status_error(snap) or last.get(index)
            if status.get("boundVolumeSnapshotContentName") and status.get("creationTime"):
                current.update(status="cut", cut_at=round(time.time(), 3),
                               volume_snapshot_content=status["boundVolumeSnapshotContentName"],
                               creation_time=status["creationTime"], ready_to_use=bool(status.get("readyToUse")))
                waiting.remove(index)
        if not waiting or clock() >= until:
            break
        sleep(min(CUT_POLL_SECONDS, max(0.0, until - clock())))
    for index in waiting:
        current = out[index]
        why = "VolumeSnapshot %s/%s was not cut (bound to a content with a creation time) while the pod was frozen " \
              "(csi_snapshot_timeout or the freeze deadline)%s; it was deleted" % (
                  current["namespace"], current["volume_snapshot"], ": %s" % last[index] if last.get(index) else "")
        try:
            call("DELETE", snapshots_path(current["namespace"], current["volume_snapshot"]))
        except ApiRequestError as err:
            why = why.replace("; it was deleted", "; deleting it failed: %s" % error_reason(err))
        current.update(status="failed", error="pod %s/%s volume %s: %s" % (
            current["namespace"], current["pod"], current["volume"], why))
    return out


# ---------------------------------------------------------------------------------------------
# 3. Ready (after the thaw)

def quantity_bytes(value):
    """Bytes of a Kubernetes quantity (``32Mi``, ``1G``, ``1048576``); None when it cannot be read."""
    if value is None:
        return None
    text = str(value)
    units = (("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40), ("Pi", 1 << 50), ("Ei", 1 << 60),
             ("k", 10 ** 3), ("M", 10 ** 6), ("G", 10 ** 9), ("T", 10 ** 12), ("P", 10 ** 15), ("E", 10 ** 18))
    for suffix, factor in units:
        if text.endswith(suffix):
            try:
                return int(float(text[:-len(suffix)]) * factor)
            except ValueError:
                return None
    try:
        return int(float(text))
    except ValueError:
        return None


def wait_ready(call, entries, timeout, now=time.time, sleep=time.sleep):
    """Complete the ``cut`` entries of ``entries`` (in place): ``succeeded`` once ``readyToUse``,
    ``failed`` when not ready ``timeout`` seconds after the snapshot was created.  Returns ``entries``."""
    todo = [e for e in entries if e.get("method") == METHOD and e.get("status") == "cut"]
    last = {}
    while todo:
        for current in list(todo):
            try:
                snap = call("GET", snapshots_path(current["namespace"], current["volume_snapshot"]))
            except ApiRequestError as err:
                last[id(current)] = error_reason(err)
                continue
            status = snap.get("status") or {}
            last[id(current)] = _status_error(snap) or last.get(id(current))
            if status.get("readyToUse") is True:
                current.update(ready_to_use=True, ready_at=round(now(), 3),
                               restore_size=quantity_bytes(status.get("restoreSize")))
                action = "get VolumeSnapshotContent %s" % current["volume_snapshot_content"]
                try:
                    content = call("GET", contents_path(current["volume_snapshot_content"]))
                    current.update(snapshot_handle=(content.get("status") or {}).get("snapshotHandle"),
                                   deletion_policy=(content.get("spec") or {}).get("deletionPolicy"))
                    if current["restore_size"] is None:
                        current["restore_size"] = (content.get("status") or {}).get("restoreSize")
                    if current["deletion_policy"] != "Retain":
                        # as Velero: the snapshot outlives its VolumeSnapshot (a deleted namespace), so
                        # that a restore can pre-provision a content from the handle
                        action = "set deletionPolicy Retain on VolumeSnapshotContent %s" % \
                            current["volume_snapshot_content"]
                        call("PATCH", contents_path(current["volume_snapshot_content"]),
                             {"spec": {"deletionPolicy": "Retain"}}, content_type=MERGE_PATCH)
                        current.update(class_deletion_policy=current["deletion_policy"], deletion_policy="Retain")
                except ApiRequestError as err:
                    current.update(status="failed", error="pod %s/%s volume %s: %s" % (
                        current["namespace"], current["pod"], current["volume"], api_error_message(
                            err.status, action, error_reason(err),
                            "get and patch on volumesnapshotcontents.%s" % GROUP)))
                    todo.remove(current)
                    continue
                current["status"] = "succeeded"
                current["duration"] = round(current["ready_at"] - (current.get("created_at") or current["ready_at"]), 3)
                todo.remove(current)
        late = [e for e in todo if now() >= (e.get("created_at") or 0) + timeout]
        for current in late:
            todo.remove(current)
            current.update(status="failed", error="pod %s/%s volume %s: VolumeSnapshot %s/%s was cut but not readyToUse "
                           "within csi_snapshot_timeout=%ss of its creation%s (the snapshot is kept)" % (
                               current["namespace"], current["pod"], current["volume"], current["namespace"],
                               current["volume_snapshot"], _seconds(timeout),
                               ": %s" % last[id(current)] if last.get(id(current)) else ""))
        if todo:
            sleep(READY_POLL_SECONDS)
    return entries


def _seconds(value):
    return ("%d" % value) if float(value).is_integer() else ("%s" % value)


# ---------------------------------------------------------------------------------------------
# 4. Velero's files (after wait_ready)

def _rfc3339(epoch):
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def volume_info(entry=None, skipped=None):
    """One entry of Velero's ``<backup>-volumeinfo.json.gz`` (``internal/volume.BackupVolumeInfo``)."""
    if skipped is not None:
        return {"pvcName": skipped.get("pvc"), "pvcNamespace": skipped.get("namespace"), "backupMethod": "",
                "snapshotDataMoved": False, "skipped": True, "skippedReason": skipped.get("reason"),
                "preserveLocalSnapshot": False}
    info = {"pvcName": entry.get("pvc"), "pvcNamespace": entry.get("namespace"), "pvName": entry.get("pv"),
            "backupMethod": "CSISnapshot", "snapshotDataMoved": False, "skipped": False,
            "startTimestamp": _rfc3339(entry.get("created_at")), "result": entry.get("status"),
            "preserveLocalSnapshot": True,
            "csiSnapshotInfo": {"snapshotHandle": entry.get("snapshot_handle") or "",
                                "size": int(entry.get("restore_size") or 0), "driver": entry.get("driver") or "",
                                "vscName": entry.get("volume_snapshot_content") or "", "operationID": "",
                                "readyToUse": bool(entry.get("ready_to_use"))}}
    if entry.get("ready_at") is not None:
        info["completionTimestamp"] = _rfc3339(entry["ready_at"])
    return dict((k, v) for k, v in info.items() if v is not None)


def velero_documents(call, entries, skipped=()):
    """What Velero writes about CSI snapshots next to a backup: ``{role: [objects]}`` for the
    ``_layout.FILE_NAMES`` roles ``csi_volumesnapshots``, ``csi_volumesnapshotcontents``,
    ``csi_volumesnapshotclasses`` and ``volumeinfo``, and the problems met (API errors: the objects are
    then missing from those files, the volumes index keeps what the run saw)."""
    mine = [e for e in entries if e.get("method") == METHOD]
    docs = dict(csi_volumesnapshots=[], csi_volumesnapshotcontents=[], csi_volumesnapshotclasses=[], volumeinfo=[])
    problems = []
    for current in mine:
        docs["volumeinfo"].append(volume_info(current))
        if not (current.get("volume_snapshot") and current.get("cut_at")):
            continue
        for role, path, what in (
                ("csi_volumesnapshots", snapshots_path(current["namespace"], current["volume_snapshot"]),
                 "VolumeSnapshot %s/%s" % (current["namespace"], current["volume_snapshot"])),
                ("csi_volumesnapshotcontents", contents_path(current.get("volume_snapshot_content") or "-"),
                 "VolumeSnapshotContent %s" % current.get("volume_snapshot_content"))):
            try:
                docs[role].append(call("GET", path))
            except ApiRequestError as err:
                problems.append("%s: %s" % (what, error_reason(err)))
    docs["volumeinfo"] += [volume_info(skipped=s) for s in skipped]
    wanted = set(e.get("volume_snapshot_class") for e in mine if e.get("cut_at"))
    if wanted:
        try:
            docs["csi_volumesnapshotclasses"] = [c for c in call("GET", classes_path()).get("items") or []
                                                 if (c.get("metadata") or {}).get("name") in wanted]
        except ApiRequestError as err:
            problems.append("VolumeSnapshotClasses: %s" % error_reason(err))
    return docs, problems


# ---------------------------------------------------------------------------------------------
# 5. The archive's items (read by the export after the thaw)

# Velero's annotations on the archived VolumeSnapshot (pkg/apis/velero/v1/labels_annotations.go),
# which its restore reads to re-create the content from the handle.
ANNOTATION_HANDLE = "velero.io/csi-volumesnapshot-handle"
ANNOTATION_DRIVER = "velero.io/csi-driver-name"
ANNOTATION_RESTORE_SIZE = "velero.io/csi-volumesnapshot-restore-size"
ANNOTATION_VSC_DELETION_POLICY = "velero.io/csi-vsc-deletion-policy"
SNAPSHOTS = "volumesnapshots." + GROUP
CONTENTS = "volumesnapshotcontents." + GROUP
CLASSES = "volumesnapshotclasses." + GROUP


def archive_items(call, entries, problems):
    """``(group_resource, object)`` for the archive, as Velero's CSI actions add them to a backup: each
    VolumeSnapshot the backup cut (annotated with the snapshot handle, driver, restore size and the
    content's deletion policy, as Velero annotates its archived copy), its VolumeSnapshotContent, and
    the classes used.  A GET that fails appends a message to ``problems`` and leaves the item out."""
    classes = set()
    for current in entries:
        if current.get("method") != METHOD or not (current.get("volume_snapshot") and current.get("cut_at")):
            continue
        try:
            snap = call("GET", snapshots_path(current["namespace"], current["volume_snapshot"]))
            content = call("GET", contents_path(current.get("volume_snapshot_content") or
                                                (snap.get("status") or {}).get("boundVolumeSnapshotContentName") or "-"))
        except ApiRequestError as err:
            problems.append("VolumeSnapshot %s/%s or its content: %s" % (
                current["namespace"], current["volume_snapshot"], error_reason(err)))
            continue
        annotations = (snap.setdefault("metadata", {}).get("annotations") or {})
        status = content.get("status") or {}
        if status.get("snapshotHandle"):
            annotations[ANNOTATION_HANDLE] = status["snapshotHandle"]
        annotations[ANNOTATION_DRIVER] = (content.get("spec") or {}).get("driver") or current.get("driver") or ""
        if status.get("restoreSize") is not None:
            annotations[ANNOTATION_RESTORE_SIZE] = str(status["restoreSize"])
        policy = current.get("class_deletion_policy") or (content.get("spec") or {}).get("deletionPolicy")
        if policy:  # the policy the class gave (Velero keeps it to delete the snapshot with the backup)
            annotations[ANNOTATION_VSC_DELETION_POLICY] = policy
        snap["metadata"]["annotations"] = annotations
        yield SNAPSHOTS, snap
        yield CONTENTS, content
        if current.get("volume_snapshot_class"):
            classes.add(current["volume_snapshot_class"])
    if classes:
        try:
            for klass in call("GET", classes_path()).get("items") or []:
                if (klass.get("metadata") or {}).get("name") in classes:
                    yield CLASSES, klass
        except ApiRequestError as err:
            problems.append("VolumeSnapshotClasses: %s" % error_reason(err))


# ---------------------------------------------------------------------------------------------
# 6. Restore: a claim from its snapshot (Velero's CSI restore; pure)

def restore_sources(entries):
    """``{(namespace, claim): entry}`` of the volumes index's snapshots that a restore can use
    (``readyToUse``, with a snapshot handle)."""
    found = {}
    for current in entries or []:
        if current.get("method") == METHOD and current.get("status") == "succeeded" and \
                current.get("snapshot_handle") and current.get("volume_snapshot"):
            found[(current.get("namespace"), current.get("pvc"))] = current
    return found


def data_source(snapshot_name):
    return {"apiGroup": GROUP, "kind": "VolumeSnapshot", "name": snapshot_name}


def claim_from_snapshot(claim, entry):
    """Velero's PVC restore action for a claim with a CSI snapshot: no ``volumeName`` (a new volume is
    provisioned), ``dataSource`` the VolumeSnapshot (same name as in the backup)."""
    spec = claim.setdefault("spec", {})
    spec.pop("volumeName", None)
    spec.pop("dataSourceRef", None)  # the API server derives it from dataSource
    spec["dataSource"] = data_source(entry["volume_snapshot"])
    return claim


def content_name(entry, target_namespace, restore_name):
    """A stable VolumeSnapshotContent name for ``entry`` restored by ``restore_name`` into ``target_namespace``."""
    digest = hashlib.sha256(("%s/%s/%s" % (restore_name, target_namespace, entry["volume_snapshot"]))
                            .encode("utf-8")).hexdigest()[:10]
    return "%s-%s" % (entry["volume_snapshot"][:253 - 11], digest)


def preprovisioned(entry, target_namespace, restore_name, labels=None):
    """``(VolumeSnapshotContent, VolumeSnapshot)`` re-creating ``entry``'s snapshot in ``target_namespace``
    from its handle, as Velero's VolumeSnapshot restore action does: a content with deletion policy
    Retain (deleting the restored snapshot never deletes the backup's data) bound to a VolumeSnapshot of
    the backup's name."""
    labels = dict(labels or {})
    name = content_name(entry, target_namespace, restore_name)
    content = {"apiVersion": API_VERSION, "kind": "VolumeSnapshotContent",
               "metadata": {"name": name, "labels": labels},
               "spec": {"deletionPolicy": "Retain", "driver": entry["driver"],
                        "source": {"snapshotHandle": entry["snapshot_handle"]},
                        "volumeSnapshotRef": {"apiVersion": API_VERSION, "kind": "VolumeSnapshot",
                                              "namespace": target_namespace, "name": entry["volume_snapshot"]}}}
    if entry.get("volume_snapshot_class"):
        content["spec"]["volumeSnapshotClassName"] = entry["volume_snapshot_class"]
    snapshot = {"apiVersion": API_VERSION, "kind": "VolumeSnapshot",
                "metadata": {"name": entry["volume_snapshot"], "namespace": target_namespace, "labels": labels},
                "spec": {"source": {"volumeSnapshotContentName": name}}}
    if entry.get("volume_snapshot_class"):
        snapshot["spec"]["volumeSnapshotClassName"] = entry["volume_snapshot_class"]
    return content, snapshot


# ---------------------------------------------------------------------------------------------
# 7. Delete: the snapshots a backup owns (velero backup delete)

def owned_snapshots(entries):
    """The volumes-index entries of a backup that name a VolumeSnapshot it took (to delete with it)."""
    return [e for e in entries or [] if e.get("method") == METHOD and e.get("volume_snapshot") and e.get("namespace")]


def delete_snapshots(call, entries, backup, check_mode=False):
    """Delete the CSI snapshots of ``entries`` (volumes-index entries of backup ``backup``) as ``velero
    backup delete`` does: set the VolumeSnapshotContent's ``deletionPolicy`` back to ``Delete`` (the
    backup set it to ``Retain``), delete the VolumeSnapshot, then the content if it is still there, so that
    the CSI driver deletes the snapshot itself.  404 at any step: already gone.  A VolumeSnapshot of the
    same name that is not labelled with this backup (e.g. one a restore re-created) is left alone; its
    content is then still deleted only if it is the backup's own (the content name is unique to it).

    Returns one outcome per snapshot: ``dict(namespace, name, content, outcome, error)``, ``outcome``
    ``deleted``, ``already gone``, ``would delete`` (check mode: no call is made) or ``failed`` (``error``
    says why, naming the snapshot).  Never raises for an API error.
    """
    out = []
    for current in owned_snapshots(entries):
        namespace, name = current["namespace"], current["volume_snapshot"]
        content = current.get("volume_snapshot_content")
        outcome = dict(namespace=namespace, name=name, content=content, outcome="would delete", error=None)
        out.append(outcome)
        if check_mode:
            continue
        deleted = False
        action = None
        try:
            if content:
                action = ("set deletionPolicy Delete on VolumeSnapshotContent %s" % content,
                          "patch on volumesnapshotcontents.%s" % GROUP)
                try:
                    call("PATCH", contents_path(content), {"spec": {"deletionPolicy": "Delete"}},
                         content_type=MERGE_PATCH)
                except ApiRequestError as err:
                    if err.status != 404:
                        raise
            action = ("get VolumeSnapshot %s/%s" % (namespace, name), "get on volumesnapshots.%s" % GROUP)
            try:
                snap = call("GET", snapshots_path(namespace, name))
            except ApiRequestError as err:
                if err.status != 404:
                    raise
                snap = None
            labels = ((snap or {}).get("metadata") or {}).get("labels") or {}
            if snap is not None and labels.get(LABEL_BACKUP_NAME) == label_value(backup):
                action = ("delete VolumeSnapshot %s/%s" % (namespace, name), "delete on volumesnapshots.%s" % GROUP)
                try:
                    call("DELETE", snapshots_path(namespace, name))
                    deleted = True
                except ApiRequestError as err:
                    if err.status != 404:
                        raise
            if content:
                action = ("delete VolumeSnapshotContent %s" % content, "delete on volumesnapshotcontents.%s" % GROUP)
                try:
                    call("DELETE", contents_path(content))
                    deleted = True
                except ApiRequestError as err:
                    if err.status != 404:
                        raise
        except ApiRequestError as err:
            outcome.update(outcome="failed", error="VolumeSnapshot %s/%s (content %s): %s" % (
                namespace, name, content, api_error_message(err.status, action[0], error_reason(err), action[1])))
            continue
        outcome["outcome"] = "deleted" if deleted else "already gone"
    return out
