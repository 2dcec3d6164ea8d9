"""A local stand-in for Twilio's Messages resource (REST API 2010-04-01).

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP basic auth (`AccountSid:AuthToken`),
a form-encoded body checked against the `CreateMessageRequest` schema of Twilio's own OpenAPI
document (`twilio_api_v2010.json`, from twilio/twilio-oai): known parameter names and types,
`To` required, a sender (`From` or `MessagingServiceSid`) and a body. Refusals use Twilio's
error body `{"code", "message", "more_info", "status"}` and its error codes (20003
Authenticate, 20404 not found, 21211 invalid 'To' number, 21602/21603/21604 missing body,
sender, recipient, 21610 unsubscribed recipient); acceptance is `201` with the Message resource
as the spec describes it. Numbers put in `unsubscribed` (people who replied STOP) or
`unreachable` (well-formed but not in service) are refused the way Twilio refuses them.
`latency_seconds` holds every answer that long, as the real API's round trip does (benchmarks).
"""

from __future__ import annotations

import copy
import re
import secrets
from base64 import b64decode
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft4Validator

from .server import (
    ProviderServer,
    RecordedRequest,
    Reply,
    load_spec,
    openapi_schema,
)

SPEC_FILE = "twilio_api_v2010.json"
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
_MESSAGES_ROUTE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
# E.164 (the form Twilio asks for), optionally behind a channel prefix such as `whatsapp:`.
E164 = re.compile(r"^(?:[a-z]+:)?\+[1-9]\d{1,14}$")
_SHORT_CODE = re.compile(r"^\d{3,6}$")
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
MAX_BODY_CHARS = 1600

TEST_ACCOUNT_SID = "AC" + "0" * 31 + "1"
TEST_AUTH_TOKEN = "test-auth-token"
TEST_FROM_NUMBER = "+15005550006"
TEST_MESSAGING_SERVICE_SID = "MG" + "0" * 31 + "1"


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's JSON error body for the 2010-04-01 API."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def error_reply(status: int, code: int, message: str) -> Reply:
    return Reply.json(status, twilio_error(status, code, message))


@cache
def _spec() -> dict[str, Any]:
    return load_spec(SPEC_FILE)


@cache
def create_message_schema() -> dict[str, Any]:
    """The `CreateMessageRequest` form schema, closed to unknown parameter names."""
    spec = _spec()
    operation = spec["paths"][MESSAGES_PATH]["post"]
    schema = copy.deepcopy(
        operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    )
    # A misspelt parameter is silently ignored by Twilio; here it fails, so an adapter bug
    # (say `from` for `From`) cannot pass unnoticed.
    schema["additionalProperties"] = False
    schema = openapi_schema(schema)
    schema["components"] = {"schemas": openapi_schema(spec["components"]["schemas"])}
    return dict(schema)


@cache
def create_message_validator() -> Draft4Validator:
    return Draft4Validator(create_message_schema())


@cache
def message_resource_validator() -> Draft4Validator:
    """The 201 answer's schema, to check the stand-in answers what the spec promises."""
    spec = _spec()
    schema = openapi_schema(spec["components"]["schemas"]["api.v2010.account.message"])
    schema["components"] = {"schemas": openapi_schema(spec["components"]["schemas"])}
    return Draft4Validator(schema)


def _property_type(name: str) -> str | None:
    prop = create_message_schema()["properties"].get(name)
    if not isinstance(prop, dict):
        return None
    if "$ref" in prop:
        target = prop["$ref"].rsplit("/", 1)[-1]
        prop = create_message_schema()["components"]["schemas"].get(target, {})
    kind = prop.get("type")
    return kind if isinstance(kind, str) else None


def coerce_form(form: dict[str, Any]) -> dict[str, Any]:
    """Form values are strings; give them the schema's types so the schema can judge them."""
    typed: dict[str, Any] = {}
    for name, value in form.items():
        kind = _property_type(name)
        values = value if isinstance(value, list) else [value]
        if kind == "array":
            typed[name] = values
            continue
        single = values[-1]
        if kind == "boolean" and single.lower() in ("true", "false"):
            typed[name] = single.lower() == "true"
        elif kind == "integer" and re.fullmatch(r"-?\d+", single):
            typed[name] = int(single)
        elif kind == "number":
            try:
                typed[name] = float(single)
            except ValueError:
                typed[name] = single
        else:
            typed[name] = single
    return typed


def _segments(body: str) -> int:
    if not body:
        return 0
    single, multi = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


class TwilioServer(ProviderServer):
    def __init__(
        self,
        account_sid: str = TEST_ACCOUNT_SID,
        auth_token: str = TEST_AUTH_TOKEN,
        from_numbers: set[str] | None = None,
        latency_seconds: float = 0.0,
    ) -> None:
        super().__init__()
        self.latency_seconds = latency_seconds
        self.account_sid = account_sid
        self.auth_token = auth_token
        # When given, only these senders belong to the account (as on a real account).
        self.from_numbers = from_numbers
        create_message_validator()  # fail at construction if the spec is missing
        self.messages: list[dict[str, Any]] = []
        self.unsubscribed: set[str] = set()
        self.unreachable: set[str] = set()

    def reset(self) -> None:
        super().reset()
        with self._condition:
            self.messages.clear()
            self.unsubscribed.clear()
            self.unreachable.clear()

    def settings_overrides(self, messaging_service_sid: str | None = None) -> dict[str, Any]:
        """Keyword arguments for `Settings(...)` that point the SMS channel here."""
        sender = next(iter(sorted(self.from_numbers)), None) if self.from_numbers else None
        return {
            "twilio_account_sid": self.account_sid,
            "twilio_auth_token": self.auth_token,
            "twilio_from_number": None if messaging_service_sid else sender or TEST_FROM_NUMBER,
            "twilio_messaging_service_sid": messaging_service_sid,
            "twilio_base_url": self.base_url,
        }

    def _authenticated(self, request: RecordedRequest) -> bool:
        authorization = request.header("authorization") or ""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = b64decode(encoded).decode("utf-8").partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    def respond(self, request: RecordedRequest) -> Reply:
        if self.latency_seconds > 0:
            self._stopping.wait(self.latency_seconds)
        route = _MESSAGES_ROUTE.match(request.path)
        if not self._authenticated(request):
            return error_reply(401, 20003, "Authenticate")
        if route is None or route["sid"] != self.account_sid:
            return error_reply(404, 20404, f"The requested resource {request.path} was not found")
        if request.method != "POST":
            return error_reply(405, 20004, "Method not allowed")
        form = request.body if isinstance(request.body, dict) else {}
        params = coerce_form(form)
        if not params.get("To"):
            return error_reply(400, 21604, "A 'To' phone number is required.")
        problems = sorted(create_message_validator().iter_errors(params), key=str)
        if problems:
            first = problems[0]
            where = ".".join(str(p) for p in first.absolute_path) or "request"
            return error_reply(400, 20001, f"Invalid parameter {where}: {first.message}")
        sender, service = params.get("From"), params.get("MessagingServiceSid")
        if not sender and not service:
            return error_reply(400, 21603, "A 'From' phone number is required.")
        if not params.get("Body") and not params.get("MediaUrl") and not params.get("ContentSid"):
            return error_reply(400, 21602, "Message body is required.")
        to = params["To"]
        if not E164.match(to) or to in self.unreachable:
            return error_reply(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.unsubscribed:
            return error_reply(400, 21610, "Attempt to send to unsubscribed recipient")
        if sender and not (
            E164.match(sender) or _SHORT_CODE.match(sender) or _ALPHANUMERIC_SENDER.match(sender)
        ):
            return error_reply(
                400,
                21212,
                f"The 'From' number {sender} is not a valid phone number, shortcode, "
                "or alphanumeric sender ID.",
            )
        if sender and self.from_numbers is not None and sender not in self.from_numbers:
            return error_reply(
                400,
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        callback = params.get("StatusCallback")
        if callback is not None and urlsplit(str(callback)).scheme not in ("http", "https"):
            return error_reply(400, 21609, f"Invalid StatusCallback URL: {callback}")
        body = str(params.get("Body") or "")
        if len(body) > MAX_BODY_CHARS:
            return error_reply(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        resource = self._message_resource(params)
        with self._condition:
            self.messages.append(resource)
        return Reply.json(201, resource)

    def _message_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=False)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"
        body = str(params.get("Body") or "")
        sender = params.get("From")
        service = params.get("MessagingServiceSid")
        media = params.get("MediaUrl") or []
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            # A Messaging Service picks the sender later: `from` is null and the message
            # is `accepted` rather than `queued` until it does.
            "from": sender,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": str(_segments(body)) if sender else "0",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if sender else "accepted",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": params["To"],
            "uri": uri,
        }
