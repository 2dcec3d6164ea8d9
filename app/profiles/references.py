"""How people are named in the profile API and `carillon profiles`: a userId as is, or one of
`user:…`, `anonymous:…`, `email:…`, `phone:…` (the identities identity resolution keeps).

An id without one of these prefixes is a userId, colons and all (shops use `shop:42`), so
`user:` is there for a userId that itself starts with a known prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.profiles import repository as repo
from app.profiles.models import ANONYMOUS_ID, USER_ID, Profile

PREFIXES = {"user": USER_ID, "anonymous": ANONYMOUS_ID, "email": "email", "phone": "phone"}
ACCEPTED = "a userId, or user:<userId>, anonymous:<anonymousId>, email:<address>, phone:<E.164>"
# The identity column's width: a longer value names nobody.
MAX_LENGTH = 255


class InvalidReference(ValueError):
    """The id cannot name anybody: answered 400 without a lookup."""


@dataclass(frozen=True)
class Reference:
    kind: str
    value: str


def parse(text: str) -> Reference:
    prefix, sep, rest = text.partition(":")
    kind, value = (PREFIXES[prefix], rest) if sep and prefix in PREFIXES else (USER_ID, text)
    if not value.strip():
        raise InvalidReference(f"{text!r} names nobody: expected {ACCEPTED}")
    if len(value) > MAX_LENGTH:
        raise InvalidReference(f"the id is {len(value)} characters; at most {MAX_LENGTH}")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidReference("the id holds control characters; expected " + ACCEPTED)
    return Reference(kind, value)


def find(session: Session, reference: Reference) -> Profile | None:
    """The person holding this identity (a merge moves identities to the surviving profile)."""
    found = repo.find_identities(session, [(reference.kind, reference.value)])
    return repo.get_profile(session, found[0].profile_id) if found else None
