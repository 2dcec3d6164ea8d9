"""Adding people to and removing them from a Meta Custom Audience (Marketing API, Custom
Audience Users edge).

Meta matches people on SHA-256 hashes of normalized identifiers, so only hashes ever leave
Carillon: the raw e-mail address or phone number is never part of the request. Normalization
follows Meta's "Hashing and Normalizing Data" rules for customer-file custom audiences; a
value normalized differently from Meta's side hashes differently and simply never matches.

`POST /{version}/{audience_id}/users` adds, `DELETE` on the same path removes; both take the
form fields `payload` (JSON) and `access_token`. The payload always uses the multi-key form,
`schema: ["EMAIL", "PHONE"]` with one row `[email_hash, phone_hash]` per person and a blank
where one is unknown, so every batch of a bulk update has the same shape. (`EMAIL_SHA256` and
`PHONE_SHA256` are Meta's single-key schema names; in a multi-key schema the keys are `EMAIL`
and `PHONE`, as in Meta's reference and its own Business SDK.) Meta takes at most 10,000 rows
per request: more are split into batches of one upload session (`session_id`, `batch_seq`,
`last_batch_flag`), and a failed batch fails the whole update, which is safe to repeat since
Meta ignores rows it already has.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from app.settings import Settings
from channels._retry import is_transient_status, retry_after_seconds
from channels.base import Message, Outcome, Recipient, SendResult
from channels.meta_audience.settings import MetaSettings

# Graph error codes whose documented recovery is "wait and retry" (Graph API "Handling
# Errors" guide and Marketing API "Rate Limiting"): unknown/service errors, app, user, page
# and ad-account throttling, temporary blocks, and the business-use-case limits 80000-80014
# (80003 is the custom-audience one).
TRANSIENT_GRAPH_CODES = frozenset({1, 2, 4, 17, 32, 341, 368, 613})
BUSINESS_USE_CASE_CODES = range(80000, 80015)

MAX_ROWS_PER_REQUEST = 10_000
SCHEMA = ("EMAIL", "PHONE")
# The content's `operation` → the HTTP method on the users edge.
OPERATIONS = {"add": "POST", "remove": "DELETE"}

_NOT_DIGITS = re.compile(r"\D")
# "+33 (0)6 12 34 56 78": the bracketed trunk prefix is dialled nationally only.
_TRUNK_PREFIX = re.compile(r"\(\s*0\s*\)")
_AUDIENCE_ID = re.compile(r"\d{1,32}")


def normalize_email(email: str) -> str:
    """Meta: trim leading and trailing whitespace, lower-case."""
    return email.strip().lower()


def normalize_phone(phone: str) -> str:
    """Meta: digits only, country code included, no symbols, letters or leading zeros.

    "+33 6 12 34 56 78", "+33 (0)6 12 34 56 78" and "0033612345678" all give "33612345678".
    A national number without its country code cannot be repaired here: profiles store E.164.
    """
    return _NOT_DIGITS.sub("", _TRUNK_PREFIX.sub("", phone)).lstrip("0")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def hashed_row(email: str | None, phone: str | None) -> list[str] | None:
    """One person's `[email_hash, phone_hash]` ("" where unknown), or None when there is
    nothing to match on."""
    email_norm = normalize_email(email) if email else ""
    phone_norm = normalize_phone(phone) if phone else ""
    if not email_norm and not phone_norm:
        return None
    return [
        sha256_hex(email_norm) if email_norm else "",
        sha256_hex(phone_norm) if phone_norm else "",
    ]


def audience_payload(rows: Sequence[list[str]]) -> dict[str, Any]:
    """The `payload` parameter for rows of hashes. `is_raw` marks each key as a single
    identifier (Meta's multi-key form, as its Business SDK sends it); the values are hashed."""
    return {"schema": list(SCHEMA), "is_raw": True, "data": list(rows)}


def batches(
    rows: Sequence[list[str]], size: int = MAX_ROWS_PER_REQUEST
) -> list[Sequence[list[str]]]:
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    return [rows[i : i + size] for i in range(0, len(rows), size)]


class MetaCustomAudience:
    name = "meta_audience"

    def __init__(
        self, settings: Settings, own: MetaSettings, client: httpx.Client | None = None
    ) -> None:
        self._token = own.token_for("MetaCustomAudience")
        self._base = own.graph_base()
        self._client = client or httpx.Client(timeout=settings.provider_timeout_seconds)

    def close(self) -> None:
        self._client.close()

    # Meta's own limit per request; more rows than this are sent as one upload session.
    batch_limit = MAX_ROWS_PER_REQUEST

    def send(self, message: Message) -> SendResult:
        return self.update(*_target(message), [message.recipient])

    def batch_key(self, message: Message) -> tuple[str, str]:
        """People added to (or removed from) one audience go in one request."""
        return _target(message)

    def send_many(self, messages: Sequence[Message]) -> list[SendResult]:
        """One request for everyone in `messages` (one audience, one operation: their batch
        key), each delivery answered from it: a row Meta names invalid fails its own
        delivery, an error of the request fails them all alike."""
        audience_id, operation = _target(messages[0])
        refused = _refusal(audience_id, operation)
        if refused is not None:
            return [refused] * len(messages)
        rows = [hashed_row(m.recipient.email, m.recipient.phone) for m in messages]
        answers = self._upload(audience_id, operation, [row for row in rows if row is not None])
        if isinstance(answers, SendResult):
            return [
                answers if row is not None else _nobody(m)
                for m, row in zip(messages, rows, strict=True)
            ]
        return _per_row(messages, rows, answers)

    def update(self, audience_id: str, operation: str, people: Sequence[Recipient]) -> SendResult:
        """Add (`operation="add"`) or remove people, in as many requests as Meta's per-request
        limit needs. People with neither e-mail nor phone cannot be matched and are left out;
        with nobody left, nothing is sent."""
        refused = _refusal(audience_id, operation)
        if refused is not None:
            return refused
        rows = [row for p in people if (row := hashed_row(p.email, p.phone)) is not None]
        if not rows:
            who = people[0].profile_id if len(people) == 1 else f"none of {len(people)} people"
            return SendResult(Outcome.FAILED, error=f"recipient {who} has neither e-mail nor phone")
        answers = self._upload(audience_id, operation, rows)
        if isinstance(answers, SendResult):
            return answers
        for seq, (status, body) in enumerate(answers, start=1):
            failed = _all_invalid(status, body)
            if failed is not None:
                return _in_part(failed, seq, len(answers))
        status, body = answers[-1]
        return SendResult(Outcome.SENT, provider_message_id=_upload_id(body), status_code=status)

    def _upload(
        self, audience_id: str, operation: str, rows: Sequence[list[str]]
    ) -> list[Answered] | SendResult:
        """Graph's answer to each request the rows take, or the first failed one's result."""
        if not rows:
            return []
        parts = batches(rows)
        session_id = secrets.randbelow(2**63 - 1) + 1
        answers: list[Answered] = []
        for seq, batch in enumerate(parts, start=1):
            form = {"payload": json.dumps(audience_payload(batch)), "access_token": self._token}
            if len(parts) > 1:
                form["session"] = json.dumps(
                    {
                        "session_id": session_id,
                        "batch_seq": seq,
                        "last_batch_flag": seq == len(parts),
                        "estimated_num_total": len(rows),
                    }
                )
            url = f"{self._base}/{audience_id}/users"
            answer = self._call(OPERATIONS[operation], url, form)
            if isinstance(answer, SendResult):
                return _in_part(answer, seq, len(parts))
            answers.append(answer)
        return answers

    def _call(self, method: str, url: str, form: dict[str, str]) -> Answered | SendResult:
        try:
            response = self._client.request(method, url, data=form)
        except httpx.TransportError as exc:
            # Connection refused, DNS, timeouts, a dropped connection: worth another try.
            return SendResult(
                Outcome.FAILED, error=f"Meta unreachable: {type(exc).__name__}", transient=True
            )
        body = graph_answer(response)
        return body if isinstance(body, SendResult) else (response.status_code, body)


# A request's HTTP status and Graph's JSON answer to it.
Answered = tuple[int, dict[str, Any]]


def _target(message: Message) -> tuple[str, str]:
    """The audience and the operation a message asks for."""
    audience_id = str(message.content.get("audience_id") or "").strip()
    return audience_id, str(message.content.get("operation") or "add")


def _refusal(audience_id: str, operation: str) -> SendResult | None:
    if not _AUDIENCE_ID.fullmatch(audience_id):
        return SendResult(
            Outcome.FAILED,
            error=f"audience_id {audience_id!r} is not a Meta custom audience id (digits)",
        )
    if operation not in OPERATIONS:
        return SendResult(
            Outcome.FAILED,
            error=f"operation {operation!r} is not one of: {', '.join(OPERATIONS)}",
        )
    return None


def _nobody(message: Message) -> SendResult:
    who = message.recipient.profile_id
    return SendResult(Outcome.FAILED, error=f"recipient {who} has neither e-mail nor phone")


def _in_part(result: SendResult, seq: int, parts: int) -> SendResult:
    """A failure of one request of an upload session says which."""
    return replace(result, error=f"batch {seq} of {parts}: {result.error}") if parts > 1 else result


def _all_invalid(status: int, body: dict[str, Any]) -> SendResult | None:
    received = _int(body.get("num_received"))
    invalid = _int(body.get("num_invalid_entries"))
    if invalid and received is not None and invalid >= received:
        samples = body.get("invalid_entry_samples") or {}
        detail = f" (samples: {json.dumps(samples)})" if samples else ""
        return SendResult(
            Outcome.FAILED,
            error=f"Meta rejected all {received} entries as invalid{detail}",
            status_code=status,
        )
    return None


def _upload_id(body: dict[str, Any]) -> str | None:
    session_id = body.get("session_id")
    provider_id = session_id if session_id not in (None, "") else body.get("audience_id")
    return str(provider_id) if provider_id is not None else None


def _per_row(
    messages: Sequence[Message], rows: Sequence[list[str] | None], answers: Sequence[Answered]
) -> list[SendResult]:
    """Each delivery's result from Meta's answers to the request(s) that carried its row.
    Meta names invalid entries by value (`invalid_entry_samples`: value → reason): a row with
    a named value fails alone, permanently. When Meta counts more invalid entries than it
    names, the rows it did not name cannot be told apart from the rejected ones: they fail as
    transient, and their retry (adding a person twice changes nothing at Meta) answers them."""
    samples: dict[str, str] = {}
    invalid = 0
    for _, body in answers:
        named = body.get("invalid_entry_samples")
        if isinstance(named, dict):
            samples.update({str(k): str(v) for k, v in named.items()})
        invalid += _int(body.get("num_invalid_entries")) or 0
    status, last = answers[-1] if answers else (None, {})
    rejected = {
        i: reasons
        for i, row in enumerate(rows)
        if row is not None
        and (reasons := [samples[v] for v in (*row, json.dumps(row)) if v and v in samples])
    }
    unnamed = invalid - len(rejected)
    results = []
    for i, (message, row) in enumerate(zip(messages, rows, strict=True)):
        if row is None:
            results.append(_nobody(message))
        elif i in rejected:
            why = "; ".join(dict.fromkeys(rejected[i]))
            error = f"Meta rejected this entry as invalid: {why}"
            results.append(SendResult(Outcome.FAILED, error=error, status_code=status))
        elif unnamed > 0:
            error = (
                f"Meta rejected {invalid} of {sum(r is not None for r in rows)} entries and "
                f"named {len(rejected)}: this one may be among the others"
            )
            results.append(
                SendResult(Outcome.FAILED, error=error, status_code=status, transient=True)
            )
        else:
            results.append(
                SendResult(Outcome.SENT, provider_message_id=_upload_id(last), status_code=status)
            )
    return results


def graph_answer(response: httpx.Response) -> dict[str, Any] | SendResult:
    """A Graph API answer's JSON object, or the failed result it amounts to: Graph's error
    (transient or not, by its code), or an unreadable body (transient)."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if status >= 400 or (isinstance(body, dict) and "error" in body):
        return _from_graph_error(response, body)
    if not isinstance(body, dict):
        return SendResult(
            Outcome.FAILED,
            error=f"Meta answered HTTP {status} with an unreadable body",
            status_code=status,
            transient=True,
        )
    return body


def _from_graph_error(response: httpx.Response, body: Any) -> SendResult:
    status = response.status_code
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        text = response.text.strip()[:500] or response.reason_phrase
        return SendResult(
            Outcome.FAILED,
            error=f"Meta HTTP {status}: {text}",
            status_code=status,
            transient=is_transient_status(status),
            retry_after_seconds=retry_after_seconds(response.headers.get("Retry-After")),
        )
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    words = str(error.get("message") or "").strip()
    user_msg = str(error.get("error_user_msg") or "").strip()
    if user_msg and user_msg not in words:
        words = f"{words} ({user_msg})" if words else user_msg
    label = f"{code}" if subcode is None else f"{code}/{subcode}"
    transient = (
        is_transient_status(status)
        or code in TRANSIENT_GRAPH_CODES
        or (code is not None and code in BUSINESS_USE_CASE_CODES)
        or error.get("is_transient") is True
    )
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if retry_after is None and transient:
        retry_after = _regain_access_seconds(response.headers)
    return SendResult(
        Outcome.FAILED,
        error=f"{label}: {words}" if words else label,
        status_code=status,
        transient=transient,
        retry_after_seconds=retry_after,
    )


def _regain_access_seconds(headers: httpx.Headers) -> float | None:
    """Meta's throttling headers say when calls will be accepted again (Graph API "Rate
    Limiting": `estimated_time_to_regain_access` in minutes, `reset_time_duration` in
    seconds)."""
    longest = 0.0
    for name in ("X-Business-Use-Case-Usage", "X-Ad-Account-Usage", "X-App-Usage"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        longest = max([longest, *_regain_seconds(usage)])
    return longest or None


def _regain_seconds(node: Any) -> list[float]:
    found: list[float] = []
    if isinstance(node, dict):
        for key, value in node.items():
            number = _float(value)
            if key == "estimated_time_to_regain_access" and number:
                found.append(number * 60.0)
            elif key == "reset_time_duration" and number:
                found.append(number)
            else:
                found.extend(_regain_seconds(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_regain_seconds(item))
    return found


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
