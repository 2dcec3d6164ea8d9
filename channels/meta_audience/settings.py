"""The Meta account's settings, shared by every channel that calls Meta's Graph API (the
Conversions API channel extends this model rather than repeating it).

The token keeps Meta's own variable name (`META_ACCESS_TOKEN`, also read as
`CARILLON_META_ACCESS_TOKEN`).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MetaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARILLON_", extra="ignore")

    meta_access_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("META_ACCESS_TOKEN", "CARILLON_META_ACCESS_TOKEN"),
    )
    meta_graph_url: str = "https://graph.facebook.com"
    meta_api_version: str = "v21.0"

    def token_for(self, adapter: str) -> str:
        """The access token an adapter cannot be built without."""
        if not self.meta_access_token:
            raise ValueError(f"{adapter} needs meta_access_token")
        return self.meta_access_token

    def graph_base(self) -> str:
        """Where versioned Graph calls go, e.g. https://graph.facebook.com/v21.0."""
        return f"{self.meta_graph_url.rstrip('/')}/{self.meta_api_version.strip('/')}"
