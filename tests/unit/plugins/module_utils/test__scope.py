# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _scope: namespace globs, label selectors, resource include/exclude."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _resources
from ansible_collections.kubehooks.backup.plugins.module_utils import _scope as sc
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import ScopeError
from discovery_docs import GROUPS


@pytest.fixture(scope="module")
def resources():
    return _resources.preferred_resources(GROUPS)


# ============================================================================================
# namespace scope (included_namespaces / excluded_namespaces)
# ============================================================================================

@pytest.mark.parametrize("included, excluded, namespace, expected", [
    pytest.param([], [], "anything", True, id="scope-empty-means-all"),
    pytest.param(None, None, "anything", True, id="scope-unset-means-all"),
    pytest.param(["*"], [], "anything", True, id="scope-star-means-all"),
    pytest.param(["db", "*"], [], "web", True, id="scope-star-beside-others-still-all"),
    pytest.param(["db"], [], "db", True, id="scope-name"),
    pytest.param(["db"], [], "db2", False, id="scope-name-is-exact"),
    pytest.param(["team-*"], [], "team-a", True, id="scope-glob-star"),
    pytest.param(["team-*"], [], "team-", True, id="scope-glob-star-matches-empty"),
    pytest.param(["team-*"], [], "other", False, id="scope-glob-star-no-match"),
    pytest.param(["*-prod"], [], "shop-prod", True, id="scope-glob-leading-star"),
    pytest.param(["db-?"], [], "db-1", True, id="scope-glob-question-one-char"),
    pytest.param(["db-?"], [], "db-12", False, id="scope-glob-question-only-one-char"),
    pytest.param(["ns[abc]"], [], "nsb", True, id="scope-glob-char-list"),
    pytest.param(["ns[abc]"], [], "nsd", False, id="scope-glob-char-list-no-match"),
    pytest.param(["ns[0-3]"], [], "ns2", True, id="scope-glob-range"),
    pytest.param(["ns[0-3]"], [], "ns7", False, id="scope-glob-range-no-match"),
    pytest.param(["ns[a-]x"], [], "ns-x", None, id="scope-glob-range-needs-hi"),
    pytest.param([], ["kube-system"], "kube-system", False, id="scope-excluded"),
    pytest.param([], ["kube-*"], "kube-public", False, id="scope-excluded-glob"),
    pytest.param(["db"], ["db"], "db", False, id="scope-exclude-wins-same-name"),
    pytest.param(["*"], ["d*"], "db", False, id="scope-exclude-wins-over-star"),
    pytest.param(["team-*"], ["team-b"], "team-a", True, id="scope-exclude-only-what-it-names"),
])
def test_namespace_scope(included, excluded, namespace, expected):
    if expected is None:
        with pytest.raises(ScopeError):
            sc.namespace_in_scope(namespace, included, excluded)
    else:
        assert sc.namespace_in_scope(namespace, included, excluded) is expected


@pytest.mark.parametrize("included, excluded, reason", [
    pytest.param([], ["*"], '"*" is not allowed', id="scope-star-in-excluded-is-error"),
    pytest.param(["db"], ["web", "*"], '"*" is not allowed', id="scope-star-among-excluded-is-error"),
    pytest.param(["team-**"], [], "consecutive asterisks", id="glob-double-star"),
    pytest.param(["a|b"], [], "unsupported character", id="glob-alternation-bar"),
    pytest.param(["{a,b}"], [], "unsupported character", id="glob-braces"),
    pytest.param(["(a)"], [], "unsupported character", id="glob-parentheses"),
    pytest.param(["[!a]x"], [], "unsupported character", id="glob-negated-class"),
    pytest.param(["ns[]"], [], "empty bracket", id="glob-empty-brackets"),
    pytest.param(["ns[a"], [], "unclosed bracket", id="glob-unclosed-bracket"),
    pytest.param(["ns]"], [], "unmatched closing bracket", id="glob-unmatched-bracket"),
    pytest.param(["ns[z-a]"], [], "ends before it starts", id="glob-reversed-range"),
    pytest.param(["ns[a-zb]"], [], "exactly [x-y]", id="glob-range-with-extra-chars"),
    pytest.param(["Team-*"], [], "not a namespace name", id="glob-uppercase-never-a-namespace"),
    pytest.param(["team_*"], [], "not a namespace name", id="glob-underscore"),
    pytest.param(["-team"], [], "not a namespace name", id="glob-leading-dash"),
    pytest.param(["team-"], [], "not a namespace name", id="glob-trailing-dash"),
    pytest.param(["a" * 64], [], "not a namespace name", id="glob-too-long"),
    pytest.param(["db\\*"], [], "not a namespace name", id="glob-backslash"),
    pytest.param([""], [], "empty", id="glob-empty-pattern"),
    pytest.param([3], [], "not a string", id="glob-not-a-string"),
    pytest.param("db", [], "must be a list", id="scope-not-a-list"),
])
def test_namespace_scope_errors(included, excluded, reason):
    with pytest.raises(ScopeError) as info:
        sc.validate_namespace_scope(included, excluded)
    assert reason in str(info.value)


@pytest.mark.parametrize("pattern", ["db", "team-*", "*-prod", "*", "db-?", "ns[0-9]", "[abc]x", "a*b*c",
                                     "[-]x", "a" * 63, "x" + "?" * 62])
def test_valid_namespace_patterns(pattern):
    assert sc.compile_namespace_pattern(pattern) is not None


# ============================================================================================
# label_selectors (list of selector strings, ANDed, as kubernetes.core)
# ============================================================================================

LABELS = {"app": "db", "tier": "backend", "replicas": "3", "example.com/team": "core"}


@pytest.mark.parametrize("selector, expected", [
    pytest.param("app=db", True, id="selector-equals"),
    pytest.param("app==db", True, id="selector-double-equals"),
    pytest.param("app = db", True, id="selector-spaces-around-operator"),
    pytest.param("app=web", False, id="selector-equals-differs"),
    pytest.param("app!=web", True, id="selector-not-equals"),
    pytest.param("app!=db", False, id="selector-not-equals-same"),
    pytest.param("zone!=a", True, id="selector-not-equals-absent-key-matches"),
    pytest.param("tier in (backend, cache)", True, id="selector-in"),
    pytest.param("tier in (cache)", False, id="selector-in-no-match"),
    pytest.param("zone in (a)", False, id="selector-in-absent-key"),
    pytest.param("tier notin (frontend)", True, id="selector-notin"),
    pytest.param("tier notin (backend)", False, id="selector-notin-match"),
    pytest.param("zone notin (a)", True, id="selector-notin-absent-key-matches"),
    pytest.param("tier", True, id="selector-exists"),
    pytest.param("zone", False, id="selector-exists-absent"),
    pytest.param("!zone", True, id="selector-does-not-exist"),
    pytest.param("!app", False, id="selector-does-not-exist-present"),
    pytest.param("replicas>2", True, id="selector-greater-than"),
    pytest.param("replicas<3", False, id="selector-less-than"),
    pytest.param("app>2", False, id="selector-greater-than-non-integer-label"),
    pytest.param("example.com/team=core", True, id="selector-prefixed-key"),
    pytest.param("app=db,tier=backend", True, id="selector-comma-is-and"),
    pytest.param("app=db,tier=frontend", False, id="selector-comma-is-and-all-must-match"),
    pytest.param("zone=", False, id="selector-empty-value-needs-label"),
    pytest.param("", True, id="selector-empty-selects-all"),
])
def test_label_selector_matching(selector, expected):
    requirements = sc.parse_label_selectors([selector])
    assert sc.labels_match(requirements, LABELS) is expected


def test_label_selectors_are_anded():
    assert sc.labels_match(sc.parse_label_selectors(["app=db", "tier=backend"]), LABELS)
    assert not sc.labels_match(sc.parse_label_selectors(["app=db", "tier=frontend"]), LABELS)


def test_empty_label_value_matches_empty_label():
    assert sc.labels_match(sc.parse_label_selectors(["zone="]), {"zone": ""})
    assert sc.labels_match(sc.parse_label_selectors(["zone in ()"]), {"zone": ""})


@pytest.mark.parametrize("selector, reason", [
    pytest.param("app=db,", "after ','", id="selector-trailing-comma"),
    pytest.param("app==", None, id="selector-double-equals-empty-value-is-valid"),
    pytest.param("app=a b", "expected: ',' or end of string", id="selector-two-values"),
    pytest.param("app in (a", "expected: ',' or ')'", id="selector-unclosed-set"),
    pytest.param("app in a", "expected: '('", id="selector-in-without-parentheses"),
    pytest.param("app in (a,,)", "expected: ',' or a value", id="selector-double-comma-before-close"),
    pytest.param("app foo", "expected: in, notin", id="selector-unknown-operator"),
    pytest.param("app=>1", "expected: a value", id="selector-two-operators"),
    pytest.param("!app=db", "expected: ',' or end of string", id="selector-not-with-value"),
    pytest.param("replicas>x", "integer", id="selector-gt-needs-integer"),
    pytest.param("app=a/b", "invalid value", id="selector-invalid-value"),
    pytest.param("app=" + "a" * 64, "invalid value", id="selector-value-too-long"),
    pytest.param("Example.com/team=a", "prefix", id="selector-uppercase-prefix"),
    pytest.param("a/b/c=d", "at most one '/'", id="selector-two-slashes"),
    pytest.param("/a=b", "prefix", id="selector-empty-prefix"),
    pytest.param("-app=b", "invalid label key", id="selector-key-leading-dash"),
    pytest.param(",app=b", "expected: !", id="selector-leading-comma"),
    pytest.param("(app)", "expected: !", id="selector-parenthesis-first"),
])
def test_label_selector_syntax(selector, reason):
    if reason is None:
        assert sc.parse_label_selectors([selector])
        return
    with pytest.raises(ScopeError) as info:
        sc.parse_label_selectors([selector])
    assert reason in str(info.value)
    assert json.dumps(selector) in str(info.value)


@pytest.mark.parametrize("selectors", [
    pytest.param("app=db", id="label-selectors-not-a-list"),
    pytest.param([{"app": "db"}], id="label-selector-not-a-string"),
])
def test_label_selectors_option_type(selectors):
    with pytest.raises(ScopeError):
        sc.parse_label_selectors(selectors)


@pytest.mark.parametrize("selectors, query", [
    pytest.param([], "", id="query-none"),
    pytest.param(None, "", id="query-unset"),
    pytest.param(["app=nginx"], "app=nginx", id="query-one"),
    pytest.param(["app=nginx", "tier in (a,b)", "!canary"], "app=nginx,tier in (a,b),!canary", id="query-anded"),
    pytest.param(["", " app=x "], "app=x", id="query-skips-empty"),
])
def test_label_selector_query(selectors, query):
    assert sc.label_selector_query(selectors) == query


def test_label_selector_query_validates():
    with pytest.raises(ScopeError):
        sc.label_selector_query(["app in (a"])


# ============================================================================================
# Label selectors as the Backup spec holds them and as velero shows them
# ============================================================================================

@pytest.mark.parametrize("selectors, expected", [
    (["app=db"], {"matchLabels": {"app": "db"}}),
    (["app=db", "tier!=cache"], {"matchLabels": {"app": "db"},
                                 "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["cache"]}]}),
    (["env in (prod,dev),backup,!legacy"], {"matchExpressions": [
        {"key": "env", "operator": "In", "values": ["dev", "prod"]},
        {"key": "backup", "operator": "Exists"},
        {"key": "legacy", "operator": "DoesNotExist"}]}),
    (["replicas>2"], None),   # not expressible as a LabelSelector: kept in the annotation only
    ([], None),
    ([""], None),
])
def test_selector_object(selectors, expected):
    assert sc.selector_object(selectors) == expected


def test_format_label_selector():
    assert sc.format_label_selector(None) == "<none>"
    assert sc.format_label_selector({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "env", "operator": "In", "values": ["prod", "dev"]}, {"key": "x", "operator": "DoesNotExist"}]}) == \
        "a=1,b=2,env in (dev,prod),!x"


# --------------------------------------------------------------------------------------------
# Resource names and filters
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("item, expected", [
    ("pods", "pods"),
    ("pod", "pods"),
    ("Pod", "pods"),
    ("po", "pods"),
    ("deployments", "deployments.apps"),      # not extensions: extensions sorts last
    ("deploy", "deployments.apps"),
    ("Deployment", "deployments.apps"),
    ("deployments.apps", "deployments.apps"),
    ("deployments.extensions", "deployments.extensions"),
    ("deploy.apps", "deployments.apps"),
    ("events", "events"),                     # core group wins over events.k8s.io
    ("events.events.k8s.io", "events.events.k8s.io"),
    ("sts", "statefulsets.apps"),
    ("clusterroles.rbac.authorization.k8s.io", "clusterroles.rbac.authorization.k8s.io"),
    ("wd", "widgets.example.com"),
    ("nosuchthing", "nosuchthing"),           # unresolvable: kept as typed, matches nothing
    ("pods.nosuchgroup", "pods.nosuchgroup"),
    ("*", "*"),
    ("*.apps", "*.apps"),
])
def test_resolve_resource_name(resources, item, expected):
    assert sc.resolve_resource_name(item, resources) == expected


def test_filter_empty_includes_everything_but_auto_excluded(resources):
    f = sc.ResourceFilter([], [], resources)
    assert f.should_include("pods") and f.should_include("clusterroles.rbac.authorization.k8s.io")
    assert not f.should_include("volumesnapshots.snapshot.storage.k8s.io")
    assert not f.should_include("volumesnapshotcontents.snapshot.storage.k8s.io")
    assert f.include_everything()


def test_filter_auto_excluded_even_when_included(resources):
    f = sc.ResourceFilter(["vs", "pods"], [], resources)
    assert not f.should_include("volumesnapshots.snapshot.storage.k8s.io")


def test_filter_short_names_and_exclude_wins(resources):
    f = sc.ResourceFilter(["po", "deploy", "cm"], ["configmaps"], resources)
    assert f.should_include("pods") and f.should_include("deployments.apps")
    assert not f.should_include("configmaps")
    assert not f.should_include("secrets")
    assert not f.include_everything()


def test_filter_wildcard_beside_names_means_all(resources):
    f = sc.ResourceFilter(["*", "pods"], [], resources)
    assert f.should_include("secrets")


def test_filter_wildcard_in_excludes_is_ignored(resources):
    f = sc.ResourceFilter([], ["*"], resources)
    assert f.should_include("pods")


def test_filter_globs(resources):
    f = sc.ResourceFilter(["*.apps"], [], resources)
    assert f.should_include("deployments.apps") and f.should_include("statefulsets.apps")
    assert not f.should_include("pods")
    assert not sc.ResourceFilter([], ["*.apps"], resources).should_include("deployments.apps")


def test_filter_unresolvable_include_matches_nothing(resources):
    f = sc.ResourceFilter(["typo"], [], resources)
    assert not f.should_include("pods") and not f.should_include("secrets")


@pytest.mark.parametrize("included, excluded, expected", [
    ([], [], True),
    (["*"], [], True),
    (["*", "db"], [], True),
    (["db"], [], False),
    ([], ["kube-system"], False),
    (["*"], ["kube-system"], False),
])
def test_namespaces_include_everything(included, excluded, expected):
    assert sc.namespaces_include_everything(included, excluded) is expected


# Velero's GlobalIncludesExcludes.ShouldInclude, table from pkg/backup/backup_test.go
@pytest.mark.parametrize("name, namespaced, icr, all_ns, expected", [
    ("pods", True, None, True, True),
    ("pods", True, False, False, True),
    ("persistentvolumes", False, None, True, True),     # full-cluster backup, auto
    ("persistentvolumes", False, None, False, False),   # subset of namespaces, auto
    ("persistentvolumes", False, True, False, True),
    ("persistentvolumes", False, False, True, False),
    ("namespaces", False, None, False, True),           # namespaces: decided per object later
    ("namespaces", False, False, True, False),          # false: not even Namespace objects
    ("namespaces", False, True, False, True),
])
def test_include_resource_type(resources, name, namespaced, icr, all_ns, expected):
    f = sc.ResourceFilter([], [], resources)
    assert sc.include_resource_type(name, namespaced, icr, all_ns, f) is expected


def test_include_cluster_resources_true_still_applies_the_resource_filter(resources):
    f = sc.ResourceFilter(["pods"], [], resources)
    assert not sc.include_resource_type("persistentvolumes", False, True, True, f)
    f = sc.ResourceFilter(["pods", "pv"], [], resources)
    assert sc.include_resource_type("persistentvolumes", False, True, False, f)
    assert sc.include_resource_type("persistentvolumes", False, None, True, f)
    assert not sc.include_resource_type("persistentvolumes", False, None, False, f)


# ============================================================================================
# Namespaces to list for a scope
# ============================================================================================

def scope(included, excluded=None):
    return sc.validate_namespace_scope(included, excluded)


def test_namespaces_to_list_all_is_one_cluster_wide_list():
    assert sc.namespaces_to_list(scope([], ["kube-system"]), [], ["a", "b"]) == ([None], [])
    assert sc.namespaces_to_list(scope(["*", "db"]), ["*", "db"], None) == ([None], [])


def test_namespaces_to_list_expands_globs_and_excludes():
    namespaces, problems = sc.namespaces_to_list(
        scope(["team-*", "db"], ["team-b"]), ["team-*", "db"], ["team-a", "team-b", "db", "web"])
    assert namespaces == ["db", "team-a"] and problems == []


def test_namespaces_to_list_reports_missing_names():
    namespaces, problems = sc.namespaces_to_list(scope(["db", "gone"]), ["db", "gone"], ["db"])
    assert namespaces == ["db"]
    assert problems == ["namespace gone given in included_namespaces does not exist"]


def test_namespaces_to_list_without_permission_uses_plain_names():
    namespaces, problems = sc.namespaces_to_list(scope(["db", "team-*"], ["x"]), ["db", "team-*"], None)
    assert namespaces == ["db"]
    assert len(problems) == 1 and "team-*" in problems[0]
