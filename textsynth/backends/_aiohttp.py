"""The openai backend's other HTTP client (``backend.options.http_client: aiohttp``).

The same interface as :class:`~textsynth.backends._http1.HTTPPool` (``post`` an answer
or raise :class:`ConnectFailed`, :class:`ConnectionBroken`, :class:`BodyTooLarge` or
:class:`TimeoutError`; ``close``), on one pooled aiohttp session, for a server or a
proxy in between that needs a general-purpose client. aiohttp is imported only here
(0.1 s of start-up a run on the default client does not pay).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from yarl import URL

from textsynth.backends._http1 import BodyTooLarge, ConnectFailed, ConnectionBroken, Response

__all__ = ["AiohttpPool"]


class AiohttpPool:
    """POSTs through one aiohttp session (``limit`` connections, keep-alive 30 s)."""

    def __init__(self, headers: Mapping[str, str], *, limit: int = 100,
                 connect_timeout: float = 10.0, keepalive: float = 30.0,
                 max_body: int = 8 * 1024 * 1024) -> None:
        connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300,
                                         keepalive_timeout=keepalive)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=dict(headers),
            timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout))
        self.max_body = max_body

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def post(self, url: URL, data: bytes, timeout: float | None = None) -> Response:
        try:
            async with self._session.post(url, data=data,
                                          timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                                await self._read(resp))
        except TimeoutError:  # before ClientError: aiohttp's timeouts are both
            raise
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error) or str(exc)
            raise ConnectFailed(reason) from exc
        except aiohttp.ClientError as exc:
            raise ConnectionBroken(str(exc) or type(exc).__name__) from exc

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, at most ``max_body`` bytes: a larger one is not read any further."""
        length = resp.content_length
        if length is not None and length <= self.max_body:
            return await resp.read()  # the usual case, and the fast path
        if length is None:  # chunked: read no more than the limit
            raw = bytearray()
            async for chunk in resp.content.iter_chunked(1 << 16):
                raw += chunk
                if len(raw) > self.max_body:
                    break
            else:
                return bytes(raw)
        resp.close()  # drop the connection: the rest is never read
        raise BodyTooLarge(resp.status)

    async def close(self) -> None:
        await self._session.close()
