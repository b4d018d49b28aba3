# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the check of a tar stream read in chunks (pure). Not a public API.

``TarCounter`` counts and checks the members of the stream a volume copy reads (``_capture``) and the
one a volume-data restore writes (``_restore_volumes``).  Its own module: a restore then does not carry
the capture code in its AnsiballZ zip (each 100 KB of module_utils costs a module run ~0.05 s).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

_BLOCK = 512
_ZERO_BLOCK = b"\0" * _BLOCK
_META_TYPES = (b"L", b"K", b"x", b"X", b"g")     # GNU long name/link, pax (Solaris) extended, pax global
_PAX_TYPES = (b"x", b"X")
_REGULAR_TYPES = (b"0", b"\0", b"7", b"S")        # tarfile.REGULAR_TYPES
_NO_DATA_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, directories, fifos
_PAX_CAP = 1 << 20


class TarFormatError(ValueError):
    pass


def _round_block(size):
    return (size + _BLOCK - 1) // _BLOCK * _BLOCK


def _number(field):
    """A numeric header field: octal text, or GNU base-256 (first byte 0x80 / 0xff)."""
    if field[0] in (0o200, 0o377):
        value = 0
        for byte in field[1:]:
            value = (value << 8) + byte
        if field[0] == 0o377:
            value = -(256 ** (len(field) - 1) - value)
        return value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise TarFormatError("bad number %r" % field)


def _checksum_ok(block):
    try:
        stored = _number(block[148:156])
    except TarFormatError:
        return False
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if stored == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in block) - sum(
        b - 256 if b > 127 else b for b in block[148:156]) + 8 * 32
    return stored == signed


def _pax_size(data):
    """The ``size`` record of a pax extended header, else None."""
    pos = 0
    size = None
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("bad pax record at %d" % pos)
        if length <= 0:
            raise TarFormatError("bad pax record length %d" % length)
        record = data[space + 1:pos + length]
        key, _sep, value = record.partition(b"=")
        if key == b"size":
            try:
                size = int(value.rstrip(b"\n"))
            except ValueError:
                raise TarFormatError("bad pax size %r" % value)
        pos += length
    return size


class TarCounter(object):
    """Count the members of a tar stream fed in chunks of any size, checking each header.

    ``members`` counts what ``tarfile.getmembers()`` lists: regular files, directories (the
    volume's root ``./`` included), symbolic and hard links, devices and fifos; GNU long-name and
    pax headers are not members.  ``ended`` is True after the end-of-archive block; ``error`` says
    why the stream is not a tar archive (then nothing more is parsed).  Only pax headers are held in
    memory (up to 1 MiB each); file data is skipped by arithmetic.
    """

    def __init__(self):
        self.members = 0
        self.ended = False
        self.error = None
        self._offset = 0            # stream offset of the start of the current feed
        self._header = bytearray()  # a header block split across chunks
        self._skip = 0              # data (+ padding) bytes still to pass
        self._collect = None        # pax header data being collected
        self._collect_left = 0
        self._next_size = None      # pax size of the next member
        self._sparse_ext = False    # old GNU sparse extension blocks follow
        self._sparse_data = 0

    def feed(self, data):
        size = len(data)
        if self.ended or self.error is not None:
            self._offset += size
            return
        view = memoryview(data)
        pos = 0
        try:
            while pos < size:
                if self._skip:
                    take = min(self._skip, size - pos)
                    if self._collect is not None and self._collect_left:
                        keep = min(take, self._collect_left)
                        self._collect += view[pos:pos + keep]
                        self._collect_left -= keep
                    pos += take
                    self._skip -= take
                    if not self._skip and self._collect is not None:
                        self._end_pax()
                    continue
                need = _BLOCK - len(self._header)
                if need == _BLOCK and size - pos >= _BLOCK:
                    block = bytes(view[pos:pos + _BLOCK])
                    pos += _BLOCK
                else:
                    piece = view[pos:pos + need]
                    self._header += piece
                    pos += len(piece)
                    if len(self._header) < _BLOCK:
                        continue
                    block = bytes(self._header)
                    self._header = bytearray()
                self._block(block, self._offset + pos - _BLOCK)
                if self.ended:
                    break
        except TarFormatError as exc:
            self.error = "not a tar archive at byte %d: %s" % (self._offset + pos, exc)
        self._offset += size

    def _end_pax(self):
        size = _pax_size(bytes(self._collect))
        self._collect = None
        if size is not None:
            self._next_size = size

    def _block(self, block, offset):
        if self._sparse_ext:
            self._sparse_ext = block[504] != 0
            if not self._sparse_ext:
                self._skip = _round_block(self._sparse_data)
            return
        if block == _ZERO_BLOCK:
            self.ended = True
            return
        if not _checksum_ok(block):
            raise TarFormatError("header checksum mismatch at byte %d" % offset)
        typeflag = block[156:157]
        size = _number(block[124:136])
        if size < 0:
            raise TarFormatError("negative size at byte %d" % offset)
        if typeflag in _META_TYPES:
            if typeflag in _PAX_TYPES:
                if size > _PAX_CAP:
                    raise TarFormatError("pax header of %d bytes at byte %d" % (size, offset))
                self._collect = bytearray()
                self._collect_left = size
                if size == 0:
                    self._end_pax()
            self._skip = _round_block(size)
            return
        self.members += 1
        if self._next_size is not None:
            size, self._next_size = self._next_size, None
        data = 0 if typeflag in _NO_DATA_TYPES else size
        if typeflag == b"S" and block[482]:
            self._sparse_ext = True
            self._sparse_data = data
            return
        self._skip = _round_block(data)


# ---------------------------------------------------------------------------------------------
# The archive writer: gzip members compressed in parallel, written in order with sha256 and count
