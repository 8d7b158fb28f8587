"""``aelab explore``'s server: every bad request gets a 4xx and a one-line JSON error, only the
page's own files are served, decodes pile up into batches, and the command starts and stops."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aelab.apps.explorer import open_spaces
from aelab.apps.explorer.server import create_app
from aelab.apps.explorer.space import MAX_UPLOAD_BYTES, LatentSpace
from aelab.cli import main


@pytest.fixture(scope="module")
def spaces(workshop) -> dict[str, LatentSpace]:
    return open_spaces(workshop)


@pytest.fixture(scope="module")
def client(spaces):
    from starlette.testclient import TestClient

    with TestClient(create_app(spaces), base_url="http://127.0.0.1") as c:
        yield c


def _png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def _refused(r, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error and "\n" not in error and "Traceback" not in error
    for w in words:
        assert w in error, error


def test_the_page_and_its_files_are_served_with_a_strict_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and '<canvas id="live"' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "http" not in r.text.replace("http-equiv", "")  # nothing from elsewhere
    for name in ("explore.js", "explore.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.content and "https://" not in r.text


@pytest.mark.parametrize(
    "path",
    ["/static/index.html", "/static/../space.py", "/static/%2e%2e/space.py",
     "/static/..%2fspace.py", "/static/%2e%2e%2f%2e%2e%2fpyproject.toml", "/static/",
     "/static/explore.js%00.png", "/../../etc/passwd", "/api/models/conv/../../../etc/passwd",
     "/static//etc/passwd"],
)  # fmt: skip
def test_no_path_reaches_another_file(client, path):
    r = client.get(path)
    _refused(r, 404)


def test_a_model_and_its_parts(client, spaces):
    assert client.get("/api/models").json() == {"models": list(spaces)}
    for name, space in spaces.items():
        meta = client.get(f"/api/models/{name}").json()
        assert meta["latent_dim"] == space.dim and len(meta["sliders"]) == len(space.sliders())
        r = client.post(f"/api/models/{name}/decode", json={"code": meta["mean_code"]})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        img = np.asarray(Image.open(io.BytesIO(r.content)))
        want = space.decode(space.check_codes(meta["mean_code"]))[0]
        assert np.array_equal(img.reshape(want.shape), want)  # the page gets the decoder's image
        held = client.get(f"/api/models/{name}/images/{meta['n_train']}").json()
        np.testing.assert_allclose(held["code"], space.codes_heldout[0], rtol=1e-5, atol=1e-6)
        assert held["original"].startswith("data:image/png;base64,")
        points = client.get(f"/api/models/{name}/points?method=pca").json()
        assert len(points["x"]) == meta["n_train"] + meta["n_heldout"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"code": [0.1, 0.2]}, ["expected 20 numbers"]),
        ({"code": []}, ["expected 20 numbers"]),
        ({"code": [[0.0] * 20] * 2}, ["expected one"]),
        ({"code": ["a"] * 20}, ["not a list of numbers"]),
        ({"code": [{"x": 1}] * 20}, ["not a list of numbers"]),
        ({"code": [1e300] * 20}, ["within"]),
        ({"code": 3}, ["expected 20 numbers"]),
        ({"cod": [0.0] * 20}, ['no "code"']),
        ([0.0] * 20, ["not a JSON object"]),
    ],
)
def test_bad_codes_are_refused(client, body, words):
    _refused(client.post("/api/models/deep/decode", json=body), 400, *words)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_codes_are_refused(client, token):
    body = '{"code": [' + ", ".join([token] + ["0"] * 19) + "]}"
    r = client.post("/api/models/deep/decode", content=body,
                    headers={"content-type": "application/json"})  # fmt: skip
    _refused(r, 400, "NaN or infinity")


def test_bad_bodies_and_methods_are_refused(client):
    url = "/api/models/deep/decode"
    _refused(client.post(url, content=b"{", headers={"content-type": "application/json"}), 400,
             "not valid JSON")  # fmt: skip
    _refused(client.post(url, content=b"\xff\xfe", headers={"content-type": "application/json"}),
             400)  # fmt: skip
    _refused(client.post(url, content=b"code=1"), 415, "application/json")
    deep = b'{"code": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _refused(client.post(url, content=deep, headers={"content-type": "application/json"}), 400,
             "too deep")  # fmt: skip
    big = b'{"code": [' + b"0," * (1 << 20) + b"0]}"
    _refused(client.post(url, content=big, headers={"content-type": "application/json"}), 413)
    _refused(client.get(url), 405)
    _refused(client.delete("/"), 405)
    _refused(client.post("/api/models/nobody/decode", json={"code": [0]}), 404, "'nobody'", "deep")
    _refused(client.get("/api/models/" + "x" * 5000), 404)
    _refused(client.get("/", headers={"host": "attacker.example"}), 400, "attacker.example")


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("/points?method=umap", ["umap", "pca, tsne"]),
        ("/random?approach=gan", ["gan", "units, pca"]),
        ("/random?seed=x", ["seed"]),
        ("/random?seed=1.5", ["seed"]),
        ("/random?seed=nan", ["seed"]),
        ("/random?seed=-1", ["seed"]),
        ("/images/abc", ["image"]),
        ("/images/-1", ["image"]),
    ],
)
def test_bad_queries_are_refused(client, query, words):
    _refused(client.get(f"/api/models/deep{query}"), 400, *words)


def test_image_indices_outside_the_map_are_not_found(client):
    _refused(client.get("/api/models/deep/images/99999999"), 404, "0 to")


def test_uploads_are_read_as_the_run_reads_images(client, spaces):
    space = spaces["deep"]
    x = space.heldout.images[3]
    grey = (x[0] * 255 + 0.5).astype(np.uint8)
    url = "/api/models/deep/encode"
    for fmt, kind in (("PNG", "image/png"), ("PPM", "image/x-portable-graymap")):
        r = client.post(url, content=_png(grey, fmt), headers={"content-type": kind})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["code"], space.codes_heldout[3], atol=2e-2)
    # a large colour JPEG is converted to grey and resized to the run's 8x8
    big = np.kron(np.stack([grey] * 3, -1), np.ones((16, 16, 1), np.uint8))
    r = client.post(url, content=_png(big, "JPEG"), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and len(r.json()["code"]) == space.dim


def test_hostile_uploads_are_refused(client):
    url = "/api/models/deep/encode"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    png = _png(noise)  # its header fits in the first half
    gif = _png(np.zeros((8, 8), np.uint8), "GIF")
    bombs = []  # small files whose headers claim 64 and 400 million pixels
    for side in (8000, 20000):
        bombs.append(io.BytesIO())
        Image.new("1", (side, side)).save(bombs[-1], format="PNG")
    cases = [
        (b"", "image/png", 400, "empty"),
        (b"<html>hello</html>", "text/html", 415, "PNG"),
        (b"not an image at all", "image/png", 415, "not a PNG"),
        (gif, "image/gif", 415, "Content-Type"),
        (gif, "image/png", 415, "not a PNG"),
        (png[: len(png) // 2], "image/png", 400, "could not be read"),
        (bombs[0].getvalue(), "image/png", 413, "64,000,000 pixels"),
        (bombs[1].getvalue(), "image/png", 413, "pixels; allowed"),
        (b"\0" * (MAX_UPLOAD_BYTES + 1), "image/png", 413, "at most"),
    ]
    for data, kind, status, word in cases:
        _refused(client.post(url, content=data, headers={"content-type": kind}), status, word)


def test_eight_clients_at_once_are_batched_and_the_server_answers_meanwhile(spaces, serve_app):
    app = create_app(spaces)
    space = spaces["conv"]
    codes = [space.random_code("pca", seed).tolist() for seed in range(8)]
    results: list[list[int]] = [[] for _ in range(8)]

    with serve_app(app) as (host, port):

        def slide(k: int) -> None:
            conn = http.client.HTTPConnection(host, port, timeout=30)
            for step in range(25):
                code = list(codes[k])
                code[step % len(code)] += 0.01 * step
                conn.request("POST", "/api/models/conv/decode", json.dumps({"code": code}),
                             {"content-type": "application/json"})  # fmt: skip
                r = conn.getresponse()
                r.read()
                results[k].append(r.status)
            conn.close()

        threads = [threading.Thread(target=slide, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("GET", "/api/models")  # the page still loads while all eight slide
        assert conn.getresponse().status == 200
        for t in threads:
            t.join(60)
    assert all(r == [200] * 25 for r in results)
    assert app.state.batcher.largest > 1  # requests that piled up were decoded together


def test_clients_that_leave_mid_request_do_not_stop_the_others_nor_print(spaces, serve_app, capfd):
    app = create_app(spaces)
    body = json.dumps({"code": spaces["conv"].mean.tolist()}).encode()
    head = b"POST /api/models/conv/decode HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    request = head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    upload = b"POST /api/models/conv/encode HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    upload += b"Content-Type: image/png\r\nContent-Length: 5000\r\n\r\n\x89PNG"
    with serve_app(app) as (host, port):
        for k in range(30):  # send and hang up at once; half of them mid-body
            with socket.create_connection((host, port)) as s:
                s.sendall(request + (body if k % 2 else body[: len(body) // 2]))
        for _ in range(5):  # and uploads
            with socket.create_connection((host, port)) as s:
                s.sendall(upload)
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", "/api/models/conv/decode", body, {"content-type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and r.read()[:4] == b"\x89PNG"
    # each of them printed a 45-line traceback ("Exception in ASGI application ...
    # starlette.requests.ClientDisconnect"); a client that leaves is no error of the server's
    assert capfd.readouterr().err == ""


def test_the_socket_says_it_is_tcp_so_answers_are_not_held_back():
    # asyncio sets TCP_NODELAY on accepted connections only when the listening socket's
    # protocol is TCP; with protocol 0 every keep-alive answer waited ~40 ms (Nagle + delayed ACK)
    from aelab.apps.explorer.serve import bind

    with bind("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP


def test_the_command_refuses_bad_arguments_with_one_line(workshop, tmp_path, capsys):
    cases = [
        (["explore", str(tmp_path / "none")], "is not a directory"),
        (["explore", str(workshop), "--port", "70000"], "--port 70000 is not valid"),
        (["explore", str(workshop), "--device", "tpu"], "--device tpu is not valid"),
        (["explore", str(workshop), "--host", "no.such.host.invalid"], "--host "),
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cases.append((["explore", str(workshop), "--port", str(taken.getsockname()[1])], "in use"))
        for argv, words in cases:
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and words in err[0], err


def test_without_the_extra_the_command_says_what_to_install(workshop, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    assert main(["explore", str(workshop)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["aelab explore: error: aelab explore needs uvicorn: "
                   "pip install 'aelab[explore]'"]  # fmt: skip


@pytest.mark.slow
def test_the_command_prints_its_url_warns_off_loopback_and_stops_on_ctrl_c(workshop):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aelab", "explore", str(workshop / "deep"), "--port", "0",
         "--host", "0.0.0.0"],
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
        assert url and url.startswith("http://127.0.0.1:")
        host, port = url[len("http://") :].rstrip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", "/api/models")
        assert json.loads(conn.getresponse().read()) == {"models": ["deep"]}
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "warning: host=0.0.0.0" in err and "Traceback" not in err


def test_a_discrete_code_is_refused_by_name(workshop):
    from aelab.runs.run import load_run

    run = load_run(Path(workshop) / "deep")
    run.model.discrete_codes = True  # an instance flag stands in for a codebook family
    with pytest.raises(ValueError, match="discrete codes"):
        LatentSpace(run, run.data(carve=False))
