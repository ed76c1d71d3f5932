"""Long-lived HTTP responses (MJPEG, server-sent events) that end as soon as the client leaves.

Starlette's ``StreamingResponse`` notices a departed client only when a send fails; a stream that sends
nothing for a while (no new frame, no changed count) would keep its producer alive. This response
watches the ASGI ``http.disconnect`` message itself and hands the producer an event it waits on, so
encoding stops within one wait of the viewer closing the page.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Callable, Dict, Optional

__all__ = ["StreamResponse", "pause"]


async def pause(gone: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless the client leaves first; True when it has left."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(gone.wait(), timeout=seconds)
    return gone.is_set()


class StreamResponse:
    """An ASGI response sending the chunks ``produce(gone)`` yields, until it ends or the client leaves.

    Args:
        produce: called with an :class:`asyncio.Event` set when the client disconnects; returns an async
            iterator of body chunks (its ``finally`` runs when the stream ends either way).
        media_type: the Content-Type.
        headers: more response headers.
    """

    def __init__(self, produce: Callable[[asyncio.Event], AsyncIterator[bytes]], media_type: str,
                 headers: Optional[Dict[str, str]] = None) -> None:
        self.produce = produce
        self.media_type = media_type
        self.headers = {"cache-control": "no-cache, no-store", "x-accel-buffering": "no", **(headers or {})}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        watcher = asyncio.ensure_future(watch())
        chunks = self.produce(gone)
        try:
            headers = [(b"content-type", self.media_type.encode())] + [
                (k.encode(), v.encode()) for k, v in self.headers.items()]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for chunk in chunks:
                if gone.is_set():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-send
        finally:
            gone.set()
            watcher.cancel()
            await chunks.aclose()  # type: ignore[attr-defined]
