"""Downloads from the Hugging Face hub without minutes of retries when there is no network.

Before open_clip is asked for hub weights (a pretrained tag, ``hf-hub:org/repo``), the hub's
host is checked once (a 3 s TCP connect). When it cannot be reached, or ``HF_HUB_OFFLINE`` is
set, huggingface_hub is put in offline mode: weights already in the local cache still load,
anything else fails at once, and the failure is one line that says what to do instead.
"""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

from featurestore.errors import EncoderError

CONNECT_TIMEOUT_S = 3.0
_REACHABLE: dict[str, bool] = {}


def offline_requested() -> bool:
    """True when the user set HF_HUB_OFFLINE (huggingface_hub's own switch)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def reachable(url: str) -> bool:
    """Can a TCP connection to ``url``'s host be opened (checked once per host and process)?"""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    if host not in _REACHABLE:
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                _REACHABLE[host] = True
        except OSError:
            _REACHABLE[host] = False
    return _REACHABLE[host]


@contextlib.contextmanager
def hub_download(what: str, hint: str, url: str | None = None) -> Iterator[None]:
    """Run a download of ``what`` (e.g. "weights 'openai' of ViT-B-32") from the hub.

    Offline (HF_HUB_OFFLINE, or the host unreachable) only the local cache is used; a failure
    becomes one EncoderError line naming the cause and ``hint``."""
    url = url or hub_endpoint()
    offline = offline_requested() or not reachable(url)
    why = ("HF_HUB_OFFLINE is set" if offline_requested()
           else f"{urlparse(url).hostname} cannot be reached")
    previous = None
    if offline:
        import huggingface_hub.constants as hf_constants

        previous = hf_constants.HF_HUB_OFFLINE
        hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    except EncoderError:
        raise
    except Exception as exc:
        if offline:
            raise EncoderError(f"cannot get {what}: {why} and they are not in the local cache; {hint}") from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EncoderError(f"cannot get {what}: {first[:300]}; {hint}") from None
    finally:
        if previous is not None:
            import huggingface_hub.constants as hf_constants

            hf_constants.HF_HUB_OFFLINE = previous
