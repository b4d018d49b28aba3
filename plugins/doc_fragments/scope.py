# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scope options shared by pod_hooks_info, pod_hooks and the kubehooks.backup.create role."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  included_namespaces:
    description:
      - Namespaces whose pods are in scope, as names or glob patterns (V(team-*), V(db-?)), with
        Velero's semantics.
      - An empty list, or V(*) anywhere in the list, means every namespace.
      - When every entry is a plain name, pods are listed once per namespace, so a namespaced Role
        suffices; otherwise pods are listed once for the whole cluster.
    type: list
    elements: str
    default: []
  excluded_namespaces:
    description:
      - Namespaces left out, as names or glob patterns. An exclusion wins over an inclusion.
      - V(*) is not allowed here.
    type: list
    elements: str
    default: []
  label_selectors:
    description:
      - Label selectors that pods must match, ANDed, in kubectl's syntax (as M(kubernetes.core.k8s_info)),
        for example V(app=nginx), V(tier in (db,cache)), V(!canary).
    type: list
    elements: str
    default: []
  hooks:
    description:
      - Hook rules in the schema of Velero's C(Backup.spec.hooks.resources), as YAML.
      - Each rule has a required C(name), optional C(includedNamespaces), C(excludedNamespaces),
        C(includedResources), C(excludedResources), C(labelSelector) (C(matchLabels),
        C(matchExpressions)), and ordered C(pre) and C(post) lists whose entries hold an C(exec) with
        C(container), C(command) (a list of arguments), C(onError) and C(timeout).
      - Every matching rule applies, in list order. A pod that carries a hook annotation for a phase
        runs only that hook in that phase; the rules still apply to its other phase.
      - An invalid rule (missing name, unknown key, bad selector, bad glob, bad C(onError) or C(timeout),
        V(*) in C(excludedNamespaces)) fails the task before anything runs.
    type: list
    elements: dict
    default: []
  max_hook_timeout:
    description:
      - The longest hook timeout allowed, as a Go duration (V(10m)) or a number of seconds. A hook whose
        timeout (its own, or the 30s default) is longer is a validation error naming the pod (an annotation)
        or the rule (O(hooks)), as for an invalid timeout; the hook does not run.
      - Unset, there is no cap (Velero has none).
    type: str
notes:
  - Hooks come from pod annotations exactly as documented by Velero
    (C(pre.hook.backup.velero.io/command), C(/container), C(/on-error), C(/timeout) and the C(post.)
    equivalents; the legacy keys without a prefix are a pre hook). A C(command) starting with V([) is
    a JSON array of arguments; anything else is one program name, never split on spaces and never
    run by a shell.
  - Differences from Velero, where Velero silently picks a default that can leave an application frozen
    or its hook never run - an unset C(on-error) means V(Fail) as Velero documents (Velero's code uses
    V(Continue)); a bare number as C(timeout) means seconds (Velero replaces it with 30s); an invalid
    C(on-error), C(timeout) or JSON command is a validation error reported for that pod and hook
    instead of a silent default.
"""
