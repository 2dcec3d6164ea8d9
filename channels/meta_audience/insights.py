"""What Meta spent on the ad sets that show ads to Carillon's audiences: the Marketing API's
ad insights, one row per day.

`GET /{version}/{ad_set_id}/insights` with `fields=spend,account_currency`, `time_increment=1`
(a row per day) and `time_range={"since": "YYYY-MM-DD", "until": "YYYY-MM-DD"}` answers
`{"data": [{"spend": "12.34", "account_currency": "EUR", "date_start": ..., "date_stop": ...}],
"paging": {"cursors": {...}, "next": "<url>"}}`: the spend a decimal string in the ad account's
currency, days on the ad account's clock, a day with nothing spent left out, and `paging.next`
only while more rows follow. Errors are Graph's (`{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`): an expired token is code 190, throttling 4, 17 or 80004 (the
ads-insights business use case), read the same way as the audience uploads' errors.

The token goes in the `Authorization` header, which Graph accepts as well as the parameter, so
it never appears in a URL a log line prints; it is taken out of `paging.next` (Graph writes it
there) for the same reason.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from app.settings import get_settings
from channels.base import DaySpend, SpendUnreadable
from channels.meta_audience.adapter import graph_answer
from channels.meta_audience.settings import MetaSettings
from channels.settings import read

FIELDS = "spend,account_currency"
_CURRENCY = re.compile(r"[A-Z]{3}")


def read_spend(ad_set: str, since: date, until: date) -> list[DaySpend]:
    """The ad set's spend per day from `since` to `until`, every page of it."""
    own = read(MetaSettings)
    params: dict[str, str] | None = {
        "fields": FIELDS,
        "time_increment": "1",
        "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}),
    }
    url: str | None = f"{own.graph_base()}/{ad_set}/insights"
    days: list[DaySpend] = []
    token = own.token_for("the ad insights reader")
    with httpx.Client(
        timeout=get_settings().provider_timeout_seconds,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        while url is not None:
            try:
                response = client.get(url, params=params)
            except httpx.HTTPError as exc:
                raise SpendUnreadable(
                    f"Meta unreachable: {type(exc).__name__}",
                    transient=True,
                    retry_after_seconds=None,
                ) from None
            body = graph_answer(response)
            if not isinstance(body, dict):
                raise SpendUnreadable(
                    body.error or f"Meta HTTP {response.status_code}",
                    transient=body.transient,
                    retry_after_seconds=body.retry_after_seconds,
                )
            days += [_day(row) for row in _rows(body)]
            # The next page's address carries every parameter (httpx would replace them).
            url, params = _next(body), None
    return days


def _rows(body: dict[str, Any]) -> list[Any]:
    rows = body.get("data")
    if not isinstance(rows, list):
        raise _unreadable(f"no data list in {json.dumps(body)[:200]}")
    return rows


def _next(body: dict[str, Any]) -> str | None:
    paging = body.get("paging")
    following = paging.get("next") if isinstance(paging, dict) else None
    if not isinstance(following, str) or not following:
        return None
    parts = urlsplit(following)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "access_token"
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _day(row: Any) -> DaySpend:
    if not isinstance(row, dict):
        raise _unreadable(f"row {row!r}")
    try:
        start = date.fromisoformat(str(row["date_start"]))
        stop = date.fromisoformat(str(row["date_stop"]))
        amount = float(str(row["spend"]))
        currency = str(row["account_currency"])
    except (KeyError, ValueError):
        raise _unreadable(f"row {json.dumps(row)[:200]}") from None
    if start != stop or not _CURRENCY.fullmatch(currency) or not 0 <= amount < float("inf"):
        raise _unreadable(f"row {json.dumps(row)[:200]}")
    return DaySpend(start, amount, currency)


def _unreadable(what: str) -> SpendUnreadable:
    """An answer not shaped as documented: asking again gives the same, so not transient."""
    return SpendUnreadable(
        f"Meta's insights answer is not one day's spend: {what}",
        transient=False,
        retry_after_seconds=None,
    )
