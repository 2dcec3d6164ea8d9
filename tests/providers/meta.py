"""A local stand-in for the Graph API's Custom Audience Users edge (Meta Marketing API).

`POST /{version}/{custom_audience_id}/users` (add) and `DELETE` on the same path (remove) with
the parameters `payload` (a JSON object: `schema` and `data`), `access_token` and optionally
`session` (a multi-batch upload: `session_id`, `batch_seq`, `last_batch_flag`), as form fields,
query parameters or a JSON body, the way Graph accepts them. At most 10,000 rows per request.
The payload is checked the way the Custom Audience Users
reference describes it: a single-key schema (`EMAIL_SHA256`, `PHONE_SHA256`, ...) with a flat
`data` list, or a multi-key schema (`["EMAIL", "PHONE", ...]`) with one row per person,
unknown values left blank. Hashed identifiers must be SHA-256 hex digests (64 lowercase hex
characters); others are counted as invalid entries, as Graph does.

Answers follow Graph: `200 {"audience_id", "session_id", "num_received", "num_invalid_entries",
"invalid_entry_samples"}`, or an error body `{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}` (Graph API "Handling Errors").

It also answers the ad sets' insights (Marketing API "Ads Insights"): `GET
/{version}/{ad_set_id}/insights` with `fields`, `time_increment=1` and `time_range={"since",
"until"}` gives one row per day with spend, `{"spend": "12.34", "account_currency": "EUR",
"date_start", "date_stop"}` (the spend a decimal string, a day without spend left out), `limit`
rows a page (25 unless asked) and `paging: {"cursors": {"before", "after"}, "next": <url>}`,
`next` only while rows remain; `expire_token()` makes every later call fail as an expired
session does (code 190, subcode 463).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import date
from typing import Any
from urllib.parse import urlencode

from .server import ProviderServer, RecordedRequest, Reply

TEST_ACCESS_TOKEN = "EAAB-test-token"
TEST_AUDIENCE_ID = "23850000000000001"

_ROUTE = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<audience>[^/]+)/users$")
_INSIGHTS = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<object>[^/]+)/insights$")
INSIGHTS_PAGE = 25
EXPIRED_SESSION = (
    "Error validating access token: Session has expired on Thursday, 03-Dec-26 02:00:00 PST. "
    "The current time is Thursday, 03-Dec-26 03:00:00 PST."
)
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
SINGLE_KEY_SCHEMAS = {"EMAIL_SHA256", "PHONE_SHA256", "MOBILE_ADVERTISER_ID", "UID"}
MULTI_KEYS = {
    "EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST",
    "ZIP", "MADID", "COUNTRY", "LOOKALIKE_VALUE",
}  # fmt: skip
# Keys Meta wants as SHA-256 of the normalized value; the others are sent as they are.
HASHED_KEYS = MULTI_KEYS - {"EXTERN_ID", "MADID", "LOOKALIKE_VALUE"} | {
    "EMAIL_SHA256",
    "PHONE_SHA256",
}
MAX_ENTRIES = 10000


def fbtrace_id() -> str:
    return secrets.token_urlsafe(8)


def graph_error(
    code: int,
    message: str,
    *,
    type: str = "OAuthException",
    subcode: int | None = None,
    is_transient: bool | None = None,
) -> dict[str, Any]:
    """A Graph API error body."""
    error: dict[str, Any] = {"message": message, "type": type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    error["fbtrace_id"] = fbtrace_id()
    return {"error": error}


def unsupported_request(method: str, object_id: str) -> Reply:
    """Graph's answer for an object that does not exist or does not take this method."""
    return Reply.json(
        400,
        graph_error(
            100,
            f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not "
            "exist, cannot be loaded due to missing permissions, or does not support this "
            "operation.",
            type="GraphMethodException",
            subcode=33,
        ),
    )


def _invalid_parameter(detail: str) -> Reply:
    return Reply.json(400, graph_error(100, f"(#100) {detail}"))


def _params(request: RecordedRequest) -> dict[str, Any]:
    """Graph reads parameters from the query string and from a form or JSON body."""
    params: dict[str, Any] = {name: values[-1] for name, values in request.query.items()}
    if isinstance(request.body, dict):
        params.update(request.body)
    return params


def _token(request: RecordedRequest, params: dict[str, Any]) -> str | None:
    authorization = request.header("authorization") or ""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value:
        return value.strip()
    token = params.get("access_token")
    return str(token) if token else None


class MetaGraphServer(ProviderServer):
    def __init__(
        self,
        access_token: str = TEST_ACCESS_TOKEN,
        audience_ids: set[str] | None = None,
    ) -> None:
        super().__init__()
        self.access_token = access_token
        # When given, only these audiences exist (and are shared with the token's user).
        self.audience_ids = audience_ids
        self.added: list[dict[str, Any]] = []
        self.removed: list[dict[str, Any]] = []
        # Who is in each audience now: rows of identifiers, as added and not removed since.
        self.members: dict[str, set[tuple[str, ...]]] = {}
        # What each ad set spent per day, as Ads Manager would report it: {day: spend}.
        self.spend: dict[str, dict[date, str]] = {}
        self.account_currency = "EUR"
        self.token_expired = False

    def reset(self) -> None:
        super().reset()
        with self._condition:
            self.added.clear()
            self.removed.clear()
            self.members.clear()
            self.spend.clear()
            self.account_currency = "EUR"
            self.token_expired = False

    def expire_token(self) -> None:
        """The token's session ends: every call from now on is refused with code 190."""
        with self._condition:
            self.token_expired = True

    def settings_overrides(self) -> dict[str, Any]:
        """Keyword arguments for `Settings(...)` that point the Meta channel here."""
        return {"meta_access_token": self.access_token, "meta_graph_url": self.base_url}

    def refused_token(self, request: RecordedRequest, params: dict[str, Any]) -> Reply | None:
        """Graph's answer to a missing or wrong access token, or None when it is ours."""
        token = _token(request, params)
        if self.token_expired and token == self.access_token:
            why = EXPIRED_SESSION
            return Reply.json(
                400,
                graph_error(190, EXPIRED_SESSION, subcode=463),
                {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{why}"'},
            )
        if not token:
            return Reply.json(
                400,
                graph_error(104, "An access token is required to request this resource."),
            )
        if token != self.access_token:
            return Reply.json(
                400,
                graph_error(190, "Invalid OAuth access token - Cannot parse access token"),
                {
                    "WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token" '
                    '"Invalid OAuth access token - Cannot parse access token"'
                },
            )
        return None

    def respond(self, request: RecordedRequest) -> Reply:
        route = _ROUTE.match(request.path)
        params = _params(request)
        if (refused := self.refused_token(request, params)) is not None:
            return refused
        insights = _INSIGHTS.match(request.path)
        if insights is not None:
            return self.insights(request, insights["object"], params)
        if route is None:
            return Reply.json(400, graph_error(2500, f"Unknown path components: {request.path}"))
        audience = route["audience"]
        if (
            request.method not in ("POST", "DELETE")
            or not audience.isdigit()
            or (self.audience_ids is not None and audience not in self.audience_ids)
        ):
            return unsupported_request(request.method, audience)
        payload = params.get("payload")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                return _invalid_parameter("param payload must be a JSON object")
        if not isinstance(payload, dict):
            return _invalid_parameter("The parameter payload is required")
        checked = check_payload(payload)
        if isinstance(checked, Reply):
            return checked
        received, invalid_count, invalid_samples = checked
        session = _session(params.get("session"))
        if isinstance(session, Reply):
            return session
        session_id = (
            str(session["session_id"])
            if session is not None
            else str(secrets.randbelow(9 * 10**17) + 10**17)
        )
        answer = {
            "audience_id": audience,
            "session_id": session_id,
            "num_received": received,
            "num_invalid_entries": invalid_count,
            "invalid_entry_samples": invalid_samples,
        }
        rows = {tuple(r) if isinstance(r, list) else (r,) for r in payload["data"]}
        change = {"audience_id": audience, "payload": payload}
        with self._condition:
            members = self.members.setdefault(audience, set())
            if request.method == "POST":
                self.added.append(change)
                members |= rows
            else:
                self.removed.append(change)
                members -= rows
        return Reply.json(200, answer)

    def insights(self, request: RecordedRequest, ad_set: str, params: dict[str, Any]) -> Reply:
        """An ad set's spend per day, a page at a time."""
        if request.method != "GET" or ad_set not in self.spend:
            return unsupported_request(request.method, ad_set)
        fields = str(params.get("fields", "")).split(",")
        if "spend" not in fields or "account_currency" not in fields:
            return _invalid_parameter("fields must name spend and account_currency")
        if str(params.get("time_increment")) != "1":
            return _invalid_parameter("time_increment must be 1 (a row per day)")
        try:
            window = json.loads(str(params["time_range"]))
            since = date.fromisoformat(window["since"])
            until = date.fromisoformat(window["until"])
        except (KeyError, TypeError, ValueError):
            return _invalid_parameter(
                "param time_range must be {'since':YYYY-MM-DD,'until':YYYY-MM-DD}"
            )
        if since > until:
            return _invalid_parameter("time_range: since must not be after until")
        with self._condition:
            days = sorted((d, v) for d, v in self.spend[ad_set].items() if since <= d <= until)
            currency = self.account_currency
        limit = int(params.get("limit", INSIGHTS_PAGE))
        start = int(base64.b64decode(params["after"])) if "after" in params else 0
        page = days[start : start + limit]
        rows = [
            {
                "spend": spent,
                "account_currency": currency,
                "date_start": day.isoformat(),
                "date_stop": day.isoformat(),
            }
            for day, spent in page
        ]
        cursors = {
            "before": base64.b64encode(str(start).encode()).decode(),
            "after": base64.b64encode(str(start + len(page)).encode()).decode(),
        }
        paging: dict[str, Any] = {"cursors": cursors}
        if start + len(page) < len(days):
            # Graph's next address repeats every parameter, the token included.
            query = {
                **{k: str(v) for k, v in params.items()},
                "access_token": str(_token(request, params)),
                "after": cursors["after"],
            }
            paging["next"] = f"{self.base_url}{request.path}?{urlencode(query)}"
        return Reply.json(200, {"data": rows, "paging": paging})


def throttled(code: int) -> tuple[int, dict[str, Any]]:
    """Graph's answer when a rate limit is reached: 4 (the app's), 17 (the user's), 80004
    (the ad account's ads-insights business use case)."""
    messages = {
        4: "(#4) Application request limit reached",
        17: "(#17) User request limit reached",
        80004: "(#80004) There have been too many calls to this ad-account. Wait a bit and try "
        "again.",
    }
    return 400, graph_error(code, messages[code])


def _session(value: Any) -> dict[str, Any] | Reply | None:
    """The `session` parameter of a batched upload, checked as Graph documents it."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return _invalid_parameter("param session must be a JSON object")
    if not isinstance(value, dict):
        return _invalid_parameter("param session must be a JSON object")
    session_id, seq = value.get("session_id"), value.get("batch_seq")
    if not isinstance(session_id, int) or isinstance(session_id, bool) or session_id <= 0:
        return _invalid_parameter("param session[session_id] must be a positive integer")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return _invalid_parameter("param session[batch_seq] must be an integer from 1")
    if not isinstance(value.get("last_batch_flag"), bool):
        return _invalid_parameter("param session[last_batch_flag] must be true or false")
    return value


def check_payload(payload: dict[str, Any]) -> Reply | tuple[int, int, dict[str, str]]:
    """(entries received, invalid entries, {invalid value: reason}) or the error to answer."""
    schema = payload.get("schema")
    data = payload.get("data")
    if not isinstance(data, list) or not data:
        return _invalid_parameter("param payload[data] must be a non-empty array")
    if len(data) > MAX_ENTRIES:
        return _invalid_parameter(f"Too many entries: at most {MAX_ENTRIES} per request")
    invalid: dict[str, str] = {}
    invalid_count = 0
    if isinstance(schema, str):
        if schema not in SINGLE_KEY_SCHEMAS:
            return _invalid_parameter(f"Invalid schema: {schema}")
        for entry in data:
            if not isinstance(entry, str):
                return _invalid_parameter(f"Invalid value in payload[data] for schema {schema}")
            if schema in HASHED_KEYS and not SHA256_HEX.match(entry):
                invalid_count += 1
                invalid[entry] = f"Invalid {schema} value: not a SHA-256 hex digest"
        return len(data), invalid_count, invalid
    if not isinstance(schema, list) or not schema:
        return _invalid_parameter("param payload[schema] must be a key type or an array of them")
    unknown = [key for key in schema if key not in MULTI_KEYS]
    if unknown or len(set(schema)) != len(schema):
        return _invalid_parameter(f"Invalid multi-key schema: {schema}")
    for row in data:
        if not isinstance(row, list) or len(row) != len(schema):
            return _invalid_parameter(
                "Number of keys in each row of payload[data] must match payload[schema]"
            )
        if all(value in ("", None) for value in row):
            invalid_count += 1
            invalid[json.dumps(row)] = "Empty row: every key is blank"
            continue
        bad = {
            str(value): f"Invalid {key} value: not a SHA-256 hex digest"
            for key, value in zip(schema, row, strict=True)
            if value not in ("", None)
            and key in HASHED_KEYS
            and not (isinstance(value, str) and SHA256_HEX.match(value))
        }
        if bad:
            invalid_count += 1
            invalid.update(bad)
    return len(data), invalid_count, invalid
