"""The profile API: a person's data over HTTP, for support tools and GDPR requests.

GET    /v1/profiles/{id}          the person: traits, consent, identities, latest history
GET    /v1/profiles/{id}/export   every row held about them, as one JSON document
DELETE /v1/profiles/{id}          erase them (admin token only)

`{id}` is a userId, or `user:…`, `anonymous:…`, `email:…`, `phone:…`
(app/profiles/references.py). Who may call: app/profiles/access.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.errors import BadInput, Gone, NotFound
from app.profiles import person, records, requests
from app.profiles.access import Caller, admin, caller
from app.profiles.references import ACCEPTED

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])

T = TypeVar("T")

PersonId = Annotated[str, Path(description=f"Who: {ACCEPTED}.")]
Limit = Annotated[
    int,
    Query(
        ge=1,
        le=person.MAX_LIMIT,
        description="How many of the latest events, deliveries and trips, newest first.",
    ),
]


async def _answer(fn: Callable[..., T], *args: Any) -> T:
    """Run a request off the event loop; its refusals become HTTP answers."""
    try:
        return await run_in_threadpool(fn, *args)
    except requests.InvalidReference as exc:
        raise BadInput(str(exc)) from None
    except requests.UnknownPerson as exc:
        raise NotFound(str(exc)) from None
    except requests.Erased as exc:
        raise Gone(str(exc)) from None


@router.get("/{person_id}", dependencies=[Depends(caller)])
async def show(person_id: PersonId, limit: Limit = person.DEFAULT_LIMIT) -> dict[str, Any]:
    return await _answer(requests.show, person_id, limit)


@router.get("/{person_id}/export", response_class=Response)
async def export(person_id: PersonId, who: Annotated[Caller, Depends(caller)]) -> Response:
    document = await _answer(requests.export, person_id, who.name)
    body = await run_in_threadpool(records.to_json, document)
    return Response(body, media_type="application/json")


@router.delete("/{person_id}")
async def erase(person_id: PersonId, who: Annotated[Caller, Depends(admin)]) -> dict[str, Any]:
    answer = await _answer(requests.erase, person_id, who.name)
    return answer.as_dict()
