# -*- coding: utf-8 -*-
"""Unit tests for the Lease (_lease): duration, times, take / wait / renew / release, the thaw's check.

The API is a FAKE here (an in-memory Lease with resourceVersion preconditions, conflicts made on purpose;
a clock advanced by the test): two real overlapping runs, a real API server and the RBAC are in
tests/integration/test_lease.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import time

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _lease
from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

PATH = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


class Clock(object):
    def __init__(self, now=1800000000.0):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeApi(object):
    """One namespace's Leases; ``conflict_next`` makes the next write answer 409; ``down`` refuses all."""

    def __init__(self):
        self.objects = {}
        self.version = 0
        self.calls = []
        self.conflict_next = False
        self.down = False
        self.status = None

    def __call__(self, method, path, body=None, query=None):
        self.calls.append((method, path))
        if self.down:
            raise ApiRequestError(0, "connection refused")
        if self.status:
            raise ApiRequestError(self.status, "forbidden")
        if method != "GET" and self.conflict_next:
            self.conflict_next = False
            raise ApiRequestError(409, "conflict")
        name = path[len(PATH) + 1:] if path.startswith(PATH + "/") else None
        if method == "GET":
            if name not in self.objects:
                raise ApiRequestError(404, "not found")
            return copy.deepcopy(self.objects[name])
        if method == "POST":
            name = body["metadata"]["name"]
            if name in self.objects:
                raise ApiRequestError(409, "already exists")
            return self._store(name, body)
        if method == "PUT":
            if self.objects[name]["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
                raise ApiRequestError(409, "conflict")
            return self._store(name, body)
        if method == "DELETE":
            if self.objects[name]["metadata"]["resourceVersion"] != body["preconditions"]["resourceVersion"]:
                raise ApiRequestError(409, "precondition failed")
            del self.objects[name]
            return {}
        raise AssertionError(method)

    def _store(self, name, body):
        self.version += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[name] = obj
        return copy.deepcopy(obj)


def lease(api, clock, holder="b1/run1", duration=100):
    return _lease.Lease(api, "default", _lease.DEFAULT_NAME, holder, duration, clock=clock, sleep=clock.sleep)


def test_duration_covers_the_freeze_both_thaw_retries_and_the_margins():
    assert _lease.duration_seconds(600, 300) == 600 + 600 + 10 + 60
    assert _lease.duration_seconds(0, 5) == 600 + 10 + 10 + 60  # no deadline: 600 s counted
    assert _lease.duration_seconds(1.2, 0) == 72


def test_micro_time_round_trips():
    text = _lease.micro_time(1800000000.25)
    assert text == "2027-01-15T08:00:00.250000Z"
    assert _lease.parse_time(text) == pytest.approx(1800000000.25)
    assert _lease.parse_time("2027-01-15T09:00:00+01:00") == 1800000000
    assert _lease.parse_time("yesterday") is None


def test_take_a_free_lease_then_a_second_run_waits_and_fails_naming_the_holder():
    api, clock = FakeApi(), Clock()
    first = lease(api, clock)
    spec = first.acquire(0)
    assert spec["holderIdentity"] == "b1/run1" and spec["leaseDurationSeconds"] == 100
    second = lease(api, clock, holder="b2/run2")
    started = clock()
    with pytest.raises(KubehooksError) as err:
        second.acquire(5)
    assert clock() - started >= 4
    for part in ("another backup holds the Lease default/kubehooks-backup-freeze", "holder b1/run1",
                 "nothing was frozen", "lease_wait_seconds"):
        assert part in str(err.value)


def test_a_released_lease_is_taken_by_the_waiting_run():
    api, clock = FakeApi(), Clock()
    first, second = lease(api, clock), lease(api, clock, holder="b2/run2")
    first.acquire(0)
    assert second.try_acquire()[0] is False
    assert first.release() is True and not api.objects
    assert second.acquire(0)["holderIdentity"] == "b2/run2"


def test_a_lapsed_lease_is_taken_over_and_a_renewed_one_is_not():
    api, clock = FakeApi(), Clock()
    first, second = lease(api, clock), lease(api, clock, holder="b2/run2")
    first.acquire(0)
    clock.now += 90
    first.renew()
    clock.now += 90  # 180 s after the take, 90 s after the renewal: still held
    assert second.try_acquire()[0] is False
    clock.now += 11
    ok, spec = second.try_acquire()
    assert ok and spec["holderIdentity"] == "b2/run2"
    with pytest.raises(_lease.LeaseLost, match="no longer held by b1/run1"):
        first.renew()
    assert first.release() is True and api.objects  # not its Lease any more: left alone


def test_a_conflict_while_taking_means_look_again():
    api, clock = FakeApi(), Clock()
    api.conflict_next = True
    assert lease(api, clock).try_acquire()[0] is False
    assert lease(api, clock).try_acquire()[0] is True


def test_permission_refused_names_the_rbac_needed():
    api, clock = FakeApi(), Clock()
    api.status = 403
    with pytest.raises(KubehooksError, match="leases \\(coordination.k8s.io\\) in namespace default"):
        lease(api, clock).acquire(0)


def test_release_is_retried_while_the_api_server_is_down_until_it_would_have_lapsed():
    api, clock = FakeApi(), Clock()
    held = lease(api, clock)
    held.acquire(0)
    api.down = True
    assert held.release_patiently() is False
    assert clock() >= 1800000000.0 + 90
    api.down = False
    assert held.release_patiently() is True and not api.objects


def test_the_thaw_check_refuses_while_the_run_holds_it_and_waits_a_little_for_a_release():
    api, clock = FakeApi(), Clock()
    lease(api, clock).acquire(0)
    with pytest.raises(KubehooksError, match="still holds the Lease .*thaw_force=true"):
        _lease.check_not_held(api, "default", _lease.DEFAULT_NAME, "b1/run1", wait_seconds=3, clock=clock,
                              sleep=clock.sleep)
    assert _lease.check_not_held(api, "default", _lease.DEFAULT_NAME, "b9/other", clock=clock, sleep=clock.sleep)
    clock.now += 101  # lapsed
    assert _lease.check_not_held(api, "default", _lease.DEFAULT_NAME, "b1/run1", clock=clock, sleep=clock.sleep)
    api.objects.clear()
    assert _lease.check_not_held(api, "default", _lease.DEFAULT_NAME, "b1/run1", clock=clock, sleep=clock.sleep) is None


def test_the_renewer_renews_until_stopped_and_stops_when_the_lease_is_lost():
    api, clock = FakeApi(), Clock()
    held = lease(api, clock)
    held.acquire(0)
    renewer = _lease.Renewer(held, every=0.01).start()
    time.sleep(0.1)
    renewer.stop()
    renewals = [c for c in api.calls if c[0] == "PUT"]
    assert len(renewals) >= 2 and renewer.lost is None
    api.objects.clear()
    renewer = _lease.Renewer(held, every=0.01).start()
    time.sleep(0.1)
    renewer.stop()
    assert "no longer held" in renewer.lost
