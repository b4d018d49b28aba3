# -*- coding: utf-8 -*-
"""Unit tests for the storage room check (_room): quantities, the sizes of the volumes, the refusal.

The free space is passed in (``free=``) where a figure must be exact; ``free_bytes`` is checked on the
test's own directory.  The real refusal, on a small loop-mounted filesystem, is in
tests/integration/test_faults.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _room
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError


@pytest.mark.parametrize("text, value", [("8Mi", 8 * 2 ** 20), ("1Gi", 2 ** 30), ("1G", 10 ** 9), ("500k", 500000),
                                         ("1.5Ki", 1536), ("1e3", 1000), ("100", 100), ("100m", 1), (" 2Ti ", 2 ** 41)])
def test_quantities(text, value):
    assert _room.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Mi", "8 Mi", "8MB", "x", "1.2.3Gi"])
def test_bad_quantities(text):
    with pytest.raises(ValueError, match="quantity"):
        _room.parse_quantity(text)


def pod(volumes, namespace="ns", name="p"):
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"volumes": volumes}}


def test_needed_sums_claims_and_empty_dir_limits_and_names_unknown_sizes():
    claims = {("ns", "bound"): {"status": {"capacity": {"storage": "1Gi"}}, "spec": {"resources": {"requests": {"storage": "1Mi"}}}},
              ("ns", "pending"): {"spec": {"resources": {"requests": {"storage": "10Mi"}}}}}
    obj = pod([{"name": "a", "persistentVolumeClaim": {"claimName": "bound"}},
               {"name": "b", "persistentVolumeClaim": {"claimName": "pending"}},
               {"name": "c", "emptyDir": {"sizeLimit": "64Mi"}},
               {"name": "d", "emptyDir": {}}])
    items = [dict(volume="a", pvc="bound", kind="persistentVolumeClaim"),
             dict(volume="b", pvc="pending", kind="persistentVolumeClaim"),
             dict(volume="c", pvc=None, kind="emptyDir"), dict(volume="d", pvc=None, kind="emptyDir"),
             dict(volume="e", pvc=None, kind="emptyDir", error="not mounted")]
    need, unknown = _room.needed([(obj, items)], lambda ns, name: claims[(ns, name)])
    assert need == 2 ** 30 + 10 * 2 ** 20 + 64 * 2 ** 20
    assert unknown == ["ns/p emptyDir d"]


def test_a_bad_size_names_the_pod_and_volume():
    obj = pod([{"name": "c", "emptyDir": {"sizeLimit": "lots"}}])
    with pytest.raises(KubehooksError, match="pod ns/p volume c: not a Kubernetes quantity"):
        _room.needed([(obj, [dict(volume="c", kind="emptyDir")])], None)


def test_refusal_names_the_directory_the_space_needed_and_free_and_the_option():
    assert _room.check("/backups", 100, [], free=100)["free"] == 100
    with pytest.raises(KubehooksError) as err:
        _room.check("/backups", 50 * 2 ** 20, ["ns/p emptyDir d"], free=8 * 2 ** 20)
    text = str(err.value)
    for part in ("/backups", "50.0 MiB", "8.0 MiB", "Nothing was frozen", "check_storage_room=false",
                 "ns/p emptyDir d", "gzip"):
        assert part in text, text


def test_free_bytes_of_a_directory_not_created_yet_is_its_parents(tmp_path):
    assert _room.free_bytes(str(tmp_path / "a" / "b")) == _room.free_bytes(str(tmp_path)) > 0
