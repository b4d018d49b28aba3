# -*- coding: utf-8 -*-
"""Unit tests for pod discovery: which LIST calls a scope needs, and the paging loop.

The paging test uses a fake CoreV1Api (it records the calls and serves canned JSON pages): what is
under test is the call planning and the ``continue`` loop, not the API.  Listing against the real
cluster, RBAC refusals included, is covered by the integration tests.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _discovery
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError
from ansible_collections.kubehooks.backup.plugins.module_utils._discovery import list_pods, plan_list_calls
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import AuthorizationError, KubehooksError


@pytest.mark.parametrize("included, excluded, calls", [
    (None, None, [None]),
    ([], [], [None]),
    (["*"], [], [None]),
    (["db", "*"], [], [None]),                 # "*" beside other entries: still all
    (["team-*"], [], [None]),
    (["db", "team-?"], [], [None]),
    (["db", "[ab]pp"], [], [None]),
    (["db"], [], ["db"]),
    (["web", "db", "db"], [], ["db", "web"]),  # one call per namespace, once, sorted
    (["db", "web"], ["web"], ["db"]),          # exclude wins
    (["db", "web"], ["w*"], ["db"]),           # a glob exclude applies to plain includes
    (["db"], ["db"], []),                      # nothing left: no call at all
    ([], ["kube-system"], [None]),
])
def test_plan_list_calls(included, excluded, calls):
    assert plan_list_calls(included, excluded) == calls


def pod(namespace, name):
    return {"metadata": {"namespace": namespace, "name": name}, "status": {"phase": "Running"}}


class FakeApi(object):
    """Stands in for ``_api.api_getter``: serves LIST pages of pods and records each request.

    Discovery's own logic (which calls, which pages, which filter) is what is tested here; the
    real GETs are covered by the integration tests against the local cluster.
    """

    def __init__(self):
        self.calls = []
        self.error = None
        self.pods = [pod("db", "a"), pod("team-1", "b"), pod("db", "c"), pod("web", "d"), pod("team-2", "e")]

    def getter(self, api_client, request_timeout=None):
        return self.get_json

    def get_json(self, path, query):
        query = dict(query)
        self.calls.append((path, query))
        if self.error is not None:
            raise self.error  # pylint: disable=raising-bad-type
        namespace = path.split("/")[4] if path.startswith("/api/v1/namespaces/") else None
        pods = [p for p in self.pods if namespace in (None, p["metadata"]["namespace"])]
        start = int(query.get("continue") or 0)
        limit = query["limit"]
        more = start + limit < len(pods)
        return {"items": pods[start:start + limit], "metadata": {"continue": str(start + limit) if more else ""}}


@pytest.fixture
def fake_api(monkeypatch):
    api = FakeApi()
    monkeypatch.setattr(_discovery, "api_getter", api.getter)
    return api


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_cluster_wide_list_is_paged_and_filtered(fake_api):
    got = list(list_pods(None, ["team-*", "db"], ["team-2"], "app=x", page_size=2))
    assert names(got) == ["a", "b", "c"]
    assert [c[0] for c in fake_api.calls] == ["/api/v1/pods"] * 3
    assert [c[1].get("continue") for c in fake_api.calls] == [None, "2", "4"]
    assert all(c[1]["labelSelector"] == "app=x" and c[1]["limit"] == 2 for c in fake_api.calls)


def test_per_namespace_lists(fake_api):
    got = list(list_pods(None, ["web", "db"], [], "", page_size=500))
    assert names(got) == ["a", "c", "d"]
    assert [c[0] for c in fake_api.calls] == ["/api/v1/namespaces/db/pods", "/api/v1/namespaces/web/pods"]
    assert "labelSelector" not in fake_api.calls[0][1]


def test_forbidden_names_the_permission(fake_api):
    fake_api.error = ApiRequestError(403, 'pods is forbidden: User "x" cannot list')
    with pytest.raises(AuthorizationError, match="list pods in namespace db"):
        list(list_pods(None, ["db"], [], None))
    with pytest.raises(AuthorizationError, match="list pods cluster-wide"):
        list(list_pods(None, [], [], None))


def test_unreachable_or_garbled_answers_are_clear(fake_api):
    fake_api.error = ApiRequestError(0, "the response of GET /api/v1/namespaces/db/pods is not JSON: x")
    with pytest.raises(KubehooksError, match="Could not list pods in namespace db: .*not JSON"):
        list(list_pods(None, ["db"], [], None))


def test_plan_list_calls_rejects_an_invalid_scope():
    from ansible_collections.kubehooks.backup.plugins.module_utils._errors import ScopeError
    with pytest.raises(ScopeError):
        plan_list_calls(["db"], ["*"])
