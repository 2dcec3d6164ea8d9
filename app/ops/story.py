"""A delivery's whole story, for `carillon deliveries show <id>` and `GET /ops/deliveries/{id}`.

Told from the rows that exist: the triggering event, the trip's waits (timers), the delivery
row itself (planned, attempts, outcome, provider id, the provider's words). What the send-time
checks did (consent, quiet hours, frequency caps, budgets), provider webhooks and unsubscribe
clicks are read from the delivery's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.delivery import history, models
from app.delivery.models import Delivery
from app.delivery.outbox import CHANNEL_CHOSEN
from app.errors import NotFound
from app.events.models import Event
from app.journeys.models import JourneyInstance, Timer
from app.webhooks.sources import feedback_sources

POLICY_NOTE = "never held by consent, quiet hours, a frequency cap or a budget"
WEBHOOKS_NOTE = "no provider webhook recorded for this delivery yet"


# How a history row reads in the story; rows of other kinds show their kind and source.
_MOMENTS = {
    CHANNEL_CHOSEN: "channel chosen",
    "deferred": "deferred at send time",
    "suppressed": "suppressed at send time",
    "retry": "transient failure, retry planned",
    "dead": "out of retries: dead letter",
    "replayed": "replayed by ops",
    "resent": "resent by the sweeper (worker lost during the call)",
    "unknown": "marked unknown by the sweeper (worker lost during the call)",
}


@dataclass(frozen=True)
class Step:
    at: datetime | None
    what: str
    detail: str = ""


@dataclass
class Story:
    delivery_id: int
    channel: str
    status: str
    journey_id: str
    step_path: str
    instance_id: int | None  # None: a transactional send through `POST /v1/messages`
    profile_id: str
    message_id: str | None
    provider_message_id: str | None
    attempts: int
    content: dict[str, Any]
    steps: list[Step] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "steps"}
        data["steps"] = [
            {"at": s.at.isoformat() if s.at else None, "what": s.what, "detail": s.detail}
            for s in self.steps
        ]
        return data


def _webhooks(session: Session, delivery: Delivery) -> list[dict[str, Any]]:
    """Provider callbacks (delivered, opened, clicked, bounced) and unsubscribe-link clicks."""
    return [
        {"at": e.at.isoformat(), "source": e.source, "kind": e.kind, "detail": e.detail}
        for e in history.of(session, delivery.id)
        if e.source in feedback_sources()
    ]


def _outcome(d: Delivery) -> Step:
    code = f"HTTP {d.status_code}: " if d.status_code else ""
    if d.status == models.SENT:
        return Step(d.sent_at, "sent", f"provider id {d.provider_message_id or '?'}")
    if d.status == models.DRY_RUN:
        return Step(d.sent_at, "dry run (nothing sent)", d.error or "")
    if d.status == models.FAILED:
        return Step(d.updated_at, "failed", f"{code}{d.error or ''}")
    if d.status == models.SKIPPED:
        return Step(d.updated_at, "skipped (nothing sent)", d.error or "")
    if d.status == models.CANCELLED:
        return Step(d.updated_at, "cancelled", d.error or "")
    if d.status == models.SENDING:
        return Step(
            d.updated_at,
            "sending (claimed, no answer recorded yet)",
            "if its worker died during the provider call, the sweeper applies the channel's "
            "policy after CARILLON_SENDING_TIMEOUT_SECONDS (resend, or unknown)",
        )
    if d.status == models.UNKNOWN:
        return Step(d.updated_at, "unknown (may or may not have been sent)", d.error or "")
    return Step(d.enqueued_at, "pending (waiting for its channel's queue)", "")


def tell(session: Session, delivery_id: int) -> Story:
    d = session.get(Delivery, delivery_id)
    if d is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    instance = session.get(JourneyInstance, d.instance_id) if d.instance_id else None
    trigger = session.get(Event, instance.trigger_event_id) if instance else None
    timers = (
        session.scalars(
            select(Timer).where(Timer.instance_id == d.instance_id).order_by(Timer.due_at)
        ).all()
        if instance
        else []
    )
    story = Story(
        delivery_id=d.id,
        channel=d.channel,
        status=d.status,
        journey_id=d.journey_id,
        step_path=d.step_path,
        instance_id=d.instance_id,
        profile_id=d.profile_id,
        message_id=trigger.message_id if trigger else None,
        provider_message_id=d.provider_message_id,
        attempts=d.attempts,
        content=dict(d.content or {}),
        webhooks=_webhooks(session, d),
    )
    if trigger is not None:
        story.steps.append(
            Step(
                trigger.received_at,
                f"event received: {trigger.name or trigger.type}",
                f"messageId {trigger.message_id} from source {trigger.source}",
            )
        )
    if instance is not None:
        story.steps.append(Step(instance.entered_at, f"entered journey {instance.journey_id}", ""))
    for timer in timers:
        if timer.created_at > d.created_at:
            continue  # a wait after this message, not before it
        fired = {
            "fired": f"fired {timer.fired_at.isoformat() if timer.fired_at else ''}",
            "pending": "still pending",
        }.get(timer.status, timer.status)
        story.steps.append(
            Step(
                timer.created_at,
                f"deferred by wait (step {timer.step_path})",
                f"due {timer.due_at.isoformat()}, {fired}".rstrip(),
            )
        )
    story.steps.append(Step(d.created_at, f"planned (step {d.step_path}, channel {d.channel})", ""))
    # Deferrals, suppressions, retries, replays, sweeper decisions: in time order.
    moments = [e for e in history.of(session, d.id) if e.source not in feedback_sources()]
    story.steps += [
        Step(e.at, _MOMENTS.get(e.kind, f"{e.kind} ({e.source})"), e.detail or "") for e in moments
    ]
    if d.attempts:
        since = " since the replay" if any(e.kind == "replayed" for e in moments) else ""
        story.steps.append(Step(None, f"claimed for sending {d.attempts} time(s){since}", ""))
    story.steps.append(_outcome(d))
    held = any(e.source == "policy" for e in moments)
    story.notes = ([] if held else [POLICY_NOTE]) + ([] if story.webhooks else [WEBHOOKS_NOTE])
    return story


def render(story: Story) -> str:
    """The story as text, one line per step."""
    lines = [
        f"delivery {story.delivery_id}: {story.channel}, {story.status}",
        (
            f"  journey {story.journey_id} step {story.step_path}, instance {story.instance_id}, "
            if story.instance_id is not None
            else f"  transactional send {story.step_path} ({story.journey_id}), "
        )
        + f"profile {story.profile_id}",
        f"  messageId {story.message_id or '-'}, provider id {story.provider_message_id or '-'}",
        "",
    ]
    for step in story.steps:
        when = step.at.isoformat(timespec="seconds") if step.at else " " * 25
        lines.append(f"  {when}  {step.what}" + (f": {step.detail}" if step.detail else ""))
    lines.append("")
    if story.webhooks:
        lines.append("  webhooks:")
        for hook in story.webhooks:
            detail = f": {hook['detail']}" if hook["detail"] else ""
            lines.append(f"    {hook['at']}  {hook['source']} {hook['kind']}{detail}")
    for note in story.notes:
        lines.append(f"  note: {note}")
    if story.content:
        lines.append("  content:")
        lines += [f"    {key}: {value}" for key, value in story.content.items()]
    return "\n".join(lines)
