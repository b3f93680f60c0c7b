"""Binding the server's socket and running uvicorn on it.

The socket is bound before the model and indexes load, so a busy port is reported at once,
and ``port=0`` gets a free port that is printed (tests and benchmarks use it).
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Any

from featurestore.errors import FeatureStoreError


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """The warning to print when the server would be reachable from other machines."""
    if is_loopback(host):
        return None
    return (f"warning: serving on {host}: anyone who can reach this machine can search the store and see its "
            "images (there is no authentication); the default --host 127.0.0.1 keeps it local")


def open_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: a free port); FeatureStoreError when it cannot bind."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise FeatureStoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    # proto IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on such sockets' connections;
    # without it, a keep-alive client waits ~40 ms (Nagle + delayed ACK) for each response body.
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise FeatureStoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a listening socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def run(app: Any, sock: socket.socket, quiet: bool = False) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C / SIGTERM (uvicorn; access log unless ``quiet``)."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level="warning" if quiet else "info",
                            access_log=not quiet, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
