# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: pod discovery with as few LIST calls as the scope allows. Not a public API.

The scope is Velero's: ``included_namespaces`` (empty or ``*`` = all, globs allowed) and
``excluded_namespaces`` (exclude wins).  When every included entry is a plain namespace name,
discovery lists pods once per namespace, so a namespaced Role is enough; otherwise it makes ONE
cluster-wide list and filters by namespace here.  Never one call per pod.  Lists are paginated
(``limit``/``continue``) and read raw (``_preload_content=False`` + ``json.loads``): pods are
plain dicts in the API's JSON shape.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.kubehooks.backup.plugins.module_utils._api import (
    ApiRequestError,
    api_error,
    api_getter,
    list_pages,
    pods_path,
)
from ansible_collections.kubehooks.backup.plugins.module_utils._scope import validate_namespace_scope

DEFAULT_PAGE_SIZE = 500
# A namespace name is a DNS label; anything else in an include entry is a pattern.
_PLAIN_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def plan_list_calls(included_namespaces, excluded_namespaces):
    """Return the LIST calls to make: ``[None]`` for one cluster-wide list, else namespace names.

    Plain names (no glob, no ``*``) give one list per namespace, minus excluded ones (exclude
    wins, globs in excludes apply); the result may then be empty: nothing to list.
    """
    included = list(included_namespaces or [])
    scope = validate_namespace_scope(included, list(excluded_namespaces or []))  # ScopeError if invalid
    if not included or not all(_PLAIN_NAME.match(ns) for ns in included):
        return [None]
    return sorted(ns for ns in set(included) if scope.matches(ns))


def _action(namespace):
    if namespace is None:
        return "list pods cluster-wide (all namespaces)"
    return "list pods in namespace %s" % namespace


def list_pods(api_client, included_namespaces, excluded_namespaces, label_selector_string,
              page_size=DEFAULT_PAGE_SIZE):
    """Yield the pods in scope as plain dicts, paginated, one list per call of ``plan_list_calls``.

    Raises AuthorizationError (403/401, naming the missing permission), ScopeError or KubehooksError.
    """
    included = list(included_namespaces or [])
    excluded = list(excluded_namespaces or [])
    scope = validate_namespace_scope(included, excluded)
    get_json = api_getter(api_client)
    for namespace in plan_list_calls(included, excluded):
        try:
            for pod in list_pages(get_json, pods_path(namespace), label_selector_string or None, page_size):
                if namespace is None and not scope.matches((pod.get("metadata") or {}).get("namespace") or ""):
                    continue
                yield pod
        except ApiRequestError as err:
            raise api_error(err, _action(namespace))
