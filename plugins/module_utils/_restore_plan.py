# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the restore plan - which items, in which order, into which namespaces,
cleaned how. Not a public API.

The restore flows: archive + options -> plan (this file) -> apply (``_restore_apply``) -> record
(``_restore_record``).  Everything here is pure except :func:`extract_archive` and
:class:`ArchiveDir`, which read the backup archive from disk.  What Velero v1.18 does and this
module repeats (read from ``pkg/restore/restore.go``, ``pkg/restore/actions/*.go``,
``pkg/cmd/server/config/config.go``, ``pkg/controller/restore_controller.go``,
``pkg/archive/extractor.go``; the stored sources are v1.18.1, whose lists match v1.18.3's):

- Order: the high priorities of ``defaultRestorePriorities`` (customresourcedefinitions, namespaces,
  storageclasses, volumesnapshotclasses/volumesnapshotcontents/volumesnapshots, datauploads.velero.io,
  persistentvolumes, persistentvolumeclaims, clusterroles, roles, serviceaccounts,
  clusterrolebindings, rolebindings, secrets, configmaps, limitranges, priorityclasses, pods,
  replicasets.apps, clusterclasses.cluster.x-k8s.io, endpoints, services), then every other
  group-resource of the archive in alphabetical order, then the low priorities.  Inside one
  resource, namespaces and names in sorted order (Velero's map order is random).
- Never restored (the restore controller adds them to the excludes): nodes, events,
  events.events.k8s.io, backups/restores/resticrepositories/backuprepositories.velero.io,
  csinodes/volumeattachments.storage.k8s.io.
- Scope: the resource filter and namespace scope as in a backup (globs, exclude wins); label
  selectors on every item.  Cluster-scoped items: none with ``include_cluster_resources: false``; with
  it unset only when every namespace is in scope; with ``true`` those passing the resource filter.
  Namespace objects are only restored in their own pass under the same rule; otherwise a target
  namespace is created, from the archive's Namespace object (labels, annotations, spec) under its
  mapped name, when the first item is restored into it.
- Additional items (restore item actions): a bound PVC brings its PV, a pod its PVCs and its
  PriorityClass - restored just before the item, whatever the label selector or the cluster-scope
  rule (Velero checks only the resource filter, the namespace scope and
  ``include_cluster_resources: false`` for them).
- Cleaning (``resetMetadataAndStatus`` and the restore item actions), one function per kind in
  :data:`CLEANERS`: see each function.  Every item loses the server-set metadata (uid,
  resourceVersion, generation, creationTimestamp, deletion*, selfLink, generateName,
  ownerReferences; managedFields too, which Velero patches back and this collection leaves to the
  API server) and its status, and gets the labels ``velero.io/backup-name`` and
  ``velero.io/restore-name``.
- Skipped, as Velero: pods that Succeeded or Failed, mirror pods, Jobs with a completionTime,
  automanaged APIServices, service-account token Secrets the controller creates itself.

Stages: the plan is one sequence in priority order; items from the first ``pods`` on belong to
the ``workloads`` stage, everything before it (namespaces, PVs, PVCs, config) to ``resources``.  The
apply calls a hook between the two, where volume data and restore hooks will go.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import gzip
import hashlib
import json
import os
import posixpath
import re
import tarfile
import zlib

from ansible_collections.kubehooks.backup.plugins.module_utils import _csi_snapshot
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError, ScopeError
from ansible_collections.kubehooks.backup.plugins.module_utils._scope import (
    ResourceFilter,
    glob_match,
    labels_match,
    parse_label_selectors,
    selector_object,
    validate_namespace_scope,
)

# Velero v1.18 pkg/cmd/server/config/config.go defaultRestorePriorities.  Velero lists
# "volumesnapshotclass.snapshot.storage.k8s.io" (singular) and resolves it through discovery to the
# plural; the archive holds plural names, so the plural is written here.
HIGH_PRIORITIES = (
    "customresourcedefinitions",
    "namespaces",
    "storageclasses",
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "datauploads.velero.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "clusterroles",
    "roles",
    "serviceaccounts",
    "clusterrolebindings",
    "rolebindings",
    "secrets",
    "configmaps",
    "limitranges",
    "priorityclasses",
    "pods",
    "replicasets.apps",
    "clusterclasses.cluster.x-k8s.io",
    "endpoints",
    "services",
)
LOW_PRIORITIES = (
    "clusterbootstraps.run.tanzu.vmware.com",
    "clusters.cluster.x-k8s.io",
    "clusterresourcesets.addons.cluster.x-k8s.io",
    "apps.kappctrl.k14s.io",
    "packageinstalls.packaging.carvel.dev",
)
# The discovery names Velero's priorities use for these resources (short, unqualified).
_PRIORITY_ALIASES = {
    "customresourcedefinitions": "customresourcedefinitions.apiextensions.k8s.io",
    "storageclasses": "storageclasses.storage.k8s.io",
    "clusterroles": "clusterroles.rbac.authorization.k8s.io",
    "roles": "roles.rbac.authorization.k8s.io",
    "clusterrolebindings": "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings": "rolebindings.rbac.authorization.k8s.io",
    "priorityclasses": "priorityclasses.scheduling.k8s.io",
}
# pkg/controller/restore_controller.go nonRestorableResources
NON_RESTORABLE = (
    "nodes",
    "events",
    "events.events.k8s.io",
    "backups.velero.io",
    "restores.velero.io",
    "resticrepositories.velero.io",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
    "backuprepositories.velero.io",
)
STAGE_RESOURCES = "resources"
STAGE_WORKLOADS = "workloads"
FIRST_WORKLOAD = "pods"

NAMESPACES = "namespaces"
PODS = "pods"
PVCS = "persistentvolumeclaims"
PVS = "persistentvolumes"
SERVICES = "services"
BACKUP_NAME_LABEL = "velero.io/backup-name"
RESTORE_NAME_LABEL = "velero.io/restore-name"
POLICY_NONE = "none"
POLICY_UPDATE = "update"
POLICIES = (POLICY_NONE, POLICY_UPDATE)

_RESET_METADATA = ("generateName", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
                   "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
ARCHIVE_FORMAT_MAJOR = "1."


class ArchiveError(KubehooksError):
    """The backup archive cannot be read (missing, truncated, malformed)."""


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------

class RestoreOptions(object):
    """Validated restore options (ScopeError / KubehooksError naming the bad one)."""

    def __init__(self, restore_name, backup_name, included_namespaces=None, excluded_namespaces=None,
                 included_resources=None, excluded_resources=None, label_selectors=None,
                 namespace_mappings=None, include_cluster_resources=None, existing_resource_policy=None,
                 restore_status=None, preserve_node_ports=False, csi_snapshots=None):
        self.restore_name = restore_name
        # {(namespace, claim): volumes-index entry} of the backup's CSI snapshots (_csi_snapshot.restore_sources)
        self.csi_snapshots = dict(csi_snapshots or {})
        self.backup_name = backup_name
        self.included_namespaces = list(included_namespaces or [])
        self.excluded_namespaces = list(excluded_namespaces or [])
        self.scope = validate_namespace_scope(self.included_namespaces, self.excluded_namespaces)
        self.all_namespaces = not self.excluded_namespaces and (
            not self.included_namespaces or "*" in self.included_namespaces)
        self.included_resources = list(included_resources or [])
        self.excluded_resources = list(excluded_resources or [])
        for item in self.included_resources:
            if glob_match(NON_RESTORABLE, item):
                raise ScopeError("included_resources: %s are non-restorable resources" % item)
        self.label_selectors = [s for s in label_selectors or [] if s.strip()]
        self.requirements = parse_label_selectors(self.label_selectors)
        self.namespace_mappings = check_namespace_mappings(namespace_mappings)
        if include_cluster_resources not in (None, True, False):
            raise KubehooksError("include_cluster_resources must be true, false or null, got %r"
                                 % (include_cluster_resources,))
        self.include_cluster_resources = include_cluster_resources
        policy = existing_resource_policy or POLICY_NONE
        if policy not in POLICIES:
            raise KubehooksError("existing_resource_policy must be none or update, got %r" % (policy,))
        self.existing_resource_policy = policy
        self.restore_status = list(restore_status or [])
        self.preserve_node_ports = bool(preserve_node_ports)
        self.resource_filter = None
        self.status_filter = None
        self.resolve([])

    def resolve(self, resources):
        """Resolve the resource names through discovery entries (``_resources.preferred_resources``)."""
        self.resource_filter = ResourceFilter(self.included_resources, self.excluded_resources, resources,
                                              auto_excluded=NON_RESTORABLE)
        self.status_filter = ResourceFilter(self.restore_status, None, resources, auto_excluded=()) \
            if self.restore_status else None
        return self

    def target_namespace(self, namespace):
        return self.namespace_mappings.get(namespace, namespace) if namespace else namespace

    def namespace_selected(self, namespace):
        return self.scope.matches(namespace)

    def cluster_scoped_selected(self):
        """Velero's rule for the cluster-scoped items of the main pass."""
        if self.include_cluster_resources is False:
            return False
        return self.include_cluster_resources is True or self.all_namespaces

    def restores_status(self, group_resource, obj):
        """Velero's determineRestoreStatus: the restore_status filter, then the per-object annotation."""
        decided = bool(self.status_filter and self.status_filter.should_include(group_resource))
        value = ((obj.get("metadata") or {}).get("annotations") or {}).get("velero.io/restore-status")
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return decided

    def spec(self):
        """Velero's Restore spec for these options."""
        spec = {"backupName": self.backup_name,
                "includedNamespaces": self.included_namespaces or ["*"],
                "excludedNamespaces": self.excluded_namespaces,
                "includedResources": self.included_resources or ["*"],
                "excludedResources": self.excluded_resources + [r for r in NON_RESTORABLE
                                                                if r not in self.excluded_resources],
                "existingResourcePolicy": self.existing_resource_policy,
                "preserveNodePorts": self.preserve_node_ports}
        if self.label_selectors:
            selector = selector_object(self.label_selectors)
            if selector is not None:
                spec["labelSelector"] = selector
        if self.namespace_mappings:
            spec["namespaceMapping"] = dict(self.namespace_mappings)
        if self.include_cluster_resources is not None:
            spec["includeClusterResources"] = self.include_cluster_resources
        if self.restore_status:
            spec["restoreStatus"] = {"includedResources": list(self.restore_status)}
        return spec


def check_namespace_mappings(mappings):
    """``{old: new}`` with both namespace names (DNS-1123 labels); a target may not be mapped twice."""
    if mappings in (None, ""):
        return {}
    if not isinstance(mappings, dict):
        raise ScopeError("namespace_mappings must be a mapping of old namespace to new namespace, got %r"
                         % (mappings,))
    targets = {}
    for old, new in mappings.items():
        for value in (old, new):
            if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LABEL.match(value):
                raise ScopeError("namespace_mappings: %r is not a namespace name (lowercase letters, digits "
                                 "and '-', at most 63 characters)" % (value,))
        if new in targets:
            raise ScopeError("namespace_mappings: %s and %s are both mapped to %s" % (targets[new], old, new))
        targets[new] = old
    return dict(mappings)


# --------------------------------------------------------------------------------------------
# The archive on disk
# --------------------------------------------------------------------------------------------

def _safe_member_path(name):
    """The member's relative path, or None when it would leave the extraction directory."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return None
    clean = posixpath.normpath(name)
    if clean in (".", "") or clean.startswith("../") or clean == ".." or "/../" in "/%s/" % clean:
        return None
    return clean


def _private_dirs(dest, parts):
    """Create ``dest/parts...`` one level at a time, each 0700 (os.makedirs applies the mode to the
    last level only)."""
    current = dest
    for part in parts:
        current = os.path.join(current, part)
        if not os.path.isdir(current):
            os.mkdir(current, 0o700)


def extract_archive(path, dest):
    """Extract a backup archive into ``dest`` (created 0700; files 0600), streaming.

    Like Velero's extractor: regular files and directories only, paths may not leave ``dest``.
    A missing, truncated, non-gzip or non-tar file, an unsafe path, a link or device entry, or a
    missing/unknown ``metadata/version`` raises ArchiveError; nothing is restored from such an
    archive.  Returns ``{"format_version", "files"}``.
    """
    try:
        os.makedirs(dest, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ArchiveError("cannot create the extraction directory %s: %s" % (dest, exc.strerror or exc))
    files = 0
    try:
        # gzip itself (not tarfile's stream) so that a stream cut anywhere, even between two
        # members, is noticed: the rest is drained, and a missing end-of-stream raises EOFError.
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as compressed, \
                tarfile.open(fileobj=compressed, mode="r|") as tar:
            for member in tar:
                relative = _safe_member_path(member.name)
                if relative is None:
                    raise ArchiveError("the backup archive %s is malformed: entry %r leaves the archive's "
                                       "directory" % (path, member.name))
                parts = relative.split("/")
                target = os.path.join(dest, *parts)
                if member.isdir():
                    _private_dirs(dest, parts)
                    continue
                if not member.isfile():
                    raise ArchiveError("the backup archive %s is malformed: entry %r is not a regular file"
                                       % (path, member.name))
                _private_dirs(dest, parts[:-1])
                source = tar.extractfile(member)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    while True:
                        chunk = source.read(65536)
                        if not chunk:
                            break
                        handle.write(chunk)
                files += 1
            while compressed.read(65536):
                pass
    except ArchiveError:
        raise
    except FileNotFoundError:
        raise ArchiveError("the backup archive %s does not exist" % path)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ArchiveError("the backup archive %s is truncated or malformed (%s): nothing was restored"
                           % (path, reason))
    version = _read_version(dest, path)
    return {"format_version": version, "files": files}


def _read_version(dest, path):
    try:
        with open(os.path.join(dest, "metadata", "version"), "rb") as handle:
            version = handle.read(64).decode("ascii", "replace").strip()
    except OSError:
        raise ArchiveError("the backup archive %s is malformed: it has no metadata/version" % path)
    if not version.startswith(ARCHIVE_FORMAT_MAJOR):
        raise ArchiveError("the backup archive %s has format version %r; this collection reads 1.x"
                           % (path, version))
    return version


class ArchiveDir(object):
    """An extracted archive: Velero's ``resources/<group-resource>/{namespaces/<ns>,cluster}/<name>.json``.

    Nothing is held in memory but directory names: items are listed per (resource, namespace)
    when iterated and read one at a time.
    """

    def __init__(self, root):
        self.root = root
        self.resources_dir = os.path.join(root, "resources")

    def group_resources(self):
        try:
            return sorted(d for d in os.listdir(self.resources_dir)
                          if os.path.isdir(os.path.join(self.resources_dir, d)))
        except OSError:
            return []

    def namespaces(self, group_resource):
        """The namespaces holding items of ``group_resource``, sorted; "" for cluster-scoped items."""
        base = os.path.join(self.resources_dir, group_resource)
        out = []
        if os.path.isdir(os.path.join(base, "cluster")):
            out.append("")
        try:
            out.extend(sorted(os.listdir(os.path.join(base, "namespaces"))))
        except OSError:
            pass
        return out

    def _dir(self, group_resource, namespace):
        base = os.path.join(self.resources_dir, group_resource)
        return os.path.join(base, "namespaces", namespace) if namespace else os.path.join(base, "cluster")

    def names(self, group_resource, namespace):
        try:
            return sorted(n[:-5] for n in os.listdir(self._dir(group_resource, namespace)) if n.endswith(".json"))
        except OSError:
            return []

    def path(self, group_resource, namespace, name):
        return os.path.join(self._dir(group_resource, namespace), name + ".json")

    def relative(self, group_resource, namespace, name):
        return os.path.relpath(self.path(group_resource, namespace, name), self.root).replace(os.sep, "/")

    def exists(self, group_resource, namespace, name):
        return os.path.isfile(self.path(group_resource, namespace, name))

    def load(self, group_resource, namespace, name):
        """The item as a dict; ArchiveError naming the entry when it is not a JSON object."""
        path = self.path(group_resource, namespace, name)
        try:
            with open(path, "rb") as handle:
                obj = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise ArchiveError("error decoding %r: %s" % (self.relative(group_resource, namespace, name), exc))
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise ArchiveError("error decoding %r: not a Kubernetes object"
                               % self.relative(group_resource, namespace, name))
        return obj

    def load_or_none(self, group_resource, namespace, name):
        try:
            return self.load(group_resource, namespace, name)
        except ArchiveError:
            return None


# --------------------------------------------------------------------------------------------
# Order and selection
# --------------------------------------------------------------------------------------------

def _canonical(name, present):
    """A priority name as the archive spells it (``clusterroles`` -> the rbac group's name)."""
    if name in present:
        return name
    alias = _PRIORITY_ALIASES.get(name)
    return alias if alias in present else name


def ordered_resources(group_resources):
    """Velero's getOrderedResources over the archive's group-resources (those present only)."""
    present = set(group_resources)
    high = [_canonical(n, present) for n in HIGH_PRIORITIES]
    low = [_canonical(n, present) for n in LOW_PRIORITIES]
    prioritized = set(high) | set(low)
    middle = sorted(r for r in present if r not in prioritized)
    seen, out = set(), []
    for name in high + middle + low:
        if name in present and name not in seen:
            seen.add(name)
            out.append(name)
    return out


_BEFORE_WORKLOADS = frozenset(HIGH_PRIORITIES[:HIGH_PRIORITIES.index(FIRST_WORKLOAD)]) | frozenset(
    _PRIORITY_ALIASES[n] for n in HIGH_PRIORITIES[:HIGH_PRIORITIES.index(FIRST_WORKLOAD)] if n in _PRIORITY_ALIASES)


def stage_of(group_resource):
    """``resources`` for what Velero restores before pods, ``workloads`` from pods on."""
    return STAGE_RESOURCES if group_resource in _BEFORE_WORKLOADS else STAGE_WORKLOADS


def iter_plan(archive, options):
    """Yield ``(entry, obj)`` for every item to restore, in restore order; ``obj`` as in the archive.

    ``entry``: ``group_resource``, ``namespace`` (in the backup, "" when cluster-scoped),
    ``target_namespace``, ``name``, ``path`` (in the archive) and ``stage``.  An item that cannot be
    decoded is yielded with ``obj`` None and ``entry["error"]`` (recorded as failed, the rest goes on).
    One object is in memory at a time.
    """
    for group_resource in ordered_resources(archive.group_resources()):
        if not options.resource_filter.should_include(group_resource):
            continue
        stage = stage_of(group_resource)
        for namespace in archive.namespaces(group_resource):
            if namespace:
                if not options.namespace_selected(namespace):
                    continue
            elif not options.cluster_scoped_selected():
                continue
            for name in archive.names(group_resource, namespace):
                if group_resource == NAMESPACES and not options.namespace_selected(name):
                    continue
                entry = {"group_resource": group_resource, "namespace": namespace,
                         "target_namespace": options.target_namespace(namespace), "name": name,
                         "path": archive.relative(group_resource, namespace, name), "stage": stage}
                if group_resource == NAMESPACES:
                    entry["target_name"] = options.namespace_mappings.get(name, name)
                try:
                    obj = archive.load(group_resource, namespace, name)
                except ArchiveError as exc:
                    entry["error"] = str(exc)
                    yield entry, None
                    continue
                if options.requirements and not labels_match(
                        options.requirements, (obj.get("metadata") or {}).get("labels")):
                    continue
                yield entry, obj


def additional_items(group_resource, obj):
    """The items a restore item action adds before this one: [(group_resource, namespace, name)]."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    out = []
    if group_resource == PVCS:
        if (obj.get("status") or {}).get("phase") == "Bound" and spec.get("volumeName"):
            out.append((PVS, "", spec["volumeName"]))
    elif group_resource == PODS:
        for volume in spec.get("volumes") or []:
            claim = (volume or {}).get("persistentVolumeClaim") or {}
            if claim.get("claimName"):
                out.append((PVCS, metadata.get("namespace") or "", claim["claimName"]))
        if spec.get("priorityClassName"):
            out.append(("priorityclasses.scheduling.k8s.io", "", spec["priorityClassName"]))
    return out


def additional_allowed(options, group_resource, namespace):
    """Velero's restoreItem checks for an additional item (no label selector, no auto cluster rule)."""
    if not options.resource_filter.should_include(group_resource):
        return False
    if namespace:
        return options.namespace_selected(namespace)
    return options.include_cluster_resources is not False


# --------------------------------------------------------------------------------------------
# Cleaning, one function per kind
# --------------------------------------------------------------------------------------------

def valid_label_value(value):
    """Velero's label.GetValidName: values over 63 characters become 57 + 6 hex of their sha256."""
    if len(value) <= 63:
        return value
    return value[:57] + hashlib.sha256(value.encode("utf-8")).hexdigest()[:6]


def reset_metadata_and_status(obj):
    """Velero's resetMetadataAndStatus: returns (obj, status or None)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        raise KubehooksError("metadata not found")
    for key in _RESET_METADATA:
        metadata.pop(key, None)
    return obj, obj.pop("status", None)


def _annotations(obj):
    return obj.setdefault("metadata", {}).get("annotations") or {}


def _drop_annotations(obj, keys):
    annotations = _annotations(obj)
    for key in keys:
        annotations.pop(key, None)
    if annotations:
        obj["metadata"]["annotations"] = annotations
    else:
        obj["metadata"].pop("annotations", None)


_BINDING_ANNOTATIONS = ("pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller")


def reset_volume_binding(obj):
    """Velero's resetVolumeBindingInfo: claimRef uid/resourceVersion and the binding annotations go."""
    claim_ref = (obj.get("spec") or {}).get("claimRef")
    if isinstance(claim_ref, dict):
        claim_ref.pop("uid", None)
        claim_ref.pop("resourceVersion", None)
    _drop_annotations(obj, _BINDING_ANNOTATIONS)
    return obj


def clean_pod(obj, item, options, archive):
    """PodAction: no nodeName, no priority (the PriorityClass sets it again), no service-account token
    volumes and mounts - Velero's legacy ``<sa>-token-*`` secret volumes, and the projected
    ``kube-api-access-*`` volumes the ServiceAccount admission adds, so that admission adds fresh ones."""
    spec = obj.setdefault("spec", {})
    spec.pop("nodeName", None)
    spec.pop("priority", None)
    prefix = (spec.get("serviceAccountName") or spec.get("serviceAccount") or "") + "-token-"

    def token_volume(volume):
        name = (volume or {}).get("name") or ""
        if name.startswith(prefix):
            return True
        projected = (volume or {}).get("projected") or {}
        return name.startswith("kube-api-access-") and any(
            "serviceAccountToken" in (source or {}) for source in projected.get("sources") or [])

    dropped = set(v.get("name") for v in spec.get("volumes") or [] if token_volume(v))
    if "volumes" in spec:
        spec["volumes"] = [v for v in spec.get("volumes") or [] if not token_volume(v)]
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            if "volumeMounts" in container:
                container["volumeMounts"] = [m for m in container.get("volumeMounts") or []
                                             if m.get("name") not in dropped and not (m.get("name") or "").startswith(prefix)]
    return obj, None


def _explicit_node_ports(obj):
    """Port keys whose nodePort the user set (last-applied-configuration, else managedFields)."""
    annotations = _annotations(obj)
    last_applied = annotations.get("kubectl.kubernetes.io/last-applied-configuration")
    if last_applied:
        try:
            applied = json.loads(last_applied)
        except ValueError:
            applied = {}
        names, numbers = set(), set()
        for port in ((applied.get("spec") or {}).get("ports") or []) if isinstance(applied, dict) else []:
            if isinstance(port, dict) and port.get("nodePort"):
                if port.get("name"):
                    names.add(port["name"])
                else:
                    numbers.add(int(port["nodePort"]))
        return lambda port: (port.get("name") in names) if port.get("name") else (port.get("nodePort") in numbers)
    keys = set()
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        ports = ((entry.get("fieldsV1") or {}).get("f:spec") or {}).get("f:ports") or {}
        for key, fields in ports.items():
            if isinstance(fields, dict) and "f:nodePort" in fields:
                keys.add(key)
    return lambda port: 'k:{"port":%s,"protocol":"%s"}' % (port.get("port"), port.get("protocol") or "TCP") in keys


def clean_service(obj, item, options, archive):
    """ServiceAction: no cluster IPs (unless headless ``None``); node ports only those the user set
    explicitly (last-applied-configuration or managedFields), all of them with preserve_node_ports."""
    spec = obj.setdefault("spec", {})
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if not options.preserve_node_ports and spec.get("type") != "ExternalName":
        explicit = _explicit_node_ports(obj)
        for port in spec.get("ports") or []:
            if "nodePort" in port and not explicit(port):
                port.pop("nodePort")
        spec.pop("healthCheckNodePort", None)
    return obj, None


_PVC_ANNOTATIONS = _BINDING_ANNOTATIONS + (
    "volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node", "velero.io/volume-snapshot-name", "velero.io/data-upload-name")


def provisioned_anew(pv):
    """A PV Velero does not restore (no snapshot, reclaim policy Delete): its claim gets a new volume."""
    return ((pv or {}).get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete"


def snapshot_of_claim(options, namespace, name):
    """The backup's CSI snapshot of claim ``namespace/name`` (source namespace), or None."""
    return getattr(options, "csi_snapshots", {}).get((namespace, name))


def clean_pvc(obj, item, options, archive):
    """PVCAction + restore.go: the binding and provisioner annotations go; ``volumeName`` stays (the
    claim binds to its restored PV) unless that PV is provisioned anew (reclaim policy Delete).  A claim
    with a CSI snapshot in the backup is restored from it (Velero's CSI restore): no ``volumeName``,
    ``dataSource`` the VolumeSnapshot (the apply makes sure it exists in the target namespace)."""
    _drop_annotations(obj, _PVC_ANNOTATIONS)
    snapshot = snapshot_of_claim(options, item.get("namespace"), item.get("name"))
    if snapshot is not None:
        return _csi_snapshot.claim_from_snapshot(obj, snapshot), None
    spec = obj.setdefault("spec", {})
    volume = spec.get("volumeName")
    if volume and archive is not None and provisioned_anew(archive.load_or_none(PVS, "", volume)):
        spec.pop("volumeName")
    return obj, None


def clean_pv(obj, item, options, archive):
    """restore.go for a PV without snapshot: reclaim policy Delete -> not restored (dynamically
    provisioned again through its claim); else restored as-is with its claimRef namespace mapped and
    the binding info reset, so that the restored claim binds to it."""
    if provisioned_anew(obj):
        return obj, "reclaim policy Delete and no volume snapshot: its claim gets a newly provisioned volume"
    claim_ref = (obj.get("spec") or {}).get("claimRef")
    if isinstance(claim_ref, dict) and snapshot_of_claim(options, claim_ref.get("namespace"), claim_ref.get("name")):
        return obj, "its claim is restored from a CSI snapshot (a new volume is provisioned from it)"
    if isinstance(claim_ref, dict) and claim_ref.get("namespace") in options.namespace_mappings:
        claim_ref["namespace"] = options.namespace_mappings[claim_ref["namespace"]]
    return reset_volume_binding(obj), None


_JOB_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def clean_job(obj, item, options, archive):
    """JobAction: the controller-uid labels leave the selector and the pod template."""
    spec = obj.setdefault("spec", {})
    match = (spec.get("selector") or {}).get("matchLabels")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    for mapping in (match, labels):
        if isinstance(mapping, dict):
            for key in _JOB_LABELS:
                mapping.pop(key, None)
    return obj, None


def clean_service_account(obj, item, options, archive):
    """ServiceAccountAction: the first ``<name>-token-*`` secret reference goes."""
    prefix = (obj.get("metadata") or {}).get("name", "") + "-token-"
    secrets = obj.get("secrets")
    if isinstance(secrets, list):
        for index in range(len(secrets) - 1, -1, -1):
            if ((secrets[index] or {}).get("name") or "").startswith(prefix):
                del secrets[index]
                break
    return obj, None


def clean_secret(obj, item, options, archive):
    """SecretAction: a token Secret the controller creates itself (``<sa>-token-*``) is skipped; any
    other service-account token Secret loses its uid annotation, token and ca.crt (regenerated)."""
    if obj.get("type") != "kubernetes.io/service-account-token":
        return obj, None
    annotations = _annotations(obj)
    account = annotations.get("kubernetes.io/service-account.name") or ""
    if account and (obj.get("metadata") or {}).get("name", "").startswith(account + "-token-"):
        return obj, "service account token secret created by the controller"
    _drop_annotations(obj, ("kubernetes.io/service-account.uid",))
    data = obj.get("data")
    if isinstance(data, dict):
        data.pop("token", None)
        data.pop("ca.crt", None)
    return obj, None


def clean_binding(obj, item, options, archive):
    """(Cluster)RoleBindingAction: subjects' namespaces are mapped."""
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and subject.get("namespace") in options.namespace_mappings:
            subject["namespace"] = options.namespace_mappings[subject["namespace"]]
    return obj, None


def clean_api_service(obj, item, options, archive):
    """APIServiceAction: the API server's own (automanaged) APIServices are not restored."""
    if "kube-aggregator.kubernetes.io/automanaged" in ((obj.get("metadata") or {}).get("labels") or {}):
        return obj, "APIService managed by Kubernetes"
    return obj, None


def clean_volume_snapshot(obj, item, options, archive):
    """The backup's own VolumeSnapshots are re-created with their claims, from the volumes index (the
    apply's ``_snapshot_for_claim``, Velero's VolumeSnapshot restore action); others are restored as they are."""
    name = (obj.get("metadata") or {}).get("name")
    for entry in getattr(options, "csi_snapshots", {}).values():
        if (entry.get("namespace"), entry.get("volume_snapshot")) == (item.get("namespace"), name):
            return obj, "re-created from its snapshot handle when its claim %s is restored" % entry.get("pvc")
    return obj, None


def clean_volume_snapshot_content(obj, item, options, archive):
    """The backup's VolumeSnapshotContents are not restored: a restore pre-provisions a content of its own
    (deletion policy Retain) from the snapshot handle, bound to the restored VolumeSnapshot."""
    name = (obj.get("metadata") or {}).get("name")
    if any(entry.get("volume_snapshot_content") == name for entry in getattr(options, "csi_snapshots", {}).values()):
        return obj, "a restored claim's snapshot gets a content of its own (deletion policy Retain) from its handle"
    return obj, None


CLEANERS = {
    _csi_snapshot.SNAPSHOTS: clean_volume_snapshot,
    _csi_snapshot.CONTENTS: clean_volume_snapshot_content,
    "pods": clean_pod,
    "services": clean_service,
    "persistentvolumeclaims": clean_pvc,
    "persistentvolumes": clean_pv,
    "jobs.batch": clean_job,
    "serviceaccounts": clean_service_account,
    "secrets": clean_secret,
    "rolebindings.rbac.authorization.k8s.io": clean_binding,
    "clusterrolebindings.rbac.authorization.k8s.io": clean_binding,
    "apiservices.apiregistration.k8s.io": clean_api_service,
}


def skip_reason(group_resource, obj):
    """Velero's checks before cleaning: finished pods and jobs, mirror pods."""
    status = obj.get("status") or {}
    if group_resource == PODS:
        if status.get("phase") in ("Succeeded", "Failed"):
            return "the pod is complete (%s)" % status["phase"]
        if "kubernetes.io/config.mirror" in _annotations(obj):
            return "mirror pod"
    if group_resource == "jobs.batch" and status.get("completionTime"):
        return "the job is complete"
    return None


def clean_item(entry, obj, options, archive=None):
    """The object to create for a plan ``entry``: ``(obj, status, skip)``.

    ``obj`` is a cleaned deep copy in the target namespace with the restore labels; ``status`` the
    backed-up status (for restore_status); ``skip`` a reason when Velero would not restore it (then
    ``obj`` is None).  ``archive`` (an ArchiveDir) lets a PVC look at its PV.
    """
    group_resource = entry["group_resource"]
    reason = skip_reason(group_resource, obj)
    if reason:
        return None, None, reason
    obj = copy.deepcopy(obj)
    obj, status = reset_metadata_and_status(obj)
    cleaner = CLEANERS.get(group_resource)
    if cleaner is not None:
        obj, reason = cleaner(obj, entry, options, archive)
        if reason:
            return None, None, reason
    if group_resource == PVCS:
        reset_volume_binding(obj)
    metadata = obj["metadata"]
    metadata.pop("managedFields", None)  # after the cleaners: the service's one reads it
    if entry.get("target_namespace"):
        metadata["namespace"] = entry["target_namespace"]
    else:
        metadata.pop("namespace", None)
    labels = metadata.get("labels") or {}
    labels[BACKUP_NAME_LABEL] = valid_label_value(options.backup_name)
    labels[RESTORE_NAME_LABEL] = valid_label_value(options.restore_name)
    metadata["labels"] = labels
    return obj, status, None


def namespace_object(archive, namespace, target):
    """Velero's getNamespace: the Namespace to create for ``target`` (labels, annotations and spec
    of the archive's Namespace object ``namespace`` when it has one)."""
    backed_up = archive.load_or_none(NAMESPACES, "", namespace) if archive is not None else None
    metadata = {"name": target}
    out = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    if backed_up:
        source = backed_up.get("metadata") or {}
        for key in ("labels", "annotations"):
            if source.get(key):
                metadata[key] = dict(source[key])
        labels = metadata.get("labels")
        if labels and labels.get("kubernetes.io/metadata.name") == namespace:
            labels["kubernetes.io/metadata.name"] = target
        if backed_up.get("spec"):
            out["spec"] = copy.deepcopy(backed_up["spec"])
    return out
