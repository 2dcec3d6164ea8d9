"""People's requests about their data, as the profile API, `carillon profiles` and the ops
person page make them: show, export (GDPR article 15) and erase (article 17).

Each opens its own session, looks the person up by any of their identities, and leaves an
audit row for an export or an erasure. An identity that was erased is recognised by its
keyed hash: showing or exporting it says when it was erased, erasing it again answers the
same as the first time and changes nothing more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from app import clock
from app.db import session_scope
from app.profiles import erased, erasure, person, records, references, view
from app.profiles.models import Profile, ProfileAudit
from app.profiles.references import ACCEPTED, InvalidReference

__all__ = [
    "Erased",
    "InvalidReference",
    "UnknownPerson",
    "erase",
    "export",
    "person_named",
    "show",
    "view_named",
]


class UnknownPerson(LookupError):
    def __init__(self, text: str) -> None:
        super().__init__(f"nobody is known as {text!r}; an id is {ACCEPTED}")


class Erased(LookupError):
    def __init__(self, profile_id: str, at: datetime) -> None:
        super().__init__(
            f"this person's data was erased at {at.isoformat()}: nothing is kept but a keyed "
            "hash of their identities"
        )
        self.answer = erasure.Erasure(profile_id, at)


def _person(session: Session, text: str) -> Profile:
    """The living person `text` names; raises InvalidReference, UnknownPerson or Erased."""
    return person_named(session, references.parse(text), text)


def person_named(
    session: Session, reference: references.Reference, text: str | None = None
) -> Profile:
    """The living person holding this identity; raises UnknownPerson or Erased."""
    profile = references.find(session, reference)
    if profile is None:
        _unknown(session, reference, text)
    if profile.erased_at is not None:
        raise Erased(profile.id, profile.erased_at)
    return profile


def view_named(session: Session, reference: references.Reference, *, cdp: bool) -> dict[str, Any]:
    """The living person holding this identity as templates and the send-time checks see
    them (`view.identified`); raises UnknownPerson or Erased."""
    found = view.identified(session, reference.kind, reference.value, cdp=cdp)
    if found is None:
        _unknown(session, reference, None)
    if found.erased_at is not None:
        raise Erased(found.profile_id, found.erased_at)
    return found.person


def _unknown(session: Session, reference: references.Reference, text: str | None) -> NoReturn:
    """Nobody holds the identity: Erased when it went with an erasure, else UnknownPerson."""
    gone = erased.erased_profile(session, reference.kind, reference.value)
    if gone is not None:
        raise Erased(gone.profile_id, gone.erased_at)
    raise UnknownPerson(text if text is not None else reference.value)


def _audit(
    session: Session, action: str, profile_id: str, actor: str, detail: dict[str, Any]
) -> None:
    session.add(
        ProfileAudit(
            at=clock.now(), action=action, profile_id=profile_id, actor=actor, detail=detail
        )
    )


def show(text: str, limit: int = person.DEFAULT_LIMIT) -> dict[str, Any]:
    with session_scope() as session:
        return person.describe(session, _person(session, text), limit)


def export(text: str, actor: str) -> dict[str, Any]:
    with session_scope() as session:
        profile = _person(session, text)
        document = records.export(session, profile)
        rows = {name: len(rows) for name, rows in document["tables"].items()}
        _audit(session, "export", profile.id, actor, {"rows": rows})
        return document


def erase(text: str, actor: str) -> erasure.Erasure:
    """Erase the person `text` names; an identity erased before gets the first answer again
    (and an audit row saying nothing more was done)."""
    with session_scope() as session:
        try:
            profile = _person(session, text)
        except Erased as exc:
            profile = session.get_one(Profile, exc.answer.profile_id)
        answer, done = erasure.erase(session, profile)
        _audit(session, "erase", profile.id, actor, done)
        return answer
