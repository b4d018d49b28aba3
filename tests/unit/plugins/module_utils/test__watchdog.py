# -*- coding: utf-8 -*-
"""Unit tests for the watchdog: /proc parsing, the decision, and the real fork/setsid/act cycle.

The fork tests run in a separate Python process (the watchdog must be forked before any thread;
pytest's own process is not ours to fork).  Its exec is a FAKE that appends to a file: what is
under test is the process handling - detached session, controller death seen, claims honoured,
the record written - not the exec (tests/integration/test_critical_section.py does it for real).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys
import textwrap
import time

from ansible_collections.kubehooks.backup.plugins.module_utils import _watchdog
from ansible_collections.kubehooks.backup.plugins.module_utils._critical import Options, ThawState


def fake_proc(tmp_path, pid, ppid, start, state="S", comm="python3", argv=("python3",)):
    d = tmp_path / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    rest = [state, str(ppid)] + ["0"] * 17 + [str(start)] + ["0"] * 10
    (d / "stat").write_text("%d (%s) %s\n" % (pid, comm, " ".join(rest)))
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def test_proc_stat_reads_start_time_and_state_even_with_odd_command_names(tmp_path):
    fake_proc(tmp_path, 42, 1, 123456, comm="a) b (c", state="R")
    assert _watchdog.proc_stat(42, str(tmp_path)) == (123456, "R")
    assert _watchdog.proc_stat(43, str(tmp_path)) is None
    assert _watchdog.alive(42, 123456, str(tmp_path))
    assert not _watchdog.alive(42, 999, str(tmp_path))  # the pid was reused
    fake_proc(tmp_path, 44, 1, 5, state="Z")
    assert not _watchdog.alive(44, 5, str(tmp_path))  # a zombie is dead


def test_real_proc_stat_of_this_process():
    start, state = _watchdog.proc_stat(os.getpid())
    assert start > 0 and state in "RS"
    assert _watchdog.alive(os.getpid(), start)


def test_the_controller_is_the_outermost_ansible_playbook_ancestor(tmp_path):
    fake_proc(tmp_path, 10, 1, 1, argv=("/usr/bin/python3", "/venv/bin/ansible-playbook", "site.yml"))
    fake_proc(tmp_path, 20, 10, 2, argv=("/usr/bin/python3", "/venv/bin/ansible-playbook", "site.yml"))  # worker
    fake_proc(tmp_path, 30, 20, 3, argv=("/bin/sh", "-c", "python3 AnsiballZ_backup_capture.py"))
    fake_proc(tmp_path, 40, 30, 4, argv=("python3", "AnsiballZ_backup_capture.py"))
    assert _watchdog.find_controller(40, str(tmp_path)) == 10
    fake_proc(tmp_path, 50, 1, 5)
    fake_proc(tmp_path, 60, 50, 6)
    assert _watchdog.find_controller(60, str(tmp_path)) == 50  # no ansible: the parent


def test_decide(tmp_path):
    marks = ThawState(str(tmp_path / "s.jsonl")).create()
    pods = [dict(namespace="ns", name="a", pre=[], post=[dict(command=["x"], index=0)], errors=[])]
    dog = _watchdog.Watchdog(pods, None, marks, Options(), str(tmp_path / "w.json"), os.getpid(),
                             deadline=time.time() + 60)
    assert dog.decide() is None
    assert dog.decide(now=time.time() + 61) == "deadline"
    dog.controller_start -= 1  # as if the pid now belonged to another process
    assert dog.decide() == "controller died"
    marks.mark("thawed", "ns/a", "controller")
    assert dog.decide() == "stand down"


SCRIPT = textwrap.dedent(r"""
    import json, os, sys, time
    sys.path.insert(0, os.environ["ANSIBLE_COLLECTIONS_PATH"])
    from ansible_collections.kubehooks.backup.plugins.module_utils import _critical, _watchdog
    tmp, mode = sys.argv[1], sys.argv[2]
    calls = os.path.join(tmp, "calls.jsonl")

    def fake_exec(api_client, namespace, pod, container, argv, timeout, output_cap=None):
        with open(calls, "a") as handle:
            handle.write(json.dumps({"pod": pod, "argv": argv, "pid": os.getpid(), "sid": os.getsid(0)}) + "\n")
        return dict(status="succeeded", exit_code=0)

    hook = dict(source="annotation", name="<from-annotation>", container="c", command=["thaw"], on_error="Fail",
                timeout=5, index=0)
    pods = [dict(namespace="ns", name=n, phase="Running", pre=[], post=[dict(hook)], errors=[]) for n in "ab"]
    marks = _critical.ThawState(os.path.join(tmp, "state.jsonl")).create()
    marks.claim(["ns/a"], "controller")
    marks.mark("thawed", "ns/a", "controller")   # a was thawed by the run: never again
    marks.claim(["ns/b"], "controller")           # b was being thawed when the run died
    if mode == "woken":
        _watchdog.POLL_SECONDS = 60
    dog = _watchdog.Watchdog(pods, lambda: object(), marks, _critical.Options(thaw_retry_seconds=1),
                             os.path.join(tmp, "watchdog.json"), os.getpid(),
                             deadline=time.time() + (0.5 if mode == "deadline" else 60),
                             log_path=os.path.join(tmp, "hooks.jsonl"), backup="b1", exec_fn=fake_exec)
    print(dog.start(), os.getsid(0), flush=True)
    if mode == "done":
        marks.mark("thawed", "ns/b", "controller")
        marks.done("controller")
        time.sleep(1)
    elif mode == "woken":  # the watchdog polls every 60 s here: only the stand-down signal can end its wait
        marks.mark("thawed", "ns/b", "controller")
        marks.done("controller")
        assert _watchdog.tell_stand_down(dog.base_record())
        record = _watchdog.wait_for_record(os.path.join(tmp, "watchdog.json"), 20)
        assert record and record["acted"] is False, record
    elif mode == "deadline":
        marks.mark("released", "ns/b", "controller")  # gave up on b; alive past the deadline
        time.sleep(2.5)
    os._exit(0)   # "died" (for done: exits after the run thawed normally)
""")


def run_script(tmp_path, mode):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), mode], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    pid, sid = (int(x) for x in proc.stdout.split())
    record = _watchdog.wait_for_record(str(tmp_path / "watchdog.json"), 10)
    return pid, sid, record


def calls(tmp_path):
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_stand_down_signal_wakes_the_watchdog_between_two_polls(tmp_path):
    pid, sid, record = run_script(tmp_path, "woken")
    assert record["pid"] == pid and record["acted"] is False and record["reason"] == "the run thawed its pods"
    assert calls(tmp_path) == []


def test_the_watchdog_thaws_what_a_dead_controller_had_not(tmp_path):
    pid, sid, record = run_script(tmp_path, "died")
    assert record["pid"] == pid and record["acted"] is True and record["reason"] == "controller died"
    assert record["thawed"] == ["ns/b"] and record["not_thawed"] == []
    assert [(c["pod"], c["pid"]) for c in calls(tmp_path)] == [("b", pid)]
    # A session of its own (setsid in the intermediate child, which then exits: the watchdog is not
    # a session leader, so it can never acquire a controlling terminal).
    assert calls(tmp_path)[0]["sid"] not in (sid, os.getsid(0))
    assert oct((tmp_path / "watchdog.json").stat().st_mode & 0o777) == "0o600"
    logged = [json.loads(line) for line in (tmp_path / "hooks.jsonl").read_text().splitlines()]
    assert [(e["pod"], e["thawedBy"], e["backup"]) for e in logged] == [("b", "watchdog", "velero/b1")]
    assert ThawState(str(tmp_path / "state.jsonl")).read()["thawed"] == {"ns/a": "controller", "ns/b": "watchdog"}


def test_the_watchdog_stands_down_when_the_run_thawed(tmp_path):
    pid, record = run_script(tmp_path, "done")[0::2]
    assert record["pid"] == pid and record["acted"] is False
    assert calls(tmp_path) == []


def test_the_watchdog_acts_at_the_deadline_while_the_controller_lives(tmp_path):
    record = run_script(tmp_path, "deadline")[2]
    assert record["acted"] is True and record["reason"] == "deadline"
    assert record["thawed"] == ["ns/b"] and [c["pod"] for c in calls(tmp_path)] == ["b"]


def test_a_run_is_gone_only_when_both_pids_are_dead_on_this_machine_and_boot():
    """The thaw playbook acts despite the run's Lease only when the run is certainly gone (issue 11 item 4)."""
    me = os.getpid()
    start = _watchdog.proc_stat(me)[0]
    boot = _watchdog.boot_id()
    assert boot
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_start = 1
    assert _watchdog.run_is_gone(dict(boot_id=boot, pid=dead.pid, pid_start=dead_start, controller_pid=dead.pid,
                                      controller_start=dead_start))
    assert not _watchdog.run_is_gone(dict(boot_id=boot, pid=me, pid_start=start, controller_pid=dead.pid,
                                          controller_start=dead_start))
    assert not _watchdog.run_is_gone(dict(boot_id=boot, pid=dead.pid, pid_start=dead_start, controller_pid=me,
                                          controller_start=start))
    assert not _watchdog.run_is_gone(dict(boot_id="another-machine", pid=dead.pid, pid_start=dead_start))
    assert not _watchdog.run_is_gone({})
