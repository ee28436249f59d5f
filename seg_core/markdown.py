"""People's text (class, project and file names) put into Markdown: escaped so it reads as typed, and shortened
where space is tight. Streamlit renders Markdown in st.markdown, captions, alerts, widget labels, radio options
and help tooltips, so a class called '**bold**' would show in bold and '[x](y)' as a link."""

from __future__ import annotations

import re

# What starts Markdown or Streamlit syntax inside a line: emphasis, code, links and images, raw HTML, strikethrough,
# $LaTeX$, :red[colour] and :material/icons:, table cells, headings. A backslash before ASCII punctuation always
# means the character itself (CommonMark), so the escaped text shows exactly as typed.
_SPECIAL = set("\\`*[]<>~$:|#{}!")
_LIST_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")
NAME_CHARS = 40   # a class name in a radio button, a caption or a button label


def md_escape(text: object) -> str:
    """`text` as Markdown that shows exactly these characters."""
    text = str(text)
    out = []
    for i, ch in enumerate(text):
        # An underscore inside a word (img_01.png) never starts emphasis: left as it is, file names stay readable.
        inside = ch == "_" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        out.append("\\" + ch if ch in _SPECIAL or (ch == "_" and not inside) else ch)
    escaped = "".join(out)
    # A list marker or heading at the very start would turn a label into a list item.
    return _LIST_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], escaped, count=1)


def shorten(text: object, limit: int = NAME_CHARS) -> str:
    """`text` cut to `limit` characters with an ellipsis, for a place where the full text would break the layout."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def md_name(text: object, limit: int = NAME_CHARS) -> str:
    """A name for Markdown: shortened, then escaped (the full name belongs in a tooltip or a table)."""
    return md_escape(shorten(text, limit))
