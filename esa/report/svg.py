"""Inline-ready SVG and HTML5 markup: no XML prolog, DTD, metadata or namespace URLs (pages work offline)."""

from __future__ import annotations

import re

_XMLNS = re.compile(r'\s+xmlns(?::\w+)?\s*=\s*"[^"]*"')
_NS_TAG = re.compile(r"<(?:svg|html)\b[^>]*>")
_SVG_PROLOG = re.compile(r"<\?xml.*?\?>|<!DOCTYPE[^>]*>|<metadata>.*?</metadata>", re.S)


def strip_namespaces(html: str) -> str:
    """Drop xmlns attributes of <html> and inline <svg> tags (HTML5 needs none) so no namespace URL is left.

    Only tags are touched: an SVG inside a data URI is a standalone document and keeps its xmlns.
    """
    return _NS_TAG.sub(lambda m: _XMLNS.sub("", m.group(0)), html)


def clean_svg(svg: str) -> str:
    """Inline-ready SVG: no XML prolog, DTD, metadata or namespace URLs."""
    return strip_namespaces(_SVG_PROLOG.sub("", svg)).strip()
