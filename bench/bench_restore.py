"""Benchmark: restore of resources, the role kubehooks.backup.restore vs the real Velero v1.18.3, same backup.

One backup made by our role (Velero reads it: the backup directory is copied into Velero's bucket under
backups/<name>/ and Velero's backup sync picks it up), restored in alternating rounds into a fresh namespace
(``namespace_mappings`` source -> target) by:
- ours: ``ansible-playbook`` running the role kubehooks.backup.restore (start-up included), when this checkout
  has it; otherwise reported as not measurable yet;
- Velero: ``velero restore create NAME --from-backup B --namespace-mappings a:b --wait``.
Scenarios: the walkthrough namespace (nginx-example, under its lock) and a namespace of --objects ConfigMaps
(2,000 by default).  The restored namespace is deleted (and waited for) after every round.  Target: ours /
Velero <= 1.0.  Volume data restore (against ``kubectl exec ... tar x`` of the same archive) is measured by
``bench_restore_volumes.py``.

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/bench_restore.py [--objects 2000] [--rounds 3] [--no-velero] [--no-walkthrough]
    .venv/bin/python bench/bench_restore.py --smoke    # CI: 20 objects, 1 round, no Velero, no walkthrough
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from _common import ROOT, core_api, kubeconfig, load_line, median, ratio_line, spread  # noqa: E402
import _peer  # noqa: E402
import _walkthrough  # noqa: E402
from bench_role import backup_dir, run_role  # noqa: E402

RESTORE_ROLE = os.path.join(ROOT, "roles", "restore", "tasks", "main.yml")
PLAYBOOK = """---
- name: Restore with kubehooks.backup.restore (bench_restore.py)
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Run the role
      ansible.builtin.include_role:
        name: kubehooks.backup.restore
"""
VOLUME_DATA = "volume data restore (against `kubectl exec ... tar x` of the same archive): bench/bench_restore_volumes.py"


def has_restore_role():
    return os.path.isfile(RESTORE_ROLE)


def fill(core, namespace, count):
    core.create_namespace({"metadata": {"name": namespace}})

    def one(i):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm-%d" % i}, "data": {"blob": "x" * 512}})
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))


def run_restore_role(config_path, backup, storage, mappings, workdir):
    playbook = os.path.join(workdir, "restore.yml")
    with open(playbook, "w") as handle:
        handle.write(PLAYBOOK)
    # The backup is found by name in the storage dir the backup role wrote (cluster "bench"); the restore's own
    # record goes beside it, as Velero keeps restores in the same backup storage location.
    extra = {"restore_backup": backup, "restore_storage_dir": storage, "restore_cluster": "bench",
             "restore_namespace_mappings": mappings, "restore_auth": {"kubeconfig": config_path},
             # resources only, as Velero's side (it restores no volume data here: no node agent); the volume data
             # restore is measured on its own against kubectl exec ... tar x
             "restore_volume_data": False}
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1",
               PATH=bindir + os.pathsep + os.environ["PATH"],
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "bench", "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="task_timing")
    start = time.monotonic()
    proc = subprocess.run([os.path.join(bindir, "ansible-playbook"), playbook, "-e", json.dumps(extra)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("the restore role failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
    return elapsed, [line for line in proc.stdout.splitlines() if line.startswith("TIMING")]


def restored_configmaps(core, namespace):
    items = json.loads(core.list_namespaced_config_map(namespace, _preload_content=False).data)["items"]
    return sum(1 for item in items if item["metadata"]["name"].startswith("cm-"))


def scenario(label, source, config_path, storage, rounds, velero, results, timings, core=None, expect=None):
    """Back ``source`` up with our role, then restore it alternately with each side into fresh namespaces."""
    name = "bench-restore-%s-%d" % (label, os.getpid())
    run_role(config_path, source, storage, name=name)
    bdir = backup_dir(storage, name)
    sides = []
    if has_restore_role():
        sides.append("role")
    if velero is not None:
        velero.use(1)
        velero.upload_backup(name, bdir)
        sides.append("velero")
    for side in sides:
        results.setdefault((label, side), [])
    for rnd in range(rounds):
        for side in (sides if rnd % 2 == 0 else list(reversed(sides))):
            target = "kh-bench-restored-%s-%s-%d" % (label, side, os.getpid())
            try:
                if side == "role":
                    elapsed, timing = run_restore_role(config_path, name, storage, {source: target}, storage)
                    timings.setdefault(label, []).append((elapsed, timing))
                    phase = "ok"
                else:
                    elapsed, status = velero.restore("%s-%d" % (name, rnd), name, {source: target})
                    phase = "%s, %s items restored" % (status.get("phase"),
                                                       status.get("progress", {}).get("itemsRestored"))
                    if status.get("phase") not in ("Completed", "PartiallyFailed"):
                        raise SystemExit("Velero's restore ended %s: %s" % (status.get("phase"), status))
                if expect is not None and restored_configmaps(core, target) != expect:
                    raise SystemExit("%s restored %d of the %d ConfigMaps" % (side, restored_configmaps(core, target), expect))
                results[(label, side)].append(elapsed)
                print("  %s, round %d, %-6s %.2f s (%s)" % (label, rnd + 1, side, elapsed, phase), flush=True)
            finally:
                _walkthrough.delete_namespace(target, timeout=600)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-velero", action="store_true")
    parser.add_argument("--no-walkthrough", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="CI smoke: 20 objects, 1 round, no Velero, no walkthrough")
    opts = parser.parse_args()
    if opts.smoke:
        opts.objects, opts.rounds, opts.no_velero, opts.no_walkthrough = 20, 1, True, True
    why_not = "--no-velero" if opts.no_velero else _peer.missing()
    print("== bench_restore: restore of resources, the role vs velero restore create --wait; %s" % load_line(), flush=True)
    if why_not and not opts.no_velero:
        print(why_not)
    if not has_restore_role():
        print("ours: not measurable yet (this checkout has no role kubehooks.backup.restore)")
    config_path = kubeconfig()
    core = core_api()
    storage = tempfile.mkdtemp(prefix="kubehooks-bench-restore-")
    source = "kh-bench-restore-src-%d" % os.getpid()
    results, timings = {}, {}
    velero = _peer.Velero() if not why_not else None
    try:
        fill(core, source, opts.objects)
        scenario("%d-configmaps" % opts.objects, source, config_path, storage, opts.rounds, velero, results,
                 timings, core=core, expect=opts.objects)
        if not opts.no_walkthrough:
            with _walkthrough.walkthrough():
                scenario("walkthrough", _walkthrough.NAMESPACE, config_path, storage, opts.rounds, velero, results,
                         timings)
    finally:
        if velero:
            velero.__exit__(None, None, None)
        core.delete_namespace(source)
        shutil.rmtree(storage, ignore_errors=True)
    print("== results (%s at the end), %d alternating rounds" % (load_line(), opts.rounds))
    for label in sorted({key[0] for key in results}):
        print("%s:" % label)
        for side in ("role", "velero"):
            if (label, side) in results:
                print("  %-6s %s" % (side, spread(results[(label, side)])))
        if (label, "role") in results and (label, "velero") in results:
            print("  " + ratio_line("ratio role/velero", results[(label, "role")], results[(label, "velero")], 1.0))
        if timings.get(label):
            mid = median([elapsed for elapsed, _timing in timings[label]])
            print("  the role's tasks in its median round (task_timing callback; the rest is ansible-playbook's start-up):")
            for line in min(timings[label], key=lambda pair: abs(pair[0] - mid))[1]:
                print("    " + line)
    print(VOLUME_DATA)


if __name__ == "__main__":
    main()
