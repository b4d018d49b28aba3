#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: pod_hooks
short_description: Run Velero-style backup hooks (pre or post) in pods through pods/exec
version_added: 0.1.0
description:
  - Runs one O(phase) of backup hooks - V(pre) (for example C(fsfreeze --freeze)) or V(post)
    (C(fsfreeze --unfreeze)) - in the pods in scope, or in the pods of a O(plan) returned by
    M(kubehooks.backup.pod_hooks_info).
  - Hooks come from Velero's pod annotations and from hook rules, with Velero's documented semantics
    (see M(kubehooks.backup.pod_hooks_info) for how they are resolved and where this collection is
    stricter than Velero).
  - Each command runs through the C(pods/exec) API with its argv exactly as given - never through a
    shell - with no stdin and no TTY. Its stdout and stderr are captured up to O(output_limit) bytes each.
  - The hooks of one pod run in order; pods run in parallel, up to O(parallelism) at a time.
  - A hook that fails with on-error V(Fail) stops the remaining hooks of that pod for this phase (they are
    reported as C(not_run) and counted as attempted, as Velero counts them); with V(Continue) the next
    hook runs. Pods whose phase is C(Succeeded) or C(Failed) are skipped, with the reason.
  - The task fails only when a hook with on-error V(Fail) failed, and its message names each such pod and hook.
    Every hook's outcome is returned (and logged) either way.
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.auth
  - kubehooks.backup.scope
attributes:
  check_mode:
    support: full
    description: In check mode the module returns the exact plan (every hook with status C(planned)) and executes nothing.
  diff_mode:
    support: none
    description: Hooks are commands, not state; there is no diff.
options:
  phase:
    description:
      - Which hooks to run.
    type: str
    required: true
    choices: [pre, post]
  plan:
    description:
      - The RV(kubehooks.backup.pod_hooks_info#module:pods) list returned by M(kubehooks.backup.pod_hooks_info).
        When given, exactly these pods and hooks are used and the cluster is not listed again, so the
        post hooks reach the same pods as the pre hooks.
      - Mutually exclusive with O(hooks), O(included_namespaces), O(excluded_namespaces) and O(label_selectors).
      - With O(max_hook_timeout), a hook of the plan whose timeout is longer fails the task before any hook runs.
    type: list
    elements: dict
  parallelism:
    description:
      - How many pods run their hooks at the same time. Each worker uses its own API connection.
    type: int
    default: 8
  output_limit:
    description:
      - Bytes of stdout and of stderr kept per hook; the rest is dropped and RV(hooks[].truncated) is set.
    type: int
    default: 65536
  log_path:
    description:
      - A file to which one JSON object per hook is appended (created with mode 0600), with Velero's
        field names (C(hookCommand), C(hookContainer), C(hookName), C(hookPhase), C(hookSource),
        C(hookType), C(hookOnError), C(hookTimeout)) plus C(namespace), C(pod), C(status), C(exitCode),
        C(duration), C(level), C(msg) and C(time), so C(grep hookCommand) works as with Velero's logs.
    type: path
  backup:
    description:
      - Name of the backup these hooks belong to; added to each log entry as C(backup).
    type: str
notes:
  - "RBAC: C(list) on C(pods) (unless O(plan) is given) and both C(get) and C(create) on C(pods/exec)
    in the namespaces in scope. A Role for one namespace:
    C(rules: [{apiGroups: [''], resources: [pods], verbs: [list]}, {apiGroups: [''], resources: [pods/exec], verbs: [get, create]}])."
  - When a hook times out, the stream is closed and the hook fails with C(timed out after <duration>);
    the process inside the container may keep running (Velero behaves the same).
  - A hook that cannot be validated (see M(kubehooks.backup.pod_hooks_info)) is reported as a failed hook with
    on-error V(Fail) for its pod; other pods are not affected.
seealso:
  - module: kubehooks.backup.pod_hooks_info
  - name: Velero backup hooks
    description: The annotations and rules this module runs.
    link: https://velero.io/docs/main/backup-hooks/
"""

EXAMPLES = r"""
- name: Resolve the hooks once
  kubehooks.backup.pod_hooks_info:
    included_namespaces: [nginx-example]
  register: plan

- name: Freeze
  kubehooks.backup.pod_hooks:
    phase: pre
    plan: "{{ plan.pods }}"
    log_path: /var/log/kubehooks/hooks.jsonl

- name: Thaw the very same pods, whatever happened before
  kubehooks.backup.pod_hooks:
    phase: post
    plan: "{{ plan.pods }}"
    log_path: /var/log/kubehooks/hooks.jsonl

- name: Run the post hooks of rules in every namespace labelled by team, 16 pods at a time
  kubehooks.backup.pod_hooks:
    phase: post
    included_namespaces: ["team-*"]
    parallelism: 16
    hooks:
      - name: flush
        includedNamespaces: ["team-*"]
        post:
          - exec:
              command: [/usr/bin/sync]
              onError: Continue
              timeout: 10s
"""

RETURN = r"""
hooks:
  description: One entry per planned or invalid hook, pods in plan order and hooks in phase order.
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
    container:
      description: The container the command ran in.
      type: str
    command:
      description: The argv that was executed.
      type: list
      elements: str
    source:
      description: C(annotation) or C(spec).
      type: str
    name:
      description: C(<from-annotation>) or the rule's name.
      type: str
    phase:
      description: C(pre) or C(post).
      type: str
    on_error:
      description: C(Fail) or C(Continue).
      type: str
    timeout:
      description: The timeout in seconds.
      type: float
    status:
      description:
        - C(succeeded); C(failed) (non-zero exit, exec error, timeout, missing container, invalid hook);
          C(not_run) (an earlier hook of the pod failed with C(Fail)); C(skipped) (the pod is
          C(Succeeded) or C(Failed)); C(planned) in check mode.
      type: str
      sample: succeeded
    exit_code:
      description: The exit code when the API reported one, else null.
      type: int
    stdout:
      description: Standard output, up to O(output_limit) bytes.
      type: str
    stderr:
      description: Standard error, up to O(output_limit) bytes.
      type: str
    truncated:
      description: Whether stdout or stderr was cut at O(output_limit).
      type: bool
    duration:
      description: Seconds the hook took.
      type: float
    error:
      description: Why the hook failed, else null.
      type: str
    reason:
      description: Why the hook was skipped or not run, else null.
      type: str
    finished_at:
      description: When the hook ended (or was found skipped or not run), in seconds since the epoch; null in check mode.
      type: float
failed_pods:
  description:
    - The pods that failed a hook with on-error V(Fail), as C(namespace/name) - after the pre phase, the pods the
      export leaves out (the role passes this list to M(kubehooks.backup.resource_export) as C(exclude_pods)).
  returned: always
  type: list
  elements: str
  sample: [db/pg-0]
hooks_attempted:
  description: Hooks succeeded, failed or not run (as Velero's C(hookStatus.hooksAttempted)); skipped hooks are not counted.
  returned: always
  type: int
  sample: 2
hooks_failed:
  description: Hooks that failed (as Velero's C(hookStatus.hooksFailed)).
  returned: always
  type: int
  sample: 0
"""

from ansible_collections.kubehooks.backup.plugins.module_utils._args import SCOPE_ARG_SPEC
from ansible_collections.kubehooks.backup.plugins.module_utils._module import KubehooksModule
from ansible_collections.kubehooks.backup.plugins.module_utils._hook_runs import discover_plan, run_hooks


def execute(km):
    factory = km.client_factory()
    if km.params["plan"] is not None:
        pods = km.params["plan"]
    else:
        pods = discover_plan(factory, km.params)["pods"]
    return run_hooks(factory, pods, km.params, check_mode=km.check_mode)


def main():
    spec = dict(SCOPE_ARG_SPEC)
    spec.update(
        phase=dict(type="str", required=True, choices=["pre", "post"]),
        plan=dict(type="list", elements="dict"),
        parallelism=dict(type="int", default=8),
        output_limit=dict(type="int", default=65536),
        log_path=dict(type="path"),
        backup=dict(type="str"),
    )
    KubehooksModule(
        spec,
        mutually_exclusive=[("plan", "hooks"), ("plan", "included_namespaces"),
                            ("plan", "excluded_namespaces"), ("plan", "label_selectors")],
    ).run(execute)


if __name__ == "__main__":
    main()
