# -*- coding: utf-8 -*-
"""Unit tests for pod discovery: which LIST calls a scope needs, and the paging loop.

The paging test uses a fake CoreV1Api (it records the calls and serves canned JSON pages): what is
under test is the call planning and the ``continue`` loop, not the API.  Listing against the real
cluster, RBAC refusals included, is covered by the integration tests.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _discovery
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


class FakeResponse(object):
    def __init__(self, payload):
        self.data = json.dumps(payload).encode()


class FakeCore(object):
    """Serves pages of 2 items from ``pods``; records every call's target and arguments."""

    calls = []
    pods = []
    error = None

    def __init__(self, api_client):
        pass

    def _page(self, pods, kwargs):
        assert kwargs["_preload_content"] is False
        start = int(kwargs["_continue"] or 0)
        items = pods[start:start + kwargs["limit"]]
        more = start + kwargs["limit"] < len(pods)
        return FakeResponse({"items": items, "metadata": {"continue": str(start + kwargs["limit"]) if more else ""}})

    def list_pod_for_all_namespaces(self, **kwargs):
        FakeCore.calls.append((None, kwargs))
        if FakeCore.error is not None:
            raise FakeCore.error  # pylint: disable=raising-bad-type
        return self._page(FakeCore.pods, kwargs)

    def list_namespaced_pod(self, namespace, **kwargs):
        FakeCore.calls.append((namespace, kwargs))
        if FakeCore.error is not None:
            raise FakeCore.error  # pylint: disable=raising-bad-type
        return self._page([p for p in FakeCore.pods if p["metadata"]["namespace"] == namespace], kwargs)


class FakeApiException(Exception):
    def __init__(self, status, body):
        Exception.__init__(self, body)
        self.status, self.body, self.reason = status, body, "Forbidden"


@pytest.fixture
def fake_core(monkeypatch):
    monkeypatch.setattr(_discovery.kubernetes.client, "CoreV1Api", FakeCore)
    monkeypatch.setattr(_discovery, "ApiException", FakeApiException)
    FakeCore.calls, FakeCore.error = [], None
    FakeCore.pods = [pod("db", "a"), pod("team-1", "b"), pod("db", "c"), pod("web", "d"), pod("team-2", "e")]
    return FakeCore


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_cluster_wide_list_is_paged_and_filtered(fake_core):
    got = list(list_pods(None, ["team-*", "db"], ["team-2"], "app=x", page_size=2))
    assert names(got) == ["a", "b", "c"]
    assert [c[0] for c in fake_core.calls] == [None, None, None]
    assert [c[1]["_continue"] for c in fake_core.calls] == [None, "2", "4"]
    assert all(c[1]["label_selector"] == "app=x" and c[1]["limit"] == 2 for c in fake_core.calls)


def test_per_namespace_lists(fake_core):
    got = list(list_pods(None, ["web", "db"], [], "", page_size=500))
    assert names(got) == ["a", "c", "d"]
    assert [c[0] for c in fake_core.calls] == ["db", "web"]
    assert fake_core.calls[0][1]["label_selector"] is None


def test_forbidden_names_the_permission(fake_core):
    fake_core.error = FakeApiException(403, json.dumps({"message": 'pods is forbidden: User "x" cannot list'}))
    with pytest.raises(AuthorizationError, match="list pods in namespace db"):
        list(list_pods(None, ["db"], [], None))
    with pytest.raises(AuthorizationError, match="list pods cluster-wide"):
        list(list_pods(None, [], [], None))


def test_garbled_response_is_clear(fake_core, monkeypatch):
    monkeypatch.setattr(FakeCore, "_page", lambda self, pods, kwargs: type("R", (), {"data": b"<html>"})())
    with pytest.raises(KubehooksError, match="not JSON"):
        list(list_pods(None, ["db"], [], None))


def test_plan_list_calls_rejects_an_invalid_scope():
    from ansible_collections.kubehooks.backup.plugins.module_utils._errors import ScopeError
    with pytest.raises(ScopeError):
        plan_list_calls(["db"], ["*"])
