#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: pod_hooks_info
short_description: Show which Velero-style backup hooks would run in which pods
version_added: 0.1.0
description:
  - Lists the pods in scope and resolves their backup hooks, from Velero's pod annotations
    (C(pre.hook.backup.velero.io/*), C(post.hook.backup.velero.io/*)) and from hook rules in Velero's
    C(Backup.spec.hooks.resources) schema, into the exact plan that M(kubehooks.backup.pod_hooks) runs.
  - Never changes anything, and never runs a hook.
  - Pods are listed with as few paginated LIST calls as the scope allows, never one call per pod.
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.auth
  - kubehooks.backup.scope
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  check_exec:
    description:
      - Also check that the hooks of the plan can be executed, before any of them runs - the connection
        options must not impersonate (the exec websocket of the Python client cannot carry it), and the
        credentials must be allowed to C(create) and C(get) C(pods/exec) in every namespace with a hook
        (asked with one SelfSubjectAccessReview per namespace and verb). Otherwise the task fails naming
        the namespaces and verbs.
      - The role C(kubehooks.backup.create) sets it, so that a run without that permission fails before anything
        is frozen.
    type: bool
    default: false
  query:
    description:
      - A JMESPath expression applied to the module's result; its value is returned as RV(query_result),
        for example V(pods[?pre].name).
      - An invalid expression fails the task with a message naming it.
    type: str
requirements:
  - jmespath (only for O(query))
notes:
  - "RBAC: C(list) on C(pods) - in each namespace of O(included_namespaces) when they are plain names,
    cluster-wide otherwise. With O(check_exec), C(create) on C(selfsubjectaccessreviews) (every authenticated
    user has it)."
seealso:
  - module: kubehooks.backup.pod_hooks
  - name: Velero backup hooks
    description: The annotations and rules this module reads.
    link: https://velero.io/docs/main/backup-hooks/
"""

EXAMPLES = r"""
- name: Show the hooks Velero's annotations define in the nginx example
  kubehooks.backup.pod_hooks_info:
    included_namespaces: [nginx-example]
    label_selectors: [app=nginx]
  register: plan

- name: Hooks from rules, for every namespace starting with db- except db-scratch
  kubehooks.backup.pod_hooks_info:
    included_namespaces: ["db-*"]
    excluded_namespaces: [db-scratch]
    hooks:
      - name: freeze-data
        labelSelector:
          matchLabels: {app: postgres}
        pre:
          - exec:
              container: postgres
              command: [/sbin/fsfreeze, --freeze, /var/lib/postgresql/data]
              onError: Fail
              timeout: 60s
        post:
          - exec:
              container: postgres
              command: [/sbin/fsfreeze, --unfreeze, /var/lib/postgresql/data]
  register: plan

- name: Fail early when an annotation is invalid
  ansible.builtin.assert:
    that: plan.errors | length == 0
    fail_msg: "{{ plan.errors | map(attribute='message') | list }}"

- name: Names of the pods that have a pre hook
  kubehooks.backup.pod_hooks_info:
    query: "pods[?pre].name"
  register: frozen
"""

RETURN = r"""
pods:
  description: One entry per pod in scope, sorted by namespace and name.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: The pod's namespace.
      type: str
      sample: nginx-example
    name:
      description: The pod's name.
      type: str
      sample: nginx-deployment-5b8c4b7f9-abcde
    phase:
      description: The pod's phase (C(Running), C(Pending), C(Succeeded), C(Failed)).
      type: str
      sample: Running
    pre:
      description: The valid pre hooks, in the order they run.
      type: list
      elements: dict
      contains:
        source:
          description: C(annotation) or C(spec) (a hook rule).
          type: str
          sample: annotation
        name:
          description: C(<from-annotation>) or the rule's name.
          type: str
          sample: <from-annotation>
        container:
          description: The container the command runs in.
          type: str
          sample: fsfreeze
        command:
          description: The argv, exactly as it is executed (no shell).
          type: list
          elements: str
          sample: [/sbin/fsfreeze, --freeze, /var/log/nginx]
        on_error:
          description: C(Fail) or C(Continue).
          type: str
          sample: Fail
        timeout:
          description: The timeout in seconds.
          type: float
          sample: 30
        index:
          description: The hook's position in its phase, counting invalid hooks too.
          type: int
          sample: 0
    post:
      description: The valid post hooks, in the order they run; same keys as RV(pods[].pre).
      type: list
      elements: dict
    errors:
      description: This pod's entries of RV(errors).
      type: list
      elements: dict
errors:
  description:
    - Validation errors of single hooks (an invalid annotation, a container missing from the pod).
      Such a hook is left out of RV(pods[].pre) and RV(pods[].post); M(kubehooks.backup.pod_hooks)
      reports it as a failed hook with on-error C(Fail). They never fail this task.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: The pod's namespace.
      type: str
    pod:
      description: The pod's name.
      type: str
    phase:
      description: C(pre) or C(post).
      type: str
    source:
      description: C(annotation) or C(spec).
      type: str
    name:
      description: C(<from-annotation>) or the rule's name.
      type: str
    key:
      description: The annotation or rule key that is invalid.
      type: str
      sample: pre.hook.backup.velero.io/timeout
    value:
      description: The invalid value.
      type: raw
      sample: 1y
    message:
      description: What is wrong, naming the pod, the key and the value.
      type: str
    index:
      description: The hook's position in its phase.
      type: int
api_host:
  description:
    - The API server URL the module talked to (from the connection options, the kubeconfig or the
      environment); the role C(kubehooks.backup.create) derives its default cluster name from it.
  returned: always (also when listing the pods failed, once the connection options were understood)
  type: str
  sample: https://10.0.0.1:6443
query_result:
  description: The value of O(query) applied to the result.
  returned: when O(query) is set
  type: raw
"""

from ansible_collections.kubehooks.backup.plugins.module_utils._args import SCOPE_ARG_SPEC
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError
from ansible_collections.kubehooks.backup.plugins.module_utils._module import QUERY_SPEC, KubehooksModule
from ansible_collections.kubehooks.backup.plugins.module_utils._hook_runs import discover_plan


def execute(km):
    factory = km.client_factory()
    try:
        plan = discover_plan(factory, km.params)
    except KubehooksError as exc:
        exc.result = dict(getattr(exc, "result", None) or {}, api_host=factory.host)  # where the failure happened
        raise
    return dict(changed=False, pods=plan["pods"], errors=plan["errors"], api_host=factory.host)


def main():
    spec = dict(SCOPE_ARG_SPEC, check_exec=dict(type="bool", default=False))
    spec.update(QUERY_SPEC)
    KubehooksModule(spec).run(execute)


if __name__ == "__main__":
    main()
