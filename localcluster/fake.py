"""kwok and its fake nodes: the scale tier (pods that cost nothing; exec runs on the host, so fake
pods get harmless hook commands only). kwok manages only nodes annotated kwok.x-k8s.io/node=fake."""
from .config import NODE_IP

ANNOTATION = "kwok.x-k8s.io/node"
TAINT = {"key": ANNOTATION, "value": "fake", "effect": "NoSchedule"}
TOLERATION = {"key": ANNOTATION, "operator": "Equal", "value": "fake", "effect": "NoSchedule"}
NODE_SELECTOR = {"type": "kwok"}
KWOK_PORT = 10247


def node_name(i):
    return f"kwok-fake-{i}"


def kwok_config(cfg):
    workdir = cfg.cluster_dir / "kwok" / "exec"
    workdir.mkdir(parents=True, exist_ok=True)
    return f"""apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: kubehooks-exec
spec:
  execs:
  - local:
      workDir: {workdir}
"""


def kwok_argv(cfg):
    conf = cfg.cluster_dir / "etc" / "kwok.yaml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(kwok_config(cfg))
    pki = cfg.pki_dir
    return [cfg.bin_dir("kwok") / "kwok",
            "--kubeconfig", pki / "kwok.kubeconfig", "--config", conf,
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={ANNOTATION}=fake",
            f"--node-ip={NODE_IP}", f"--node-port={KWOK_PORT}",
            f"--server-address={NODE_IP}:{KWOK_PORT}",
            "--tls-cert-file", pki / "kubelet.crt", "--tls-private-key-file", pki / "kubelet.key",
            "--node-lease-duration-seconds=40"]


def node_object(i):
    name = node_name(i)
    resources = {"cpu": "64", "memory": "512Gi", "pods": "500"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {ANNOTATION: "fake"},
                     "labels": {**NODE_SELECTOR, "kubernetes.io/hostname": name,
                                "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
        "spec": {"taints": [TAINT]},
        "status": {"allocatable": resources, "capacity": resources},
    }


def ensure_nodes(cfg, api):
    for i in range(cfg.fake_nodes):
        api.create("/api/v1/nodes", node_object(i))
