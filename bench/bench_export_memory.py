"""Benchmark: peak memory of kubehooks.backup.resource_export as the number of objects grows.

Baseline, measured in the same run: the same module exporting a namespace of --small ConfigMaps;
then a namespace of --large ConfigMaps (10x by default).  Memory is the module process's peak RSS
(what `/usr/bin/time -f %M` reports, from getrusage of the child).  Target: large/small close to 1.0
(the archive is streamed: objects are never all in memory at once).

Usage (the local cluster must be up: `make cluster-up`):
    .venv/bin/python bench/bench_export_memory.py [--small 500] [--large 5000]
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

from _common import ROOT, core_api, kubeconfig, module_env  # noqa: E402

PAYLOAD = "x" * 2048  # 2 KiB per ConfigMap: 5000 of them are ~10 MiB of JSON


def fill(core, namespace, count):
    core.create_namespace({"metadata": {"name": namespace}})

    def one(i):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm-%d" % i}, "data": {"blob": PAYLOAD}})
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))


def export_peak_rss(config_path, namespace, workdir):
    """Run resource_export in a child process; return (peak RSS in KiB, items backed up, seconds)."""
    args = {"ANSIBLE_MODULE_ARGS": {"kubeconfig": config_path, "name": namespace, "backup_dir": workdir,
                                    "included_namespaces": [namespace], "included_resources": ["configmaps"]}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(args, handle)
    # A wrapper child per measurement, so that RUSAGE_CHILDREN's maximum is this export's alone.
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stderr.write(p.stderr); print(p.stdout); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, sys.executable,
                           os.path.join(ROOT, "plugins", "modules", "resource_export.py"), handle.name],
                          capture_output=True, text=True, check=False, env=module_env())
    elapsed = time.monotonic() - start
    os.unlink(handle.name)
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[0])
    if result.get("failed"):
        raise SystemExit("resource_export failed: %s" % result.get("msg"))
    return int(lines[-1]), result["items_backed_up"], elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    opts = parser.parse_args()
    config_path = kubeconfig()
    core = core_api()
    stamp = os.getpid()
    workdir = tempfile.mkdtemp(prefix="kubehooks-bench-export-")
    namespaces = []
    try:
        rows = []
        for count in (opts.small, opts.large):
            namespace = "bench-export-%d-%d" % (count, stamp)
            namespaces.append(namespace)
            fill(core, namespace, count)
            rss, items, seconds = export_peak_rss(config_path, namespace, os.path.join(workdir, namespace))
            rows.append((count, rss, items, seconds))
        for count, rss, items, seconds in rows:
            print("%6d ConfigMaps (2 KiB each): %d items exported in %.1f s, peak RSS %.1f MiB"
                  % (count, items, seconds, rss / 1024.0))
        print("ratio peak RSS large/small: %.2f  (baseline: the %d-object export of this run; target ~1.0)"
              % (rows[1][1] / float(rows[0][1]), opts.small))
    finally:
        for namespace in namespaces:
            core.delete_namespace(namespace)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
