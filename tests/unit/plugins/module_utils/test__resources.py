# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _resources: Velero's filters and order over discovery documents, and discovery itself
(aggregated and legacy) against an in-memory fake of the API (fake_api.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _resources
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import AuthorizationError, ExportError
from discovery_docs import GROUPS, res
from fake_api import FakeApi


@pytest.fixture(scope="module")
def resources():
    return _resources.preferred_resources(GROUPS)


def by_name(resources, name):
    return [r for r in resources if r["group_resource"] == name][0]


@pytest.mark.parametrize("group, resource, expected", [
    ("", "pods", "pods"),
    ("apps", "deployments", "deployments.apps"),
    ("rbac.authorization.k8s.io", "clusterroles", "clusterroles.rbac.authorization.k8s.io"),
])
def test_group_resource(group, resource, expected):
    assert _resources.group_resource(group, resource) == expected


def test_subresources_and_resources_without_required_verbs_are_skipped(resources):
    names = [r["group_resource"] for r in resources]
    assert "pods/exec" not in names and "pods/log" not in names and "namespaces/status" not in names
    assert "deployments/scale.apps" not in names
    assert "bindings" not in names            # create only
    assert "componentstatuses" not in names   # no create/delete


def test_core_group_orders_pods_pvcs_pvs_first(resources):
    core = [r["resource"] for r in resources if r["group"] == ""]
    assert core[:3] == ["pods", "persistentvolumeclaims", "persistentvolumes"]
    assert [r["group"] for r in resources][0] == ""


def test_extensions_group_sorts_last(resources):
    assert resources[-1]["group"] == "extensions"


def test_each_resource_at_its_first_preferred_version(resources):
    widgets = by_name(resources, "widgets.example.com")
    gadgets = by_name(resources, "gadgets.example.com")
    assert widgets["version"] == "v2" and widgets["api_version"] == "example.com/v2"
    # Only served by the non-preferred version: still exported, at that version (ServerPreferredResources).
    assert gadgets["version"] == "v1"
    assert len([r for r in resources if r["group_resource"] == "widgets.example.com"]) == 1


def test_resource_entry_fields(resources):
    pods = by_name(resources, "pods")
    assert pods["api_version"] == "v1" and pods["kind"] == "Pod" and pods["namespaced"] is True
    assert pods["short_names"] == ["po"] and pods["singular"] == "pod"


def test_preferred_version_missing_from_version_list_still_first():
    groups = [{"name": "g.io", "preferred": "v2", "versions": ["v1"],
               "resources": {"v1": [res("things", "Thing")], "v2": [res("things", "Thing")]}}]
    assert _resources.preferred_resources(groups)[0]["version"] == "v2"


def test_discover_reads_legacy_endpoints_and_skips_failing_groups():
    api = FakeApi({})
    api.fail["/apis/example.com/v1"] = (503, "service unavailable")
    warnings = []
    groups = _resources.discover(api, warnings)
    assert [g["name"] for g in groups][:2] == ["", "extensions"]
    example = [g for g in groups if g["name"] == "example.com"][0]
    assert example["preferred"] == "v2" and "v1" not in example["resources"]
    assert any("example.com/v1" in w for w in warnings)


def test_aggregated_discovery_is_two_requests_and_gives_the_legacy_result():
    legacy, aggregated = FakeApi({}), FakeApi({})
    aggregated.aggregated = True
    from_legacy = _resources.preferred_resources(_resources.discover(legacy, []))
    warnings = []
    from_aggregated = _resources.preferred_resources(_resources.discover(aggregated, warnings))
    assert from_aggregated == from_legacy and not warnings
    assert [path for path, _query in aggregated.calls] == ["/api", "/apis"]
    assert len(legacy.calls) > 2  # one request per group version


def test_a_stale_group_version_in_aggregated_discovery_is_skipped_with_a_warning():
    api = FakeApi({})
    api.aggregated, api.stale = True, {("example.com", "v1")}
    warnings = []
    groups = _resources.discover(api, warnings)
    example = [g for g in groups if g["name"] == "example.com"][0]
    assert example["preferred"] == "v2" and "v1" not in example["resources"] and "v2" in example["resources"]
    assert warnings == ["API group version example.com/v1 skipped: its discovery document is stale (the API "
                        "service behind it may be unavailable)"]


@pytest.mark.parametrize("status, error", [(403, AuthorizationError), (503, ExportError), (0, ExportError)])
def test_discover_fails_clearly_when_the_api_is_unreachable(status, error):
    api = FakeApi({})
    api.fail["/apis"] = (status, "nope")
    with pytest.raises(error, match="discovery"):
        _resources.discover(api, [])
