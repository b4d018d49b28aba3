"""Command line: up, down, status, token, info, stop/start of one component (and install/build, the first stages of up)."""
import argparse
import json
import os

from . import build, cluster, config, install
from .api import ApiError
from .token import mint_token
from .ui import Failure, say


def info(cfg):
    """Paths and endpoints of the cluster, for tests, the demo and scripts."""
    from . import csi, fake, pki
    data = {"kubeconfig": str(cfg.kubeconfig), "server": cfg.server, "ca_cert": str(cfg.pki_dir / "ca.crt"),
            "kubectl": str(cfg.kubectl), "node_name": cfg.node_name, "node_image": cfg.node_image,
            "pause_image": cfg.pause_image, "fake_nodes": [fake.node_name(i) for i in range(cfg.fake_nodes)],
            "log_dir": str(cfg.log_dir), "cache_dir": str(cfg.cache_dir), "cluster_dir": str(cfg.cluster_dir),
            "csi": {"driver": csi.DRIVER, "storage_class": csi.STORAGE_CLASS,
                    "volume_snapshot_class": csi.SNAPSHOT_CLASS} if cfg.csi else None}
    try:
        data["admin_token"] = pki.token(cfg, "admin")
    except (OSError, KeyError):
        data["admin_token"] = None
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m localcluster",
        description="The kubehooks.backup local cluster: etcd, kube-apiserver, controller-manager, "
                    "scheduler, one real node (containerd + runc + kubelet), kwok fake nodes and a CSI stack "
                    "with a test CSI driver (KUBEHOOKS_CSI=0: without it), all in "
                    f"network namespace '{config.NETNS}' ({config.NODE_IP}). Progress goes to stderr; "
                    "'up' prints one line on stdout, last: 'export KUBECONFIG=<path>' "
                    "(eval \"$(python3 -m localcluster up)\").",
        epilog=config.help_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", help="install/build what is missing, then start the cluster or reuse a healthy one")
    sub.add_parser("down", help="stop the cluster: recorded processes, containers, mounts, netns, "
                                "loop devices (caches kept)")
    sub.add_parser("status", help="components, API health, nodes (exit 1 when not healthy)")
    sub.add_parser("info", help="print paths, endpoints and the admin token as JSON")
    tok = sub.add_parser("token", help="print a ServiceAccount token bound to a Role with the given rules")
    tok.add_argument("--namespace", required=True)
    tok.add_argument("--name", required=True, help="ServiceAccount, Role and RoleBinding name")
    tok.add_argument("--rules-json", required=True,
                     help='Role rules, e.g. \'[{"apiGroups":[""],"resources":["pods"],"verbs":["list"]}]\'')
    tok.add_argument("--expiration-seconds", type=int, default=3600)
    for verb, text in (("stop", "stop ONE component for a fault test, the rest keeps running"),
                       ("start", "start ONE stopped component again and wait until it serves")):
        part = sub.add_parser(verb, help=text)
        part.add_argument("component", choices=cluster.RESTARTABLE)
    sub.add_parser("restart-clients", help="after a fault test's API outage: restart the controller-manager, "
                                           "scheduler, kubelet, kwok and CSI sidecars (no back-off left)")
    sub.add_parser("install", help="only install missing Debian packages (first stage of 'up')")
    sub.add_parser("build", help="only build missing binaries into the cache (second stage of 'up')")
    args = parser.parse_args(argv)
    try:
        cfg = config.load()
        if os.geteuid() != 0 and args.command in ("up", "down", "install"):
            raise Failure("must run as root: it installs packages and creates mounts, loop devices and "
                          "a network namespace")
        if args.command == "up":
            cluster.up(cfg)
            print(f"export KUBECONFIG={cfg.kubeconfig}", flush=True)
        elif args.command == "down":
            cluster.down(cfg)
        elif args.command == "status":
            return 0 if cluster.status(cfg) else 1
        elif args.command == "stop":
            cluster.stop_component(cfg, args.component)
        elif args.command == "start":
            cluster.start_component(cfg, args.component)
        elif args.command == "restart-clients":
            cluster.restart_api_clients(cfg)
        elif args.command == "info":
            print(json.dumps(info(cfg), indent=2))
        elif args.command == "token":
            print(mint_token(args.namespace, args.name, json.loads(args.rules_json), cfg,
                             args.expiration_seconds)["token"])
        elif args.command == "install":
            install.ensure_packages(cfg)
        elif args.command == "build":
            build.ensure_binaries(cfg)
    except Failure as exc:
        say(f"ERROR: {exc}")
        return 1
    except (ApiError, OSError, ValueError) as exc:
        say(f"ERROR: {type(exc).__name__}: {exc}\n    component logs: "
            f"{config.env('KUBEHOOKS_CLUSTER_DIR')}/logs")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    return 0
