"""Offline stand-in for the get-pip script that ansible-test caches.

ansible-test bootstraps pip in each sanity virtualenv by running a cached get-pip script and
downloads it when the cache is empty, from a host this project's machines cannot reach.  This
stand-in bootstraps pip from the standard library's ``ensurepip`` and then runs
``pip install`` with the arguments ansible-test passes (minus get-pip's own flags), so every
sanity test runs with only a package index reachable.  ``make sanity`` installs it only where the
cache file is missing, so a machine with internet access behaves as upstream intends.
"""
import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main(argv):
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
    # ensurepip points PIP_CONFIG_FILE at /dev/null, which hides the machine's pip.conf (its
    # index and CA bundle); drop it so the install below uses the machine's settings.
    env = dict(os.environ)
    for name in ("PIP_CONFIG_FILE", "ENSUREPIP_OPTIONS"):
        env.pop(name, None)
        os.environ.pop(name, None)
    args = [arg for arg in argv if arg not in GET_PIP_ONLY]
    return subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
