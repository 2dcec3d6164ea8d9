"""Meta Conversions API: server-side conversion events (Purchase, Lead, …) for a Meta pixel."""
