"""Artist and album name handling.

Two levels on purpose:

- ``page_key``: how a streaming catalog keys artist pages — Unicode-normalised, case-folded,
  whitespace collapsed, nothing more. Same key, same page: this is how homonymy arises.
- ``match_key``: a much looser key for *finding* synonyms: accents stripped, transliterated,
  punctuation and a leading "The" dropped, "&" read as "and". Two pages with equal or close
  match keys are synonym candidates; they are never merged automatically.
"""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SEPARATORS = re.compile(r"[-_/‐-―]+")
_FEAT = re.compile(r"\s+(?:feat\.?|ft\.?|featuring)\s+", re.IGNORECASE)
_SPLIT_MAIN = re.compile(r"\s*(?:;|/|\s&\s|,\s)\s*")

# Letters that NFKD does not decompose into ASCII.
_TRANSLIT = str.maketrans(
    {
        "ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L",
        "đ": "d", "Đ": "D", "ð": "d", "þ": "th", "ı": "i",
    }
)
# A small Cyrillic/Greek transliteration so "Кино" and "Kino" meet.
_SCRIPT = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
        "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
        "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
        "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
        "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th", "ι": "i",
        "κ": "k", "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p", "ρ": "r", "σ": "s",
        "ς": "s", "τ": "t", "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps", "ω": "o",
    }
)


def page_key(name: str) -> str:
    """The catalog key of an artist page (or album title within a page)."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", name)).strip().casefold()


def match_key(name: str) -> str:
    """A loose key for synonym matching (never used to key pages)."""
    s = unicodedata.normalize("NFKC", name).casefold().translate(_SCRIPT).translate(_TRANSLIT)
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c))
    s = s.replace("&", " and ").replace("+", " and ")
    s = _SEPARATORS.sub(" ", s)  # Echo-Static -> echo static
    s = _PUNCT.sub("", s)  # N'Dour -> ndour, A.B.C. -> abc
    s = _WS.sub(" ", s).strip()
    if s.startswith("the "):
        s = s[4:]
    return s


def split_credits(artist: str) -> tuple[list[str], list[str]]:
    """Split an artist tag into (main artists, featured artists).

    "A feat. B" -> (["A"], ["B"]). Main artists are *not* split on "&" or "," by default, since
    many real names contain them ("Simon & Garfunkel"); only ";" and "/" separate main artists.
    """
    parts = _FEAT.split(artist, maxsplit=1)
    main_part = parts[0]
    featured = []
    if len(parts) > 1:
        featured = [p.strip() for p in re.split(r"\s*(?:,|&|;|/| and )\s*", parts[1]) if p.strip()]
    main = [p.strip() for p in re.split(r"\s*[;/]\s*", main_part) if p.strip()]
    return main, featured
