"""Tear-down, also after a crash: every step tolerates parts that are already gone.

Order: thaw the PV and CSI volume mounts (a frozen fs would block processes and unmounts),
containers (through our containerd, if it runs), recorded processes (the CSI ones before the
control plane), leftover container processes, unmount everything under the cluster dir (deepest
first), the netns, our loop devices (PV pool and CSI volumes), our files at fixed host paths.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

from . import netns, processes, storage
from .ui import say

# Stop order: consumers first, etcd and containerd last.
STOP_ORDER = ["kwok", "kubelet", "csi-provisioner", "csi-snapshotter", "snapshot-controller",
              "kubehooks-csi-driver", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd",
              "containerd"]


def remove_containers(cfg):
    """Kill and delete every task and container of our containerd (their shims outlive containerd)."""
    if not processes.alive(cfg, "containerd"):
        return

    def ctr(*args):
        try:
            return subprocess.run(["ctr", "-a", str(cfg.containerd_socket), "-n", "k8s.io", *args],
                                  capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 1, "", "timeout")

    containers = ctr("containers", "ls", "-q").stdout.split()
    for cid in containers:
        ctr("tasks", "kill", "--signal", "SIGKILL", cid)
    for cid in containers:
        deadline = time.monotonic() + 10
        while ctr("tasks", "delete", "--force", cid).returncode != 0 and time.monotonic() < deadline:
            if cid not in ctr("tasks", "ls", "-q").stdout.split():
                break
            time.sleep(0.2)
        ctr("containers", "delete", cid)


def _pids_in(cgroup_dir):
    pids = set()
    for procs in Path(cgroup_dir).rglob("cgroup.procs"):
        try:
            pids.update(int(p) for p in procs.read_text().split())
        except OSError:
            pass
    return pids


def _our_shims(cfg):
    """containerd-shim-runc-v2 processes serving OUR containerd (its socket path is in their argv)."""
    found = []
    sock = str(cfg.containerd_socket).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and sock in argv:
            found.append(int(entry))
    return found


def container_pids(cfg):
    """Leftover processes of this cluster's containers: the shims of OUR containerd (its socket path is
    in their argv) and the processes in the kubelet's pod cgroups (kubepods: our kubelet's; one cluster
    per machine)."""
    pids = set(_our_shims(cfg))
    for hierarchy in ("pids", "unified"):
        pids |= _pids_in(f"/sys/fs/cgroup/{hierarchy}/kubepods")
    return pids


def kill_leftover_containers(cfg):
    """After a crash, container processes outlive their killed shims, and shims outlive containerd."""
    for _ in range(5):
        pids = container_pids(cfg)
        if not pids:
            return
        for pid in pids:
            _kill(pid)
        time.sleep(0.2)


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def remove_pod_cgroups():
    """The kubelet's empty pod cgroups (kubepods in each hierarchy), deepest first; busy ones stay."""
    for top in Path("/sys/fs/cgroup").glob("*/kubepods"):
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
            try:
                d.rmdir()
            except OSError:
                pass


def unmount_all(cfg):
    """Unmount everything under the cluster dir, deepest first (PV mounts thawed before)."""
    for _ in range(3):
        mounts = storage.mounts_under(cfg.cluster_dir)
        if not mounts:
            return []
        for mnt in mounts:
            if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
                subprocess.run(["umount", "--lazy", mnt], capture_output=True)
    return storage.mounts_under(cfg.cluster_dir)


def remove_host_files(cfg):
    """Files the kubelet and CNI write at fixed host paths: only those that are provably ours.

    /var/log/containers/*.log symlinks into our pod log dir; libcni's cached results of network
    'kubehooks' in /var/lib/cni/results and the loopback results of the same sandboxes."""
    logs = Path("/var/log/containers")
    if logs.is_dir():
        for link in logs.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(cfg.cluster_dir) + "/"):
                link.unlink()
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        for f in results.glob("kubehooks-*-eth0"):
            sandbox = f.name[len("kubehooks-"):-len("-eth0")]
            (results / f"cni-loopback-{sandbox}-lo").unlink(missing_ok=True)
            f.unlink(missing_ok=True)
    for d in (logs, results, results.parent):  # empty directories only
        try:
            d.rmdir()
        except OSError:
            pass
    # The kubelet's device-plugin socket has a fixed path; remove it and the dirs only if nothing else
    # is there.
    plugins = Path("/var/lib/kubelet/device-plugins")
    if plugins.is_dir() and [p.name for p in plugins.iterdir()] == ["kubelet.sock"]:
        (plugins / "kubelet.sock").unlink()
        for d in (plugins, plugins.parent):
            try:
                d.rmdir()
            except OSError:
                break


def down(cfg):
    """Stop everything of the cluster; keep caches, certs and logs."""
    storage.unfreeze_all(cfg)
    for name in ("kwok", "kubelet"):  # first, or the kubelet would restart what is removed next
        processes.stop(cfg, name)
    remove_containers(cfg)
    for name in STOP_ORDER + [n for n in processes.recorded(cfg) if n not in STOP_ORDER]:
        processes.stop(cfg, name)
    kill_leftover_containers(cfg)
    remove_pod_cgroups()
    left = unmount_all(cfg)
    netns.delete()
    storage.detach_loops(cfg)
    remove_host_files(cfg)
    if left:
        say(f"    WARNING: still mounted: {' '.join(left)}")
    return left
