"""Reading a provider webhook's raw body, bounded, before its signature is checked."""

from __future__ import annotations

from fastapi import Request

from app.errors import TooLarge

# Providers post batches well under this; anything bigger is not a provider.
MAX_WEBHOOK_BYTES = 5 * 1024 * 1024


async def raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise TooLarge(f"body: larger than {MAX_WEBHOOK_BYTES // 1024 // 1024} MB")
    raw = await request.body()
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise TooLarge(f"body: larger than {MAX_WEBHOOK_BYTES // 1024 // 1024} MB")
    return raw
