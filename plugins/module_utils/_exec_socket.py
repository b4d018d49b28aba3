# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: the websocket of an exec without standard input, read in chunks. Not a public API.

A hook exec is short - a connection, a (resumed) TLS handshake, one HTTP upgrade, three or four small
frames, a close - and a backup makes two per pod, on a machine whose CPU the API server and the
kubelet need as much.  websocket-client reads the upgrade answer one byte per call and each frame
in three reads with several Python layers per byte read; the kubernetes client's ``WSClient`` adds
a ``poll`` per frame.  This is the client side of RFC 6455 as far as such an exec needs it:

- ``connect``: the upgrade request, the answer read in chunks (a refusal's status and body kept in
  ``UpgradeRefused``), ``Sec-WebSocket-Accept`` checked; frame bytes that came with the answer are kept;
- ``ExecSocket``: what callers use of websocket-client's ``WebSocket`` - ``recv_data_frame``,
  ``settimeout``, ``abort``, ``close``, ``getheaders`` - over a buffer filled by reads of up to
  _READ bytes; fragments joined, pings answered, the server's close answered; websocket-client's
  exception classes, so callers handle errors as before;
- ``ExecStream``: what callers use of ``WSClient`` - ``is_open``, ``update``, ``read_stdout``,
  ``read_stderr``, ``read_channel``, ``close``.

Nothing is written to the command (no stdin): client frames are only the close and pongs.  Measured
on the local cluster, 400 hook execs at parallelism 8: 1.0 ms of CPU per exec in this process
instead of 1.7 ms (bench/README.md).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import hashlib
import os
import socket
import ssl
import struct

try:
    from websocket import WebSocketConnectionClosedException, WebSocketProtocolException, WebSocketTimeoutException
except ImportError:  # reported through _api's KUBERNETES_IMPORT_ERROR first
    WebSocketConnectionClosedException = WebSocketProtocolException = WebSocketTimeoutException = None

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Bytes asked of the socket per read (a TLS read returns at most one record, 16 KiB).
_READ = 65536
# Longest upgrade answer header, and longest refusal body kept (a metav1.Status is small).
_HEADER_CAP = 65536
_BODY_CAP = 65536
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# The exec's channels: the first byte of each message (the error channel, 3, is read by _exec).
STDOUT_CHANNEL, STDERR_CHANNEL = 1, 2


class UpgradeRefused(Exception):
    """The server answered the upgrade with ``status`` (not 101); ``body`` (bytes) is its answer's body."""

    def __init__(self, status, reason, body):
        super(UpgradeRefused, self).__init__("Handshake status %d %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.body = body


class _Frame(object):
    """A received message, as websocket-client's ``ABNF`` frame offers it to callers (``opcode``, ``data``)."""

    __slots__ = ("opcode", "data")

    def __init__(self, opcode, data):
        self.opcode = opcode
        self.data = data


def _accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def _mask(payload, key):
    if not payload:
        return payload
    length = len(payload)
    repeated = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")


def _encode(opcode, payload=b""):
    """A masked, final client frame."""
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + key + _mask(payload, key)


def _parse_head(raw):
    """``(status, reason, {lower-case name: value})`` of an HTTP answer's header block (no blank line)."""
    lines = raw.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise WebSocketProtocolException("the answer to the websocket upgrade is not HTTP: %r" % lines[0][:200])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, (parts[2] if len(parts) > 2 else ""), headers


def connect(address, host_header, path, headers, timeout=None, context=None, server_hostname=None):
    """Open ``path`` (with its query) as a websocket on ``address`` ((host, port)); return an ExecSocket.

    ``headers``: extra request headers (authorization, the offered subprotocol).  ``context``: the
    TLS context (None: plain TCP), ``server_hostname`` the name its certificate is checked against.
    ``timeout`` (seconds, None: none) bounds the connect and every later read until ``settimeout``.
    A refused upgrade raises UpgradeRefused; a connection closed before the answer ended
    WebSocketConnectionClosedException; a timeout WebSocketTimeoutException; TCP and TLS errors are raised as
    they are (OSError, ssl.SSLError).
    """
    sock = socket.create_connection(address, timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=server_hostname)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        lines = ["GET %s HTTP/1.1" % path, "Host: %s" % host_header, "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13",
                 "Origin: %s://%s" % ("https" if context is not None else "http", host_header)]
        lines += ["%s: %s" % (name, value) for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        buf = bytearray()
        end = -1
        while end < 0:
            if len(buf) > _HEADER_CAP:
                raise WebSocketProtocolException("the answer to the websocket upgrade has a header over %d bytes"
                                                 % _HEADER_CAP)
            data = _recv(sock)
            if not data:
                raise WebSocketConnectionClosedException("the connection closed during the websocket handshake")
            buf += data
            end = buf.find(b"\r\n\r\n")
        status, reason, answer = _parse_head(bytes(buf[:end]))
        rest = buf[end + 4:]
        if status != 101:
            raise UpgradeRefused(status, reason, _body(sock, answer, rest))
        if answer.get("sec-websocket-accept") != _accept_key(key):
            raise WebSocketProtocolException("the server's Sec-WebSocket-Accept does not match the key sent")
        remember = getattr(sock, "_kh_remember_session", None)  # _api's TLS session resumption
        if remember is not None:
            remember()
        return ExecSocket(sock, answer, rest)
    except BaseException:
        sock.close()
        raise


def _recv(sock, size=_READ):
    try:
        return sock.recv(size)
    except socket.timeout as exc:
        raise WebSocketTimeoutException(str(exc) or "timed out")
    except (ssl.SSLWantReadError, BlockingIOError) as exc:  # a non-blocking read (timeout 0) found nothing
        raise WebSocketTimeoutException(str(exc) or "no data")


def _body(sock, headers, start):
    """The body of a refused upgrade (at most _BODY_CAP bytes; what arrived when reading more fails)."""
    body = bytearray(start)
    try:
        want = int(headers.get("content-length", _BODY_CAP))
    except ValueError:
        want = _BODY_CAP
    want = min(max(want, 0), _BODY_CAP)
    try:
        while len(body) < want:
            data = _recv(sock)
            if not data:
                break
            body += data
    except (OSError, WebSocketTimeoutException):
        pass
    return bytes(body[:want])


class ExecSocket(object):
    """One exec websocket after its upgrade (see the module's docstring)."""

    def __init__(self, sock, headers, leftover=b""):
        self._sock = sock
        self._buf = bytearray(leftover)
        self._headers = headers
        self._parts = None  # the fragments of a message not yet complete
        self._first = None  # that message's opcode
        self._close_sent = False
        self.subprotocol = headers.get("sec-websocket-protocol")

    def getheaders(self):
        return self._headers

    def settimeout(self, timeout):
        self._sock.settimeout(timeout)

    def _frame(self):
        """``(fin, opcode, payload)`` of the next whole frame, reading as needed (bytes stay buffered on a timeout)."""
        buf = self._buf
        while True:
            have = len(buf)
            if have >= 2:
                second = buf[1]
                length = second & 0x7F
                head = 2 if length < 126 else 4 if length == 126 else 10
                if second & 0x80:
                    raise WebSocketProtocolException("the server sent a masked frame")
                if have >= head:
                    if length == 126:
                        length = struct.unpack_from("!H", buf, 2)[0]
                    elif length == 127:
                        length = struct.unpack_from("!Q", buf, 2)[0]
                    end = head + length
                    if have >= end:
                        first = buf[0]
                        view = memoryview(buf)
                        payload = view[head:end].tobytes()
                        view.release()
                        del buf[:end]
                        return first & 0x80, first & 0x0F, payload
            data = _recv(self._sock)
            if not data:
                raise WebSocketConnectionClosedException("Connection to remote host was lost.")
            buf += data

    def recv_data_frame(self, control_frame=False):  # pylint: disable=unused-argument  # websocket-client's signature
        """``(opcode, frame)`` of the next message or close; pings are answered and pongs skipped."""
        while True:
            fin, opcode, payload = self._frame()
            if opcode in (_OP_TEXT, _OP_BINARY, _OP_CONT):
                if opcode == _OP_CONT:
                    if self._parts is None:
                        raise WebSocketProtocolException("a continuation frame without a message to continue")
                    self._parts.append(payload)
                else:
                    if self._parts is not None:
                        raise WebSocketProtocolException("a new message inside a fragmented one")
                    self._parts, self._first = [payload], opcode
                if fin:
                    data = b"".join(self._parts) if len(self._parts) > 1 else self._parts[0]
                    opcode, self._parts, self._first = self._first, None, None
                    return opcode, _Frame(opcode, data)
            elif opcode == _OP_CLOSE:
                self._send_close()
                return opcode, _Frame(opcode, payload)
            elif opcode == _OP_PING:
                self._sock.sendall(_encode(_OP_PONG, payload))
            elif opcode != _OP_PONG:
                raise WebSocketProtocolException("unknown websocket opcode %d" % opcode)

    def _send_close(self):
        if self._close_sent:
            return
        self._close_sent = True
        try:
            self._sock.sendall(_encode(_OP_CLOSE, struct.pack("!H", 1000)))
        except (OSError, ValueError):
            pass  # the server went first, or away: nothing to tell it

    def abort(self):
        """Stop both directions at once (a stream given up: no wait for the rest)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    def close(self, timeout=None):
        """Send the close frame (unless sent) and close; the server's answer is not waited for."""
        if self._sock is None:
            return
        try:
            try:
                self._sock.settimeout(min(timeout, 1.0) if timeout else 1.0)
            except OSError:
                pass
            self._send_close()
        finally:
            self._sock.close()
            self._sock = None


class ExecStream(object):
    """The channels of an exec websocket, read as the kubernetes client's ``WSClient`` offers them."""

    def __init__(self, sock):
        self.sock = sock
        self.subprotocol = sock.subprotocol
        self._open = True
        self._channels = {}
        self._timeout = None  # the socket's timeout as last set here (setting it is a system call)

    def is_open(self):
        return self._open

    def update(self, timeout=0):
        """Read the next message, waiting at most ``timeout`` seconds for it (0: only what has arrived)."""
        if not self._open:
            return
        timeout = timeout if timeout and timeout > 0 else 0.0
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout
        try:
            opcode, frame = self.sock.recv_data_frame(True)
        except WebSocketTimeoutException:
            return
        except WebSocketConnectionClosedException:
            self._open = False
            raise
        if opcode == _OP_CLOSE:
            self._open = False
            return
        data = frame.data
        if len(data) > 1:
            self._channels.setdefault(data[0], []).append(data[1:])

    def read_channel(self, channel, timeout=0):  # pylint: disable=unused-argument  # WSClient's signature
        """What channel ``channel`` has sent since the last read of it (bytes; ``b""`` when nothing)."""
        parts = self._channels.pop(channel, None)
        return b"".join(parts) if parts else b""

    def read_stdout(self, timeout=0):
        return self.read_channel(STDOUT_CHANNEL, timeout)

    def read_stderr(self, timeout=0):
        return self.read_channel(STDERR_CHANNEL, timeout)

    def close(self, timeout=None):
        self._open = False
        self.sock.close(timeout)
