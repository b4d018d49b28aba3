"""Where the role's time goes: the fixed cost of each module run, and a Python profile of one module.

1. Start-up floors (``--startup``), medians of --rounds, same run:
   - ``ansible-playbook`` with one debug task (the playbook's own start-up);
   - the cost of one module task: a playbook of --tasks ``ansible.builtin.ping`` tasks (Ansible's floor for any
     module: AnsiballZ, a new Python process), and of --tasks ``kubehooks.backup.pod_hooks_info`` tasks on an
     empty namespace (ours: the same, plus our imports, the kubeconfig and one LIST), each minus the first;
   - the imports alone in a fresh interpreter: ``ansible.module_utils.basic``, ``kubernetes``, and every
     kubehooks module_util, minus ``python -c pass``.
2. A cProfile run of one module (``--profile pod_hooks|pod_hooks_info|resource_export|backup_capture|backup_create``) on --pods kwok hook
   pods, run as Ansible runs it (a child Python process with the module's arguments), every thread profiled
   (the module's worker threads included; cumulative times then add up across threads), top functions by
   cumulative and by own time; the .prof file is kept for snakeviz/pstats (``--out``).

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/profile_role.py --startup [--tasks 10] [--rounds 3]
    .venv/bin/python bench/profile_role.py --profile pod_hooks --pods 200 [--out /tmp/pod_hooks.prof]
"""
import argparse
import glob
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time

from _common import ROOT, core_api, hook_pods, kubeconfig, load_line, median, module_env, spread  # noqa: E402


def playbook_seconds(tasks, workdir):
    path = os.path.join(workdir, "p.yml")
    with open(path, "w") as handle:
        json.dump([{"name": "profile", "hosts": "localhost", "connection": "local", "gather_facts": False,
                    "tasks": tasks}], handle)
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               PATH=bindir + os.pathsep + os.environ["PATH"])
    start = time.monotonic()
    proc = subprocess.run([os.path.join(bindir, "ansible-playbook"), path], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit("playbook failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
    return time.monotonic() - start


def import_seconds(statement):
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", statement], check=True, env=module_env())
    return time.monotonic() - start


def startup(opts):
    core = core_api()
    namespace = "kh-profile-empty-%d" % os.getpid()
    core.create_namespace({"metadata": {"name": namespace}})
    ours_utils = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "module_utils", "_*.py")))
    utils = "; ".join("import ansible_collections.kubehooks.backup.plugins.module_utils.%s" % m for m in ours_utils)
    info = {"kubehooks.backup.pod_hooks_info": {"included_namespaces": [namespace], "kubeconfig": kubeconfig()}}
    rows = {k: [] for k in ("playbook", "ping", "ours", "py", "basic", "kubernetes", "utils")}
    workdir = tempfile.mkdtemp(prefix="kh-profile-")
    try:
        for _ in range(opts.rounds):
            rows["playbook"].append(playbook_seconds([{"ansible.builtin.debug": {"msg": "x"}}], workdir))
            rows["ping"].append(playbook_seconds([{"ansible.builtin.ping": {}}] * opts.tasks, workdir))
            rows["ours"].append(playbook_seconds([info] * opts.tasks, workdir))
            rows["py"].append(import_seconds("pass"))
            rows["basic"].append(import_seconds("import ansible.module_utils.basic"))
            rows["kubernetes"].append(import_seconds("import kubernetes"))
            rows["utils"].append(import_seconds(utils))
    finally:
        core.delete_namespace(namespace)
        subprocess.run(["rm", "-rf", workdir], check=False)
    base, py = median(rows["playbook"]), median(rows["py"])
    print("== start-up floors, %d rounds (%s)" % (opts.rounds, load_line()))
    print("  ansible-playbook, one debug task:                %s" % spread(rows["playbook"]))
    per = [(t - base) / opts.tasks for t in rows["ping"]]
    print("  one ansible.builtin.ping task (any module):      %s" % spread(per))
    per_ours = [(t - base) / opts.tasks for t in rows["ours"]]
    print("  one kubehooks.backup.pod_hooks_info task:        %s" % spread(per_ours))
    print("  imports in a fresh interpreter, minus `python -c pass` (%.2f s):" % py)
    for key, label in (("basic", "ansible.module_utils.basic"), ("kubernetes", "kubernetes"),
                       ("utils", "all kubehooks module_utils (with basic)")):
        print("    %-40s %s" % (label, spread([t - py for t in rows[key]])))


# cProfile sees one thread; the modules run hooks and LISTs in worker threads.  This wrapper gives every
# thread a profiler of its own (threading.setprofile runs first in each new thread) and merges them.
PROFILED_RUN = r"""
import atexit, cProfile, os, pstats, runpy, sys, threading, time
out, module = sys.argv[1], sys.argv[2]
sys.argv = sys.argv[2:]
# KH_PROFILE_CPU=1: each thread's own CPU time (time.thread_time), not the wall clock (waits vanish).
timer = (time.thread_time,) if os.environ.get("KH_PROFILE_CPU") else ()
profiles = []

def per_thread(*_):
    sys.setprofile(None)
    prof = cProfile.Profile(*timer)
    profiles.append(prof)
    prof.enable()

def dump():
    main.disable()
    stats = pstats.Stats(main)
    for prof in profiles:
        prof.disable()
        stats.add(prof)
    stats.dump_stats(out)

threading.setprofile(per_thread)
main = cProfile.Profile(*timer)
atexit.register(dump)
main.enable()
runpy.run_path(module, run_name="__main__")
"""


def discover(args, workdir):
    """The plan of pod_hooks_info (what the role gives backup_capture)."""
    path = os.path.join(workdir, "info.json")
    with open(path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "plugins", "modules", "pod_hooks_info.py"), path],
                          capture_output=True, text=True, env=module_env(), check=True)
    return json.loads(proc.stdout)["pods"]


def profile(opts):
    core = core_api()
    namespace = "kh-profile-%d" % os.getpid()
    out = opts.out or os.path.join(tempfile.gettempdir(), "kubehooks-%s.prof" % opts.profile)
    workdir = tempfile.mkdtemp(prefix="kh-profile-")
    try:
        hook_pods(core, namespace, opts.pods)
        args = {"kubeconfig": kubeconfig(), "included_namespaces": [namespace]}
        if opts.profile == "backup_capture":
            args = {"kubeconfig": kubeconfig(), "plan": discover(args, workdir), "name": "profile",
                    "backup_dir": os.path.join(workdir, "b")}
        elif opts.profile == "pod_hooks":
            args.update(phase="pre", parallelism=8)
        elif opts.profile == "backup_create":
            args.update(name="profile", storage_dir=os.path.join(workdir, "s"))
        elif opts.profile == "resource_export":
            args.update(name="profile", backup_dir=os.path.join(workdir, "b"))
        path = os.path.join(workdir, "args.json")
        with open(path, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", PROFILED_RUN, out,
                               os.path.join(ROOT, "plugins", "modules", opts.profile + ".py"), path],
                              capture_output=True, text=True, check=False,
                              env=dict(module_env(), KH_PROFILE_CPU="1" if opts.cpu else ""))
        elapsed = time.monotonic() - start
        if '"failed": true' in proc.stdout or proc.returncode != 0:
            raise SystemExit("the module failed:\n" + proc.stdout[-2000:] + proc.stderr[-2000:])
        for step in json.loads(proc.stdout).get("step_seconds") or []:  # backup_create: each step's time
            print("   %6.2f s  %s" % (step["seconds"], step["step"]))
    finally:
        core.delete_namespace(namespace)
        subprocess.run(["rm", "-rf", workdir], check=False)
    print("== cProfile (%s) of %s on %d pods: %.2f s under the profiler (%s); profile in %s"
          % ("thread CPU time" if opts.cpu else "wall clock", opts.profile, opts.pods, elapsed, load_line(), out))
    for key in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(out, stream=text).sort_stats(key).print_stats(opts.top)
        lines = text.getvalue().splitlines()
        first = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print("-- top %d by %s" % (opts.top, key))
        print("\n".join(lines[first:first + opts.top + 1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startup", action="store_true")
    parser.add_argument("--profile", choices=["pod_hooks", "pod_hooks_info", "resource_export", "backup_capture",
                                                 "backup_create"])
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--cpu", action="store_true",
                        help="with --profile: time each thread's CPU (time.thread_time), not the wall clock")
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out")
    opts = parser.parse_args()
    if not opts.startup and not opts.profile:
        parser.error("give --startup and/or --profile MODULE")
    if opts.startup:
        startup(opts)
    if opts.profile:
        profile(opts)


if __name__ == "__main__":
    main()
