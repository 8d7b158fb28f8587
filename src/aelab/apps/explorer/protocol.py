"""uvicorn's HTTP/1.1 protocol (h11) with deadlines for a client that is slow or stalls.

uvicorn times out a keep-alive connection only while it is idle, and any byte cancels that
timer: a client that connects and sends nothing, sends its request line and headers a byte at
a time, or asks and never reads the answers, holds its connection (and a task of the server)
forever. Here a connection is dropped when its client keeps the server waiting ``timeout``
seconds: for the head of its next request (counted from the connection's opening, or from the
previous answer), or to take what the server is sending it (counted from the moment the
transport's buffer went over its high-water mark, 64 KiB). A request's body is the
application's to bound (``create_app(body_timeout=...)``): it answers 408.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class ClientDeadlines(H11Protocol):
    """:class:`H11Protocol` that drops a connection whose client is late (made by
    :func:`with_client_timeout`)."""

    timeout: float

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head: asyncio.TimerHandle | None = None
        self._taken: asyncio.TimerHandle | None = None
        self._await_head()

    def on_response_complete(self) -> None:
        # armed before uvicorn starts a request the client sent meanwhile (pipelined): that
        # request is a new cycle, so this deadline leaves it alone
        self._await_head()
        super().on_response_complete()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._taken is None:
            self._taken = self.loop.call_later(self.timeout, self._drop)

    def resume_writing(self) -> None:
        if self._taken is not None:
            self._taken.cancel()
            self._taken = None
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head, self._taken):
            if timer is not None:
                timer.cancel()
        self._head = self._taken = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # Ctrl-C: a client still sending its body would hold the server up until body_timeout
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            self._drop()
        else:
            super().shutdown()

    def _await_head(self) -> None:
        if self._head is not None:
            self._head.cancel()
            self._head = None
        self._answered = self.cycle  # the request answered last; None at first
        self._head = self.loop.call_later(self.timeout, self._head_late)

    def _head_late(self) -> None:
        self._head = None
        if self.cycle is self._answered:  # no request has begun since
            self._drop()

    def _drop(self) -> None:
        # abort, even a closing transport: close waits for a client that reads nothing to take
        # the answers still buffered for it; a connection handed over to a WebSocket is not ours
        if self.transport.get_protocol() is self:
            self.transport.abort()


def with_client_timeout(seconds: float) -> type[ClientDeadlines]:
    """:class:`ClientDeadlines` whose clients may keep the server waiting ``seconds``."""
    if not seconds > 0:
        raise ValueError(f"client_timeout={seconds!r} is not valid; expected seconds > 0")
    return type("ClientDeadlines", (ClientDeadlines,), {"timeout": float(seconds)})


__all__ = ["ClientDeadlines", "with_client_timeout"]
