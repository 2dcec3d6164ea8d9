"""Feedback from providers and people: each channel's provider callbacks (declared by the
channel) and the unsubscribe link. Each callback is verified before anything is read, lands in
the delivery's history (`delivery_events`) once, and updates consent where it means a no."""
