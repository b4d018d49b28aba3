"""The real node: containerd (its own config, root, state and socket) and the kubelet."""
import json

from .config import NODE_IP, POD_CIDR


def containerd_config(cfg):
    state = cfg.containerd_state
    return f"""version = 2
root = "{cfg.containerd_root}"
state = "{state}"

[grpc]
  address = "{cfg.containerd_socket}"

[ttrpc]
  address = "{state}/containerd.sock.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{cfg.containerd_root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{cfg.pause_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{state}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cfg.cluster_dir}/cni/net.d"
"""


def cni_conflist(cfg):
    return {
        "cniVersion": "0.4.0", "name": "kubehooks",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                      "dataDir": str(cfg.cluster_dir / "cni" / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }


def kubelet_config(cfg):
    pki = cfg.pki_dir
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": NODE_IP, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "tlsCertFile": str(pki / "kubelet.crt"), "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "authentication": {"x509": {"clientCAFile": str(pki / "ca.crt")},
                           "webhook": {"enabled": False}, "anonymous": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{cfg.containerd_socket}",
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False, "oomScoreAdj": 0,
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                         "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
        "podCIDR": POD_CIDR, "maxPods": 110, "clusterDomain": "cluster.local",
        "serializeImagePulls": False, "registerNode": True,
        "podLogsDir": str(cfg.cluster_dir / "pod-logs"),
        "volumePluginDir": str(cfg.cluster_dir / "volume-plugins"),
    }


def write_configs(cfg):
    etc = cfg.cluster_dir / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "containerd.toml").write_text(containerd_config(cfg))
    (etc / "kubelet.json").write_text(json.dumps(kubelet_config(cfg), indent=2))
    netd = cfg.cluster_dir / "cni" / "net.d"
    netd.mkdir(parents=True, exist_ok=True)
    (netd / "10-kubehooks.conflist").write_text(json.dumps(cni_conflist(cfg), indent=2))
    for d in (cfg.containerd_root, cfg.containerd_state, cfg.kubelet_root):
        d.mkdir(parents=True, exist_ok=True)


def containerd_argv(cfg):
    return ["containerd", "--config", cfg.cluster_dir / "etc" / "containerd.toml"]


def kubelet_argv(cfg):
    return [cfg.bin_dir("kubernetes") / "kubelet",
            "--config", cfg.cluster_dir / "etc" / "kubelet.json",
            "--kubeconfig", cfg.pki_dir / "node.kubeconfig",
            "--node-ip", NODE_IP, "--hostname-override", cfg.node_name,
            "--root-dir", cfg.kubelet_root, "--v", "1"]
