# -*- coding: utf-8 -*-
"""Unit tests for _tar: the incremental tar header counter, against tarfile for every chunking."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import tarfile

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _tar
from ansible_collections.kubehooks.backup.plugins.module_utils._tar import TarCounter, _pax_size
from tar_archives import tar_archive


# --- TarCounter -------------------------------------------------------------------------------

def _feed(data, sizes):
    counter = TarCounter()
    pos, i = 0, 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        counter.feed(data[pos:pos + step])
        pos += step
        i += 1
    return counter


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("sizes", [[1], [511], [512], [513], [7, 1000, 3, 65536], [10 ** 7]])
def test_counter_matches_tarfile_for_any_chunking(fmt, sizes):
    data, members = tar_archive(fmt, long_names=fmt != tarfile.USTAR_FORMAT)
    counter = _feed(data, sizes)
    assert counter.error is None
    assert counter.ended
    assert counter.members == members == (13 if fmt != tarfile.USTAR_FORMAT else 11)


def test_counter_honours_pax_size_over_the_header_field():
    info = tarfile.TarInfo("./big")
    info.size = 600
    info.pax_headers = {"size": "600"}
    header = bytearray(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    member = header[-512:]
    member[124:136] = b"00000000000\0"             # the ustar size says 0; only pax says 600
    member[148:156] = b"        "
    member[148:156] = ("%06o\0 " % sum(member)).encode("ascii")
    header[-512:] = member
    data = bytes(header) + b"x" * 600 + b"\0" * (1024 - 600) + b"\0" * 1024
    counter = _feed(data, [100])
    assert (counter.error, counter.ended, counter.members) == (None, True, 1)
    assert [m.size for m in tarfile.open(fileobj=io.BytesIO(data)).getmembers()] == [600]


def test_pax_size_parser():
    assert _pax_size(b"20 path=a/long/name\n11 size=42\n") == 42
    assert _pax_size(b"") is None
    with pytest.raises(ValueError):
        _pax_size(b"xx path=a\n")


def test_counter_reports_garbage_and_truncation():
    counter = _feed(b"this is not a tar archive" * 100, [300])
    assert counter.error and "checksum" in counter.error and not counter.ended
    data, _members = tar_archive(tarfile.GNU_FORMAT)
    counter = _feed(data[:5000], [4096])
    assert counter.error is None and not counter.ended
    counter = _feed(b"", [1])
    assert not counter.ended


def test_counter_base256_size():
    assert _tar._number(b"\x80" + b"\0" * 6 + b"\x01\x00\x00\x00\x00") == 1 << 32
    assert _tar._number(b"00000001000\0") == 512
