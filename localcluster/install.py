"""Debian packages the cluster needs, installed with apt-get when missing."""
import os
import subprocess

from .config import APT_PACKAGES
from .ui import Failure, run, say, step


def _installed(pkg):
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip() == "install ok installed"


def ensure_packages(cfg):
    missing = [p for p in APT_PACKAGES if not _installed(p)]
    if not missing:
        say("==> Debian packages: all present")
        return
    if cfg.skip_apt:
        raise Failure(f"missing Debian packages {' '.join(missing)} and KUBEHOOKS_SKIP_APT=1")
    log = cfg.cache_dir / "logs" / "apt.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with step(f"apt-get update (log: {log})", heartbeat=30):
        # Unreachable third-party sources only warn; the install below is what must succeed.
        if run(["apt-get", "update"], log=log, env=env, check=False).returncode != 0:
            say(f"    apt-get update reported errors (see {log}); trying the install anyway")
    with step(f"apt-get install {' '.join(missing)} (log: {log})", heartbeat=30):
        run(["apt-get", "install", "-y", "--no-install-recommends", *missing], log=log, env=env)
