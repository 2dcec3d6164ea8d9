"""Reading a channel's own settings.

Each channel declares a pydantic-settings model on its spec (`ChannelSpec.settings`, prefix
CARILLON_, the providers' own variable names for their credentials). One instance per model is
read from the environment and kept with Carillon's own settings (`app.settings.get_settings`):
channels that declare the same model (SMS and WhatsApp share the Twilio account) read it once,
and whatever makes Carillon read its settings again makes the channels read theirs again.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from app.settings import Settings, get_settings

S = TypeVar("S", bound=BaseSettings)

# Each model's instance, beside the core settings it was read with.
_read: dict[type[BaseSettings], tuple[Settings, BaseSettings]] = {}


def read(model: type[S]) -> S:
    """The model as the environment sets it, read on first use."""
    core = get_settings()
    kept = _read.get(model)
    if kept is not None and kept[0] is core and isinstance(kept[1], model):
        return kept[1]
    found = model()
    _read[model] = (core, found)
    return found


def variables(model: type[BaseSettings]) -> dict[str, str]:
    """Each field's environment variable: the provider's own name where the field takes one
    (its first alias), else the model's prefix and the field's name."""
    prefix = str(model.model_config.get("env_prefix") or "")
    found = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        first = alias.choices[0] if isinstance(alias, AliasChoices) else alias
        found[name] = str(first) if isinstance(first, str) else f"{prefix}{name}".upper()
    return found


def spellings(model: type[BaseSettings]) -> tuple[str, ...]:
    """Every variable the model reads: each field's own, and the other names it also takes (a
    provider's credential spelt with the CARILLON_ prefix)."""
    names = list(variables(model).values())
    for field in model.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names += [str(c) for c in alias.choices[1:] if isinstance(c, str)]
    return tuple(names)
