"""An in-memory fake of the API's GET endpoints for the tests of _resources and _export: discovery from
discovery_docs.GROUPS (legacy, or aggregated when asked for it), LISTs from a {(group, resource): objects} map."""
import json

from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError
from discovery_docs import GROUPS


def aggregated_document(groups, core, stale=()):
    """The APIGroupDiscoveryList the API server would answer for ``groups`` (legacy-shaped fixtures): the
    preferred version first, resources as APIResourceDiscovery with a subresource each."""
    items = []
    for group in groups:
        if bool(group["name"]) == core:
            continue
        versions = [group["preferred"]] + [v for v in group["versions"] if v != group["preferred"]]
        entries = []
        for version in versions:
            resources = [{"resource": raw["name"], "singularResource": raw.get("singularName", ""),
                          "scope": "Namespaced" if raw.get("namespaced") else "Cluster",
                          "responseKind": {"group": group["name"], "version": version, "kind": raw.get("kind", "")},
                          "verbs": raw.get("verbs", []), "shortNames": raw.get("shortNames", []),
                          "subresources": [{"subresource": "status", "verbs": ["get", "patch"],
                                            "responseKind": {"kind": raw.get("kind", "")}}]}
                         for raw in group["resources"].get(version, []) if "/" not in raw["name"]]
            entry = {"version": version, "resources": resources, "freshness": "Current"}
            if (group["name"], version) in stale:
                entry["freshness"] = "Stale"
            entries.append(entry)
        items.append({"metadata": {"name": group["name"]}, "versions": entries})
    return {"apiVersion": "apidiscovery.k8s.io/v2", "kind": "APIGroupDiscoveryList", "items": items}


class FakeApi(object):
    """GET endpoints: discovery from GROUPS, LISTs from a {(group, resource): objects} map.

    Pages hold ``page_size`` items whatever ``limit`` asks (so small fixtures paginate);
    ``fail`` maps a path to (status, message); ``expire`` makes the Nth continue token expire once.
    """

    def __init__(self, objects, page_size=2):
        self.objects = objects
        self.page_size = page_size
        self.fail = {}
        self.calls = []
        self.expire_once = set()

    aggregated = False  # True: /api and /apis answer aggregated discovery when the client asks for it

    def __call__(self, path, query=None, accept=None):
        query = dict(query or [])
        self.calls.append((path, query))
        if path in self.fail:
            status, message = self.fail[path]
            raise ApiRequestError(status, message, json.dumps({"message": message}).encode())
        if self.aggregated and path in ("/api", "/apis") and "as=APIGroupDiscoveryList" in (accept or ""):
            return aggregated_document(GROUPS, core=path == "/api", stale=getattr(self, "stale", ()))
        if path == "/api":
            return {"versions": ["v1"]}
        if path == "/apis":
            return {"groups": [{"name": g["name"], "versions": [{"version": v} for v in g["versions"]],
                                "preferredVersion": {"version": g["preferred"]}} for g in GROUPS if g["name"]]}
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            group, rest = "", parts[1:]
        else:
            group, rest = parts[1], parts[2:]
        version, rest = rest[0], rest[1:]
        if not rest:
            spec = [g for g in GROUPS if g["name"] == group][0]
            return {"resources": spec["resources"][version]}
        namespace = None
        if len(rest) == 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        resource = rest[0]
        if len(rest) == 2:  # GET of one cluster-scoped object
            found = [o for o in self.objects.get((group, resource), []) if o["metadata"]["name"] == rest[1]]
            if not found:
                raise ApiRequestError(404, "%s %s not found" % (resource, rest[1]))
            return json.loads(json.dumps(found[0]))
        items = [o for o in self.objects.get((group, resource), [])
                 if namespace is None or o["metadata"].get("namespace") == namespace]
        selector = query.get("labelSelector")
        if selector:
            key, _eq, value = selector.partition("=")
            items = [o for o in items if (o["metadata"].get("labels") or {}).get(key) == value]
        start = int(query.get("continue") or 0)
        if query.get("continue") in self.expire_once:
            self.expire_once.discard(query["continue"])
            raise ApiRequestError(410, "expired", json.dumps(
                {"message": "expired", "metadata": {"continue": query["continue"]}}).encode())
        page = [json.loads(json.dumps(o)) for o in items[start:start + self.page_size]]
        more = start + self.page_size < len(items)
        return {"apiVersion": "v1", "kind": "List", "items": page,
                "metadata": {"continue": str(start + self.page_size) if more else ""}}
