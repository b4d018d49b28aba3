"""Go builds from the module proxy into the cache, keyed by version.

Each build goes to a temporary directory that is renamed into place when complete, so a half-finished
build never counts as present. See the README, "The local cluster".
"""
import json
import os
import re
import shutil
from pathlib import Path

from . import config
from .ui import Failure, run, say, step

K8S_COMMANDS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"]

ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def _go_env(cfg):
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(cfg.gomodcache), GOCACHE=str(cfg.gocache), GOPATH=str(cfg.cache_dir / "go" / "path"),
        CGO_ENABLED="0", GOFLAGS="-mod=mod", GOTOOLCHAIN="local", GOWORK="off",
        PATH=f"{Path(cfg.go).parent}:{env.get('PATH', '')}",
    )
    return env


def _log(cfg, name):
    path = cfg.cache_dir / "logs" / f"build-{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _scratch(cfg, name):
    """A fresh scratch module directory under the cache."""
    src = cfg.cache_dir / "src" / name
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    return src


def _tmp_dir(cfg, what):
    """An empty directory beside the final one; renamed into place when the build is complete."""
    tmp = Path(f"{cfg.bin_dir(what)}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _install(tmp, final):
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def _missing(cfg, what, names):
    return [n for n in names if not os.access(cfg.bin_dir(what) / n, os.X_OK)]


def build_kubernetes(cfg):
    version = cfg.k8s_version
    log = _log(cfg, f"kubernetes-{version}")
    env = _go_env(cfg)
    src = _scratch(cfg, f"kubernetes-{version}")
    go = cfg.go
    run([go, "mod", "init", "kubehooks.local/build/kubernetes"], log=log, env=env, cwd=src)
    # k8s.io/kubernetes requires its staging modules at v0.0.0 through replace directives that a
    # dependent module does not inherit: replace each with the matching v0.X.Y release.
    info = json.loads(run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
                          env=env, cwd=src).stdout)
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w./-]+) v0\.0\.0(?=\s|$)",
                                    Path(info["GoMod"]).read_text(), re.M)))
    minor = "v0." + version.lstrip("v").split(".", 1)[1]
    with open(src / "go.mod", "a") as f:
        f.write("\n" + "".join(f"replace {m} => {m} {minor}\n" for m in staging))
    run([go, "get", f"k8s.io/kubernetes/cmd/kube-apiserver@{version}"], log=log, env=env, cwd=src)
    major, minor_no = version.lstrip("v").split(".")[:2]
    ldflags = " ".join(
        f"-X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor_no} "
        f"-X {pkg}.gitTreeState=clean"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"))
    tmp = _tmp_dir(cfg, "kubernetes")
    run([go, "build", "-trimpath", "-ldflags", f"-s -w {ldflags}", "-o", f"{tmp}/",
         *[f"k8s.io/kubernetes/cmd/{c}" for c in K8S_COMMANDS]], log=log, env=env, cwd=src)
    _install(tmp, cfg.bin_dir("kubernetes"))


def build_etcd(cfg):
    version = cfg.etcd_version
    log = _log(cfg, f"etcd-{version}")
    env = _go_env(cfg)
    src = _scratch(cfg, f"etcd-{version}")
    (src / "main.go").write_text(ETCD_MAIN)
    run([cfg.go, "mod", "init", "kubehooks.local/build/etcd"], log=log, env=env, cwd=src)
    run([cfg.go, "get", f"go.etcd.io/etcd/server/v3@{version}"], log=log, env=env, cwd=src)
    run([cfg.go, "mod", "tidy"], log=log, env=env, cwd=src)
    tmp = _tmp_dir(cfg, "etcd")
    run([cfg.go, "build", "-trimpath", "-ldflags", "-s -w", "-o", tmp / "etcd", "."],
        log=log, env=env, cwd=src)
    _install(tmp, cfg.bin_dir("etcd"))


def build_kwok(cfg):
    version = cfg.kwok_version
    log = _log(cfg, f"kwok-{version}")
    env = _go_env(cfg)
    tmp = _tmp_dir(cfg, "kwok")
    env["GOBIN"] = str(tmp)
    env["GOFLAGS"] = ""  # 'go install pkg@version' runs outside any module
    run([cfg.go, "install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{version}"],
        log=log, env=env, cwd=cfg.cache_dir)
    _install(tmp, cfg.bin_dir("kwok"))


SNAPSHOTTER = "github.com/kubernetes-csi/external-snapshotter"
PROVISIONER = "github.com/kubernetes-csi/external-provisioner"
CSI_SIDECARS = ["snapshot-controller", "csi-snapshotter", "csi-provisioner"]
CSI_DRIVER = ["kubehooks-csi-driver"]


def _module_copy(cfg, module, version, name, env, log):
    """A writable copy of a module from the proxy, to build it as the main module (its own go.mod,
    go.sum and replace directives, which 'go install pkg@version' refuses)."""
    info = json.loads(run([cfg.go, "mod", "download", "-json", f"{module}@{version}"], log=None, env=env,
                          cwd=cfg.cache_dir).stdout)
    if info.get("Error"):
        raise Failure(f"{module}@{version}: {info['Error']}")
    src = cfg.cache_dir / "src" / name
    shutil.rmtree(src, ignore_errors=True)
    src.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(info["Dir"], src)
    for d, _, files in os.walk(src):  # the module cache is read-only
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    with open(log, "a") as out:
        out.write(f"\n# copied {module}@{version} from {info['Dir']} to {src}\n")
    return src


def build_csi_sidecars(cfg):
    """snapshot-controller + csi-snapshotter (one build) and csi-provisioner: main-module builds from
    writable copies (their go.mod pin different Kubernetes libraries, so they cannot share one build)."""
    snap, prov = cfg.snapshotter_version, cfg.provisioner_version
    log = _log(cfg, f"csi-sidecars-{snap}-{prov}")
    env = _go_env(cfg)
    tmp = _tmp_dir(cfg, "csi-sidecars")
    major = snap.split(".")[0]
    src = _module_copy(cfg, f"{SNAPSHOTTER}/{major}", snap, f"external-snapshotter-{snap}", env, log)
    # its go.mod replaces the client module with ./client: the client is a separate module on the proxy
    client = _module_copy(cfg, f"{SNAPSHOTTER}/client/{major}", snap, f"external-snapshotter-client-{snap}",
                          env, log)
    shutil.rmtree(src / "client", ignore_errors=True)
    client.rename(src / "client")
    run([cfg.go, "build", "-trimpath", "-ldflags", f"-s -w -X main.version={snap}", "-o", f"{tmp}/",
         "./cmd/snapshot-controller", "./cmd/csi-snapshotter"], log=log, env=env, cwd=src)
    shutil.copytree(src / "client" / "config" / "crd", tmp / "crd")
    src = _module_copy(cfg, f"{PROVISIONER}/{prov.split('.')[0]}", prov, f"external-provisioner-{prov}", env, log)
    run([cfg.go, "build", "-trimpath", "-ldflags", f"-s -w -X main.version={prov}", "-o", f"{tmp}/",
         "./cmd/csi-provisioner"], log=log, env=env, cwd=src)
    _install(tmp, cfg.bin_dir("csi-sidecars"))


def build_csi_driver(cfg):
    """The project's test CSI driver (localcluster/csidriver), keyed by a hash of its sources."""
    log = _log(cfg, f"csi-driver-{config.csi_driver_version()}")
    env = _go_env(cfg)
    env["GOFLAGS"] = "-mod=readonly"  # its go.mod and go.sum are checked in: build exactly those
    src = _scratch(cfg, "kubehooks-csi-driver")
    for name in config.CSI_DRIVER_FILES:
        shutil.copy(config.CSI_DRIVER_SRC / name, src / name)
    tmp = _tmp_dir(cfg, "csi-driver")
    run([cfg.go, "build", "-trimpath", "-ldflags", "-s -w", "-o", tmp / CSI_DRIVER[0], "."],
        log=log, env=env, cwd=src)
    _install(tmp, cfg.bin_dir("csi-driver"))
    for old in cfg.bin_dir("csi-driver").parent.glob("csi-driver-*"):  # builds of earlier sources
        if old != cfg.bin_dir("csi-driver") and not old.name.endswith(".partial"):
            shutil.rmtree(old, ignore_errors=True)


BUILDS = [
    ("kubernetes", K8S_COMMANDS, build_kubernetes, "k8s_version"),
    ("etcd", ["etcd"], build_etcd, "etcd_version"),
    ("kwok", ["kwok"], build_kwok, "kwok_version"),
]
CSI_BUILDS = [
    ("csi-sidecars", CSI_SIDECARS, build_csi_sidecars, None),
    ("csi-driver", CSI_DRIVER, build_csi_driver, None),
]


def _version(cfg, what, attr):
    return getattr(cfg, attr) if attr else cfg.bin_dir(what).name[len(what) + 1:]


def ensure_binaries(cfg):
    """Build whatever binary is missing from the cache; quick when all are present."""
    if not os.access(cfg.go, os.X_OK):
        raise Failure(f"Go toolchain not found at {cfg.go} (set KUBEHOOKS_GO)")
    for what, names, builder, attr in BUILDS + (CSI_BUILDS if cfg.csi else []):
        version = _version(cfg, what, attr)
        if not _missing(cfg, what, names):
            say(f"==> {what} {version}: cached in {cfg.bin_dir(what)}")
            continue
        log = _log(cfg, f"{what}-{version}")
        with step(f"building {what} {version} from the Go module proxy (log: {log})", heartbeat=30):
            builder(cfg)
