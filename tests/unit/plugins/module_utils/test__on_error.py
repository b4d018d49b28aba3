# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _on_error: the value, what a failed Fail hook stops, the failed pods, the task's message."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _on_error as oe


# ============================================================================================
# on-error is exactly Fail or Continue; unset means Fail
# ============================================================================================

@pytest.mark.parametrize("value, expected", [
    pytest.param("Fail", "Fail", id="on-error-fail"),
    pytest.param("Continue", "Continue", id="on-error-continue"),
    pytest.param(None, "Fail", id="on-error-unset-means-fail-as-documented"),
])
def test_parse_on_error_accepts(value, expected):
    assert oe.parse_on_error(value) == expected


@pytest.mark.parametrize("value", [
    pytest.param("fail", id="on-error-lowercase-is-error"),
    pytest.param("Abort", id="on-error-unknown-is-error"),
    pytest.param("Continue ", id="on-error-trailing-space-is-error"),
    pytest.param("", id="on-error-empty-is-error"),
    pytest.param("CONTINUE", id="on-error-uppercase-is-error"),
])
def test_parse_on_error_rejects(value):
    with pytest.raises(ValueError) as info:
        oe.parse_on_error(value)
    assert json.dumps(value) in str(info.value)


# ============================================================================================
# consequences of a failed hook
# ============================================================================================

def test_fail_summary_names_every_fail_hook():
    results = [
        dict(namespace="db", pod="a", phase="pre", name="freeze", index=0, container="c", status="failed",
             on_error="Fail", error="timed out after 2s"),
        dict(namespace="db", pod="b", phase="pre", name="<from-annotation>", index=1, container=None,
             status="failed", on_error="Fail", error="invalid hook: bad"),
        dict(namespace="db", pod="c", phase="pre", name="x", index=0, container="c", status="failed",
             on_error="Continue", error="exit 1"),
    ]
    message = oe.fail_summary(results)
    assert message.startswith("2 hook(s) with on-error Fail failed: ")
    assert 'db/a: pre hook "freeze" #0 in container c: timed out after 2s' in message
    assert 'db/b: pre hook "<from-annotation>" #1: invalid hook: bad' in message
    assert "db/c" not in message


def test_failed_pods_are_the_pods_that_failed_a_fail_hook_once_each():
    results = [dict(namespace="db", pod="b", status="failed", on_error="Fail"),
               dict(namespace="db", pod="b", status="not_run", on_error="Fail"),
               dict(namespace="db", pod="a", status="failed", on_error="Fail"),
               dict(namespace="db", pod="a", status="failed", on_error="Fail"),
               dict(namespace="db", pod="c", status="failed", on_error="Continue"),
               dict(namespace="db", pod="d", status="succeeded", on_error="Fail")]
    assert oe.failed_pods(results) == ["db/a", "db/b"]
    assert oe.failed_pods([]) == []


def test_a_failed_fail_hook_stops_its_pod_and_says_which_hook():
    failed = dict(namespace="db", pod="a", phase="pre", name="freeze", index=0, status="failed", on_error="Fail")
    assert oe.fails_pod(failed) and not oe.fails_pod(dict(failed, on_error="Continue"))
    assert oe.stop_reason(failed) == 'not run: pre hook "freeze" #0 failed with on-error Fail'
    assert oe.INVALID_HOOK_ON_ERROR == "Fail"
