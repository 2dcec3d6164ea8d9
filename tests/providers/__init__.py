"""Local stand-ins for the providers (SendGrid, Twilio, Meta Graph), speaking their wire formats.

Import from the modules: `tests.providers.sendgrid.SendGridServer`,
`tests.providers.twilio.TwilioServer`, `tests.providers.meta.MetaGraphServer`.
"""
