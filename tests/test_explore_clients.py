"""``aelab explore`` and its clients, on real sockets: a client that is slow or stalls (sending
or reading) is dropped after a bounded time while the others are served, normal use (the page,
a 9 MB upload) fits in the deadlines, Ctrl-C waits for no stalled client, and a server bound to
another loopback address answers its own URL and still refuses other Host names."""

from __future__ import annotations

import http.client
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from aelab.apps.explorer import open_spaces
from aelab.apps.explorer.serve import allowed_hosts, bind
from aelab.apps.explorer.server import create_app
from aelab.apps.explorer.space import MAX_UPLOAD_BYTES

CLIENT, BODY = 1.0, 1.5  # the tests' deadlines, in seconds (aelab explore's: 10 and 30)
SLACK = 3.0  # a loaded machine's lateness


@pytest.fixture(scope="module")
def spaces(workshop):
    return open_spaces(workshop)


def _head(method: str, path: str, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _until_dropped(
    address, first: bytes = b"", drip: bytes = b"", every: float = 0.05, limit: float = 12.0
) -> tuple[float, bytes]:
    """Connect, send ``first`` at once and then ``drip`` a byte every ``every`` seconds, until
    the server closes the connection: the seconds after ``first`` that took (inf: still open
    after ``limit``), and what the server sent."""
    got, sent = b"", 0
    with socket.create_connection(address) as sock:
        sock.sendall(first)
        start = time.monotonic()
        while time.monotonic() - start < limit:
            readable, _, _ = select.select([sock], [], [], every)
            try:
                if readable:
                    data = sock.recv(1 << 16)
                    if not data:
                        return time.monotonic() - start, got
                    got += data
                elif sent < len(drip):
                    sock.send(drip[sent : sent + 1])
                    sent += 1
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - start, got
    return float("inf"), got


def test_slow_and_stalled_clients_are_dropped_in_bounded_time(spaces, serve_app):
    code = json.dumps({"code": spaces["deep"].mean.tolist()}).encode()
    decode = _head("POST", "/api/models/deep/decode", Content_Type="application/json",
                   Content_Length=str(len(code)))  # fmt: skip
    upload = _head("POST", "/api/models/deep/encode", Content_Type="image/png",
                   Content_Length="4000")  # fmt: skip
    asked = _head("GET", "/api/models")
    slow_head = asked[:-2] + b"X-Slow: " + b"a" * 400  # 20 s at a byte every 0.05 s
    cases = {  # name: (sent at once, then a byte at a time, the deadline that drops it)
        "connects and sends nothing": (b"", b"", CLIENT),
        "sends its head a byte at a time": (b"", slow_head, CLIENT),
        "sends half its head, then nothing": (asked[:20], b"", CLIENT),
        "sends its body a byte at a time": (decode, code, BODY),
        "stops halfway through its body": (decode + code[: len(code) // 2], b"", BODY),
        "uploads a byte at a time": (upload, b"\x89PNG" + b"\0" * 3996, BODY),
        "after an answer, sends the next head a byte at a time": (asked, slow_head, CLIENT),
    }
    dropped: dict[str, tuple[float, bytes]] = {}
    app = create_app(spaces, body_timeout=BODY)
    with serve_app(app, client_timeout=CLIENT) as address:

        def client(name: str) -> None:
            first, drip, _ = cases[name]
            dropped[name] = _until_dropped(address, first, drip)

        threads = [threading.Thread(target=client, args=(name,)) for name in cases]
        for t in threads:
            t.start()
        time.sleep(CLIENT / 2)  # meanwhile, the others are served
        conn = http.client.HTTPConnection(*address, timeout=30)
        conn.request("POST", "/api/models/deep/decode", code, {"content-type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and r.read()[:4] == b"\x89PNG"
        for t in threads:
            t.join(30)
    for name, (_, _, deadline) in cases.items():
        seconds, got = dropped[name]
        assert deadline * 0.9 <= seconds <= deadline + SLACK, (name, seconds, got[:200])
        if deadline == BODY:  # the head came: the client is told why, in one line
            status, _, rest = got.partition(b"\r\n")
            assert status.startswith(b"HTTP/1.1 408"), (name, got[:200])
            assert b"connection: close" in rest.lower()
            error = json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]
            assert error == f"the body did not arrive within {BODY:g} s", error
        elif name.startswith("after an answer"):
            assert got.startswith(b"HTTP/1.1 200") and got.count(b"HTTP/1.1") == 1, got[:200]
        else:
            assert got == b"", (name, got[:200])


def test_a_client_that_never_reads_its_answers_is_dropped(spaces, serve_app):
    asked = _head("GET", "/api/models/deep/sprite.png")  # 74 kB each
    with serve_app(create_app(spaces), client_timeout=CLIENT) as address:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(address)
            sock.sendall(asked * 200)  # pipelined, and nothing read: the server's writes stall
            time.sleep(CLIENT + 2)  # reading earlier would let a stalled server go on
            got, end = b"", "open"
            sock.settimeout(5)
            try:
                while data := sock.recv(1 << 16):
                    got += data
                end = "closed"
            except ConnectionResetError:
                end = "reset"
            except TimeoutError:
                pass
    # before, the server waited for ever, then sent all 200 answers once they were read
    assert end != "open" and got.count(b"HTTP/1.1 200") < 200, (end, got.count(b"HTTP/1.1"))


def test_the_page_and_a_large_upload_fit_in_the_deadlines(spaces, serve_app):
    # noise compresses to nothing: a 3000 x 3000 PNG is 9 MB, just under the 10 MiB limit
    noise = np.random.default_rng(0).integers(0, 256, (3000, 3000), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG", compress_level=1)
    upload = buf.getvalue()
    assert 0.85 * MAX_UPLOAD_BYTES < len(upload) <= MAX_UPLOAD_BYTES
    with serve_app(create_app(spaces)) as address:
        conn = http.client.HTTPConnection(*address, timeout=60)
        for path in ("/", "/static/explore.js", "/static/explore.css", "/api/models/deep",
                     "/api/models/deep/sprite.png"):  # fmt: skip
            conn.request("GET", path)
            r = conn.getresponse()
            assert r.status == 200 and r.read(), path
        conn.request("POST", "/api/models/deep/encode", upload, {"content-type": "image/png"})
        r = conn.getresponse()
        assert r.status == 200, r.read()
        assert len(json.loads(r.read())["code"]) == spaces["deep"].dim


def _other_loopback() -> str:
    try:
        bind("127.0.0.2", 0).close()
    except ValueError:
        pytest.skip("127.0.0.2 is not an address of this machine (Linux has all of 127/8)")
    return "127.0.0.2"


def test_another_loopback_address_answers_its_own_url_and_no_other_name(spaces, serve_app):
    host = _other_loopback()
    assert allowed_hosts("0.0.0.0") == ["*"] and "127.0.0.2" in allowed_hosts(host)
    with serve_app(create_app(spaces, allowed_hosts=allowed_hosts(host)), host=host) as address:
        port = address[1]
        for name, status in [(f"{host}:{port}", 200), (host, 200), (f"localhost:{port}", 200),
                             (f"LOCALHOST:{port}", 200), (f"attacker.example:{port}", 400),
                             (f"{host}.attacker.example:{port}", 400), ("", 400)]:  # fmt: skip
            conn = http.client.HTTPConnection(*address, timeout=30)
            conn.putrequest("GET", "/api/models", skip_host=True)
            conn.putheader("Host", name)
            conn.endheaders()
            r = conn.getresponse()
            body = json.loads(r.read())
            assert r.status == status, (name, body)
            if status == 400:
                assert repr(name) in body["error"] and "\n" not in body["error"]


@pytest.mark.slow
def test_the_command_on_127_0_0_2_answers_its_url_and_says_nothing_of_clients_that_leave(
    workshop,
):
    host = _other_loopback()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aelab", "explore", str(workshop / "deep"), "--port", "0",
         "--host", host],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if " at http://" in line:
                url = line.split(" at ")[1].split()[0]
        assert url.startswith(f"http://{host}:")
        address = (host, int(url.rstrip("/").rsplit(":", 1)[1]))
        conn = http.client.HTTPConnection(*address, timeout=30)
        conn.request("GET", "/")  # what a browser sends for the printed URL
        r = conn.getresponse()
        assert r.status == 200 and b'<canvas id="live"' in r.read()
        body = json.dumps({"code": [0.0] * 20}).encode()
        for k in range(20):  # hang up right after the head, or halfway through the body
            head = _head("POST", "/api/models/deep/decode", Content_Type="application/json",
                         Content_Length=str(len(body)))  # fmt: skip
            with socket.create_connection(address) as s:
                s.sendall(head + body[: len(body) // 2 * (k % 2)])
        conn.request("GET", "/api/models", headers={"Host": "attacker.example"})
        r = conn.getresponse()
        assert r.status == 400 and b"attacker.example" in r.read()
        conn.request("GET", "/api/models")
        assert json.loads(conn.getresponse().read()) == {"models": ["deep"]}
        stalled = socket.create_connection(address)  # half a body, then nothing: Ctrl-C
        stalled.sendall(head + body[: len(body) // 2])  # waited for it, for ever
        time.sleep(0.5)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert time.monotonic() - start < 8  # not the 30 s a body may take
        stalled.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out and err == "", err  # nothing in the terminal for the 20 who left
