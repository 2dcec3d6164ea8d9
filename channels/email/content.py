"""What rendering adds to an e-mail once its templates are filled: CSS inlined into the HTML
(many mail clients drop `<style>` blocks) and, without a written text part, one made from the
HTML (spam filters and text-only clients want it)."""

from __future__ import annotations

import re

import css_inline
from inscriptis import get_text
from inscriptis.model.config import ParserConfig

from channels.base import ContentRefused

# `<style>` text times the elements it could be copied onto when inlined.
MAX_INLINED = 100_000_000
# No remote stylesheets: a marketer's <link> must not make the worker fetch URLs.
# @media rules cannot be inlined; they stay in a <style> for the clients that read it.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style\s*>", re.I | re.S)


def finish(content: dict[str, str]) -> dict[str, str]:
    """Inlining copies rules onto every element they match: a long stylesheet over many
    elements could grow the HTML without bound, so that product is refused first."""
    html = content["html"]
    if "<style" in html.lower():
        css = sum(len(block) for block in _STYLE.findall(html))
        if css * html.count("<") > MAX_INLINED:
            raise ContentRefused(
                f"too much CSS to inline: {css:,} characters of <style> over "
                f"{html.count('<'):,} tags; shorten the stylesheet or the HTML"
            )
        html = _INLINER.inline(html)
    text = content["text"] if "text" in content else html_to_text(html)
    return {**content, "html": html, "text": text}


def html_to_text(html: str) -> str:
    """Readable text for an e-mail's text part: paragraphs, lists, and links as
    `[label](url)` so the reader still has the address."""
    lines = get_text(html, ParserConfig(display_links=True)).splitlines()
    return "\n".join(line.rstrip() for line in lines).strip() + "\n"
