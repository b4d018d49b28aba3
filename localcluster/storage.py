"""A pool of loop-backed ext4 local PersistentVolumes on the real node (storageClassName "").

SAFETY: only files under <cluster dir>/pv (and the CSI test driver's files under <cluster dir>/csi)
are ever formatted, looped, mounted or frozen; never a device of the machine (/dev/vda).
"""
import subprocess

from .ui import Failure, run

LABEL = "kubehooks.local/pv-pool"


def pv_name(i):
    return f"kubehooks-pv-{i}"


def pv_file(cfg, i):
    return cfg.pv_dir / f"{pv_name(i)}.ext4"


def pv_mount(cfg, i):
    return cfg.pv_dir / "mnt" / pv_name(i)


def mounts_under(path):
    """Mount points at or below path (from /proc/self/mountinfo), deepest first."""
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].encode().decode("unicode_escape")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                found.append(mnt)
    return sorted(set(found), key=lambda m: (-m.count("/"), m))


def _is_mounted(path):
    return str(path) in mounts_under(path)


def ensure_mounts(cfg):
    """Create, format and loop-mount each PV file (only our own files)."""
    for i in range(cfg.pv_count):
        img, mnt = pv_file(cfg, i), pv_mount(cfg, i)
        if _is_mounted(mnt):
            continue
        img.parent.mkdir(parents=True, exist_ok=True)
        mnt.mkdir(parents=True, exist_ok=True)
        if not img.is_file() or img.stat().st_size != cfg.pv_size_mb << 20:
            img.unlink(missing_ok=True)
            run(["truncate", "-s", f"{cfg.pv_size_mb}M", img])
        if not img.is_file() or img.is_symlink():
            raise Failure(f"refusing to format {img}: not a regular file of ours")
        run(["mkfs.ext4", "-F", "-q", "-E", "root_owner=0:0", img])
        run(["mount", "-o", "loop", img, mnt])


def pv_object(cfg, i):
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name(i), "labels": {LABEL: "true"}},
        "spec": {
            "capacity": {"storage": f"{cfg.pv_size_mb}Mi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "", "volumeMode": "Filesystem",
            "local": {"path": str(pv_mount(cfg, i))},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [cfg.node_name]}]}]}},
        },
    }


def ensure_pvs(cfg, api):
    for i in range(cfg.pv_count):
        api.create("/api/v1/persistentvolumes", pv_object(cfg, i))
    recycle_released(api)


def recycle_released(api):
    """Make Released pool PVs Available again (Retain policy; no recycler pod exists here)."""
    pvs = api.get(f"/api/v1/persistentvolumes?labelSelector={LABEL}%3Dtrue")["items"]
    freed = 0
    for pv in pvs:
        if pv.get("status", {}).get("phase") == "Released":
            api.patch(f"/api/v1/persistentvolumes/{pv['metadata']['name']}", {"spec": {"claimRef": None}})
            freed += 1
    return freed


def our_loop_mounts(cfg):
    """Mount points whose source is one of our loop devices (PV pool and CSI volumes, wherever the
    kubelet mounted them), deepest first."""
    devices = {dev for dev, _ in our_loop_devices(cfg)}
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if " - " not in line:
                continue
            source = line.split(" - ", 1)[1].split()[1]
            if source in devices:
                found.append(fields[4].encode().decode("unicode_escape"))
    return sorted(set(found), key=lambda m: (-m.count("/"), m))


def unfreeze_all(cfg, timeout=10):
    """Thaw every PV and CSI volume mount; a thawed fs answers EINVAL (exit 1), which is expected and
    ignored."""
    for mnt in sorted(set(mounts_under(cfg.pv_dir)) | set(our_loop_mounts(cfg))):
        try:
            subprocess.run(["fsfreeze", "--unfreeze", mnt], capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            pass


def our_loop_devices(cfg):
    """Loop devices whose backing file is one of our PV files or CSI volume files:
    [(device, backing file)]."""
    out = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                         capture_output=True, text=True).stdout
    prefix = (str(cfg.pv_dir) + "/", str(cfg.csi_dir) + "/")
    found = []
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            dev, back = parts[0], parts[1].strip().removesuffix(" (deleted)")
            if back.startswith(prefix) and dev.startswith("/dev/loop"):
                found.append((dev, back))
    return found


def detach_loops(cfg):
    for dev, _ in our_loop_devices(cfg):
        run(["losetup", "--detach", dev], check=False)
