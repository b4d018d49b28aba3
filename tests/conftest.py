"""Make ``ansible_collections.kubehooks.backup`` importable from a plain clone.

Ansible imports collection code by its full name, so the checkout must sit at
``.../ansible_collections/kubehooks/backup``.  When it does not, a symlink tree
outside the checkout (in the temporary directory, keyed by the checkout path)
provides that path; nothing inside the checkout changes.
"""
import hashlib
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def collection_root():
    """Return a directory whose ``ansible_collections/kubehooks/backup`` is this checkout."""
    parts = ROOT.split(os.sep)
    if parts[-3:-2] == ["ansible_collections"] and parts[-2:] == ["kubehooks", "backup"]:
        return os.sep.join(parts[:-3])
    key = hashlib.sha256(ROOT.encode()).hexdigest()[:12]
    base = os.path.join(tempfile.gettempdir(), "kubehooks-collections-" + key)
    link = os.path.join(base, "ansible_collections", "kubehooks", "backup")
    if os.path.realpath(link) != ROOT:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        tmp = link + ".%d" % os.getpid()
        os.symlink(ROOT, tmp)
        os.replace(tmp, link)
    return base


COLLECTIONS_PATH = collection_root()
if COLLECTIONS_PATH not in sys.path:
    sys.path.insert(0, COLLECTIONS_PATH)
os.environ["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS_PATH
