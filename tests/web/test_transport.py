"""The connection settings of the vault's HTTP protocol, on sockets handed over as `serve` does."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from uvicorn.server import ServerState

from cmr_vault.web.transport import BoundedHeadH11Protocol


async def _accepted_socket_delays_small_writes() -> int:
    """Serve on a listener passed by descriptor, as `cmr-vault serve` passes it to uvicorn."""
    listener = socket.socket(socket.AF_INET)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    # uvicorn reopens an inherited descriptor as a Unix socket (config.bind_socket, `fd=`).
    handed_over = socket.fromfd(listener.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
    listener.close()
    config = uvicorn.Config(app=None, http=BoundedHeadH11Protocol)  # type: ignore[arg-type]
    config.load()
    made: list[BoundedHeadH11Protocol] = []

    def protocol() -> BoundedHeadH11Protocol:
        made.append(BoundedHeadH11Protocol(config=config, server_state=ServerState(), app_state={}))
        return made[-1]

    server = await asyncio.get_running_loop().create_server(protocol, sock=handed_over)
    _, writer = await asyncio.open_connection(*handed_over.getsockname())
    for _ in range(500):
        if made and hasattr(made[0], "transport"):
            break
        await asyncio.sleep(0.01)
    served = made[0].transport.get_extra_info("socket")
    nodelay = served.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    writer.close()
    made[0].transport.close()
    server.close()
    return nodelay


def test_answers_are_sent_at_once_not_held_for_the_clients_ack() -> None:
    """With Nagle's algorithm on, every keep-alive answer's body waited ~40 ms for a delayed ACK."""
    assert asyncio.run(_accepted_socket_delays_small_writes()) != 0
