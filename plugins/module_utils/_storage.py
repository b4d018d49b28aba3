# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: whether a storage directory outlives the process that writes it. Not a public API.

An AWX job runs in a short-lived execution-environment container: a backup written to its home
directory (the default storage) is lost when the job ends.  The filesystem a path lives on tells:
the container's own root is an overlay, a tmpfs lives in memory; a volume of a container group
(a PersistentVolumeClaim, an NFS or host path mount) is a filesystem of its own.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

MOUNTINFO = "/proc/self/mountinfo"
# Filesystems that vanish with their container or with the machine's memory.
EPHEMERAL_TYPES = ("overlay", "tmpfs", "ramfs", "aufs", "fuse.fuse-overlayfs")


def _unescape(text):
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def parse_mountinfo(text):
    """[(mount point, filesystem type)] of a ``/proc/<pid>/mountinfo`` text, in its order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 5:
            continue
        after = fields[fields.index("-") + 1:]
        if after:
            mounts.append((_unescape(fields[4]), after[0]))
    return mounts


def filesystem_of(path, mounts):
    """(mount point, type) of the mount that holds ``path`` (the longest matching mount point; the last
    one mounted there wins, as the kernel shows it)."""
    path = os.path.abspath(path)
    best = None
    for point, kind in mounts:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, kind)
    return best


def ephemeral_reason(path, mountinfo=MOUNTINFO):
    """A sentence saying why ``path`` looks ephemeral, or None (also when it cannot be told)."""
    try:
        with open(mountinfo) as handle:
            mounts = parse_mountinfo(handle.read())
    except (IOError, OSError):
        return None
    found = filesystem_of(os.path.realpath(path) if os.path.exists(path) else path, mounts)
    if found is None or found[1] not in EPHEMERAL_TYPES:
        return None
    point, kind = found
    where = "the container's own filesystem" if kind in ("overlay", "aufs", "fuse.fuse-overlayfs") else "memory"
    return ("the backup storage %s is on a %s filesystem mounted at %s (%s): it is lost when the container or "
            "machine goes. In AWX, give kubehooks_storage_dir a volume of a container group (a PersistentVolumeClaim)"
            % (path, kind, point, where))
