# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: apply a restore plan to the cluster, one item at a time. Not a public API.

Per item, as Velero's ``restoreItem`` (``pkg/restore/restore.go``):

1. Namespaced items: the target namespace is created first when missing (from the archive's
   Namespace object, under its mapped name), after waiting for a Terminating one to go away.
2. Additional items (a bound PVC's PV, a pod's PVCs and PriorityClass) are restored just before.
3. The cleaned object (``_restore_plan.clean_item``) is created (POST).  Created -> ``created``;
   with ``restore_status`` its backed-up status is written through the status subresource.
4. AlreadyExists: the in-cluster object, cleaned the same way and given the same restore labels, is
   compared with the one to restore.  Identical -> ``skipped``.  Different: policy ``none`` ->
   ``skipped`` with Velero's warning ("could not restore, <Kind> "<name>" already exists..."); policy
   ``update`` -> a JSON merge patch from the in-cluster to the backed-up object -> ``updated``, or,
   when the API refuses it (immutable fields), a warning and a patch of the restore labels only.
   ServiceAccounts are merged (secrets and image pull secrets of both) whatever the policy, as Velero.
5. Any other API error -> ``failed`` with the error; the restore goes on with the next item.

Static PersistentVolumes (such as the local cluster's): Velero restores a PV without snapshot and
with reclaim policy Retain as it is, and the restored claim names it in ``volumeName``.  When that PV
still exists in the cluster:

- ``Released`` with a claimRef to the very claim being restored (the namespace was deleted, the
  volume kept): its stale claimRef (the old claim's uid) would keep the new claim Pending forever.
  Its ``claimRef.uid``/``resourceVersion`` are removed (outcome ``updated``), which pre-binds it to
  the restored claim: the claim binds to the same volume and its data.
- Bound to (or reserved for) another claim - typically the original, still running, when restoring
  into a mapped namespace: the PV is left alone (``skipped``, with a warning) and the claim is
  restored WITHOUT ``volumeName``, so it binds to a free PersistentVolume that matches it or gets a
  newly provisioned one (a mapped namespace needs a free PV; without one the claim stays Pending,
  which the warning says).  The data is not copied (volume data is a later stage).
- Otherwise (Available, or bound to the claim being restored) the usual existing-item rules apply.

Check mode runs the same sequence with GETs only: each item's planned action (``create``,
``skip``, ``update``, with the reason), nothing written.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import time

try:
    from ansible.module_utils.six.moves.urllib.parse import quote
except ImportError:  # pragma: no cover - only outside Ansible
    from urllib.parse import quote

from ansible_collections.kubehooks.backup.plugins.module_utils import _csi_snapshot
from ansible_collections.kubehooks.backup.plugins.module_utils import _restore_plan as rp
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError

CREATED = "created"
UPDATED = "updated"
SKIPPED = "skipped"
FAILED = "failed"
OUTCOMES = (CREATED, UPDATED, SKIPPED, FAILED)
MERGE_PATCH = "application/merge-patch+json"
MAX_ADDITIONAL_DEPTH = 3
_ADDITIONAL_KINDS = (rp.PVS, rp.PVCS, "priorityclasses.scheduling.k8s.io")


def _q(text):
    return quote(text, safe="")


def object_path(resource, namespace=None, name=None, api_version=None):
    """The REST path of a resource (discovery entry), in ``namespace``, optionally of one object."""
    version = api_version or resource["api_version"]
    base = "/api/%s" % version if "/" not in version else "/apis/%s" % version
    if resource["namespaced"] and namespace:
        base += "/namespaces/%s" % _q(namespace)
    base += "/" + resource["resource"]
    if name:
        base += "/" + _q(name)
    return base


def merge_patch(current, desired):
    """RFC 7386 JSON merge patch turning ``current`` into ``desired`` (None when they are equal)."""
    if not isinstance(current, dict) or not isinstance(desired, dict):
        return None if current == desired else desired
    patch = {}
    for key in current:
        if key not in desired:
            patch[key] = None
    for key, value in desired.items():
        if key not in current:
            patch[key] = value
        elif current[key] != value:
            if isinstance(value, dict) and isinstance(current[key], dict):
                sub = merge_patch(current[key], value)
                if sub is not None:
                    patch[key] = sub
            else:
                patch[key] = value
    return patch or None


def comparable(obj, options, restore_labels=True):
    """An in-cluster object cleaned like a restored one (for the equality check); without
    ``restore_labels`` as it is (the base of an update's patch, so the patch sets them)."""
    obj = copy.deepcopy(obj)
    obj, _status = rp.reset_metadata_and_status(obj)
    metadata = obj["metadata"]
    metadata.pop("managedFields", None)
    if not restore_labels:
        return obj
    labels = dict(metadata.get("labels") or {})
    labels[rp.BACKUP_NAME_LABEL] = rp.valid_label_value(options.backup_name)
    labels[rp.RESTORE_NAME_LABEL] = rp.valid_label_value(options.restore_name)
    metadata["labels"] = labels
    return obj


def _error_text(err):
    return "%s (HTTP %s)" % (err, err.status) if err.status else str(err)


class Applier(object):
    """Restores plan items through ``call`` (``_api.api_caller``); one object in memory at a time.

    ``resources``: discovery entries (``_resources.preferred_resources``).  ``on_item(outcome)`` is
    called after each item with a dict (group_resource, namespace, name, target_namespace,
    resource_key, outcome, message, stage).  ``before_stage(stage)`` is called once when the plan
    reaches a new stage (the hook point for volume data and restore hooks, before the first pod).
    ``dry_run``: GETs only, outcomes are the planned actions.  ``prepare(entry, cleaned)`` may change a
    cleaned object just before it is created (the restore's init hooks); an exception it raises fails
    that item with its message.
    """

    def __init__(self, call, options, archive, resources, on_item=None, before_stage=None, dry_run=False,
                 terminating_timeout=600, sleep=time.sleep, clock=time.monotonic, prepare=None):
        self.call = call
        self.options = options
        self.archive = archive
        self.by_name = dict((r["group_resource"], r) for r in resources)
        self.on_item = on_item or (lambda outcome: None)
        self.before_stage = before_stage
        self.prepare = prepare
        self.dry_run = dry_run
        self.terminating_timeout = terminating_timeout
        self.sleep = sleep
        self.clock = clock
        self.namespaces = {}        # target namespace -> True (exists/created) or an error message
        self.done = set()           # (group_resource, namespace, name) restored as additional items
        self.unavailable_pvs = {}   # PV name -> reason its claim must not name it
        self.stage = None
        self.warnings = []          # {"namespace"|"resource", "message"}
        self.errors = []

    # ---------------------------------------------------------------- results

    def _warn(self, namespace, group_resource, message):
        self.warnings.append({"namespace": namespace or None, "resource": group_resource, "message": message})

    def _fail(self, namespace, group_resource, message):
        self.errors.append({"namespace": namespace or None, "resource": group_resource, "message": message})

    def _report(self, entry, outcome, message=None, obj=None, name=None):
        source = obj or {}
        key = "%s/%s" % (source.get("apiVersion") or "", source.get("kind") or "") if source.get("kind") else \
            entry["group_resource"]
        self.on_item({"group_resource": entry["group_resource"], "namespace": entry.get("namespace") or "",
                      "target_namespace": entry.get("target_namespace") or "", "name": name or entry["name"],
                      "resource_key": key, "outcome": outcome, "message": message, "stage": entry.get("stage")})

    # ---------------------------------------------------------------- namespaces

    def _namespace_state(self, name):
        """``(exists, terminating)`` of a namespace in the cluster."""
        try:
            ns = self.call("GET", "/api/v1/namespaces/%s" % _q(name))
        except ApiRequestError as err:
            if err.status == 404:
                return False, False
            raise
        terminating = bool((ns.get("metadata") or {}).get("deletionTimestamp")) or \
            (ns.get("status") or {}).get("phase") == "Terminating"
        return True, terminating

    def ensure_namespace(self, source, target):
        """Velero's EnsureNamespaceExistsAndIsReady; returns (outcome, message) and caches the answer."""
        if target in self.namespaces:
            return None, self.namespaces[target] if self.namespaces[target] is not True else None
        try:
            exists, terminating = self._namespace_state(target)
            deadline = self.clock() + self.terminating_timeout
            while exists and terminating and not self.dry_run:
                if self.clock() > deadline:
                    raise ApiRequestError(0, "namespace %s is still terminating after %ss"
                                          % (target, self.terminating_timeout))
                self.sleep(1)
                exists, terminating = self._namespace_state(target)
            if exists:
                self.namespaces[target] = True
                return SKIPPED, "namespace %s already exists%s" % (target, " (terminating)" if terminating else "")
            if not self.dry_run:
                try:
                    self.call("POST", "/api/v1/namespaces", rp.namespace_object(self.archive, source, target))
                except ApiRequestError as err:
                    if err.status != 409:
                        raise
            self.namespaces[target] = True
            return CREATED, None
        except ApiRequestError as err:
            message = "error creating namespace %s: %s" % (target, _error_text(err))
            self.namespaces[target] = message
            self._fail(None, rp.NAMESPACES, message)
            return FAILED, message

    def _namespace_item(self, entry, source, target):
        outcome, message = self.ensure_namespace(source, target)
        ns_entry = {"group_resource": rp.NAMESPACES, "namespace": "", "target_namespace": "", "name": target,
                    "stage": entry.get("stage")}
        if outcome is not None:
            shown = {CREATED: "create", SKIPPED: "skip"}.get(outcome, outcome) if self.dry_run else outcome
            self._report(ns_entry, shown, message, {"apiVersion": "v1", "kind": "Namespace"}, name=target)
        return message if outcome == FAILED or (outcome is None and message) else None

    # ---------------------------------------------------------------- plan

    def run(self, plan):
        """Restore every ``(entry, obj)`` of ``plan`` (``_restore_plan.iter_plan``), in order."""
        for entry, obj in plan:
            if entry["stage"] != self.stage:
                self.stage = entry["stage"]
                if self.before_stage and self.stage == rp.STAGE_WORKLOADS:
                    self.before_stage(self.stage)
            key = (entry["group_resource"], entry["namespace"], entry["name"])
            if key in self.done:
                continue
            self.restore(entry, obj)
        if self.before_stage and self.stage != rp.STAGE_WORKLOADS:
            self.before_stage(rp.STAGE_WORKLOADS)  # the hook point is reached once, workloads or not
        return self

    def _additional(self, entry, obj, depth):
        for group_resource, namespace, name in rp.additional_items(entry["group_resource"], obj):
            key = (group_resource, namespace, name)
            if key in self.done or not self.archive.exists(group_resource, namespace, name):
                continue
            if not rp.additional_allowed(self.options, group_resource, namespace):
                continue
            self.done.add(key)
            extra = {"group_resource": group_resource, "namespace": namespace, "name": name,
                     "target_namespace": self.options.target_namespace(namespace),
                     "path": self.archive.relative(group_resource, namespace, name),
                     "stage": entry.get("stage"), "additional_for": "%s %s" % (entry["group_resource"], entry["name"])}
            try:
                extra_obj = self.archive.load(group_resource, namespace, name)
            except rp.ArchiveError as exc:
                extra["error"] = str(exc)
                extra_obj = None
            self.restore(extra, extra_obj, depth + 1)

    def restore(self, entry, obj, depth=0):
        """Restore one item (and its additional items first)."""
        group_resource = entry["group_resource"]
        target_ns = entry.get("target_namespace") or ""
        if group_resource in _ADDITIONAL_KINDS:  # never restored twice (as an item and as an additional one)
            self.done.add((group_resource, entry["namespace"], entry["name"]))
        if obj is None:
            self._fail(target_ns, group_resource, entry.get("error") or "error decoding %r" % entry.get("path"))
            self._report(entry, FAILED, entry.get("error"))
            return FAILED
        if group_resource == rp.NAMESPACES:
            self._namespace_item(entry, entry["name"], entry.get("target_name") or entry["name"])
            return None
        if target_ns:
            problem = self._namespace_item(entry, entry["namespace"], target_ns)
            if problem:
                self._report(entry, FAILED, problem, obj)
                return FAILED
        if depth < MAX_ADDITIONAL_DEPTH:
            self._additional(entry, obj, depth)
        try:
            cleaned, status, skip = rp.clean_item(entry, obj, self.options, self.archive)
        except Exception as exc:  # a malformed item must not stop the restore
            message = "error preparing %s: %s" % (self._id(entry), exc)
            self._fail(target_ns, group_resource, message)
            self._report(entry, FAILED, message, obj)
            return FAILED
        if skip:
            self._report(entry, SKIPPED, skip, obj)
            return SKIPPED
        if self.prepare is not None:
            try:
                cleaned = self.prepare(entry, cleaned)
            except Exception as exc:  # pylint: disable=broad-except  # that item's failure
                message = "error restoring %s: %s" % (self._id(entry), exc)
                self._fail(target_ns, group_resource, message)
                self._report(entry, FAILED, message, obj)
                return FAILED
        resource = self.by_name.get(group_resource)
        if resource is None:
            message = "error restoring %s: the cluster does not serve %s" % (self._id(entry), group_resource)
            self._fail(target_ns, group_resource, message)
            self._report(entry, FAILED, message, obj)
            return FAILED
        if group_resource == rp.PVS:
            decided = self._existing_pv(entry, cleaned, resource)
            if decided:
                return decided
        if group_resource == rp.PVCS:
            snapshot = rp.snapshot_of_claim(self.options, entry["namespace"], entry["name"])
            if snapshot is not None:
                problem = self._snapshot_for_claim(entry, snapshot)
                if problem:
                    self._report(entry, FAILED, problem, cleaned)
                    return FAILED
            else:
                self._claim_volume(entry, cleaned)
        return self._create(entry, cleaned, status, resource, obj)

    @staticmethod
    def _id(entry):
        namespace = entry.get("target_namespace")
        return "%s/%s" % (entry["group_resource"], "%s/%s" % (namespace, entry["name"]) if namespace else entry["name"])

    # ---------------------------------------------------------------- volumes

    def _existing_pv(self, entry, cleaned, resource):
        """Decide about a PV that already exists (see the module doc); None to go on with the create."""
        try:
            current = self.call("GET", object_path(resource, None, entry["name"], cleaned.get("apiVersion")))
        except ApiRequestError as err:
            if err.status == 404:
                return None
            self._fail(None, rp.PVS, "error reading persistentvolume %s: %s" % (entry["name"], _error_text(err)))
            self._report(entry, FAILED, _error_text(err), cleaned)
            return FAILED
        wanted = (cleaned.get("spec") or {}).get("claimRef") or {}
        held = (current.get("spec") or {}).get("claimRef") or {}
        phase = (current.get("status") or {}).get("phase")
        same_claim = wanted and held and (held.get("namespace"), held.get("name")) == \
            (wanted.get("namespace"), wanted.get("name"))
        if same_claim and phase == "Released" and \
                (current.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Retain") == "Retain":
            message = "released volume %s given back to its restored claim %s/%s (stale claimRef uid removed)" % (
                entry["name"], wanted.get("namespace"), wanted.get("name"))
            if not self.dry_run:
                try:
                    self.call("PATCH", object_path(resource, None, entry["name"], cleaned.get("apiVersion")),
                              {"spec": {"claimRef": {"uid": None, "resourceVersion": None}}}, content_type=MERGE_PATCH)
                except ApiRequestError as err:
                    message = "error rebinding persistentvolume %s: %s" % (entry["name"], _error_text(err))
                    self._fail(None, rp.PVS, message)
                    self._report(entry, FAILED, message, cleaned)
                    return FAILED
            self._report(entry, UPDATED if not self.dry_run else "update", message, cleaned)
            return UPDATED
        if held and not same_claim:
            claim = "%s/%s" % (wanted.get("namespace"), wanted.get("name")) if wanted else None
            reason = "persistentvolume %s is bound to claim %s/%s" % (entry["name"], held.get("namespace"), held.get("name"))
            self.unavailable_pvs[entry["name"]] = reason
            message = "%s; not restored: %s" % (reason, (
                "claim %s is restored without volumeName and binds to a free matching volume or a newly "
                "provisioned one (it stays Pending when there is none)" % claim) if claim else "")
            self._warn(None, rp.PVS, message)
            self._report(entry, SKIPPED, message, cleaned)
            return SKIPPED
        return None

    def _snapshot_for_claim(self, entry, snapshot):
        """Make sure the VolumeSnapshot a claim is restored from exists in the target namespace, as Velero's
        VolumeSnapshot restore action does: an existing one (same name) is used; else a VolumeSnapshotContent
        (deletion policy Retain) is pre-provisioned from the snapshot handle and a VolumeSnapshot bound to it
        is created.  Returns None, or the error that fails the claim (restored empty, it would lose data)."""
        target_ns = entry.get("target_namespace") or entry["namespace"]
        labels = {rp.BACKUP_NAME_LABEL: rp.valid_label_value(self.options.backup_name),
                  rp.RESTORE_NAME_LABEL: rp.valid_label_value(self.options.restore_name)}
        content, snap = _csi_snapshot.preprovisioned(snapshot, target_ns, self.options.restore_name, labels)
        snap_path = _csi_snapshot.snapshots_path(target_ns, snap["metadata"]["name"])
        snap_entry = {"group_resource": _csi_snapshot.SNAPSHOTS, "namespace": entry["namespace"],
                      "target_namespace": target_ns, "name": snap["metadata"]["name"], "stage": entry.get("stage")}
        content_entry = {"group_resource": _csi_snapshot.CONTENTS, "namespace": "", "target_namespace": "",
                         "name": content["metadata"]["name"], "stage": entry.get("stage")}
        try:
            self.call("GET", snap_path)
            self._report(snap_entry, SKIPPED if not self.dry_run else "skip",
                         "VolumeSnapshot exists in %s: claim %s is restored from it" % (target_ns, entry["name"]), snap)
            return None
        except ApiRequestError as err:
            if err.status != 404:
                return "error reading VolumeSnapshot %s/%s: %s" % (target_ns, snap["metadata"]["name"], _error_text(err))
        if self.dry_run:
            self._report(content_entry, "create", "pre-provisioned from snapshot handle %s" % snapshot["snapshot_handle"],
                         content)
            self._report(snap_entry, "create", "bound to VolumeSnapshotContent %s" % content["metadata"]["name"], snap)
            return None
        for one, path, item in ((content, _csi_snapshot.contents_path(content["metadata"]["name"]), content_entry),
                                (snap, snap_path, snap_entry)):
            try:
                self.call("POST", path.rsplit("/", 1)[0], one)
            except ApiRequestError as err:
                if err.status != 409:
                    message = "error restoring claim %s/%s from CSI snapshot %s: creating %s %s: %s" % (
                        target_ns, entry["name"], snapshot["snapshot_handle"], one["kind"], one["metadata"]["name"],
                        _error_text(err))
                    self._fail(target_ns, item["group_resource"], message)
                    self._report(item, FAILED, message, one)
                    return message
            self._report(item, CREATED, None, one)
        return None

    def _claim_volume(self, entry, cleaned):
        spec = cleaned.get("spec") or {}
        volume = spec.get("volumeName")
        if volume and volume in self.unavailable_pvs:
            spec.pop("volumeName")
            self._warn(entry.get("target_namespace"), rp.PVCS, "claim %s restored without volumeName: %s"
                       % (entry["name"], self.unavailable_pvs[volume]))

    # ---------------------------------------------------------------- create / existing

    def _create(self, entry, cleaned, status, resource, original):
        target_ns = entry.get("target_namespace") or ""
        api_version = cleaned.get("apiVersion")
        collection = object_path(resource, target_ns, None, api_version)
        one = object_path(resource, target_ns, entry["name"], api_version)
        if self.dry_run:
            return self._plan_only(entry, cleaned, resource, one)
        try:
            created = self.call("POST", collection, cleaned)
        except ApiRequestError as err:
            if err.status == 409:
                return self._existing(entry, cleaned, one)
            message = "error restoring %s: %s" % (self._id(entry), _error_text(err))
            self._fail(target_ns, entry["group_resource"], message)
            self._report(entry, FAILED, message, cleaned)
            return FAILED
        if status and self.options.restores_status(entry["group_resource"], original):
            body = dict(created, status=status)
            try:
                self.call("PUT", one + "/status", body)
            except ApiRequestError as err:
                self._warn(target_ns, entry["group_resource"], "status of %s not restored: %s"
                           % (self._id(entry), _error_text(err)))
        self._report(entry, CREATED, None, cleaned)
        return CREATED

    def _plan_only(self, entry, cleaned, resource, one):
        try:
            self.call("GET", one)
        except ApiRequestError as err:
            if err.status == 404:
                self._report(entry, "create", None, cleaned)
                return "create"
            self._report(entry, "create", "existence unknown: %s" % _error_text(err), cleaned)
            return "create"
        if self.options.existing_resource_policy == rp.POLICY_UPDATE or entry["group_resource"] == "serviceaccounts":
            self._report(entry, "update", "exists: updated when it differs from the backup", cleaned)
            return "update"
        self._report(entry, "skip", "exists: skipped (with a warning when it differs from the backup)", cleaned)
        return "skip"

    def _existing(self, entry, cleaned, one):
        target_ns = entry.get("target_namespace") or ""
        group_resource = entry["group_resource"]
        try:
            current = self.call("GET", one)
        except ApiRequestError as err:
            message = "could not read the in-cluster %s: %s; the existing resource policy was not applied" % (
                self._id(entry), _error_text(err))
            self._warn(target_ns, group_resource, message)
            self._report(entry, SKIPPED, message, cleaned)
            return SKIPPED
        in_cluster = comparable(current, self.options)
        if in_cluster == cleaned:
            self._report(entry, SKIPPED, "already exists, identical to the backup", cleaned)
            return SKIPPED
        if group_resource == "serviceaccounts":  # patched from the account as it is, so the labels get set
            return self._merge_service_account(entry, comparable(current, self.options, restore_labels=False),
                                               cleaned, one)
        if self.options.existing_resource_policy != rp.POLICY_UPDATE:
            message = "could not restore, %s %r already exists. Warning: the in-cluster version is different " \
                      "than the backed-up version" % (cleaned.get("kind"), entry["name"])
            self._warn(target_ns, group_resource, message)
            self._report(entry, SKIPPED, message, cleaned)
            return SKIPPED
        patch = merge_patch(comparable(current, self.options, restore_labels=False), cleaned)
        try:
            self.call("PATCH", one, patch, content_type=MERGE_PATCH)
        except ApiRequestError as err:
            message = "could not update %s: %s" % (self._id(entry), _error_text(err))
            self._warn(target_ns, group_resource, message)
            labels = {rp.BACKUP_NAME_LABEL: cleaned["metadata"]["labels"][rp.BACKUP_NAME_LABEL],
                      rp.RESTORE_NAME_LABEL: cleaned["metadata"]["labels"][rp.RESTORE_NAME_LABEL]}
            try:
                self.call("PATCH", one, {"metadata": {"labels": labels}}, content_type=MERGE_PATCH)
            except ApiRequestError as label_err:
                self._fail(target_ns, group_resource, "could not label %s: %s" % (self._id(entry), _error_text(label_err)))
                self._report(entry, FAILED, message, cleaned)
                return FAILED
            self._report(entry, SKIPPED, message + "; only the restore labels were set", cleaned)
            return SKIPPED
        self._report(entry, UPDATED, "updated from the backup (existing resource policy update)", cleaned)
        return UPDATED

    def _merge_service_account(self, entry, in_cluster, cleaned, one):
        """Velero's mergeServiceAccounts: the in-cluster account plus the backup's secrets, pull secrets,
        labels and annotations."""
        desired = copy.deepcopy(in_cluster)
        for key in ("secrets", "imagePullSecrets"):
            names = [s.get("name") for s in desired.get(key) or []]
            for ref in cleaned.get(key) or []:
                if ref.get("name") not in names:
                    desired.setdefault(key, []).append(ref)
        for key in ("labels", "annotations"):
            merged = dict((cleaned["metadata"].get(key) or {}))
            merged.update(desired["metadata"].get(key) or {})
            if key == "labels":
                merged.update(dict((k, v) for k, v in cleaned["metadata"]["labels"].items() if k.startswith("velero.io/")))
            if merged:
                desired["metadata"][key] = merged
        patch = merge_patch(in_cluster, desired)
        if patch is None:
            self._report(entry, SKIPPED, "already exists, nothing to merge", cleaned)
            return SKIPPED
        try:
            self.call("PATCH", one, patch, content_type=MERGE_PATCH)
        except ApiRequestError as err:
            message = "could not merge serviceaccount %s: %s" % (entry["name"], _error_text(err))
            self._warn(entry.get("target_namespace"), entry["group_resource"], message)
            self._report(entry, SKIPPED, message, cleaned)
            return SKIPPED
        self._report(entry, UPDATED, "merged with the in-cluster service account", cleaned)
        return UPDATED
