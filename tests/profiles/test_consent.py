import pytest

from app.profiles.consent import suppression_reason


@pytest.mark.parametrize(
    ("channel", "traits", "reason"),
    [
        ("email", {}, None),
        ("email", {"email_consent": "subscribed"}, None),
        ("email", {"email_consent": "unsubscribed"}, "email unsubscribed"),
        ("email", {"email_consent": "bounced"}, "email bounced"),
        ("email", {"email_consent": "complained"}, "email complained"),
        ("email", {"email_consent": "nonsense"}, None),
        ("sms", {}, "sms requires explicit opt-in"),
        ("sms", {"sms_opt_in": "yes"}, "sms requires explicit opt-in"),
        ("sms", {"sms_opt_in": True}, None),
        ("sms", {"sms_consent": "opted_in"}, None),
        ("sms", {"sms_consent": "opted_out"}, "sms opted out"),
        ("sms", {"sms_consent": "opted_out", "sms_opt_in": True}, "sms opted out"),
        ("sms", {"sms_consent": "opted_in", "phone_valid": False}, "phone invalid"),
        ("sms", {"sms_consent": "opted_in", "phone_valid": True}, None),
        ("sms", {"sms_consent": "opted_in", "phone_valid": "false"}, None),
        ("email", {"phone_valid": False}, None),
        ("meta_audience", {}, None),
        ("meta_audience", {"ads_consent": "denied"}, "ads denied"),
        ("meta_audience", {"ads_consent": "allowed"}, None),
    ],
)
def test_suppression_reason(channel: str, traits: dict[str, object], reason: str | None) -> None:
    assert suppression_reason(channel, traits) == reason
