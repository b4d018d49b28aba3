"""The peer: the released Velero v1.18.3 on the local cluster, for side-by-side benchmarks (bench/ only).

It drives the shared, read-only scripts of ../shared/peer (velero-up.sh, velero-down.sh, freeze_probe.py;
``KUBEHOOKS_VELERO_PEER`` overrides where they are) with the binaries that velero-build.sh left in
``$V`` (default ~/.cache/velero-peer).  Velero runs as host processes with a loopback S3 (moto); its
server is stopped by velero-down.sh (the pids that velero-up.sh recorded, nothing else) when a
benchmark ends, whatever happened.
"""
import json
import os
import subprocess
import sys
import time

from _common import ROOT, kubeconfig
from localcluster import config as lc_config

PEER_DIR = os.path.abspath(os.environ.get("KUBEHOOKS_VELERO_PEER", os.path.join(ROOT, "..", "shared", "peer")))
V = os.environ.get("V", os.path.expanduser("~/.cache/velero-peer"))
VELERO = os.path.join(V, "bin", "velero")
LABEL = "kubehooks-bench=1"


def missing():
    """None when Velero can run here; otherwise one paragraph saying what is missing and how to build it."""
    if not os.path.isfile(os.path.join(PEER_DIR, "velero-up.sh")):
        return ("Velero peer scripts not found in %s (set KUBEHOOKS_VELERO_PEER to the directory holding "
                "velero-up.sh): the Velero side is skipped." % PEER_DIR)
    if not (os.access(VELERO, os.X_OK) and os.access(os.path.join(V, "plugins", "velero-plugin-for-aws"), os.X_OK)):
        return ("Velero v1.18.3 is not built in %s: the Velero side is skipped. Build it once (15-20 min on "
                "2 cores, cached afterwards):\n    %s/velero-build.sh\nthen run `make bench` again."
                % (V, PEER_DIR))
    return None


def peer_env():
    """KUBECONFIG of the local cluster and its matching kubectl first on PATH (the scripts call `kubectl`)."""
    info = lc_config.load()
    kubectl_dir = os.path.dirname(str(info.kubectl)) if getattr(info, "kubectl", None) else ""
    path = os.environ["PATH"] if not kubectl_dir else kubectl_dir + os.pathsep + os.environ["PATH"]
    return dict(os.environ, KUBECONFIG=kubeconfig(), V=V, PATH=path)


def probe_script():
    return os.path.join(PEER_DIR, "freeze_probe.py")


class Velero:
    """``with Velero() as velero:`` ... ``velero.use(workers)`` starts (or restarts) the server with that many
    item-block workers; leaving the block runs velero-down.sh and deletes this run's Backup/Restore objects."""

    def __init__(self):
        self.env = peer_env()
        self.workers = None
        self.started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()
        subprocess.run(["kubectl", "-n", "velero", "delete", "backups.velero.io,restores.velero.io", "-l", LABEL,
                        "--ignore-not-found", "--wait=false"], env=self.env, capture_output=True, check=False)
        return False

    def _script(self, name, extra_env=None):
        env = dict(self.env, **(extra_env or {}))
        proc = subprocess.run([os.path.join(PEER_DIR, name)], env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit("%s failed (exit %d):\n%s%s" % (name, proc.returncode, proc.stdout[-2000:],
                                                              proc.stderr[-2000:]))
        return proc.stdout

    def down(self):
        if self.started:
            self._script("velero-down.sh")
            self.started = False
            self.workers = None

    def use(self, workers):
        """Velero's server with ``workers`` item-block workers (1 is Velero's default); True when (re)started."""
        if self.started and self.workers == workers:
            return False
        # Also the first time: a server left by an interrupted benchmark (its pids are recorded) would otherwise
        # be reused with whatever flags it had.
        self.started = True
        self.down()
        flags = "" if workers == 1 else "--item-block-worker-count=%d" % workers
        self.started = True  # velero-up.sh records its pids as it goes: stop them even when it fails half-way
        self._script("velero-up.sh", {"VELERO_SERVER_FLAGS": flags})
        self.workers = workers
        return True

    def cli(self, *args, check=True):
        proc = subprocess.run([VELERO, "--namespace", "velero", "--kubeconfig", self.env["KUBECONFIG"]] + list(args),
                              env=self.env, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise SystemExit("velero %s failed:\n%s%s" % (" ".join(args), proc.stdout[-2000:], proc.stderr[-2000:]))
        return proc

    def get(self, kind, name):
        proc = subprocess.run(["kubectl", "-n", "velero", "get", kind, name, "-o", "json"], env=self.env,
                              capture_output=True, text=True, check=True)
        return json.loads(proc.stdout)

    def backup(self, name, namespace):
        """`velero backup create NAME --include-namespaces NS --snapshot-volumes=false --wait`: (seconds, status)."""
        start = time.monotonic()
        self.cli("backup", "create", name, "--include-namespaces", namespace, "--snapshot-volumes=false",
                 "--labels", LABEL, "--wait")
        elapsed = time.monotonic() - start
        status = self.get("backups.velero.io", name).get("status", {})
        if status.get("phase") != "Completed":
            raise SystemExit("Velero backup %s ended %s: %s" % (name, status.get("phase"), status))
        return elapsed, status

    def upload_backup(self, name, backup_dir):
        """Put one of our backup directories into the bucket under backups/NAME/ (as Velero lays it out) and wait
        until Velero's backup sync has made a Backup object of it."""
        code = ("import os, sys, boto3\n"
                "s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:9000', region_name='us-east-1',"
                " aws_access_key_id='minio', aws_secret_access_key='minio123')\n"
                "name, root = sys.argv[1], sys.argv[2]\n"
                "for f in sorted(os.listdir(root)):\n"
                "    p = os.path.join(root, f)\n"
                "    if os.path.isfile(p):\n"
                "        s3.upload_file(p, 'velero', 'backups/%s/%s' % (name, f))\n")
        subprocess.run([os.path.join(V, "venv", "bin", "python"), "-c", code, name, backup_dir],
                       env=dict(self.env, AWS_EC2_METADATA_DISABLED="true"), check=True)
        # The backup sync runs every minute by default; a BSL update (a new annotation) does not trigger it, so
        # poll.  The server's --backup-sync-period is not changed: it is part of the setting being compared.
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            proc = subprocess.run(["kubectl", "-n", "velero", "get", "backups.velero.io", name, "-o", "name"],
                                  env=self.env, capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                subprocess.run(["kubectl", "-n", "velero", "label", "backups.velero.io", name, LABEL, "--overwrite"],
                               env=self.env, capture_output=True, check=False)
                return
            time.sleep(1)
        raise SystemExit("Velero did not sync backup %s from the bucket within 150 s" % name)

    def restore(self, name, backup, mappings):
        """`velero restore create NAME --from-backup B --namespace-mappings a:b --wait`: (seconds, status)."""
        start = time.monotonic()
        self.cli("restore", "create", name, "--from-backup", backup, "--namespace-mappings",
                 ",".join("%s:%s" % pair for pair in mappings.items()), "--labels", LABEL, "--wait")
        elapsed = time.monotonic() - start
        status = self.get("restores.velero.io", name).get("status", {})
        return elapsed, status


def stderr(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()
