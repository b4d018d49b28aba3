#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_capture
short_description: The critical section of a backup in one process - freeze, capture, thaw - with a watchdog
version_added: 0.1.0
description:
  - For each group of pods of a O(plan) (from M(kubehooks.backup.pod_hooks_info)) runs the pre hooks (freeze),
    captures the group's volumes, and runs the post hooks (thaw) in a C(finally), all in one process, so an
    application is frozen only around its own data, as Velero does with its ItemBlocks.
  - "A group is one pod; pods that mount the same PersistentVolumeClaim form one group; with O(freeze_together)
    every pod of the plan is one group (freeze all, capture all, thaw all). Pods without hooks but with volumes
    to capture form groups too (capture without freeze). Groups run in parallel, up to O(parallelism) at a time."
  - The hooks of one pod run in order with Velero's on-error semantics (see M(kubehooks.backup.pod_hooks)).
    A pod whose pre hook failed with on-error V(Fail) is not captured (as Velero) and is listed in
    RV(failed_pods); it still gets its post hooks, as does every pod of its group.
  - O(max_freeze_seconds) is the frozen section's deadline, counted from the first pre hook. Each pre hook's
    timeout is cut to the time left (a hook's own timeout never extends it); a capture still running at the
    deadline is abandoned and the post hooks start. Post hooks are not cut; they keep their own timeouts.
  - A post hook that could not be executed (connection refused or reset, DNS failure, a websocket that fails
    to open, HTTP 5xx or 429 on the upgrade) is retried with backoff (0.2 s doubling to 2 s) until
    O(thaw_retry_seconds) after the group's post phase started. A hook that ran and exited non-zero, or timed
    out, is not retried; neither is a permanent refusal (401, 403). A pod deleted meanwhile (404) is not
    frozen any more.
  - Before the first pre hook a watchdog process is started in a session of its own (C(setsid)), so that a
    SIGKILL or SIGTERM of the whole C(ansible-playbook) process group (how ansible-runner and AWX cancel a
    job) does not reach it. It acts only when the run died, or when O(max_freeze_seconds) plus
    O(thaw_retry_seconds) (plus 10 s) have passed; it then runs the post hooks of the pods not yet thawed,
    with the same retries, and writes C(<backup_dir>/<name>-watchdog.json) (C(acted), C(reason), C(thawed),
    C(not_thawed), C(hooks)) and its hooks to O(log_path). Each pod is claimed and marked thawed in
    C(<backup_dir>/<name>-thaw-state.jsonl) as it goes, so nothing is unfrozen twice. When the run thaws
    normally the watchdog exits and records C(acted=false).
  - The watchdog is a fork of the module process, not a new program. It keeps the imported code, the plan and
    the API configuration in memory, so no credentials file is written while it waits. Certificate files that
    the Kubernetes client wrote for an inline kubeconfig (and deletes at exit) are written again, owner-only,
    only if the watchdog must act, and removed after.
  - O(stage=freeze) and O(stage=thaw) split the section across tasks, for tasks of your own while the pods
    are frozen (a CSI or cloud snapshot). V(freeze) runs the pre hooks and the capture and returns with the
    pods frozen; its watchdog then watches the outermost C(ansible-playbook) process and the deadline.
    V(thaw) runs the post hooks of the pods not thawed yet and tells the watchdog to stand down.
  - The task fails when any pod may still be frozen (RV(not_thawed)), with a message naming them. It does not
    fail because a hook with on-error V(Fail) failed; RV(hooks_failed) and RV(failed_pods) say so and the
    role records the backup as C(PartiallyFailed), as Velero does.
author:
  - kubehooks.backup maintainers (@kubehooks)
extends_documentation_fragment:
  - kubehooks.backup.auth
  - kubehooks.backup.critical_section
attributes:
  check_mode:
    support: full
    description: In check mode the module returns the exact plan (RV(plan) - groups in order, each pod's hooks
      and volumes) and executes nothing, starts no watchdog and writes no file.
  diff_mode:
    support: none
    description: Hooks are commands, not state; there is no diff.
options:
  plan:
    description:
      - The RV(kubehooks.backup.pod_hooks_info#module:pods) list returned by M(kubehooks.backup.pod_hooks_info).
        Every stage of one backup must get the same plan.
    type: list
    elements: dict
    required: true
  name:
    description:
      - The backup's name; names the thaw-state and watchdog files and is written as C(backup) in the hook log.
    type: str
    required: true
  backup_dir:
    description:
      - The backup's directory (for example RV(kubehooks.backup.backup_record#module:backup_dir)); created
        (mode 0700) when missing. Keep it off the volumes being frozen.
    type: path
    required: true
  stage:
    description:
      - V(all) - pre hooks, capture and post hooks in this task.
      - V(freeze) - pre hooks and capture; the pods stay frozen until a V(thaw) task (or the watchdog) thaws them.
      - V(thaw) - the post hooks of the pods of O(plan) that are not thawed yet.
    type: str
    choices: [all, freeze, thaw]
    default: all
  run_id:
    description:
      - The run's identity in the Lease's holder (for example RV(kubehooks.backup.backup_record#module:run_id));
        a random one when unset.
    type: str
  respect_lease:
    description:
      - O(stage=thaw) only - refuse (after waiting up to 15 s) while the run that froze the pods still holds its
        Lease, that is while it or its watchdog is alive and thaws them itself. The C(kubehooks.backup.thaw)
        playbook sets it unless C(thaw_force).
    type: bool
    default: false
  max_hook_timeout:
    description:
      - The longest hook timeout the O(plan) may hold, as a Go duration (V(10m)) or a number of seconds; a longer
        one fails the task before anything is frozen, naming the pod. Unset, there is no cap (Velero has none);
        O(max_freeze_seconds) bounds the pre hooks anyway.
    type: str
  log_path:
    description:
      - A file to which one JSON object per hook is appended (mode 0600), as M(kubehooks.backup.pod_hooks)
        writes it; the watchdog appends its hooks there too, with C(thawedBy=watchdog).
    type: path
notes:
  - "RBAC: C(list) on C(pods) and both C(get) and C(create) on C(pods/exec) in the plan's namespaces; C(get) on the
    PersistentVolumeClaims of the volumes to capture (O(check_storage_room)); C(create), C(get), C(update) and
    C(delete) on C(leases) in O(lease_namespace) (O(lease)). With O(snapshot_volumes): C(get) on C(persistentvolumes),
    C(list) on C(volumesnapshotclasses), C(get) and C(patch) on C(volumesnapshotcontents), C(create), C(get) and
    C(delete) on C(volumesnapshots) in the plan's namespaces (all in C(files/rbac/backup.yml))."
  - "What the watchdog cannot cover: the machine, or the AWX container-group pod, that runs the playbook being
    gone (the watchdog goes with it). Then run the C(kubehooks.backup.thaw) playbook: it thaws the pods that the
    record lists."
  - The watchdog writes to O(backup_dir) only after its thaw. If O(backup_dir) were on a volume being frozen,
    the run's own writes there would wait for the thaw.
seealso:
  - module: kubehooks.backup.pod_hooks_info
  - module: kubehooks.backup.pod_hooks
"""

EXAMPLES = r"""
- name: Resolve the hooks
  kubehooks.backup.pod_hooks_info:
    included_namespaces: [nginx-example]
  register: plan

- name: Freeze, capture and thaw each pod in turn, with a watchdog
  kubehooks.backup.backup_capture:
    plan: "{{ plan.pods }}"
    name: nginx-hook-test
    backup_dir: /var/backups/kubehooks/nginx-hook-test
    log_path: /var/backups/kubehooks/nginx-hook-test/hooks.jsonl
    max_freeze_seconds: 120
  register: section

- name: Freeze everything, run a snapshot of your own, then thaw
  block:
    - name: Freeze
      kubehooks.backup.backup_capture:
        plan: "{{ plan.pods }}"
        name: snap-1
        backup_dir: /var/backups/kubehooks/snap-1
        stage: freeze
        freeze_together: true
    - name: Snapshot
      ansible.builtin.debug:
        msg: your CSI or cloud snapshot task here
  always:
    - name: Thaw
      kubehooks.backup.backup_capture:
        plan: "{{ plan.pods }}"
        name: snap-1
        backup_dir: /var/backups/kubehooks/snap-1
        stage: thaw
"""

RETURN = r"""
stage:
  description: The stage that ran.
  returned: always
  type: str
  sample: all
plan:
  description: Check mode only - the groups in the order they start, each with its pods, their hooks and volumes.
  returned: check mode
  type: list
  elements: dict
hooks:
  description:
    - Every hook that ran, pre hooks then post hooks, in the shape of RV(kubehooks.backup.pod_hooks#module:hooks),
      plus C(not_executed) (C(unreachable) or C(gone)) when the exec could not be opened and C(attempts) for
      post hooks.
  returned: always
  type: list
  elements: dict
hooks_attempted:
  description: Hooks succeeded, failed or not run (as Velero's C(hookStatus.hooksAttempted)).
  returned: when not in check mode
  type: int
hooks_failed:
  description: Hooks that failed (as Velero's C(hookStatus.hooksFailed)).
  returned: when not in check mode
  type: int
volumes:
  description: One entry per selected volume, as in the index C(<name>-volumes.json.gz) - C(namespace), C(pod),
    C(volume), C(pvc), C(path) (relative to O(backup_dir)), C(bytes), C(files), C(sha256), C(method), C(status)
    (C(succeeded), C(failed), or C(not_captured) and C(abandoned)) and C(error). A CSI snapshot (C(method=csi-snapshot),
    C(path) null, C(bytes) 0) also has C(driver), C(pv), C(volume_snapshot_class), C(volume_snapshot) (in the claim's
    namespace), C(volume_snapshot_content), C(snapshot_handle), C(restore_size) (bytes), C(deletion_policy),
    C(creation_time), C(ready_to_use), and C(created_at), C(cut_at), C(ready_at) (epoch seconds).
  returned: always
  type: list
  elements: dict
volumes_skipped:
  description: Claims of the plan's pods that were not snapshotted (O(snapshot_volumes)), each with C(namespace),
    C(pod), C(volume), C(pvc), C(method) and the C(reason) (not a CSI volume, not bound, selected for the file-system
    copy, snapshotted with another pod).
  returned: when not in check mode and stage is all or freeze, and in check mode
  type: list
  elements: dict
volume_totals:
  description: C(volumes), C(succeeded), C(failed), C(bytes), C(files) over RV(volumes).
  returned: when stage is all or freeze
  type: dict
groups:
  description: Per group - C(id), C(pods) (C(namespace/name)), C(frozen), C(started) and C(ended) (epoch
    seconds), C(freeze_window_seconds) (first pre hook start to last post hook end).
  returned: when stage is all or freeze
  type: list
  elements: dict
freeze_window_seconds:
  description: First pre hook start to last post hook end over all groups (for V(thaw), from the freeze stage's
    first pre hook); null when nothing was frozen.
  returned: always
  type: float
not_thawed:
  description: Pods (C(namespace/name)) that may still be frozen; the task fails when it is not empty.
  returned: always
  type: list
  elements: str
failed_pods:
  description: Pods whose pre hook failed with on-error V(Fail); their volumes are not captured and the
    export leaves them out.
  returned: when stage is all or freeze
  type: list
  elements: str
frozen_pods:
  description: Stage V(freeze) - the pods with pre hooks, left frozen for the V(thaw) stage.
  returned: when stage is freeze
  type: list
  elements: str
velero_file_problems:
  description: With CSI snapshots - objects that could not be read for Velero's files
    C(<name>-csi-volumesnapshots.json.gz), C(-csi-volumesnapshotcontents.json.gz), C(-csi-volumesnapshotclasses.json.gz)
    (the record counts each as an error).
  returned: when a CSI snapshot was taken
  type: list
  elements: str
write_errors:
  description:
    - What could not be written (the hook log, the thaw state, the volumes index - read-only or full storage).
      The hooks still ran and their results are in RV(hooks); the task fails with these messages.
  returned: when not in check mode
  type: list
  elements: str
lease:
  description: The Lease the run took - C(namespace), C(name), C(holder), C(duration_seconds); null when none
    (O(lease=false), or no pod with pre hooks).
  returned: when stage is all or freeze
  type: dict
storage_room:
  description: The room check - C(needed) and C(free) bytes, C(unknown) (volumes of unknown size); null
    when it did not run (no volume, or O(check_storage_room=false)).
  returned: when stage is all or freeze
  type: dict
watchdog:
  description: The watchdog's record - C(pid), C(started), C(controller_pid), C(deadline), C(acted)
    (null while it still watches), C(reason).
  returned: when not in check mode
  type: dict
"""

from ansible_collections.kubehooks.backup.plugins.module_utils import _capture, _volumes
from ansible_collections.kubehooks.backup.plugins.module_utils._args import SECTION_ARG_SPEC
from ansible_collections.kubehooks.backup.plugins.module_utils._module import KubehooksModule
from ansible_collections.kubehooks.backup.plugins.module_utils._section import run


def execute(km):
    return run(km.params, km.client_factory(), check_mode=km.check_mode, select_volumes=_volumes.select_volumes,
               capture_pod_volumes=_capture.capture_pod_volumes)


def main():
    spec = dict(
        plan=dict(type="list", elements="dict", required=True),
        name=dict(type="str", required=True),
        backup_dir=dict(type="path", required=True),
        stage=dict(type="str", default="all", choices=["all", "freeze", "thaw"]),
        run_id=dict(type="str"),
        respect_lease=dict(type="bool", default=False),
        max_hook_timeout=dict(type="str"),
        log_path=dict(type="path"),
    )
    spec.update(SECTION_ARG_SPEC)
    KubehooksModule(spec).run(execute)


if __name__ == "__main__":
    main()
