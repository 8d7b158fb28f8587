"""Start the explorer's server: bind the socket first (a port in use is a one-line error, port 0
a free one), print the URL, serve until Ctrl-C.

A client gets bounded time: it may keep the server waiting ``client_timeout`` (10 s) for a
request's head or to take an answer (:mod:`.protocol`), a request's body must come within
``body_timeout`` (30 s) of its head (:func:`.server.create_app` answers 408), and an idle
keep-alive connection closes after 5 s (uvicorn's ``timeout_keep_alive``)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable

from aelab.apps.explorer.server import LOOPBACK_HOSTS, create_app
from aelab.apps.explorer.space import LatentSpace

CLIENT_TIMEOUT = 10.0  # seconds; a browser sends a head in one packet and reads at once


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port={port!r} is not valid; allowed: 0 (any free port) to 65535")
    return port


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; errors name the address and what to change."""
    check_port(port)
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ValueError(f"host={host!r} is not an address of this machine") from None
    family, kind, proto, _, address = infos[0]
    # the protocol too: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections
    # accepted from a socket that says it is TCP; without it every keep-alive answer after the
    # first waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ValueError(
                f"port={port} is in use on {host}; pass another --port, or 0 for a free one"
            ) from None
        if e.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            raise ValueError(f"host={host!r} port={port}: {e.strerror}") from None
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _shown(host: str) -> str:
    """``host`` as the URL names it."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown


def url_of(sock: socket.socket, host: str) -> str:
    return f"http://{_shown(host)}:{sock.getsockname()[1]}/"


def allowed_hosts(host: str) -> list[str]:
    """The Host headers a server bound to ``host`` answers: on loopback, the loopback names and
    the address its URL shows (``--host 127.0.0.2`` serves ``http://127.0.0.2:PORT/``);
    elsewhere any (``["*"]``)."""
    if not is_loopback(host):
        return ["*"]
    return list(dict.fromkeys([*LOOPBACK_HOSTS, _shown(host).lower()]))


def uvicorn_server(app, *, client_timeout: float = CLIENT_TIMEOUT):
    """A ``uvicorn.Server`` running ``app`` as ``aelab explore`` does: warnings only, no access
    log, and a client that keeps it waiting ``client_timeout`` seconds, for a request's head or
    to take an answer, is dropped."""
    import uvicorn

    from aelab.apps.explorer.protocol import with_client_timeout

    config = uvicorn.Config(
        app,
        http=with_client_timeout(client_timeout),
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_keep_alive=5,
    )
    return uvicorn.Server(config)


def serve(
    spaces: dict[str, LatentSpace],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    sock: socket.socket | None = None,
    open_browser: bool = False,
    log: Callable[[str], None] = print,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``spaces`` on ``sock`` (else a new socket on ``host:port``) until interrupted:
    Ctrl-C stops uvicorn cleanly and returns."""
    sock = bind(host, port) if sock is None else sock
    url = url_of(sock, host)
    loopback = is_loopback(host)
    if not loopback:
        print(
            f"warning: host={host} serves the explorer, without a password, to every machine "
            "that can reach this one; the default is 127.0.0.1 (this machine only)",
            file=sys.stderr,
        )
    server = uvicorn_server(create_app(spaces, allowed_hosts=allowed_hosts(host)))
    log(f"aelab explore: {', '.join(spaces)} at {url} (Ctrl-C stops)")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    if ready is not None:
        ready(url)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly, then raises the signal it caught
        pass
    finally:
        sock.close()
    log("aelab explore: stopped")


__all__ = ["CLIENT_TIMEOUT", "allowed_hosts", "bind", "is_loopback", "serve", "uvicorn_server"]
