# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Discovery documents shared by the unit tests of _export and _scope (a small cluster's API), and the
resource entries ``_resources.preferred_resources`` makes of them (the restore tests)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def res(name, kind, namespaced=True, verbs=None, short=None, singular=""):
    return {"name": name, "kind": kind, "namespaced": namespaced, "verbs": ALL_VERBS if verbs is None else verbs,
            "shortNames": short or [], "singularName": singular}


CORE = [
    res("bindings", "Binding", verbs=["create"]),
    res("componentstatuses", "ComponentStatus", namespaced=False, verbs=["get", "list"], short=["cs"]),
    res("configmaps", "ConfigMap", short=["cm"]),
    res("events", "Event", short=["ev"]),
    res("namespaces", "Namespace", namespaced=False, short=["ns"]),
    res("namespaces/status", "Namespace", namespaced=False),
    res("persistentvolumes", "PersistentVolume", namespaced=False, short=["pv"]),
    res("persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"]),
    res("pods", "Pod", short=["po"], singular="pod"),
    res("pods/exec", "PodExecOptions", verbs=["create", "get"]),
    res("pods/log", "Pod", verbs=["get"]),
    res("secrets", "Secret"),
    res("services", "Service", short=["svc"]),
]
APPS_V1 = [res("deployments", "Deployment", short=["deploy"]), res("deployments/scale", "Scale"),
           res("statefulsets", "StatefulSet", short=["sts"])]
EVENTS_V1 = [res("events", "Event", short=["ev"])]
RBAC_V1 = [res("clusterroles", "ClusterRole", namespaced=False), res("roles", "Role")]
WIDGETS_V2 = [res("widgets", "Widget", short=["wd"])]
WIDGETS_V1 = [res("widgets", "Widget", short=["wd"]), res("gadgets", "Gadget")]
SNAP_V1 = [res("volumesnapshots", "VolumeSnapshot", short=["vs"]),
           res("volumesnapshotcontents", "VolumeSnapshotContent", namespaced=False, short=["vsc"])]

GROUPS = [
    {"name": "", "preferred": "v1", "versions": ["v1"], "resources": {"v1": CORE}},
    {"name": "extensions", "preferred": "v1beta1", "versions": ["v1beta1"],
     "resources": {"v1beta1": [res("deployments", "Deployment")]}},
    {"name": "apps", "preferred": "v1", "versions": ["v1"], "resources": {"v1": APPS_V1}},
    {"name": "events.k8s.io", "preferred": "v1", "versions": ["v1"], "resources": {"v1": EVENTS_V1}},
    {"name": "rbac.authorization.k8s.io", "preferred": "v1", "versions": ["v1"], "resources": {"v1": RBAC_V1}},
    {"name": "example.com", "preferred": "v2", "versions": ["v1", "v2"],
     "resources": {"v2": WIDGETS_V2, "v1": WIDGETS_V1}},
    {"name": "snapshot.storage.k8s.io", "preferred": "v1", "versions": ["v1"], "resources": {"v1": SNAP_V1}},
]


def entry(group, version, resource, kind, namespaced=True):
    """One resource entry as ``_resources.preferred_resources`` returns it."""
    api_version = "%s/%s" % (group, version) if group else version
    return {"group": group, "version": version, "api_version": api_version, "resource": resource,
            "group_resource": "%s.%s" % (resource, group) if group else resource, "kind": kind,
            "namespaced": namespaced, "singular": kind.lower(), "short_names": [], "verbs": []}
