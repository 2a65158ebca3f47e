"""Escaping for the report page: user text into HTML, and figure data into a `<script>` tag.

Every user-supplied string (study name, parameter names and values, error text, class names)
passes through `esc` before it reaches the page or a plotly label (plotly reads a little HTML
in labels), and every JSON payload through `json_for_script` before it goes into a script tag.
"""

from __future__ import annotations

import html
import json
from typing import Any


def esc(value: object) -> str:
    """HTML-escape any value for the page (and for plotly labels)."""
    return html.escape(str(value), quote=True)


def json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no `<`, `>` or `&` can close the tag or open a comment."""
    text = json.dumps(data, allow_nan=False, default=str, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
