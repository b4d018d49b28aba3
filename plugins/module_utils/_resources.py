# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: which resource types the API server serves, at which version, in Velero's order.
Not a public API.

``discover`` reads the discovery documents (aggregated discovery: two requests; the legacy endpoints: one
per group version); ``preferred_resources`` makes of them Velero's list of types to back up or restore
(ServerPreferredResources with its filters and order).  Used by the export and by the restore, which then
does not carry the export's code in its AnsiballZ zip (each 100 KB of module_utils costs a module run
~0.05 s).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubehooks.backup.plugins.module_utils._api import (
    ApiRequestError,
    api_error,
    api_error_message,
    error_reason,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import ExportError

REQUIRED_VERBS = ("list", "create", "get", "delete")
_CORE_PRIORITY = {"pods": 0, "persistentvolumeclaims": 1, "persistentvolumes": 2}


def group_resource(group, resource):
    """Velero's GroupResource.String(): ``pods`` for the core group, ``deployments.apps`` else."""
    return "%s.%s" % (resource, group) if group else resource


def api_version(group, version):
    """``v1`` for the core group, ``apps/v1`` otherwise."""
    return "%s/%s" % (group, version) if group else version


def _resource_entry(group, version, raw):
    short_names = [s.lower() for s in raw.get("shortNames") or []]
    kind = raw.get("kind") or ""
    return {
        "group": group,
        "version": version,
        "api_version": api_version(group, version),
        "resource": raw["name"],
        "group_resource": group_resource(group, raw["name"]),
        "kind": kind,
        "namespaced": bool(raw.get("namespaced")),
        "singular": (raw.get("singularName") or kind).lower(),
        "short_names": short_names,
        "verbs": list(raw.get("verbs") or []),
    }


def backup_eligible(raw):
    """Velero's discovery filter: no subresource, and all of list/create/get/delete supported."""
    name = raw.get("name") or ""
    verbs = set(raw.get("verbs") or [])
    return bool(name) and "/" not in name and all(v in verbs for v in REQUIRED_VERBS)


def preferred_resources(groups):
    """ServerPreferredResources + Velero's filters and ordering, from raw discovery documents.

    ``groups``: a list, in discovery order (core group first), of
    ``{"name": group ("" for core), "preferred": version, "versions": [versions in priority order],
    "resources": {version: APIResourceList "resources" list}}``; a version whose discovery failed is
    simply absent from ``resources``.  Returns resource entries (dicts: group, version, api_version,
    resource, group_resource, kind, namespaced, singular, short_names, verbs), each resource at the
    first version (preferred first) that serves it.
    """
    ordered = [g for g in groups if g.get("name") != "extensions"] + \
              [g for g in groups if g.get("name") == "extensions"]
    out = []
    for group in ordered:
        name = group.get("name") or ""
        versions = list(group.get("versions") or [])
        preferred = group.get("preferred")
        if preferred:
            versions = [preferred] + [v for v in versions if v != preferred]
        seen = set()
        entries = []
        for version in versions:
            for raw in (group.get("resources") or {}).get(version) or []:
                if not backup_eligible(raw) or raw["name"] in seen:
                    continue
                seen.add(raw["name"])
                entries.append(_resource_entry(name, version, raw))
        if not name:
            entries.sort(key=lambda e: _CORE_PRIORITY.get(e["resource"], 3))  # stable
        out.extend(entries)
    return out


# Aggregated discovery (apidiscovery.k8s.io v2, GA in Kubernetes 1.30; v2beta1 since 1.26): /api and /apis each
# answer with every group, version and resource in one document, as client-go (Velero, kubectl) asks for them.
# A server without it answers the same request with the legacy document, which is then read as before.
DISCOVERY_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
AGGREGATED_KIND = "APIGroupDiscoveryList"


def discover(get_json, warnings):
    """Raw discovery documents for :func:`preferred_resources`.

    ``get_json(path, query, accept=...)``.  /api and /apis are asked for aggregated discovery: two
    requests in all.  From a server that answers them with the legacy documents, each group version is
    read from its own endpoint, as before.  /api and /apis failing is fatal (ExportError,
    AuthorizationError on 401/403); one group version failing, or stale in the aggregated document, is a
    warning and the group version is skipped (Velero does the same).
    """
    try:
        core = get_json("/api", None, accept=DISCOVERY_ACCEPT)
        apis = get_json("/apis", None, accept=DISCOVERY_ACCEPT)
    except ApiRequestError as err:
        raise api_error(err, "read the API discovery documents (/api, /apis)", default=ExportError)
    groups, specs = [], []
    if core.get("kind") == AGGREGATED_KIND and core.get("items"):
        groups.extend(_aggregated_groups(core, True, warnings))
    else:
        core_versions = core.get("versions") or ["v1"]
        specs.append(("", core_versions[0], core_versions))
    if apis.get("kind") == AGGREGATED_KIND:
        aggregated = _aggregated_groups(apis, False, warnings)
    else:
        aggregated = None
        for group in apis.get("groups") or []:
            versions = [v.get("version") for v in group.get("versions") or [] if v.get("version")]
            preferred = (group.get("preferredVersion") or {}).get("version") or (versions[0] if versions else None)
            specs.append((group.get("name") or "", preferred, versions))
    for name, preferred, versions in specs:
        resources = {}
        for version in versions:
            path = "/apis/%s/%s" % (name, version) if name else "/api/%s" % version
            try:
                resources[version] = get_json(path).get("resources") or []
            except ApiRequestError as err:
                warnings.append("API group version %s skipped: %s"
                                % (api_version(name, version), api_error_message(err.status, "discover it", error_reason(err))))
        groups.append({"name": name, "preferred": preferred, "versions": versions, "resources": resources})
    return groups + (aggregated or [])


def _aggregated_groups(document, core, warnings):
    """The groups of an APIGroupDiscoveryList, in the legacy shape: versions in the server's order of
    preference (the first is the preferred one), resources as APIResource dicts (without subresources,
    which preferred_resources skips)."""
    groups = []
    for item in document.get("items") or []:
        name = "" if core else ((item.get("metadata") or {}).get("name") or "")
        versions, resources = [], {}
        for entry in item.get("versions") or []:
            version = entry.get("version")
            if not version:
                continue
            versions.append(version)
            if entry.get("freshness") == "Stale":
                warnings.append("API group version %s skipped: its discovery document is stale (the API service "
                                "behind it may be unavailable)" % api_version(name, version))
                continue
            resources[version] = [{
                "name": raw.get("resource") or "",
                "singularName": raw.get("singularResource") or "",
                "namespaced": raw.get("scope") == "Namespaced",
                "kind": (raw.get("responseKind") or {}).get("kind") or "",
                "verbs": list(raw.get("verbs") or []),
                "shortNames": list(raw.get("shortNames") or []),
            } for raw in entry.get("resources") or []]
        groups.append({"name": name, "preferred": versions[0] if versions else None, "versions": versions,
                       "resources": resources})
    return groups
