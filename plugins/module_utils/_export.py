# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: resource export into Velero's backup archive layout. Not a public API.

What Velero does (read from its source) and this module repeats:

- Archive (``pkg/backup/backup.go``, ``pkg/backup/item_backupper.go``, ``pkg/archive/filesystem.go``):
  a gzip-compressed tar holding ``metadata/version`` (``1.1.0`` and a newline) and, for every item,
  TWO copies of the same JSON: ``resources/<group-resource>/namespaces/<ns>/<name>.json`` (kept
  "for backward compatibility") and ``resources/<group-resource>/<version>-preferredversion/
  namespaces/<ns>/<name>.json``; cluster-scoped items use ``cluster/<name>.json`` in both.  Velero
  only lists the preferred version of each resource (the API Group Versions feature flag is off by
  default), so a version directory without the ``-preferredversion`` suffix is never written.
  ``<group-resource>`` is ``pods`` for the core group and ``deployments.apps`` otherwise.
- Discovery (``pkg/discovery/helper.go``): client-go's ServerPreferredResources (per group, each
  resource from the first version, in priority order, that serves it), minus subresources (a ``/``
  in the name) and resources that do not support all of ``list``, ``create``, ``get`` and
  ``delete``.  Groups whose discovery fails are skipped with a warning.  ``extensions`` sorts last;
  in the core group pods, persistentvolumeclaims and persistentvolumes come first.
- Events ARE exported (Velero has no default exclusion for them; its restore is what skips them).
  ``events`` and ``events.events.k8s.io`` are the same objects, so the second one met is skipped,
  as Velero's "cohabitating resources" (likewise deployments/daemonsets/replicasets/networkpolicies
  in ``extensions``).  ``volumesnapshots.snapshot.storage.k8s.io`` and
  ``volumesnapshotcontents.snapshot.storage.k8s.io`` are always excluded (Velero's controller adds
  them to the excludes whatever the user asked).
- Resource filters (``pkg/util/collections/includes_excludes.go``): each included/excluded entry is
  resolved through discovery (plural, singular, kind, short name, optional ``.group``) to
  ``resource.group``; unresolvable entries stay as typed (so they match nothing rather than
  everything); entries are globs; exclude wins; ``*`` among the includes means all.
  ``include_cluster_resources``: ``False`` = no cluster-scoped resource at all (not even Namespace
  objects); ``None`` = cluster-scoped resources only when every namespace is in scope (no includes
  or ``*``, and no excludes), Namespace objects excepted; ``True`` = cluster-scoped resources that
  pass the resource filter.
- Items with ``metadata.deletionTimestamp`` or the label ``velero.io/exclude-from-backup=true`` are
  skipped.  Namespace objects are exported for namespaces in scope (Active ones), or, when the
  namespace scope is "all" and a label selector is set, for namespaces whose labels match or that
  hold an exported item.
- The PersistentVolume bound to every exported PVC is exported too (Velero's PVC backup item
  action returns it as an additional item), even when cluster-scoped resources are otherwise left
  out (``include_cluster_resources`` unset with a namespace subset, or a label selector the PV does
  not match); not with ``include_cluster_resources: false`` or ``persistentvolumes`` excluded.
- Tar entries have mode 0755, as Velero writes them.
- Resource list (``pkg/backup/backed_up_items_map.go``): ``{"<apiVersion>/<Kind>": ["ns/name" or
  "name", ...]}``, e.g. ``{"v1/Pod": ["nginx-example/nginx-1"], "apps/v1/Deployment": [...]}``.

Streaming: LIST calls are paginated (``limit``/``continue``, bodies read raw and parsed with
``json.loads``), each item goes straight into a ``w|gz`` tar stream, and the resource list is
written incrementally to its own gzip file.  Nothing keeps a list of objects or of names: memory is
bounded by one page of one LIST, whatever the number of objects.  Namespace objects are listed
last (Velero collects everything first and filters namespaces at the end; order inside a tar does
not matter to a restore).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import functools
import gzip
import io
import itertools
import json
import os
import tarfile
import time

from ansible_collections.kubehooks.backup.plugins.module_utils import _csi_snapshot, _layout, _volumes
try:
    from ansible.module_utils.six.moves.urllib.parse import quote
except ImportError:  # pragma: no cover - only outside Ansible
    from urllib.parse import quote

from ansible_collections.kubehooks.backup.plugins.module_utils._api import (
    DEFAULT_PAGE_SIZE,
    ApiRequestError,
    api_error_message,
    api_getter,
    error_reason,
    list_pages,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import ExportError, KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._record import timestamp
from ansible_collections.kubehooks.backup.plugins.module_utils._resources import discover, preferred_resources
from ansible_collections.kubehooks.backup.plugins.module_utils._scope import (
    NAMESPACES,
    ResourceFilter,
    glob_match,
    include_resource_type,
    label_selector_query,
    labels_match,
    namespaces_include_everything,
    namespaces_to_list,
    parse_label_selectors,
    validate_namespace_scope,
)


METADATA_VERSION_PATH = "metadata/version"
RESOURCES_DIR = "resources"
NAMESPACED_DIR = "namespaces"
CLUSTER_DIR = "cluster"
PREFERRED_VERSION_SUFFIX = "-preferredversion"
EXCLUDE_LABEL = "velero.io/exclude-from-backup"
PODS = "pods"
PROGRESS_EVERY = 200  # items between two progress callbacks inside one resource
# Velero writes every tar entry 0755, and its extractor creates each entry's parent directories with
# the entry's mode: 0644 entries cannot be restored by a non-root Velero (directories without x).
ENTRY_MODE = 0o755
PVCS = "persistentvolumeclaims"
PVS = "persistentvolumes"

# The same objects served under two groups: only the first one met is exported (Velero).
COHABITATING = {
    "deployments": ("extensions", "apps"),
    "daemonsets": ("extensions", "apps"),
    "replicasets": ("extensions", "apps"),
    "networkpolicies": ("extensions", "networking.k8s.io"),
    "events": ("", "events.k8s.io"),
}


# --------------------------------------------------------------------------------------------
# Names and paths (pure)
# --------------------------------------------------------------------------------------------

def resource_list_key(api_version_string, kind):
    """The key of Velero's resource list: ``v1/Pod``, ``apps/v1/Deployment``."""
    return "%s/%s" % (api_version_string, kind)


def resource_list_entry(namespace, name):
    """``ns/name`` for a namespaced item, ``name`` for a cluster-scoped one."""
    return "%s/%s" % (namespace, name) if namespace else name


def item_path(group_resource_string, namespace, name, version_dir=""):
    """An item's path in the archive (``archive.GetVersionedItemFilePath`` with an empty root)."""
    parts = [RESOURCES_DIR, group_resource_string]
    if version_dir:
        parts.append(version_dir)
    if namespace:
        parts.extend([NAMESPACED_DIR, namespace])
    else:
        parts.append(CLUSTER_DIR)
    parts.append(name + ".json")
    return "/".join(parts)


def item_paths(group_resource_string, namespace, name, version):
    """Both paths Velero writes for an item listed at its preferred ``version``: (plain, preferred)."""
    return (item_path(group_resource_string, namespace, name),
            item_path(group_resource_string, namespace, name, version + PREFERRED_VERSION_SUFFIX))


def list_path(group, version, resource, namespace=None):
    """The LIST URL path of a resource, cluster-wide (namespace None) or in one namespace."""
    base = "/apis/%s/%s" % (group, version) if group else "/api/%s" % version
    if namespace:
        return "%s/namespaces/%s/%s" % (base, namespace, resource)
    return "%s/%s" % (base, resource)


def check_archive_name(name):
    """The backup name becomes a file name: refuse anything that is not one plain path component."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name \
            or (os.sep != "/" and os.sep in name):
        raise ExportError("invalid backup name %r: it must be a plain file name (no '/')" % (name,))
    return name


# --------------------------------------------------------------------------------------------
# Namespace objects and excluded pods (pure)
# --------------------------------------------------------------------------------------------

def include_namespace_object(name, active, label_match, has_selector, all_namespaces, in_scope, has_items):
    """Velero's nsTracker: should the Namespace object ``name`` go into the archive?"""
    if has_items:
        return True
    if not active:
        return False
    if has_selector and label_match:
        return True
    if all_namespaces and has_selector:
        return False
    return in_scope


def normalize_pod_set(pods):
    """``exclude_pods`` as a set of (namespace, name); accepts tuples, ``ns/name`` or dicts."""
    out = set()
    for pod in pods or ():
        if isinstance(pod, str):
            namespace, _slash, name = pod.partition("/")
        elif isinstance(pod, dict):
            namespace, name = pod.get("namespace"), pod.get("name") or pod.get("pod")
        else:
            namespace, name = pod
        out.add((namespace, name))
    return out


# --------------------------------------------------------------------------------------------
# Archive writer: consumes (resource entry, object) pairs one at a time
# --------------------------------------------------------------------------------------------

def _open_owner_only(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


class _ResourceListWriter(object):
    """Writes Velero's resource list as gzip JSON incrementally; items must arrive grouped by key."""

    def __init__(self, fileobj):
        self._raw = fileobj
        self._gz = gzip.GzipFile(fileobj=fileobj, mode="wb", mtime=0)
        self._key = None
        self._first_entry = True
        self._gz.write(b"{")

    def add(self, key, entry):
        if key != self._key:
            if self._key is not None:
                self._gz.write(b"],")
            self._gz.write(json.dumps(key).encode("utf-8") + b":[")
            self._key = key
            self._first_entry = True
        if not self._first_entry:
            self._gz.write(b",")
        self._gz.write(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
        self._first_entry = False

    def close(self):
        if self._key is not None:
            self._gz.write(b"]")
        self._gz.write(b"}")
        self._gz.close()
        self._raw.close()


class ArchiveWriter(object):
    """A Velero archive written incrementally to ``path`` (a ``.partial`` file renamed on success).

    ``resource_list_path``: where the resource list goes (same atomic rename), or None.
    Files are created owner-only (0600): an archive holds Secrets.
    """

    def __init__(self, path, resource_list_path=None, mtime=None):
        self.path = path
        self.resource_list_path = resource_list_path
        self.mtime = int(time.time() if mtime is None else mtime)
        self._partial = path + ".partial"
        self._list_partial = resource_list_path + ".partial" if resource_list_path else None
        self._file = None
        self._tar = None
        self._list = None
        self._lock = None
        self._take(path)
        try:
            self._file = _open_owner_only(self._partial)
            self._tar = tarfile.open(fileobj=self._file, mode="w|gz", format=tarfile.PAX_FORMAT)
            if self._list_partial:
                self._list = _ResourceListWriter(_open_owner_only(self._list_partial))
            self._add_file(METADATA_VERSION_PATH, (_layout.FORMAT_VERSION + "\n").encode("ascii"))
        except OSError as exc:
            self.abort()
            raise ExportError("cannot write the backup archive %s: %s" % (path, _os_reason(exc)))

    def _take(self, path):
        """One export per archive name at a time, and never over a finished archive.

        An exclusive ``flock`` on ``<archive>.partial`` (held until the archive is in place or dropped)
        makes a second export of the same name fail at once instead of writing into the same file; a
        partial file left by a killed export is not locked and is taken over."""
        try:
            self._lock = os.open(self._partial, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ExportError("cannot write the backup archive %s: %s" % (path, _os_reason(exc)))
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            self._lock = None
            raise ExportError("another export of backup archive %s is running (it holds %s): two exports of one "
                              "backup name never write at the same time; choose another name or wait for it"
                              % (path, self._partial))
        for existing in (path, self.resource_list_path):
            if existing and os.path.exists(existing):
                self._release(remove=True)
                raise ExportError("backup archive %s already exists: a finished backup is never overwritten; "
                                  "choose another backup name" % existing)

    def _release(self, remove=False):
        if remove:
            _remove_quietly(self._partial)
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None

    @staticmethod
    def _place(partial, final):
        """Move ``partial`` to ``final`` unless ``final`` exists (a hard link: atomic, never overwrites)."""
        try:
            os.link(partial, final)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise ExportError("backup archive %s already exists: a finished backup is never overwritten; "
                                  "choose another backup name" % final)
            raise
        os.unlink(partial)

    def _add_file(self, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = ENTRY_MODE
        info.mtime = self.mtime
        info.type = tarfile.REGTYPE
        self._tar.addfile(info, io.BytesIO(data))
        # TarFile remembers every member it wrote (for getmembers()); in a stream that is memory
        # growing with the number of objects, and nothing here reads it back.
        del self._tar.members[:]

    def add(self, resource, obj):
        """Write one item (both copies) and its resource-list entry."""
        metadata = obj.get("metadata") or {}
        namespace = (metadata.get("namespace") or "") if resource["namespaced"] else ""
        name = metadata.get("name")
        data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        try:
            for path in item_paths(resource["group_resource"], namespace, name, resource["version"]):
                self._add_file(path, data)
            if self._list is not None:
                self._list.add(resource_list_key(resource["api_version"], resource["kind"]),
                               resource_list_entry(namespace, name))
        except OSError as exc:
            raise ExportError("cannot write the backup archive %s: %s" % (self.path, _os_reason(exc)))

    def close(self):
        """Finish both files and move them into place."""
        try:
            self._tar.close()
            self._tar = None
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if self._list is not None:
                self._list.close()
                self._list = None
                self._place(self._list_partial, self.resource_list_path)
            try:
                self._place(self._partial, self.path)
            except (OSError, ExportError):
                if self.resource_list_path:
                    _remove_quietly(self.resource_list_path)  # the one this export just placed
                raise
            self._release()
        except OSError as exc:
            self.abort()
            raise ExportError("cannot write the backup archive %s: %s" % (self.path, _os_reason(exc)))
        except ExportError:
            self.abort()
            raise

    def abort(self):
        """Drop the partial files (after an error)."""
        for closer in (self._tar, self._file):
            if closer is not None:
                try:
                    closer.close()
                except (OSError, tarfile.TarError, ValueError):
                    pass
        if self._list is not None:
            try:
                self._list.close()
            except (OSError, ValueError):
                pass
        self._tar = self._file = self._list = None
        if self._list_partial:
            _remove_quietly(self._list_partial)
        self._release(remove=self._lock is not None)  # removed while still locked: never another export's file


def _os_reason(exc):
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


def new_state():
    """Shared bookkeeping between the item stream and the writer (bounded by resource types)."""
    return {
        "counts": {},
        "items_backed_up": 0,
        "total_items": 0,
        "excluded_pods": [],
        "skipped": {"being_deleted": 0, "exclude_label": 0},
        "namespaces_with_items": set(),
        "errors": [],
        "warnings": [],
    }


def write_archive(writer, items, exclude_pods=(), progress=None, state=None):
    """Consume ``items`` (an iterator of (resource entry, object) pairs) into ``writer``.

    Fills ``apiVersion``/``kind`` from the resource entry (LIST items lack them), skips items being
    deleted or labelled ``velero.io/exclude-from-backup=true``, leaves out ``exclude_pods``
    ((namespace, name) pairs, core ``pods`` only) and counts everything in ``state`` (see
    :func:`new_state`).  ``progress`` (optional) is called with a dict: ``resource``, ``items``
    (of that resource), ``items_backed_up`` (all), ``done`` (True at the end of a resource).
    Objects are never kept: one is in memory at a time.  Returns ``state``.
    """
    state = new_state() if state is None else state
    excluded = normalize_pod_set(exclude_pods)
    current = None
    current_count = 0
    for resource, obj in items:
        name = resource["group_resource"]
        if name != current:
            if current is not None and progress:
                progress(dict(resource=current, items=current_count,
                              items_backed_up=state["items_backed_up"], done=True))
            current, current_count = name, 0
        metadata = obj.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            state["skipped"]["being_deleted"] += 1
            continue
        if (metadata.get("labels") or {}).get(EXCLUDE_LABEL) == "true":
            state["skipped"]["exclude_label"] += 1
            continue
        state["total_items"] += 1
        namespace = metadata.get("namespace") if resource["namespaced"] else None
        if name == PODS and (namespace, metadata.get("name")) in excluded:
            state["excluded_pods"].append("%s/%s" % (namespace, metadata.get("name")))
            continue
        item = {"apiVersion": resource["api_version"], "kind": resource["kind"]}
        item.update((k, v) for k, v in obj.items() if k not in ("apiVersion", "kind"))
        writer.add(resource, item)
        state["counts"][name] = state["counts"].get(name, 0) + 1
        state["items_backed_up"] += 1
        current_count += 1
        if namespace:
            state["namespaces_with_items"].add(namespace)
        if progress and current_count % PROGRESS_EVERY == 0:
            progress(dict(resource=name, items=current_count,
                          items_backed_up=state["items_backed_up"], done=False))
    if current is not None and progress:
        progress(dict(resource=current, items=current_count,
                      items_backed_up=state["items_backed_up"], done=True))
    return state


# --------------------------------------------------------------------------------------------
# API access: raw GETs through the kubernetes client, paginated LISTs
# --------------------------------------------------------------------------------------------

def _describe(err, action):
    return api_error_message(err.status, action, error_reason(err))


def resources_to_export(resources, resource_filter, include_cluster_resources, all_namespaces):
    """(resource entries to LIST in order, the Namespace entry or None): the type selection.

    Velero's GlobalIncludesExcludes per type, then one of each pair of cohabiting resources (the
    first one met).  Namespace objects are decided per object at the end, so their entry is apart.
    """
    selected, seen_cohabitants, namespace_entry = [], set(), None
    for resource in resources:
        name = resource["group_resource"]
        if not include_resource_type(name, resource["namespaced"], include_cluster_resources,
                                     all_namespaces, resource_filter):
            continue
        if resource["resource"] in COHABITATING and resource["group"] in COHABITATING[resource["resource"]]:
            if resource["resource"] in seen_cohabitants:
                continue
            seen_cohabitants.add(resource["resource"])
        if name == NAMESPACES:
            namespace_entry = resource
        else:
            selected.append(resource)
    return selected, namespace_entry


def planned_types(get_json, params):
    """Check mode: the resource types the export would LIST, from discovery only; (types, warnings)."""
    warnings = []
    resources = preferred_resources(discover(get_json, warnings))
    selected, namespace_entry = resources_to_export(
        resources, ResourceFilter(params["included_resources"], params["excluded_resources"], resources),
        params["include_cluster_resources"],
        namespaces_include_everything(params["included_namespaces"], params["excluded_namespaces"]))
    types = [resource["group_resource"] for resource in selected]
    if namespace_entry is not None:
        types.append(NAMESPACES)
    return types, warnings


def _skipped_at_write(obj):
    """What :func:`write_archive` leaves out whatever the scope: items being deleted or opted out."""
    metadata = obj.get("metadata") or {}
    return bool(metadata.get("deletionTimestamp")) or (metadata.get("labels") or {}).get(EXCLUDE_LABEL) == "true"


class _BoundVolumes(object):
    """Velero's PVC backup action: the PV bound to each exported PVC goes into the archive too.

    The core group lists persistentvolumeclaims before persistentvolumes: when the PV type is
    listed itself, the bound PVs it did not return (a label selector) are fetched right after it;
    when it is not listed (cluster-scoped resources left out), right after the claims.  Either
    way each PV is written once and the resource list stays grouped by key.  Memory: one name per
    exported claim.
    """

    def __init__(self, get_json, resources, resource_filter, include_cluster_resources, all_namespaces, state):
        self.get_json = get_json
        self.state = state
        self.entry = next((r for r in resources if r["group"] == "" and r["resource"] == PVS), None)
        self.allowed = self.entry is not None and include_cluster_resources is not False \
            and not glob_match(resource_filter.excludes, PVS)
        self.listed = self.entry is not None and include_resource_type(
            PVS, False, include_cluster_resources, all_namespaces, resource_filter)
        self.wanted = []   # (pv name, "ns/claim") in claim order
        self.seen = set()  # PV names already written

    def note(self, name, obj):
        if name == PVS:
            self.seen.add((obj.get("metadata") or {}).get("name"))
        elif name == PVCS and self.allowed and not _skipped_at_write(obj):
            volume = (obj.get("spec") or {}).get("volumeName")
            if volume and (obj.get("status") or {}).get("phase") == "Bound":
                metadata = obj.get("metadata") or {}
                self.wanted.append((volume, "%s/%s" % (metadata.get("namespace"), metadata.get("name"))))

    def after(self, name):
        """Yield the bound PVs still missing once the resource type ``name`` is done."""
        if not self.wanted or name != (PVS if self.listed else PVCS):
            return
        wanted, self.wanted = self.wanted, []
        for volume, claim in wanted:
            if volume in self.seen:
                continue
            self.seen.add(volume)
            try:
                obj = self.get_json("/api/v1/persistentvolumes/%s" % quote(volume, safe=""))
            except ApiRequestError as err:
                self.state["errors"].append({
                    "resource": PVS, "namespace": None,
                    "message": _describe(err, "get persistentvolume %s bound to claim %s" % (volume, claim))})
                continue
            yield self.entry, obj


def _namespace_facts(obj):
    metadata = obj.get("metadata") or {}
    return (metadata.get("name"), metadata.get("labels") or {},
            (obj.get("status") or {}).get("phase", "Active") == "Active")


def iter_items(get_json, resources, included_namespaces, excluded_namespaces, resource_filter,
               include_cluster_resources, selector, requirements, state, page_size=DEFAULT_PAGE_SIZE):
    """Yield (resource entry, object) for everything in scope; list errors go to ``state["errors"]``.

    Namespace objects come last, so ``state["namespaces_with_items"]`` (filled by
    :func:`write_archive` as it consumes this generator) is complete when they are decided.
    """
    scope = validate_namespace_scope(included_namespaces, excluded_namespaces)
    all_namespaces = namespaces_include_everything(included_namespaces, excluded_namespaces)
    errors, warnings = state["errors"], state["warnings"]

    existing = None
    if not scope.include_all:
        try:
            existing = [_namespace_facts(ns)[0]
                        for ns in list_pages(get_json, "/api/v1/namespaces", page_size=page_size)]
        except ApiRequestError as err:
            warnings.append(_describe(err, "list namespaces") + "; using the included names as given")
    plan, problems = namespaces_to_list(scope, included_namespaces, existing)
    for message in problems:
        errors.append({"resource": NAMESPACES, "namespace": None, "message": message})

    selected, namespace_entry = resources_to_export(resources, resource_filter, include_cluster_resources,
                                                    all_namespaces)
    bound_pvs = _BoundVolumes(get_json, resources, resource_filter, include_cluster_resources,
                              all_namespaces, state)
    for resource in selected:
        name = resource["group_resource"]
        targets = plan if resource["namespaced"] else [None]
        for namespace in targets:
            path = list_path(resource["group"], resource["version"], resource["resource"], namespace)
            try:
                for obj in list_pages(get_json, path, selector, page_size, warnings):
                    if resource["namespaced"] and namespace is None:
                        if not scope.matches((obj.get("metadata") or {}).get("namespace") or ""):
                            continue
                    bound_pvs.note(name, obj)
                    yield resource, obj
            except ApiRequestError as err:
                where = "in namespace %s" % namespace if namespace else (
                    "cluster-wide" if resource["namespaced"] else "")
                errors.append({"resource": name, "namespace": namespace,
                               "message": _describe(err, ("list %s %s" % (name, where)).strip())})
        yield from bound_pvs.after(name)

    if namespace_entry is None:
        return
    try:
        for obj in list_pages(get_json, "/api/v1/namespaces", page_size=page_size, warnings=warnings):
            ns_name, labels, active = _namespace_facts(obj)
            keep = include_namespace_object(
                ns_name, active, label_match=bool(requirements) and labels_match(requirements, labels),
                has_selector=bool(requirements), all_namespaces=all_namespaces,
                in_scope=scope.matches(ns_name), has_items=ns_name in state["namespaces_with_items"])
            if keep:
                yield namespace_entry, obj
    except ApiRequestError as err:
        errors.append({"resource": NAMESPACES, "namespace": None, "message": _describe(err, "list namespaces")})


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

def _additional(resources, additional_items, get_json, state):
    """The resource entries of ``additional_items``' pairs (discovery's), in the order they come."""
    by_name = dict((resource["group_resource"], resource) for resource in resources)
    problems = []
    for group_resource, obj in additional_items(get_json, problems):
        resource = by_name.get(group_resource)
        if resource is None:
            problems.append("%s is not served by the API server" % group_resource)
            continue
        yield resource, obj
    for message in problems:
        state["errors"].append({"resource": "additional items", "namespace": None, "message": message})


def snapshot_items(snapshots, get_json, problems):
    """``additional_items`` for the CSI snapshots of the volumes index (``_csi_snapshot.archive_items``)."""
    def call(method, path, body=None, query=None):  # pylint: disable=unused-argument  # GETs only
        return get_json(path, query)
    return _csi_snapshot.archive_items(call, snapshots, problems)


def export(api_client, name, workdir, included_namespaces=None, excluded_namespaces=None,
           included_resources=None, excluded_resources=None, label_selector=None,
           include_cluster_resources=None, exclude_pods=(), progress=None,
           page_size=DEFAULT_PAGE_SIZE, get_json=None, request_timeout=None, additional_items=None):
    """Export the resources in scope to ``<workdir>/<name>.tar.gz`` in Velero's layout.

    ``additional_items(get_json, problems)``: optional, yields ``(group_resource, object)`` pairs added
    after the listed items whatever the type selection (Velero's additional items: the VolumeSnapshots
    of the backup's CSI snapshots, ``_csi_snapshot.archive_items``); its ``problems`` become errors.

    ``label_selector``: a selector string or a list of them (ANDed, as ``label_selectors``).
    ``include_cluster_resources``: None, True or False (Velero's semantics, see the module doc).
    ``exclude_pods``: pods left out (their pre hook failed with Fail), as (ns, name) pairs or
    ``ns/name`` strings.  ``progress``: optional callback, see :func:`write_archive`.
    ``get_json``: the transport (default: :func:`api_getter` over ``api_client``).

    Returns ``{path, resource_list_path, counts: {group-resource: n}, items_backed_up, total_items,
    excluded_pods: [ns/name], skipped_items: {being_deleted, exclude_label}, errors: [{resource,
    namespace, message}], warning_messages: [str]}`` (``warning_messages``, not ``warnings``: Ansible
    reserves that key in a task result; this is the one shape of the result, module and record alike).  The resource list (Velero's format) is written to
    ``resource_list_path`` (``<name>-resource-list.json.gz``) rather than returned, so memory stays
    flat.  Raises ExportError (archive not writable, API unreachable), AuthorizationError
    (discovery refused) or ScopeError (invalid namespaces or selectors); per-resource list failures
    are returned in ``errors`` and the export goes on.
    """
    check_archive_name(name)
    if include_cluster_resources not in (None, True, False):
        raise ExportError("include_cluster_resources must be true, false or null, got %r"
                          % (include_cluster_resources,))
    validate_namespace_scope(included_namespaces, excluded_namespaces)  # ScopeError before any I/O
    if isinstance(label_selector, str):
        label_selector = [label_selector]
    selectors = list(label_selector or [])
    requirements = parse_label_selectors(selectors)
    selector = label_selector_query(selectors)

    try:
        _layout.ensure_dir(workdir)
    except OSError as exc:
        raise ExportError("cannot create the backup directory %s: %s" % (workdir, _os_reason(exc)))
    path = _layout.archive_path(workdir, name)
    list_file = _layout.resource_list_path(workdir, name)
    writer = ArchiveWriter(path, list_file)  # fails fast on an unwritable directory
    try:
        get_json = get_json or api_getter(api_client, request_timeout)
        state = new_state()
        resources = preferred_resources(discover(get_json, state["warnings"]))
        resource_filter = ResourceFilter(included_resources, excluded_resources, resources)
        items = iter_items(get_json, resources, included_namespaces, excluded_namespaces, resource_filter,
                           include_cluster_resources, selector, requirements, state, page_size)
        if additional_items is not None:
            items = itertools.chain(items, _additional(resources, additional_items, get_json, state))
        write_archive(writer, items, exclude_pods, progress, state)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return {
        "path": path,
        "resource_list_path": list_file,
        "counts": state["counts"],
        "items_backed_up": state["items_backed_up"],
        "total_items": state["total_items"],
        "excluded_pods": sorted(state["excluded_pods"]),
        "skipped_items": state["skipped"],
        "errors": state["errors"],
        "warning_messages": state["warnings"],
    }


# --------------------------------------------------------------------------------------------
# What resource_export does: checks, the progress file, the export, the result
# --------------------------------------------------------------------------------------------

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
        self.state = {"backup": name, "phase": "export", "started": timestamp(self.started),
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
        self.state["updated"] = timestamp(now)
        self.state["updated_at"] = now
        self.state["elapsed"] = round(now - self.started, 3)
        try:
            _layout.atomic_write(self.path, (json.dumps(self.state, sort_keys=True) + "\n").encode("utf-8"),
                                 what="the progress file", sync=False)
        except KubehooksError as exc:
            if self.warning is None:
                self.warning = str(exc)


def check_exclude_pods(entries):
    """KubehooksError unless every ``exclude_pods`` entry is ``namespace/name``."""
    for entry in entries or []:
        namespace, slash, name = entry.partition("/")
        if not slash or not namespace or not name or "/" in name:
            raise KubehooksError("exclude_pods: %r is not namespace/name" % (entry,))


def export_task(client_factory, params, check_mode=False):
    """resource_export's result for its ``params``: checks, then the export (or, in check mode, the plan).

    The warnings are in ``warning_messages`` (the module also shows them as task warnings).  A
    failure raises with ``result`` (backup_dir, duration) attached.
    """
    check_exclude_pods(params["exclude_pods"])
    bdir = _layout.resolve_backup_dir(params["name"], params.get("backup_dir"), params.get("storage_dir"),
                                      params.get("cluster"))[0]
    if check_mode:
        validate_namespace_scope(params["included_namespaces"], params["excluded_namespaces"])
        parse_label_selectors(params["label_selectors"])
        types, warnings = planned_types(api_getter(client_factory()), params)
        return dict(changed=True, backup_dir=bdir, resource_types=types, warning_messages=warnings)

    started = time.time()
    progress = None
    try:
        _layout.ensure_dir(bdir)
        progress = ProgressFile(_layout.progress_path(bdir, params["name"]), params["name"])
    except OSError:
        pass  # export() reports the unusable directory itself
    snapshots = [e for e in _volumes.read_volumes_index(_layout.volumes_index(bdir, params["name"]))
                 if e.get("method") == _volumes.CSI_SNAPSHOT_METHOD]
    # the critical section cut CSI snapshots: their objects go into the archive, as Velero's
    additional = functools.partial(snapshot_items, snapshots) if snapshots else None
    try:
        result = export(
            client_factory(), params["name"], bdir,
            included_namespaces=params["included_namespaces"], excluded_namespaces=params["excluded_namespaces"],
            included_resources=params["included_resources"], excluded_resources=params["excluded_resources"],
            label_selector=params["label_selectors"], include_cluster_resources=params["include_cluster_resources"],
            exclude_pods=params["exclude_pods"], progress=progress, page_size=params["page_size"],
            additional_items=additional)
    except KubehooksError as exc:
        if progress is not None:
            progress.finish(error=str(exc))
        exc.result = dict(backup_dir=bdir, duration=round(time.time() - started, 3))
        raise
    if progress is not None:
        progress.finish(items_backed_up=result["items_backed_up"], total_items=result["total_items"],
                        errors=len(result["errors"]))
        if progress.warning:
            result["warning_messages"].append(progress.warning)
    result.update(changed=True, backup_dir=bdir, started_at=started, finished_at=time.time(),
                  progress_path=progress.path if progress is not None else None,
                  duration=round(time.time() - started, 3))
    return result
