"""Certificates from one CA (openssl), static tokens and kubeconfigs. Created once per cluster dir."""
import secrets

from .config import NODE_IP
from .ui import run

# user name, groups per static token (a throwaway cluster: static tokens are fine)
USERS = {
    "admin": ("kubehooks-admin", "system:masters"),
    # --use-service-account-credentials=false: every controller acts as this user, which therefore
    # needs more than the system:kube-controller-manager role grants.
    "controller-manager": ("system:kube-controller-manager", "system:masters"),
    "scheduler": ("system:kube-scheduler", ""),
    "kwok": ("kubehooks-kwok", "system:masters"),
}


def _openssl(*args):
    run(["openssl", *args])


def _cert(d, name, subject, ext):
    if (d / f"{name}.crt").exists():
        return
    _openssl("genrsa", "-out", d / f"{name}.key", "2048")
    _openssl("req", "-new", "-key", d / f"{name}.key", "-subj", subject, "-out", d / f"{name}.csr")
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
             "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", d / f"{name}.ext",
             "-out", d / f"{name}.crt")


def ensure(cfg):
    d = cfg.pki_dir
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    if not (d / "ca.crt").exists():
        _openssl("req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", d / "ca.key",
                 "-out", d / "ca.crt", "-days", "3650", "-subj", "/CN=kubehooks-local-ca")
    server = "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    client = "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    _cert(d, "apiserver", "/CN=kube-apiserver", server + (
        f"subjectAltName=IP:{NODE_IP},IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"))
    _cert(d, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", client)
    _cert(d, "kubelet", f"/CN={cfg.node_name}",
          server + f"subjectAltName=IP:{NODE_IP},IP:127.0.0.1,DNS:{cfg.node_name}\n")
    if not (d / "sa.key").exists():
        _openssl("genrsa", "-out", d / "sa.key", "2048")
        _openssl("rsa", "-in", d / "sa.key", "-pubout", "-out", d / "sa.pub")
    users = dict(USERS, node=(f"system:node:{cfg.node_name}", "system:nodes"))
    tokens = d / "tokens.csv"
    known = {}  # keep existing tokens (kubeconfigs handed out stay valid); groups follow USERS
    if tokens.exists():
        known = {line.split(",")[1]: line.split(",")[0] for line in tokens.read_text().splitlines()}
    tokens.write_text("".join(f'{known.get(user) or secrets.token_hex(24)},{user},{user},"{groups}"\n'
                              for user, groups in users.values()))
    for who, (user, _) in users.items():
        (d / f"{who}.kubeconfig").write_text(kubeconfig(cfg, token(cfg, who), "https://127.0.0.1:6443"))
    cfg.kubeconfig.write_text(kubeconfig(cfg, token(cfg, "admin"), cfg.server))


def token(cfg, who):
    """The static token of 'admin', 'node', 'controller-manager', 'scheduler' or 'kwok'."""
    user = f"system:node:{cfg.node_name}" if who == "node" else USERS[who][0]
    for line in (cfg.pki_dir / "tokens.csv").read_text().splitlines():
        tok, name = line.split(",")[:2]
        if name == user:
            return tok
    raise KeyError(who)


def kubeconfig(cfg, tok, server):
    return f"""apiVersion: v1
kind: Config
clusters:
- name: kubehooks
  cluster:
    server: {server}
    certificate-authority: {cfg.pki_dir / 'ca.crt'}
users:
- name: kubehooks
  user:
    token: {tok}
contexts:
- name: kubehooks
  context:
    cluster: kubehooks
    user: kubehooks
current-context: kubehooks
"""
