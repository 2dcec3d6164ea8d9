"""The channels, found through the `carillon.channels` entry points.

Carillon's own channels register themselves the same way a third-party package would, in
pyproject.toml:

    [project.entry-points."carillon.channels"]
    sms = "channels.sms.spec:SPEC"

Each entry point names a `ChannelSpec`; the rest of Carillon asks the spec instead of testing a
channel's name. A channel gets its real adapter only when all its credentials are set;
otherwise it runs dry, so a half-configured provider never half-sends.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from types import MappingProxyType

from pydantic_settings import BaseSettings

from app.settings import CHANNELS_GROUP, Settings
from channels import settings as channel_settings
from channels.base import Channel, ChannelSpec
from channels.dry_run import DryRun


class UnknownChannel(ValueError):
    pass


@lru_cache
def specs() -> MappingProxyType[str, ChannelSpec]:
    """Every installed channel by name, in their declared order."""
    found: dict[str, ChannelSpec] = {}
    for point in entry_points(group=CHANNELS_GROUP):
        spec = point.load()
        if not isinstance(spec, ChannelSpec) or spec.name != point.name:
            raise TypeError(f"entry point {point.name} = {point.value} is not its ChannelSpec")
        found[spec.name] = spec
    ordered = sorted(found.values(), key=lambda s: (s.position, s.name))
    return MappingProxyType({spec.name: spec for spec in ordered})


def names() -> tuple[str, ...]:
    return tuple(specs())


def spec(channel: str) -> ChannelSpec:
    try:
        return specs()[channel]
    except KeyError:
        raise UnknownChannel(f"unknown channel {channel!r}; one of: {', '.join(names())}") from None


def required_content(channel: str) -> set[str]:
    """The content keys a `send` step on this channel must provide."""
    return set(spec(channel).required_content)


def has_credentials(channel: str, settings: Settings) -> bool:
    return spec(channel).credentials(settings)


def settings_models() -> tuple[type[BaseSettings], ...]:
    """Every channel's own settings model, each once (channels may share one)."""
    return tuple(dict.fromkeys(s.settings for s in specs().values() if s.settings is not None))


def variables() -> tuple[str, ...]:
    """Every environment variable a channel reads, in each spelling it accepts."""
    found = (channel_settings.spellings(model) for model in settings_models())
    return tuple(dict.fromkeys(name for names in found for name in names))


def build_channels(settings: Settings) -> dict[str, Channel]:
    """One adapter per channel name: the provider's when configured, else a dry run."""
    return {
        name: s.build(settings) if s.credentials(settings) else DryRun(name)
        for name, s in specs().items()
    }
