"""What a webhook sends: an http(s) URL and a JSON object, both checked once rendered.

The body is written as one template whose rendering must be a JSON object; values taken from
data go through `| tojson`, which quotes and escapes them, so a customer's name holding a
quote cannot break the JSON or add keys. The rendered body is parsed and written back compact
(duplicate keys, NaN and infinities refused): what is stored on the delivery is exactly what is
signed and posted, byte for byte.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from channels.base import ContentRefused
from channels.webhook.addresses import canonical_host

SCHEMES = ("http", "https")
MAX_URL_CHARS = 2048
# Standard Webhooks asks for small payloads (under 20 kB); a receiver need not take more.
MAX_BODY_BYTES = 64 * 1024
_JSON_KINDS = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}
TOJSON_HINT = (
    'write values from data with | tojson, e.g. {"order": {{ event.properties | tojson }}}'
)


@dataclass(frozen=True)
class Endpoint:
    """A checked URL: `host` is canonical (the key of its secret, compared with the allowed
    hosts), `netloc` the Host header."""

    url: httpx.URL
    host: str

    @property
    def netloc(self) -> bytes:
        return self.url.netloc


def endpoint(text: Any) -> Endpoint:
    """The URL to post to; ContentRefused says why it cannot be one."""
    written = str(text or "").strip()
    if not written:
        raise ContentRefused("the webhook URL is empty")
    if len(written) > MAX_URL_CHARS:
        raise ContentRefused(f"the webhook URL is longer than {MAX_URL_CHARS} characters")
    try:
        url = httpx.URL(written)
    except httpx.InvalidURL as exc:
        raise ContentRefused(f"the webhook URL {written!r} cannot be read: {exc}") from None
    if url.scheme not in SCHEMES:
        raise ContentRefused(
            f"the webhook URL {written!r} is not an http or https URL; only those are posted to"
        )
    if url.userinfo:
        raise ContentRefused(
            "the webhook URL carries a user name or password; the signature authenticates "
            "Carillon, leave credentials out of the URL"
        )
    try:
        host = canonical_host(url.raw_host.decode("ascii"))
    except ValueError:
        raise ContentRefused(f"the webhook URL {written!r} has no valid host") from None
    return Endpoint(url.copy_with(fragment=None), host)


def canonical_body(text: Any) -> bytes:
    """The body as sent: the rendered JSON object, compact, in UTF-8."""
    try:
        value = json.loads(
            str(text or ""),
            object_pairs_hook=_object,
            parse_constant=_no_constant,
            parse_float=_finite,
        )
    except json.JSONDecodeError as exc:
        raise ContentRefused(
            f"the webhook body is not JSON ({exc.msg}, line {exc.lineno} column {exc.colno}); "
            + TOJSON_HINT
        ) from None
    except RecursionError:
        raise ContentRefused("the webhook body is nested too deeply") from None
    if not isinstance(value, dict):
        raise ContentRefused(
            f"the webhook body must be a JSON object {{...}}, not {_JSON_KINDS[type(value)]}"
        )
    try:
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        raise ContentRefused("the webhook body holds an unpaired UTF-16 surrogate") from None
    if len(body) > MAX_BODY_BYTES:
        raise ContentRefused(
            f"the webhook body is {len(body):,} bytes; at most {MAX_BODY_BYTES:,} are sent "
            "(send identifiers and let the receiver fetch the rest)"
        )
    return body


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A key written twice is what a value spliced in without `| tojson` looks like; receivers
    would keep either one."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ContentRefused(f"the webhook body has the key {key!r} twice; " + TOJSON_HINT)
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise ContentRefused(f"the webhook body holds {name}, which JSON does not allow")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ContentRefused(f"the webhook body holds the number {text}, too large for JSON")
    return value


def finish(content: dict[str, str]) -> dict[str, str]:
    """Checked at render time, so a bad URL or body fails the delivery with its reason and
    nothing is posted."""
    url = endpoint(content["url"]).url
    return {**content, "url": str(url), "body": canonical_body(content["body"]).decode("utf-8")}


def describe(content: Mapping[str, str]) -> str:
    size = len(content["body"].encode("utf-8"))
    return f"POST {content['url']}, {size:,} bytes of JSON"
