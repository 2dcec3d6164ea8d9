"""A local stand-in for SendGrid's v3 Mail Send endpoint.

`POST /v3/mail/send` with `Authorization: Bearer <api key>` and a JSON body. The body is
checked against the request schema of SendGrid's own OpenAPI document (`tsg_mail_v3.json`,
from twilio/sendgrid-oai) plus the rules the schema cannot express (at least one
personalization with a recipient, content unless a template is used, a subject). Refusals use
SendGrid's error body, `{"errors": [{"message", "field", "help"}]}`; acceptance is `202` with
an empty body and an `X-Message-Id` header, as documented in the Mail Send API reference.
"""

from __future__ import annotations

import copy
import secrets
from functools import cache
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from .server import ProviderServer, RecordedRequest, Reply, load_spec

SPEC_FILE = "tsg_mail_v3.json"
MAIL_SEND_PATH = "/v3/mail/send"
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.{}"

# SendGrid's own wording for the rules checked here (Mail Send errors reference).
INVALID_GRANT = "The provided authorization grant is invalid, expired, or revoked"
AUTHORIZATION_REQUIRED = "authorization required"
REQUIRED_MESSAGES = {
    "personalizations": (
        "The personalizations field is required and must have at least one personalization."
    ),
    "from": (
        "The from object must be provided for every email send. It is an object that requires "
        "the email parameter, but may also contain a name parameter."
    ),
    "content": (
        "Unless a valid template_id is provided, the content parameter is required. There must "
        "be at least one defined content block. We typically suggest both text/plain and "
        "text/html blocks are included, but only one block is required."
    ),
    "subject": (
        "The subject is required. You can get around this requirement if you use a template "
        "with a subject defined or if every personalization has a subject defined."
    ),
    "to": (
        "The to array is required for all personalization objects, and must have at least one "
        "email object with a valid email address."
    ),
}


def sendgrid_error(
    message: str, field: str | None = None, help: str | None = None
) -> dict[str, Any]:
    """One entry of SendGrid's `errors` array."""
    return {"message": message, "field": field, "help": help}


def error_body(*errors: dict[str, Any]) -> dict[str, Any]:
    return {"errors": list(errors)}


@cache
def mail_send_schema() -> dict[str, Any]:
    """The Mail Send request schema, with the spec's component schemas attached for `$ref`."""
    spec = load_spec(SPEC_FILE)
    body_ref = spec["paths"][MAIL_SEND_PATH]["post"]["requestBody"]
    if "$ref" in body_ref:
        body_ref = spec["components"]["requestBodies"][body_ref["$ref"].rsplit("/", 1)[-1]]
    schema = copy.deepcopy(body_ref["content"]["application/json"]["schema"])
    # Known quirk of the published spec: it types the top-level `custom_args` as a string,
    # while the API and the official libraries send an object of string values (the
    # personalization-level `custom_args` is an object there too). Patch that one property.
    schema["properties"]["custom_args"] = {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": schema["properties"]["custom_args"].get("description", ""),
    }
    schema["components"] = spec["components"]
    return schema


@cache
def mail_send_validator() -> Draft4Validator:
    # OpenAPI 3.0 schema objects follow JSON Schema draft 4/5 semantics.
    return Draft4Validator(mail_send_schema(), format_checker=Draft4Validator.FORMAT_CHECKER)


def _field(error: ValidationError) -> str | None:
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path.append(str(missing[0]))
    return ".".join(path) or None


def mail_send_errors(body: Any) -> list[dict[str, Any]]:
    """Everything SendGrid would refuse in this body, in SendGrid's error format."""
    if not isinstance(body, dict):
        return [sendgrid_error("Bad Request", None, None)]
    errors: list[dict[str, Any]] = []
    for error in sorted(mail_send_validator().iter_errors(body), key=lambda e: list(e.path)):
        field = _field(error)
        message = REQUIRED_MESSAGES.get(field or "", error.message)
        errors.append(sendgrid_error(message, field, HELP.format(field or "")))
    if errors:
        return errors
    personalizations = body["personalizations"]
    if not personalizations:
        field = "personalizations"
        errors.append(sendgrid_error(REQUIRED_MESSAGES[field], field, HELP.format(field)))
    for index, personalization in enumerate(personalizations):
        if not personalization.get("to"):
            field = f"personalizations.{index}.to"
            errors.append(sendgrid_error(REQUIRED_MESSAGES["to"], field, HELP.format(field)))
    uses_template = bool(body.get("template_id"))
    if not uses_template and not body.get("content"):
        errors.append(
            sendgrid_error(REQUIRED_MESSAGES["content"], "content", HELP.format("content"))
        )
    every_has_subject = bool(personalizations) and all(p.get("subject") for p in personalizations)
    if not uses_template and not body.get("subject") and not every_has_subject:
        errors.append(
            sendgrid_error(REQUIRED_MESSAGES["subject"], "subject", HELP.format("subject"))
        )
    return errors


def new_message_id() -> str:
    """Shaped like SendGrid's X-Message-Id (22 URL-safe characters)."""
    return secrets.token_urlsafe(16)[:22]


class SendGridServer(ProviderServer):
    def __init__(self, api_key: str = "SG.test") -> None:
        super().__init__()
        self.api_key = api_key
        mail_send_validator()  # fail at construction, not mid-test, if the spec is missing
        self.accepted: list[tuple[str, dict[str, Any]]] = []

    def settings_overrides(self) -> dict[str, Any]:
        """Keyword arguments for `Settings(...)` that point the e-mail channel here."""
        return {"sendgrid_api_key": self.api_key, "sendgrid_base_url": self.base_url}

    def respond(self, request: RecordedRequest) -> Reply:
        if request.path != MAIL_SEND_PATH:
            return Reply.json(404, error_body(sendgrid_error("not found")))
        if request.method != "POST":
            return Reply.json(405, error_body(sendgrid_error("method not allowed")))
        authorization = request.header("authorization")
        if not authorization:
            return Reply.json(401, error_body(sendgrid_error(AUTHORIZATION_REQUIRED)))
        if authorization != f"Bearer {self.api_key}":
            return Reply.json(401, error_body(sendgrid_error(INVALID_GRANT)))
        errors = mail_send_errors(request.body)
        if errors:
            return Reply.json(400, error_body(*errors))
        message_id = new_message_id()
        with self._condition:
            self.accepted.append((message_id, request.body))
        return Reply(202, b"", {"X-Message-Id": message_id})

    def reset(self) -> None:
        super().reset()
        with self._condition:
            self.accepted.clear()
