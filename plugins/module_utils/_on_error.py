# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: what a hook's on-error means, decided in one place. Not a public API.

* The value: exactly ``Fail`` or ``Continue``; unset means ``Fail`` (Velero documents Fail as the
  default, its code uses Continue); anything else is a validation error.  An invalid hook acts as
  ``Fail`` for its pod.
* In the executor: a hook that failed with ``Fail`` stops the remaining hooks of its pod for that
  phase (they are ``not_run``, counted as attempted); with ``Continue`` the next one runs.
* For the task: it fails when any hook with ``Fail`` failed, with a message naming each.
* For the backup: the pods that failed a ``Fail`` pre hook (``failed_pods``) are left out of the
  archive; the record's phase (_record.phase_for) is then PartiallyFailed, never Failed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import show_value

ON_ERROR_FAIL = "Fail"
ON_ERROR_CONTINUE = "Continue"
ON_ERROR_VALUES = (ON_ERROR_FAIL, ON_ERROR_CONTINUE)
DEFAULT_ON_ERROR = ON_ERROR_FAIL  # Velero's documented default (its code uses Continue)
INVALID_HOOK_ON_ERROR = ON_ERROR_FAIL  # an invalid hook cannot run: its pod's later hooks must not either


def parse_on_error(value):
    """Return ``Fail`` or ``Continue`` (exactly, case-sensitive); None means the default ``Fail``."""
    if value is None:
        return DEFAULT_ON_ERROR
    if value not in ON_ERROR_VALUES:
        raise ValueError("on-error must be exactly Fail or Continue, got %s" % show_value(value))
    return value


def describe_hook(result):
    return "%s hook %s #%s" % (result["phase"], json.dumps(result["name"]), result["index"])


def fails_pod(result):
    """True when this hook result failed with on-error Fail: its pod's remaining hooks of the phase stop."""
    return result.get("status") == "failed" and result.get("on_error") == ON_ERROR_FAIL


def stop_reason(result):
    """The ``reason`` of the hooks a failed Fail hook stopped."""
    return "not run: %s failed with on-error Fail" % describe_hook(result)


def failed_pods(results):
    """``ns/name`` of the pods that failed a Fail hook, sorted: what the export leaves out after the pre phase."""
    return sorted(set("%s/%s" % (r["namespace"], r["pod"]) for r in results if fails_pod(r)))


def fail_summary(results):
    """A message naming each pod and hook that failed with on-error Fail; None when there is none."""
    lines = ["%s/%s: %s%s: %s" % (r["namespace"], r["pod"], describe_hook(r),
                                  " in container %s" % r["container"] if r.get("container") else "",
                                  r.get("error") or "failed")
             for r in results if fails_pod(r)]
    if not lines:
        return None
    return "%d hook(s) with on-error Fail failed: %s" % (len(lines), "; ".join(lines))
