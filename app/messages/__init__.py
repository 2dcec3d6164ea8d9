"""Transactional sends: `POST /v1/messages`, one message to one person from a shop's backend
(a receipt, a password reset), through the same outbox, send-time checks, retries and history
as a journey's messages."""
