"""Markdown to HTML for article bodies: the editor's preview, the help center, the agent panel.

markdown-it-py (CommonMark) with raw HTML disabled, so an article cannot inject markup or
scripts; links keep only safe schemes (markdown-it's own `validateLink` drops `javascript:`).
"""

from __future__ import annotations

from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def render_markdown(text: str) -> str:
    """Safe HTML for a Markdown body (raw HTML in the source is shown as text)."""
    return _md.render(text or "")
