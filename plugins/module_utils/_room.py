# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: does the backup storage have room for the volumes to capture? Not a public API.

Checked by ``backup_capture`` before anything is frozen (``check_storage_room``, default true): the
sum of the sizes of the volumes it will copy - a PersistentVolumeClaim's capacity
(``status.capacity.storage``, else ``spec.resources.requests.storage``), an emptyDir's
``sizeLimit`` (an emptyDir without one counts as 0 and is named as unknown) - against the free space
of the backup directory (``os.statvfs``: blocks available to this user).  Conservative: a volume is
rarely full and the copy is gzip-compressed, so the data written is usually smaller; a refusal names
the directory, the space needed and free, and the option that skips the check.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError

_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"n": 10 ** -9, "u": 10 ** -6, "m": 10 ** -3, "": 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9,
            "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def parse_quantity(text):
    """Bytes (an int, rounded up) of a Kubernetes quantity (``8Mi``, ``1G``, ``1.5Gi``, ``1e9``); ValueError."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError("not a Kubernetes quantity: %r" % (text,))
    number, exponent, suffix = match.groups()
    value = float(number)
    if exponent:
        value *= 10 ** int(exponent[1:])
    else:
        value *= _BINARY.get(suffix or "", None) or _DECIMAL[suffix or ""]
    whole = int(value)
    return whole + 1 if value > whole else whole


def human(count):
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d B" % count


def volume_size(item, pod_object, get_claim):
    """``(bytes or None, what)`` of one selected volume (``_volumes.select_volumes`` item).

    ``get_claim(namespace, name)`` returns the PVC object (or raises).  None when the size is not known.
    """
    metadata = (pod_object or {}).get("metadata") or {}
    if item.get("kind") == "persistentVolumeClaim" and item.get("pvc"):
        claim = get_claim(metadata.get("namespace"), item["pvc"]) or {}
        size = ((claim.get("status") or {}).get("capacity") or {}).get("storage") or \
            (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
        return (parse_quantity(size), "PVC %s" % item["pvc"]) if size else (None, "PVC %s" % item["pvc"])
    for volume in ((pod_object or {}).get("spec") or {}).get("volumes") or []:
        if isinstance(volume, dict) and volume.get("name") == item.get("volume") and \
                isinstance(volume.get("emptyDir"), dict):
            limit = volume["emptyDir"].get("sizeLimit")
            return (parse_quantity(limit), "emptyDir %s" % item.get("volume")) if limit else \
                (None, "emptyDir %s" % item.get("volume"))
    return None, "volume %s" % item.get("volume")


def needed(selections, get_claim):
    """``(bytes, [unknown "ns/pod volume"...])`` over ``selections``: ``[(pod object, [item...])]``."""
    total, unknown = 0, []
    for pod_object, items in selections:
        metadata = (pod_object or {}).get("metadata") or {}
        for item in items or []:
            if item.get("error"):
                continue  # recorded as failed, never copied
            try:
                size, what = volume_size(item, pod_object, get_claim)
            except ValueError as exc:
                raise KubehooksError("pod %s/%s volume %s: %s" % (metadata.get("namespace"), metadata.get("name"),
                                                                  item.get("volume"), exc))
            if size is None:
                unknown.append("%s/%s %s" % (metadata.get("namespace"), metadata.get("name"), what))
            else:
                total += size
    return total, unknown


def free_bytes(path):
    """Bytes available to this user on the filesystem of ``path`` (its nearest existing parent)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    stat = os.statvfs(probe)
    return stat.f_bavail * stat.f_frsize


def check(path, need, unknown, free=None, option="check_storage_room"):
    """Raise a KubehooksError naming ``path``, the space needed and free when ``need`` does not fit."""
    free = free_bytes(path) if free is None else free
    if need <= free:
        return dict(needed=need, free=free, unknown=list(unknown))
    raise KubehooksError(
        "not enough room in %s for the volumes to capture: they may hold up to %s (%d bytes: the sizes of their "
        "PersistentVolumeClaims and emptyDir limits%s) and %s (%d bytes) is free. Nothing was frozen. Free some "
        "space or use another storage directory; the gzip-compressed copy is usually smaller than the volumes, so "
        "this check is conservative - %s=false skips it." % (
            path, human(need), need, "; of unknown size: %s" % ", ".join(unknown) if unknown else "", human(free),
            free, option))
