"""Feedback from providers and people: SendGrid's Event Webhook, Twilio's status and inbound
callbacks, and the unsubscribe link. Each callback is verified before anything is read, lands in
the delivery's history (`delivery_events`) once, and updates consent where it means a no."""

# The history sources that are feedback rather than Carillon's own policy or retries.
PROVIDER_SOURCES = ("sendgrid", "twilio")
FEEDBACK_SOURCES = (*PROVIDER_SOURCES, "unsubscribe_link")
