"""The Meta account's settings, shared by every channel that calls Meta's Graph API (the
Conversions API channel extends this model rather than repeating it).

The token keeps Meta's own variable name (`META_ACCESS_TOKEN`, also read as
`CARILLON_META_ACCESS_TOKEN`).
"""

from __future__ import annotations

import re

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.settings import get_settings

CHANNEL = "meta_audience"
AD_SETS = "CARILLON_META_AD_SETS"
_ID = re.compile(r"[0-9]{1,32}")
_AD_SETS_HINT = (
    "audience_id=ad_set_id, several ad sets joined with |, audiences with commas, Meta's ids "
    "as digits: e.g. 23850000000000001=120210000000000001|120210000000000002"
)


def parse_ad_sets(text: str) -> dict[str, tuple[str, ...]]:
    """`audience=ad_set|ad_set,audience=ad_set` → {audience: ad sets}. An ad set counted under
    two audiences would have its spend counted twice."""
    found: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        audience, sep, rest = (part.strip() for part in item.partition("="))
        ad_sets = tuple(part.strip() for part in rest.split("|"))
        problem = None
        if not sep or not _ID.fullmatch(audience) or not all(map(_ID.fullmatch, ad_sets)):
            problem = f"should be {_AD_SETS_HINT}"
        elif audience in found:
            problem = f"audience {audience} is named twice; join its ad sets with |"
        else:
            twice = next((a for a in ad_sets if a in owner or ad_sets.count(a) > 1), None)
            if twice is not None:
                problem = (
                    f"ad set {twice} is named twice (audience {owner.get(twice, audience)}); "
                    "its spend would be counted twice"
                )
        if problem is not None:
            raise ValueError(f"{AD_SETS}: {item!r}: {problem}")
        found[audience] = ad_sets
        owner |= dict.fromkeys(ad_sets, audience)
    return found


class MetaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARILLON_", extra="ignore")

    meta_access_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("META_ACCESS_TOKEN", "CARILLON_META_ACCESS_TOKEN"),
    )
    meta_graph_url: str = "https://graph.facebook.com"
    meta_api_version: str = "v21.0"
    # The ad sets that show ads to each Custom Audience Carillon fills, whose spend (Meta's ad
    # insights) is then the audience channel's cost: `audience_id=ad_set_id|ad_set_id,...`.
    meta_ad_sets: str = ""

    @field_validator("meta_ad_sets")
    @classmethod
    def _ad_sets_parse(cls, value: str, info: ValidationInfo) -> str:
        """Refused at start: a typo would leave the spend unread and the ROI silently wrong;
        and a channel costs either its spend or a price, never both added up."""
        if not parse_ad_sets(value):
            return value
        if not info.data.get("meta_access_token"):
            raise ValueError(
                f"{AD_SETS}: reading the ad sets' spend needs META_ACCESS_TOKEN (a token with "
                "the ads_read permission)"
            )
        try:
            core = get_settings()
        except ValidationError:  # Carillon's own settings report their own problem
            return value
        if CHANNEL in core.message_costs():
            raise ValueError(
                f"{AD_SETS}: {CHANNEL} is also priced in CARILLON_COST_PER_THOUSAND or "
                "CARILLON_COST_PER_MESSAGE; its cost is either the ad sets' spend or a price, "
                "so unset one of them"
            )
        if CHANNEL in core.budgets_by_channel():
            raise ValueError(
                f"{AD_SETS}: CARILLON_BUDGETS has a budget for {CHANNEL}, but its cost is "
                "the ad sets' spend, known only after the fact, so no budget can hold its "
                "sends; set the budget on the ad sets in Meta's Ads Manager instead"
            )
        return value

    def ad_sets(self) -> dict[str, tuple[str, ...]]:
        return parse_ad_sets(self.meta_ad_sets)

    def token_for(self, adapter: str) -> str:
        """The access token an adapter cannot be built without."""
        if not self.meta_access_token:
            raise ValueError(f"{adapter} needs meta_access_token")
        return self.meta_access_token

    def graph_base(self) -> str:
        """Where versioned Graph calls go, e.g. https://graph.facebook.com/v21.0."""
        return f"{self.meta_graph_url.rstrip('/')}/{self.meta_api_version.strip('/')}"
