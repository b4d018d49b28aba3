# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the Lease that keeps two backups' frozen sections apart. Not a public API.

Two backups whose scopes share pods must not thaw each other's pods mid-capture.  ``backup_capture``
takes a ``coordination.k8s.io/v1`` Lease before its first pre hook and holds it until its pods are
thawed; a second run waits for it (``lease_wait_seconds``), then fails naming the holder.  Being an
API object, the rule holds across machines (AWX execution nodes) too.

- where: namespace ``lease_namespace`` (default ``default``), name ``lease_name`` (default
  ``kubehooks-backup-freeze``): one Lease per cluster by default, so any two backups of one cluster
  take turns for their frozen sections (the export runs outside it); give backups of disjoint scopes
  distinct names to let them overlap;
- ``holderIdentity`` is ``<backup name>/<run id>``;
- ``leaseDurationSeconds`` covers the longest time the run's pods can stay frozen without any renewal:
  ``max_freeze_seconds`` (600 s counted when 0) + 2 x ``thaw_retry_seconds`` (the run's retries, then the
  watchdog's after its deadline) + 10 s (the watchdog's margin) + 60 s.  An API server outage therefore
  cannot let the Lease lapse while the run's pods may be frozen: lapsing needs no renewal for that long,
  and by then the run and its watchdog have thawed or given up.  (With ``max_freeze_seconds`` 0 - no
  deadline - a freeze longer than 600 s during which the API server is unreachable for the whole
  duration could outlive it.)
- the watchdog (a process of its own, alive for the whole section, through ``stage: freeze`` and
  ``stage: thaw`` too) renews it every 10 s while it watches and while it thaws, and releases it
  (a DELETE with the Lease's resourceVersion as precondition) when it stands down or has thawed; a
  release refused by an unreachable API server is retried until the Lease would have expired anyway;
- a Lease is free when it has no holder, or when its ``renewTime`` + ``leaseDurationSeconds`` has passed
  (clocks of the machines running backups are assumed to be in sync, as for any Lease).

RBAC: ``get``, ``create``, ``update`` and ``delete`` on ``leases`` (``coordination.k8s.io``) in
``lease_namespace`` (files/rbac/backup.yml).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import calendar
import math
import re
import threading
import time

from ansible_collections.kubehooks.backup.plugins.module_utils._api import ApiRequestError, api_error_message, error_reason
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

DEFAULT_NAMESPACE = "default"
DEFAULT_NAME = "kubehooks-backup-freeze"
DEFAULT_WAIT_SECONDS = 300
MARGIN_SECONDS = 60
WATCHDOG_MARGIN_SECONDS = 10
NO_DEADLINE_SECONDS = 600
RENEW_SECONDS = 10
POLL_SECONDS = 1.0
PERMISSION = "get, create, update and delete on leases (coordination.k8s.io) in namespace %s"


def duration_seconds(max_freeze_seconds, thaw_retry_seconds):
    """``leaseDurationSeconds`` for a run (see the module docstring)."""
    return int(math.ceil((max_freeze_seconds or NO_DEADLINE_SECONDS) + 2 * thaw_retry_seconds
                         + WATCHDOG_MARGIN_SECONDS + MARGIN_SECONDS))


def micro_time(epoch):
    """A MicroTime (RFC 3339, microseconds, UTC) of ``epoch``."""
    whole = int(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%06dZ" % int(round((epoch - whole) * 1e6) % 1000000)


_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_time(text):
    """Epoch seconds of an RFC 3339 time, or None."""
    match = _TIME.match(str(text or ""))
    if not match:
        return None
    year, month, day, hour, minute, second = [int(x) for x in match.groups()[:6]]
    value = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) + float(match.group(7) or 0)
    zone = match.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        value -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return value


def expires_at(spec):
    """When the Lease of ``spec`` lapses (epoch), or None when it has no holder."""
    spec = spec or {}
    if not spec.get("holderIdentity"):
        return None
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime")) or 0
    return renewed + float(spec.get("leaseDurationSeconds") or 0)


def held(spec, now):
    """Whether ``spec`` is held (a holder, not lapsed) at ``now``."""
    end = expires_at(spec)
    return end is not None and end > now


def holder_for(name, run_id):
    return "%s/%s" % (name, run_id)


def lease_path(namespace, name=None):
    path = "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % namespace
    return path + "/" + name if name else path


class LeaseLost(KubehooksError):
    """The Lease is held by someone else now."""


class Lease(object):
    """One run's hold on the Lease ``namespace/name``; ``request`` is ``_api.api_requester(...)``."""

    def __init__(self, request, namespace, name, holder, duration, clock=time.time, sleep=time.sleep):
        self.request = request
        self.namespace = namespace
        self.name = name
        self.holder = holder
        self.duration = int(duration)
        self.clock = clock
        self.sleep = sleep

    def describe(self):
        return dict(namespace=self.namespace, name=self.name, holder=self.holder, duration_seconds=self.duration)

    def _fail(self, err, action):
        return KubehooksError(api_error_message(err.status, "%s Lease %s/%s" % (action, self.namespace, self.name),
                                                error_reason(err), PERMISSION % self.namespace))

    def _get(self):
        try:
            return self.request("GET", lease_path(self.namespace, self.name))
        except ApiRequestError as err:
            if err.status == 404:
                return None
            raise self._fail(err, "read")

    def _spec(self, acquired=None):
        now = micro_time(self.clock())
        return {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration,
                "acquireTime": acquired or now, "renewTime": now}

    def try_acquire(self):
        """``(True, spec)`` when this run holds the Lease now, else ``(False, the holder's spec)``."""
        current = self._get()
        try:
            if current is None:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace,
                                     "labels": {"app.kubernetes.io/managed-by": "kubehooks.backup"}},
                        "spec": self._spec()}
                created = self.request("POST", lease_path(self.namespace), body)
                return True, created.get("spec")
            spec = current.get("spec") or {}
            if spec.get("holderIdentity") not in (None, "", self.holder) and held(spec, self.clock()):
                return False, spec
            acquired = spec.get("acquireTime") if spec.get("holderIdentity") == self.holder else None
            current["spec"] = dict(spec, **self._spec(acquired))
            replaced = self.request("PUT", lease_path(self.namespace, self.name), current)
            return True, replaced.get("spec")
        except ApiRequestError as err:
            if err.status == 409:  # another run created or took it first: look again
                return False, (self._get() or {}).get("spec") or {}
            raise self._fail(err, "take")

    def acquire(self, wait_seconds):
        """Take the Lease, waiting up to ``wait_seconds`` while another run holds it; KubehooksError after."""
        until = self.clock() + wait_seconds
        while True:
            ok, spec = self.try_acquire()
            if ok:
                return spec
            if self.clock() + POLL_SECONDS > until:
                end = expires_at(spec)
                raise KubehooksError(
                    "another backup holds the Lease %s/%s (holder %s, renewed %s, lapses %s if not renewed): its pods "
                    "may be frozen right now. Waited %s s (lease_wait_seconds); nothing was frozen. Run this backup "
                    "later, or raise lease_wait_seconds." % (
                        self.namespace, self.name, spec.get("holderIdentity"), spec.get("renewTime"),
                        micro_time(end) if end else "never", wait_seconds))
            self.sleep(POLL_SECONDS)

    def renew(self):
        current = self._get()
        spec = (current or {}).get("spec") or {}
        if current is None or spec.get("holderIdentity") != self.holder:
            raise LeaseLost("the Lease %s/%s is no longer held by %s (holder: %s)" % (
                self.namespace, self.name, self.holder, spec.get("holderIdentity") if current else "none, deleted"))
        current["spec"] = dict(spec, renewTime=micro_time(self.clock()), leaseDurationSeconds=self.duration)
        try:
            self.request("PUT", lease_path(self.namespace, self.name), current)
        except ApiRequestError as err:
            raise self._fail(err, "renew")

    def release(self):
        """Delete the Lease if this run still holds it; True when it is not held by this run any more."""
        current = self._get()
        if current is None or ((current.get("spec") or {}).get("holderIdentity") != self.holder):
            return True
        version = (current.get("metadata") or {}).get("resourceVersion")
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": version}}
        try:
            self.request("DELETE", lease_path(self.namespace, self.name), body)
        except ApiRequestError as err:
            if err.status in (404, 409):
                return True
            raise self._fail(err, "release")
        return True

    def release_patiently(self, stop_at=None):
        """``release`` retried (API server unreachable) until it worked or the Lease would have lapsed."""
        stop_at = self.clock() + self.duration if stop_at is None else stop_at
        delay = 0.5
        while True:
            try:
                return self.release()
            except KubehooksError:
                if self.clock() + delay > stop_at:
                    return False
                self.sleep(delay)
                delay = min(delay * 2, 5.0)


class Renewer(object):
    """Renews a Lease every ``every`` seconds in a daemon thread until ``stop()`` (or the Lease is lost)."""

    def __init__(self, lease, every=RENEW_SECONDS):
        self.lease = lease
        self.every = every
        self.errors = []
        self.lost = None
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name="kubehooks-lease")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.every):
            try:
                self.lease.renew()
            except LeaseLost as exc:
                self.lost = str(exc)
                return
            except Exception as exc:  # pylint: disable=broad-except  # an outage: the duration covers it
                self.errors.append(str(exc))

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def check_not_held(request, namespace, name, holder, wait_seconds=15, clock=time.time, sleep=time.sleep):
    """Raise when ``holder`` (the run of the backup to thaw) still holds the Lease after ``wait_seconds``:
    that run, or its watchdog, is alive and thaws its pods itself (a watchdog that just stood down may
    still be releasing it: hence the short wait)."""
    until = clock() + wait_seconds
    while True:
        try:
            current = request("GET", lease_path(namespace, name))
        except ApiRequestError as err:
            if err.status == 404:
                return None
            raise KubehooksError(api_error_message(err.status, "read Lease %s/%s" % (namespace, name),
                                                   error_reason(err), PERMISSION % namespace))
        spec = current.get("spec") or {}
        if spec.get("holderIdentity") != holder or not held(spec, clock()):
            return spec
        if clock() + POLL_SECONDS > until:
            break
        sleep(POLL_SECONDS)
    raise KubehooksError(
        "the run of this backup still holds the Lease %s/%s (holder %s, renewed %s): it (or its watchdog) is still "
        "running and will thaw its pods itself. Nothing was run. Wait for it, or force the thaw (thaw_force=true) "
        "if you know it is gone." % (namespace, name, holder, spec.get("renewTime")))
