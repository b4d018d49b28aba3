# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the watchdog that thaws the pods when the run dies. Not a public API.

Started before the first pre hook, it outlives the process that froze the pods:

- it is a double-forked child in a session of its own (``setsid``): ansible-runner, as AWX uses
  it, cancels a job by SIGKILL to the whole process group, and a terminal's SIGINT/SIGHUP goes to
  the foreground group; neither reaches it;
- it watches the *controller*: the module process itself (``stage: all``) or the outermost
  ``ansible-playbook``/``ansible`` ancestor (``stage: freeze``, where the pods stay frozen across
  tasks).  With ``stage: all`` it also watches that ancestor: ansible-core (2.19 here) runs each
  task's worker in a session of its own, so cancelling the job (a signal to the playbook's process
  group) kills ``ansible-playbook`` but not the module; the watchdog then stops the module (SIGKILL,
  so that no pre hook runs after the thaw) and thaws.  A pid is matched with its start time from ``/proc/<pid>/stat``, so a
  reused pid is not mistaken for the controller; a zombie counts as dead;
- every 0.2 s it reads the thaw state (_critical.ThawState: a read never blocks on a frozen
  filesystem).  When the run wrote ``done`` or every pod is thawed, it records ``acted: false``
  and exits.  When the controller died, or the deadline (max_freeze + thaw_retry + a margin)
  passed, it runs the post hooks of the pods not marked thawed - claiming them first, so nothing
  is unfrozen twice; after a death it takes over the dead controller's claims - with the same
  retries as the controller, then writes its record (``acted: true``, the reason, the pods
  thawed and not thawed, the hook results), appends the hooks to the hook log, and exits.  The
  thaw comes first: the watchdog writes nothing before it (the backup directory may be on any
  disk, and its pid is recorded by the parent).

Why fork and not exec a script: the module runs from AnsiballZ's temporary payload (removed when
the module exits), so a script exec'd from it would need its own copy of the collection's code, and
the credentials would have to be passed through a file.  A forked child already holds the imported
code, the parsed plan and the API configuration in memory: no credentials file exists while it
waits.  The fork happens before any thread is started (the module starts its worker threads
afterwards), and the child ends with ``os._exit`` so no exit handler of the module runs twice.
The one thing that does not survive in memory are certificate files the kubernetes client wrote
from an inline kubeconfig (it deletes them at exit): their content is read before the fork and,
only if they are gone when the watchdog must act, written to an owner-only directory that the
watchdog removes when it is done.

What it cannot cover: the machine (or the AWX container-group pod) that runs the playbook being
gone - the watchdog dies with it.  Then the ``thaw`` playbook thaws the pods recorded in the
backup's record (and its thaw state).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import select
import shutil
import signal
import tempfile
import threading
import time

from ansible_collections.kubehooks.backup.plugins.module_utils import _critical, _exec, _hook_results, _lease, _record_steps
from ansible_collections.kubehooks.backup.plugins.module_utils._api import api_requester
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

POLL_SECONDS = 0.2
# Added to max_freeze + thaw_retry before the watchdog acts on a live controller.
DEADLINE_MARGIN_SECONDS = 10
CONTROLLER_NAMES = ("ansible-playbook", "ansible")
# The run tells the watchdog to stand down with this signal when it cannot write ``done`` to the thaw
# state (read-only or full storage).
STAND_DOWN_SIGNAL = signal.SIGUSR1
_STAND_DOWN = []
_CERT_ATTRIBUTES = ("ssl_ca_cert", "cert_file", "key_file")


# ---------------------------------------------------------------------------------------------
# /proc (pure given the files)

def proc_stat(pid, proc="/proc"):
    """``(start_time, state)`` of ``pid`` from ``/proc/<pid>/stat``, or None when it does not exist."""
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as handle:
            raw = handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None
    fields = raw[raw.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    try:
        return int(fields[19]), fields[0]
    except (IndexError, ValueError):
        return None


def parent_pid(pid, proc="/proc"):
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as handle:
            raw = handle.read().decode("utf-8", "replace")
        return int(raw[raw.rfind(")") + 2:].split()[1])
    except (IOError, OSError, IndexError, ValueError):
        return 0


def alive(pid, start_time, proc="/proc"):
    """Whether ``pid`` is still the process that started at ``start_time`` and is not a zombie."""
    stat = proc_stat(pid, proc)
    return stat is not None and stat[0] == start_time and stat[1] not in ("Z", "X")


def boot_id(proc="/proc"):
    """This machine's boot id (``/proc/sys/kernel/random/boot_id``), or None: a pid means something only
    on the same machine and boot."""
    try:
        with open(os.path.join(proc, "sys", "kernel", "random", "boot_id")) as handle:
            return handle.read().strip() or None
    except (IOError, OSError):
        return None


def run_is_gone(record, proc="/proc"):
    """Whether the run of a watchdog ``record`` is certainly gone: recorded on this machine and boot, and
    neither its watchdog nor its controller is alive.  False when it cannot be known (another machine)."""
    record = record or {}
    if not record.get("boot_id") or record.get("boot_id") != boot_id(proc):
        return False
    for pid_key, start_key in (("pid", "pid_start"), ("controller_pid", "controller_start")):
        pid, start = record.get(pid_key), record.get(start_key)
        if pid and (start is None or alive(pid, start, proc)):
            return False
    return True


def find_ansible(pid=None, proc="/proc"):
    """The outermost ``ansible-playbook``/``ansible`` ancestor of ``pid`` (default: this process), or None."""
    pid = os.getpid() if pid is None else pid
    found, current = None, parent_pid(pid, proc)
    while current > 1:
        try:
            with open(os.path.join(proc, str(current), "cmdline"), "rb") as handle:
                argv = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
        except (IOError, OSError):
            break
        if any(os.path.basename(arg) in CONTROLLER_NAMES for arg in argv[:2]):
            found = current
        current = parent_pid(current, proc)
    return found


def find_controller(pid=None, proc="/proc"):
    """The outermost ``ansible-playbook``/``ansible`` ancestor of ``pid``, else its parent: the
    process whose death means nobody will run the thaw stage."""
    pid = os.getpid() if pid is None else pid
    return find_ansible(pid, proc) or parent_pid(pid, proc)


# ---------------------------------------------------------------------------------------------
# The watchdog

class Watchdog(object):
    """Watches ``controller_pid``; thaws ``pods`` (plan entries) if it dies or ``deadline`` passes.

    ``deadline`` is an epoch time or None (no deadline: only the controller's death counts).
    ``start()`` forks it and returns its pid; the parent writes the record's first version.
    """

    def __init__(self, pods, client_factory, marks, options, record_path, controller_pid, deadline=None,
                 log_path=None, backup=None, exec_fn=_exec.exec_hook, playbook_pid=None, lease=None):
        self.pods = [pod for pod in pods if _critical.has_hooks(pod, "post")]
        self.client_factory = client_factory
        self.marks = marks
        self.options = options
        self.record_path = record_path
        self.controller_pid = controller_pid
        self.controller_start = (proc_stat(controller_pid) or (None, None))[0]
        self.playbook_pid = playbook_pid
        self.playbook_start = (proc_stat(playbook_pid) or (None, None))[0] if playbook_pid else None
        self.deadline = deadline
        self.log_path = log_path
        self.backup = backup
        self.exec_fn = exec_fn
        # The Lease the run took (_lease.Lease.describe()): renewed here while watching and thawing,
        # released when done; None when the run took none.
        self.lease = lease
        self._renewer = None
        self.pid = None
        self.started = None
        self._certificates = {}
        self._cert_dir = None

    # -- in the parent ---------------------------------------------------------------------------

    def _keep_certificates(self):
        configuration = getattr(self.client_factory, "configuration", None)
        for attribute in _CERT_ATTRIBUTES:
            path = getattr(configuration, attribute, None)
            if isinstance(path, str) and os.path.isfile(path):
                with open(path, "rb") as handle:
                    self._certificates[attribute] = (path, handle.read())

    def base_record(self):
        return dict(pid=self.pid, pid_start=(proc_stat(self.pid) or (None, None))[0] if self.pid else None,
                    started=self.started, controller_pid=self.controller_pid, controller_start=self.controller_start,
                    boot_id=boot_id(),
                    playbook_pid=self.playbook_pid, deadline=self.deadline, pods=[_critical.pod_key(pod) for pod in self.pods],
                    lease=self.lease, acted=None)

    def start(self):
        """Fork the watchdog (before any thread exists); return its pid once it is detached."""
        if threading.active_count() > 1:
            raise KubehooksError("internal error: the watchdog must be started before any thread")
        if self.controller_start is None:
            raise KubehooksError("cannot watch process %s: it is not running" % self.controller_pid)
        self._keep_certificates()
        self.started = round(time.time(), 3)
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked process (tested through the module)
            code = 1
            try:
                os.close(read_end)
                os.setsid()
                # Before the pid is known to anyone: SIGUSR1's default action would end the watchdog.
                signal.signal(STAND_DOWN_SIGNAL, lambda signum, frame: _STAND_DOWN.append(signum))
                if os.fork():
                    os._exit(0)  # the intermediate child: the watchdog is re-parented
                os.write(write_end, str(os.getpid()).encode("ascii"))
                os.close(write_end)
                self.pid = os.getpid()
                self._detach()
                code = self._watch()
            except BaseException:  # pylint: disable=broad-except  # nothing may escape a forked child
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        data = b""
        while True:
            chunk = os.read(read_end, 64)
            if not chunk:
                break
            data += chunk
        os.close(read_end)
        os.waitpid(child, 0)
        try:
            self.pid = int(data)
        except ValueError:
            raise KubehooksError("the watchdog process could not be started")
        _critical.write_json(self.record_path, self.base_record())
        return self.pid

    # -- in the watchdog -------------------------------------------------------------------------

    def _detach(self):  # pragma: no cover - forked child
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN):
            signal.signal(sig, signal.SIG_IGN)
        os.umask(0o077)
        os.chdir("/")
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)  # the controller reads the module's output until it is closed
        try:
            limit = os.sysconf("SC_OPEN_MAX")
        except (ValueError, OSError):
            limit = 4096
        os.closerange(3, limit)

    def decide(self, now=None):
        """What to do now: None (keep waiting), ``"stand down"``, ``"controller died"``,
        ``"ansible-playbook died"`` or ``"deadline"``."""
        state = self.marks.read()
        keys = [_critical.pod_key(pod) for pod in self.pods]
        if _STAND_DOWN or state["done"] or all(key in state["thawed"] for key in keys):
            return "stand down"
        if not alive(self.controller_pid, self.controller_start):
            return "controller died"
        if self.playbook_start is not None and not alive(self.playbook_pid, self.playbook_start):
            return "ansible-playbook died"
        now = time.time() if now is None else now
        if self.deadline is not None and now >= self.deadline:
            return "deadline"
        return None

    def _hold_lease(self):
        """In the watchdog: renew the run's Lease in a thread (a client of its own)."""
        if not self.lease:
            return None
        lease = _lease.Lease(api_requester(self.client_factory()), self.lease["namespace"], self.lease["name"],
                             self.lease["holder"], self.lease["duration_seconds"])
        self._renewer = _lease.Renewer(lease).start()
        return lease

    def _release_lease(self, lease):
        if lease is None:
            return
        self._renewer.stop()
        if self._renewer.lost is None:
            lease.release_patiently()

    def _watch(self):
        lease = None
        try:
            lease = self._hold_lease()
        except Exception:  # pylint: disable=broad-except  # the Lease's duration covers the run without renewals
            lease = None
        try:
            return self._watch_loop()
        finally:
            self._release_lease(lease)

    def _wakeup_pipe(self):  # pragma: no cover - forked child
        """A pipe Python writes to when a signal arrives (``signal.set_wakeup_fd``): the stand-down signal ends
        the wait between two polls at once instead of at the next poll. None: plain sleeps."""
        try:
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            os.set_blocking(write_end, False)
            signal.set_wakeup_fd(write_end)
            return read_end
        except (OSError, ValueError):
            return None

    def _pause(self, wakeup):  # pragma: no cover - forked child
        if wakeup is None:
            time.sleep(POLL_SECONDS)
            return
        try:
            if select.select([wakeup], [], [], POLL_SECONDS)[0]:
                os.read(wakeup, 512)
        except (OSError, ValueError):
            time.sleep(POLL_SECONDS)

    def _watch_loop(self):
        wakeup = self._wakeup_pipe()
        while True:
            verdict = self.decide()
            if verdict == "stand down":
                try:
                    _critical.write_json(self.record_path, dict(self.base_record(), acted=False,
                                                                reason="the run thawed its pods", ended=time.time()))
                except KubehooksError:
                    pass  # read-only or full storage: the run reports it
                return 0
            if verdict:
                return self.act(verdict)
            self._pause(wakeup)

    def _restore_certificates(self):
        configuration = getattr(self.client_factory, "configuration", None)
        for attribute, (path, content) in self._certificates.items():
            if os.path.exists(path):
                continue
            if self._cert_dir is None:
                self._cert_dir = tempfile.mkdtemp(prefix="kubehooks-watchdog-")  # 0700
            copy = os.path.join(self._cert_dir, attribute)
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, content)
            finally:
                os.close(fd)
            setattr(configuration, attribute, copy)

    def _stop_controller(self):
        """SIGKILL the module process (checked by its start time) and wait until it is gone."""
        if alive(self.controller_pid, self.controller_start):
            try:
                os.kill(self.controller_pid, signal.SIGKILL)
            except OSError:
                pass
        until = time.monotonic() + 5
        while alive(self.controller_pid, self.controller_start) and time.monotonic() < until:
            time.sleep(0.02)

    def act(self, reason):
        """Thaw the pods not thawed yet (after a death: also those the controller had claimed).

        ``ansible-playbook died`` (the job was cancelled) while the module process lives on - recent
        ansible-core (2.19 here) runs a task's worker in a session of its own, so a signal to the
        playbook's process group does not reach the module: the watchdog stops the module first (no pre hook
        may run after the thaw), then thaws as after its death.
        """
        results, thawed, not_thawed, error = [], [], [], None
        try:
            if reason == "ansible-playbook died":
                self._stop_controller()
            self._restore_certificates()
            results, thawed, not_thawed = _critical.thaw_pods(
                self.pods, self.client_factory, self.marks, _critical.WATCHDOG, self.options,
                exec_fn=self.exec_fn, steal=(reason != "deadline"))
        except Exception as exc:  # pylint: disable=broad-except  # recorded below
            error = "%s: %s" % (type(exc).__name__, exc)
        finally:
            if self._cert_dir is not None:
                shutil.rmtree(self._cert_dir, ignore_errors=True)
        record = dict(self.base_record(), acted=True, reason=reason, thawed=sorted(thawed),
                      not_thawed=sorted(not_thawed), hooks=results, ended=time.time())
        if error:
            record["error"] = error
        if self.log_path and results:
            try:
                entries = []
                for result in results:
                    entry = _hook_results.velero_log_entry(result, backup=self.backup)
                    entry["thawedBy"] = "watchdog"
                    entries.append(entry)
                _hook_results.append_jsonl(self.log_path, entries)
            except KubehooksError as exc:
                record["log_error"] = str(exc)  # the record has every result
        if self.backup and reason != "deadline":
            # The run died: complete the backup's record as ``backup_record state=thawed`` does (by: watchdog).
            # On the deadline the run is alive and records the watchdog's action itself.
            outcome = _record_steps.watchdog_thawed(os.path.dirname(self.record_path), self.backup, results,
                                                    self.log_path, reason, not_thawed)
            if outcome is not None:
                record["backup_record"] = outcome.get("error") or outcome.get("phase")
        try:
            _critical.write_json(self.record_path, record)  # last: a reader sees a complete record and log
        except KubehooksError:
            pass  # read-only or full storage: the thaw happened, the hook results are in the backup's record if any
        return 0 if not not_thawed and not error else 1


def tell_stand_down(record):
    """Signal the watchdog of ``record`` (its pid and start time) to stand down; whether it was sent.

    Sent when the run has thawed its pods: when ``done`` could not be written to the thaw state it is the only
    way the watchdog learns it must not run their post hooks a second time; when ``done`` was written it wakes
    the watchdog at once (its record, which the run waits for, then comes within milliseconds, not at its next
    poll)."""
    record = record or {}
    pid, start = record.get("pid"), record.get("pid_start")
    if not pid or start is None or not alive(pid, start):
        return False
    try:
        os.kill(pid, STAND_DOWN_SIGNAL)
    except OSError:
        return False
    return True


def read_record(path):
    """The watchdog record, or None."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def wait_for_record(path, seconds, clock=time.monotonic, sleep=time.sleep):
    """Wait up to ``seconds`` for the watchdog to record what it did (``acted`` not None)."""
    until = clock() + seconds
    while True:
        record = read_record(path)
        if (record and record.get("acted") is not None) or clock() >= until:
            return record
        sleep(0.01)
