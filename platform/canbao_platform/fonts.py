"""The CJK font the printed documents embed: survey's registration form and ledger, the gateway's
proof of insurance (参保证明), reporting's quarterly table. Each names a TrueType font (or a
collection, of which subfont 0 is used: WenQuanYi Zen Hei in Debian's fonts-wqy-zenhei) by its
path in its settings (`<SERVICE>_CJK_FONT`); this registers it with reportlab once per process.

reportlab is the `documents` extra of canbao-platform: the services that print declare it, the
others do not carry it."""

from __future__ import annotations

import hashlib
from functools import cache

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont


@cache
def registered_cjk_font(font_path: str) -> str:
    """reportlab's name of the font at `font_path`, registered on first use (reportlab's registry
    is global to the process). A missing file raises reportlab's TTFError."""
    name = "CanbaoCJK-" + hashlib.sha256(font_path.encode()).hexdigest()[:8]
    pdfmetrics.registerFont(TTFont(name, font_path, subfontIndex=0))
    return name
