"""Every knob of the local cluster: an environment variable with a default.

``KNOBS`` is the single source; ``--help`` prints it.
"""
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

KNOBS = [
    # (environment variable, default, description)
    ("KUBEHOOKS_CACHE_DIR", "${XDG_CACHE_HOME:-~/.cache}/kubehooks",
     "builds, Go module/build caches and images, keyed by version (kept by 'down')"),
    ("KUBEHOOKS_CLUSTER_DIR", "/var/lib/kubehooks-cluster",
     "runtime state: certs, etcd data, pids, logs, kubeconfig, kubelet/containerd roots, PV files"),
    ("KUBEHOOKS_K8S_VERSION", "v1.37.2", "k8s.io/kubernetes version (apiserver, controller-manager, "
     "scheduler, kubelet, kubectl)"),
    ("KUBEHOOKS_ETCD_VERSION", "v3.6.16", "go.etcd.io/etcd/server/v3 version"),
    ("KUBEHOOKS_KWOK_VERSION", "v0.7.0", "sigs.k8s.io/kwok version"),
    ("KUBEHOOKS_CSI", "1", "1: also run the CSI stack (snapshot-controller, csi-snapshotter, csi-provisioner "
     "and the project's test CSI driver); 0: none of it"),
    ("KUBEHOOKS_SNAPSHOTTER_VERSION", "v8.7.0", "github.com/kubernetes-csi/external-snapshotter/v8 version "
     "(snapshot-controller, csi-snapshotter, the snapshot CRDs)"),
    ("KUBEHOOKS_PROVISIONER_VERSION", "v6.4.0", "github.com/kubernetes-csi/external-provisioner/v6 version"),
    ("KUBEHOOKS_GO", "/usr/local/go/bin/go", "the Go toolchain used for builds"),
    ("KUBEHOOKS_DEBIAN_MIRROR", "http://deb.debian.org/debian", "mirror for debootstrap"),
    ("KUBEHOOKS_DEBIAN_SUITE", "bookworm", "Debian suite of the node image"),
    ("KUBEHOOKS_NODE_IMAGE", "localhost/kubehooks/debian-nginx:bookworm",
     "name of the local node image (nginx-light, fsfreeze, coreutils)"),
    ("KUBEHOOKS_PAUSE_IMAGE", "localhost/kubehooks/pause:catatonit",
     "name of the sandbox image (containerd's sandbox_image)"),
    ("KUBEHOOKS_NODE_NAME", "kubehooks-node", "name of the real node"),
    ("KUBEHOOKS_FAKE_NODES", "5", "number of kwok fake nodes"),
    ("KUBEHOOKS_PV_COUNT", "6", "number of loop-backed ext4 local PVs (storageClassName \"\")"),
    ("KUBEHOOKS_PV_SIZE_MB", "64", "size of each PV file in MiB"),
    ("KUBEHOOKS_READY_TIMEOUT", "180", "seconds to wait for each component to become ready"),
    ("KUBEHOOKS_SKIP_APT", "0", "1: never call apt-get (fail if a package is missing)"),
]

NETNS = "kubehooks"            # fixed: one cluster per machine
HOST_IP = "10.250.0.1"         # host end of the veth pair
NODE_IP = "10.250.0.2"         # namespace end: apiserver, kubelet, kwok
VETH_HOST = "kh-host"
VETH_NS = "kh-ns"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"
API_PORT = 6443

APT_PACKAGES = ["containerd", "runc", "containernetworking-plugins", "debootstrap", "catatonit",
                "util-linux", "e2fsprogs", "iptables", "iproute2", "openssl"]


def _default(name):
    for knob, default, _ in KNOBS:
        if knob == name:
            return default
    raise KeyError(name)


def env(name):
    return os.environ.get(name) or _default(name)


def help_text():
    lines = ["environment (every knob has a default):"]
    for knob, default, text in KNOBS:
        lines.append(f"  {knob:<26} {text}\n  {'':<26} default: {default}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Config:
    cache_dir: Path
    cluster_dir: Path
    k8s_version: str
    etcd_version: str
    kwok_version: str
    csi: bool
    snapshotter_version: str
    provisioner_version: str
    go: str
    debian_mirror: str
    debian_suite: str
    node_image: str
    pause_image: str
    node_name: str
    fake_nodes: int
    pv_count: int
    pv_size_mb: int
    ready_timeout: float
    skip_apt: bool

    # --- cache layout (kept by 'down') ---
    @property
    def gomodcache(self):
        return self.cache_dir / "go" / "mod"

    @property
    def gocache(self):
        return self.cache_dir / "go" / "build"

    def bin_dir(self, what):
        if what == "csi-driver":
            version = csi_driver_version()
        else:
            version = {"kubernetes": self.k8s_version, "etcd": self.etcd_version, "kwok": self.kwok_version,
                       "csi-sidecars": f"{self.snapshotter_version}-{self.provisioner_version}"}[what]
        return self.cache_dir / "bin" / f"{what}-{version}"

    @property
    def kubectl(self):
        return self.bin_dir("kubernetes") / "kubectl"

    @property
    def images_dir(self):
        return self.cache_dir / "images"

    # --- runtime layout (removed pieces by 'down', files kept for inspection) ---
    @property
    def pki_dir(self):
        return self.cluster_dir / "pki"

    @property
    def log_dir(self):
        return self.cluster_dir / "logs"

    @property
    def run_dir(self):
        return self.cluster_dir / "run"

    @property
    def kubeconfig(self):
        return self.cluster_dir / "admin.kubeconfig"

    @property
    def kubelet_root(self):
        return self.cluster_dir / "kubelet"

    @property
    def containerd_root(self):
        return self.cluster_dir / "containerd" / "root"

    @property
    def containerd_state(self):
        return self.cluster_dir / "containerd" / "state"

    @property
    def containerd_socket(self):
        return self.containerd_state / "containerd.sock"

    @property
    def pv_dir(self):
        return self.cluster_dir / "pv"

    @property
    def csi_dir(self):
        """The CSI driver's state: its controller socket, volume and snapshot files."""
        return self.cluster_dir / "csi"

    @property
    def server(self):
        return f"https://{NODE_IP}:{API_PORT}"


CSI_DRIVER_SRC = Path(__file__).resolve().parent / "csidriver"
CSI_DRIVER_FILES = ("go.mod", "go.sum", "main.go")


def csi_driver_version():
    """The test CSI driver is built from this checkout: its cache key is a hash of its sources."""
    digest = hashlib.sha256()
    for name in CSI_DRIVER_FILES:
        digest.update(name.encode() + b"\0" + (CSI_DRIVER_SRC / name).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _go():
    go = env("KUBEHOOKS_GO")
    if not os.access(go, os.X_OK) and "KUBEHOOKS_GO" not in os.environ:
        go = shutil.which("go") or go
    return go


def load():
    """The configuration from the environment. Raises ValueError for a cluster dir that is too shallow
    (everything mounted below it is unmounted by 'down')."""
    cluster_dir = Path(env("KUBEHOOKS_CLUSTER_DIR")).expanduser().resolve()
    if len(cluster_dir.parts) < 3:
        raise ValueError(f"KUBEHOOKS_CLUSTER_DIR={cluster_dir} is too close to / (use e.g. /var/lib/x)")
    cache = os.environ.get("KUBEHOOKS_CACHE_DIR")
    if not cache:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        cache = os.path.join(xdg, "kubehooks")
    return Config(
        cache_dir=Path(cache).expanduser().resolve(),
        cluster_dir=cluster_dir,
        k8s_version=env("KUBEHOOKS_K8S_VERSION"),
        etcd_version=env("KUBEHOOKS_ETCD_VERSION"),
        kwok_version=env("KUBEHOOKS_KWOK_VERSION"),
        csi=env("KUBEHOOKS_CSI") == "1",
        snapshotter_version=env("KUBEHOOKS_SNAPSHOTTER_VERSION"),
        provisioner_version=env("KUBEHOOKS_PROVISIONER_VERSION"),
        go=_go(),
        debian_mirror=env("KUBEHOOKS_DEBIAN_MIRROR"),
        debian_suite=env("KUBEHOOKS_DEBIAN_SUITE"),
        node_image=env("KUBEHOOKS_NODE_IMAGE"),
        pause_image=env("KUBEHOOKS_PAUSE_IMAGE"),
        node_name=env("KUBEHOOKS_NODE_NAME"),
        fake_nodes=int(env("KUBEHOOKS_FAKE_NODES")),
        pv_count=int(env("KUBEHOOKS_PV_COUNT")),
        pv_size_mb=int(env("KUBEHOOKS_PV_SIZE_MB")),
        ready_timeout=float(env("KUBEHOOKS_READY_TIMEOUT")),
        skip_apt=env("KUBEHOOKS_SKIP_APT") == "1",
    )
