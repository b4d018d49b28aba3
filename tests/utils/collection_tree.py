"""Lay out the checkout as ``DEST/ansible_collections/kubehooks/backup`` (a copy).

ansible-test and antsibull-docs need that path.  The copy holds the files git would ship (tracked
and untracked-but-not-ignored, as they are in the work tree), so it works from a plain clone and
sees uncommitted edits, without virtualenvs, caches or test output.

Usage: python tests/utils/collection_tree.py DEST   -> prints the collection directory
"""
import os
import shutil
import subprocess
import sys

# Project tooling that is not part of the collection (galaxy.yml's build_ignore leaves it out too).
NOT_COLLECTION = ("localcluster/", "bench/")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tracked_files():
    out = subprocess.check_output(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    return sorted({name for name in out.decode().split("\0")
                   if name and not name.startswith(NOT_COLLECTION)})


def build_tree(dest):
    target = os.path.join(os.path.abspath(dest), "ansible_collections", "kubehooks", "backup")
    if os.path.isdir(target):
        shutil.rmtree(target)
    for name in tracked_files():
        source = os.path.join(ROOT, name)
        if not os.path.isfile(source) or os.path.islink(source):
            continue
        path = os.path.join(target, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copy2(source, path)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(build_tree(sys.argv[1]))
