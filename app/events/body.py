"""Reading an ingest request body without ever holding more than its limit.

The limit is Segment's (32 KB per call, 500 KB per batch) and counts UTF-8 bytes of JSON. An
honest client that declares a larger `Content-Length` is refused before anything is read; a
body streamed without one (chunked) is refused as soon as it passes the limit; a gzip body is
inflated chunk by chunk and refused as soon as its JSON passes the limit, so a small gzip
bomb costs no more memory than a legitimate batch. The compressed bytes are held to the same
limit: JSON always shrinks under gzip, so a compressed body past it cannot inflate under it.
"""

from __future__ import annotations

import zlib
from typing import Any

from starlette.requests import Request

from app.errors import BadInput, TooLarge
from app.events import json_values

# 16 + 15: gzip framing (header, CRC and length trailer checked) around the largest window.
_GZIP_WBITS = 31


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"body: larger than {limit // 1024} KB, the limit for this call")


class _Inflater:
    """Incremental gunzip of every gzip member in the stream, refusing past `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._member = zlib.decompressobj(wbits=_GZIP_WBITS)
        self._member_started = False

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            self._member_started = True
            try:
                chunk = self._member.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                raise BadInput(f"body: invalid gzip data ({exc})") from None
            self.size += len(chunk)
            if self.size > self.limit:
                raise _too_large(self.limit)
            out.append(chunk)
            if self._member.eof:  # concatenated members are one gzip stream (RFC 1952)
                data = self._member.unused_data
                self._member = zlib.decompressobj(wbits=_GZIP_WBITS)
                self._member_started = False
            else:
                data = self._member.unconsumed_tail
        return b"".join(out)

    def finish(self) -> None:
        # A member cut short inflates without error as far as it goes; only the missing end
        # of stream (and CRC trailer) tells a truncated upload from a complete one.
        if self._member_started and not self._member.eof:
            raise BadInput("body: truncated gzip data (the stream ends before its end)")


def _encoding(request: Request) -> str:
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise BadInput(f"Content-Encoding: {encoding[:32]!r} is not supported (gzip or none)")
    return encoding


async def read(request: Request, limit: int) -> bytes:
    """The body's bytes (inflated if gzip), or TooLarge past `limit`, BadInput for bad gzip."""
    gzip = _encoding(request) == "gzip"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    inflater = _Inflater(limit) if gzip else None
    received, parts = 0, []
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        parts.append(inflater.feed(chunk) if inflater else chunk)
    if inflater:
        inflater.finish()
    return b"".join(parts)


async def read_json(request: Request, limit: int) -> Any:
    raw = await read(request, limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"body: malformed JSON (not UTF-8: {exc.reason})") from None
    try:
        return json_values.loads(text)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise BadInput(f"body: malformed JSON ({exc})") from None
    except RecursionError:
        raise BadInput(f"body: nested deeper than {json_values.MAX_DEPTH} levels") from None
