"""The cluster's own network namespace: lo + a veth pair 10.250.0.1/30 (host) <-> 10.250.0.2/30."""
import os

from .config import HOST_IP, NETNS, NODE_IP, VETH_HOST, VETH_NS
from .ui import run

NETNS_PATH = f"/run/netns/{NETNS}"


def exists():
    return os.path.exists(NETNS_PATH)


def ensure():
    if not exists():
        run(["ip", "netns", "add", NETNS])
    run(["ip", "-n", NETNS, "link", "set", "lo", "up"])
    if run(["ip", "link", "show", VETH_HOST], check=False).returncode != 0:
        run(["ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS, "netns", NETNS])
        run(["ip", "addr", "add", f"{HOST_IP}/30", "dev", VETH_HOST])
        run(["ip", "-n", NETNS, "addr", "add", f"{NODE_IP}/30", "dev", VETH_NS])
    run(["ip", "link", "set", VETH_HOST, "up"])
    run(["ip", "-n", NETNS, "link", "set", VETH_NS, "up"])


def delete():
    """Delete the cluster namespace and with it the veth pair and everything routed inside it.

    The pods' own namespaces (cni-*) are mounted under containerd's state dir
    (netns_mounts_under_state_dir) and go with the unmount of that dir.
    """
    if exists():
        run(["ip", "netns", "delete", NETNS], check=False)
    if run(["ip", "link", "show", VETH_HOST], check=False).returncode == 0:
        run(["ip", "link", "delete", VETH_HOST], check=False)
