"""_exec_socket against a real local TCP server that plays the API server's side of an exec websocket.

The server thread answers the upgrade with the bytes a test gives, in the pieces it gives (each piece
one send, with a pause, so the client's reads see them apart), then keeps what the client sends.
"""
import base64
import hashlib
import json
import socket
import struct
import threading
import time

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _exec_socket
from websocket import WebSocketConnectionClosedException, WebSocketProtocolException, WebSocketTimeoutException

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUCCESS = b'{"metadata":{},"status":"Success"}'


def frame(payload, opcode=0x2, fin=True):
    """A server frame (unmasked), with the 7-bit, 16-bit or 64-bit length as the payload needs."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        head = struct.pack("!BB", first, len(payload))
    elif len(payload) < 65536:
        head = struct.pack("!BBH", first, 126, len(payload))
    else:
        head = struct.pack("!BBQ", first, 127, len(payload))
    return head + payload


def unmask(data):
    """The client frames in ``data``: [(opcode, payload)], each checked to be masked and final."""
    frames = []
    while data:
        first, second = data[0], data[1]
        assert first & 0x80 and second & 0x80, "client frames are final and masked"
        length, pos = second & 0x7F, 2
        if length == 126:
            length, pos = struct.unpack_from("!H", data, 2)[0], 4
        key = data[pos:pos + 4]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data[pos + 4:pos + 4 + length]))
        frames.append((first & 0x0F, payload))
        data = data[pos + 4 + length:]
    return frames


class Server(object):
    def __init__(self, pieces, status=b"101 Switching Protocols", accept=None, linger=0.3):
        self.pieces, self.status, self.accept, self.linger = pieces, status, accept, linger
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.address = self.listener.getsockname()
        self.request = b""
        self.received = b""
        self.errors = []
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def _serve(self):
        try:
            conn, _addr = self.listener.accept()
            conn.settimeout(5)
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(4096)
            key = [line.split(b":", 1)[1].strip() for line in self.request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:")][0]
            accept = self.accept or base64.b64encode(hashlib.sha1(key + GUID).digest())
            head = b"HTTP/1.1 " + self.status + b"\r\n"
            if self.status.startswith(b"101"):
                head += (b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                         + b"\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n")
            pieces = list(self.pieces)
            pieces[0] = head + pieces[0]
            for piece in pieces:
                conn.sendall(piece)
                time.sleep(0.05)
            conn.settimeout(self.linger)
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    self.received += data
            except socket.timeout:
                pass
            conn.close()
        except Exception as exc:  # pylint: disable=broad-except  # reported by the test
            self.errors.append(exc)

    def connect(self, headers=None, timeout=5):
        return _exec_socket.connect(self.address, "%s:%d" % self.address, "/api/v1/namespaces/ns/pods/p/exec?x=1",
                                    headers or {}, timeout=timeout)

    def close(self):
        self.thread.join(10)
        self.listener.close()
        assert not self.errors


def test_a_whole_exec_stdout_stderr_status_and_close_and_what_the_request_carries():
    server = Server([b"\r\n" + frame(b"\x01hi\n") + frame(b"\x02oops") + frame(b"\x03" + SUCCESS)
                     + frame(b"\x03\xe8", 0x8)])
    try:
        stream = _exec_socket.ExecStream(server.connect({"authorization": "Bearer t",
                                                         "sec-websocket-protocol": "v4.channel.k8s.io"}))
        assert stream.subprotocol == "v4.channel.k8s.io"
        while stream.is_open():
            stream.update(timeout=1)
        assert (stream.read_stdout(), stream.read_stderr(), stream.read_channel(3)) == (b"hi\n", b"oops", SUCCESS)
        assert stream.read_stdout() == b""  # read once
        stream.close(timeout=1)
    finally:
        server.close()
    request = server.request.decode()
    assert request.startswith("GET /api/v1/namespaces/ns/pods/p/exec?x=1 HTTP/1.1\r\n")
    for line in ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "authorization: Bearer t",
                 "sec-websocket-protocol: v4.channel.k8s.io", "Host: %s:%d" % server.address):
        assert "\r\n%s\r\n" % line in request
    assert unmask(server.received) == [(0x8, struct.pack("!H", 1000))]  # the close answered, once, masked


def test_frames_split_across_reads_fragments_joined_long_lengths_and_a_ping_answered():
    big = bytes(range(256)) * 300  # 76,800 bytes: a 64-bit length
    medium = b"m" * 300  # a 16-bit length
    data = (frame(b"\x01" + medium) + frame(b"\x09ping", 0x9) + frame(b"\x01par", 0x2, fin=False)
            + frame(b"ts", 0x0, fin=False) + frame(b"!", 0x0) + frame(b"\x01" + big) + frame(b"\x03" + SUCCESS)
            + frame(b"", 0x8))
    pieces = [b"\r\n" + data[:1]] + [data[i:i + 7] for i in range(1, 57, 7)] + [data[57:]]  # cut anywhere
    server = Server(pieces)
    try:
        sock = server.connect()
        got = []
        while True:
            opcode, message = sock.recv_data_frame(True)
            got.append((opcode, message.data))
            if opcode == 0x8:
                break
        sock.close()
    finally:
        server.close()
    assert got == [(0x2, b"\x01" + medium), (0x2, b"\x01parts!"), (0x2, b"\x01" + big), (0x2, b"\x03" + SUCCESS),
                   (0x8, b"")]
    assert unmask(server.received) == [(0xA, b"\x09ping"), (0x8, struct.pack("!H", 1000))]  # pong, then close


def test_a_timeout_keeps_a_partial_frame_and_a_refused_upgrade_keeps_status_and_body():
    whole = frame(b"\x01" + b"x" * 200)
    server = Server([b"\r\n" + whole[:50], whole[50:] + frame(b"", 0x8)])
    try:
        stream = _exec_socket.ExecStream(server.connect())
        stream.update(timeout=0)  # nothing complete yet: returns, keeps the 50 bytes
        assert stream.is_open() and stream.read_stdout() == b""
        while stream.is_open():
            stream.update(timeout=1)
        assert stream.read_stdout() == b"x" * 200
        stream.close()
    finally:
        server.close()

    body = json.dumps({"kind": "Status", "message": "pods \"p\" is forbidden", "code": 403}).encode()
    server = Server([b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10],
                     body[10:]], status=b"403 Forbidden")
    try:
        with pytest.raises(_exec_socket.UpgradeRefused) as refused:
            server.connect()
    finally:
        server.close()
    assert (refused.value.status, refused.value.body) == (403, body)


def test_protocol_errors_are_websocket_client_exceptions():
    server = Server([b"\r\n"], accept=b"not-the-accept-key")
    try:
        with pytest.raises(WebSocketProtocolException, match="Sec-WebSocket-Accept"):
            server.connect()
    finally:
        server.close()

    server = Server([b"\r\n" + b"\x82\x85abcd" + b"12345"])  # a masked server frame
    try:
        with pytest.raises(WebSocketProtocolException, match="masked"):
            server.connect().recv_data_frame(True)
    finally:
        server.close()

    server = Server([b"\r\n" + frame(b"x", 0x3)])  # a reserved opcode
    try:
        with pytest.raises(WebSocketProtocolException, match="opcode 3"):
            server.connect().recv_data_frame(True)
    finally:
        server.close()

    server = Server([b"\r\n" + frame(b"\x01half")[:3]], linger=0.05)  # closed inside a frame
    try:
        sock = server.connect()
        with pytest.raises(WebSocketConnectionClosedException):
            while True:
                sock.recv_data_frame(True)
    finally:
        server.close()

    server = Server([b"\r\n"], linger=1.0)  # silent: a read with a timeout
    try:
        sock = server.connect(timeout=0.2)
        with pytest.raises(WebSocketTimeoutException):
            sock.recv_data_frame(True)
        sock.abort()
        sock.close()
    finally:
        server.close()


def test_a_connection_closed_during_the_handshake():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def hang_up():
        conn, _addr = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 101 Swi")
        conn.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    try:
        with pytest.raises(WebSocketConnectionClosedException, match="handshake"):
            _exec_socket.connect(listener.getsockname(), "h", "/", {}, timeout=5)
    finally:
        thread.join(5)
        listener.close()
