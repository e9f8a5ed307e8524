"""Names for a synthetic catalog: artists, variant spellings, aliases, albums, titles, labels.

Everything is drawn from a ``numpy.random.Generator`` passed in, so a catalog's names depend only on
its seed. ``name_key`` folds a name to the form under which two spellings count as "the same
name" (case, accents, punctuation, a leading "The", Cyrillic transliterated); the planner uses it to
keep accidental homonyms out of the catalog, so the only shared names are the planted ones.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

FIRST = ["Mira", "Jonas", "Lena", "Tomás", "Ada", "Felix", "Noor", "Ines", "Oskar", "Yara", "Elif",
         "Malte", "Zoë", "Rafael", "Saskia", "Hugo", "Maëlle", "Björn", "Livia", "Anouk", "Ciarán",
         "Dario", "Emeka", "Freya", "Goran", "Hana", "Ilya", "Juno", "Kasia", "Luca", "Marit", "Nils"]
LAST = ["Kovač", "Lindqvist", "Moreau", "Okafor", "Petrescu", "Quist", "Ramírez", "Sato", "Tavares",
        "Ueda", "Varga", "Weiß", "Xu", "Yilmaz", "Zielinski", "Brandt", "Castellanos", "Dupré",
        "Eriksen", "Fontaine", "García", "Holm", "Ibáñez", "Jensen", "Kaur", "Laine", "Novák"]
ADJ = ["Velvet", "Silver", "Hollow", "Electric", "Quiet", "Golden", "Paper", "Neon", "Crimson",
       "Wandering", "Broken", "Lunar", "Northern", "Glass", "Wild", "Sleepy", "Burning", "Distant",
       "Copper", "Frozen", "Secret", "Heavy", "Tender", "Restless"]
NOUN = ["Owls", "Rivers", "Machines", "Tigers", "Lanterns", "Ghosts", "Satellites", "Wolves",
        "Harbours", "Sparrows", "Mirrors", "Engines", "Orchards", "Comets", "Pilots", "Foxes",
        "Bells", "Tides", "Cathedrals", "Radios", "Horses", "Islands", "Daughters", "Kings"]
SINGULAR = ["Echo", "Harbour", "Signal", "Garden", "Winter", "Summer", "Horizon", "Static",
            "Meridian", "Fever", "Atlas", "Ember", "Prism", "Current", "Orbit", "Canyon"]
WORDS = ["Night", "Light", "Heart", "Road", "Rain", "Fire", "Home", "Sky", "Dream", "Stone",
         "Water", "Dance", "Shadow", "Morning", "Gold", "Ocean", "City", "Fields", "Blue", "Love",
         "Time", "Wire", "Smoke", "Bloom", "Dust", "Storm", "Honey", "Glow", "Salt", "Thunder"]
LABEL_WORDS = ["Records", "Recordings", "Music", "Sound", "Audio", "Tapes", "Discs"]
LABEL_HEADS = ["Blue Note", "Northern", "Lighthouse", "Parallax", "Mosaic", "Kite", "Basalt",
               "Cobalt", "Driftwood", "Meridian", "Saltwater", "Hinterland", "Vesper", "Quarry"]

# Latin -> Cyrillic for the syllables used by Cyrillic names (and back, for transliteration).
_CYR = [("shch", "щ"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"), ("ch", "ч"), ("sh", "ш"),
        ("ya", "я"), ("yu", "ю"), ("a", "а"), ("b", "б"), ("v", "в"), ("g", "г"), ("d", "д"),
        ("e", "е"), ("z", "з"), ("i", "и"), ("y", "й"), ("k", "к"), ("l", "л"), ("m", "м"),
        ("n", "н"), ("o", "о"), ("p", "п"), ("r", "р"), ("s", "с"), ("t", "т"), ("u", "у"),
        ("f", "ф")]
_CYR_SYLL = ["ka", "la", "mi", "ro", "va", "na", "sho", "ta", "zhe", "nya", "do", "ri", "ko",
             "lya", "ve", "so", "ga", "bu", "te", "chi"]
_CYR_LAST_END = ["ova", "ev", "in", "sky", "enko", "ich"]


def to_cyrillic(latin: str) -> str:
    out, i, low = [], 0, latin.lower()
    while i < len(low):
        for lat, cyr in _CYR:
            if low.startswith(lat, i):
                out.append(cyr)
                i += len(lat)
                break
        else:
            out.append(low[i])
            i += 1
    return " ".join(w.capitalize() for w in "".join(out).split(" "))


def transliterate(name: str) -> str:
    """Cyrillic -> Latin (the inverse of :func:`to_cyrillic` on its alphabet)."""
    back = {cyr: lat for lat, cyr in _CYR}
    out = []
    for ch in name:
        lat = back.get(ch.lower())
        if lat is None:
            out.append(ch)
        else:
            out.append(lat.capitalize() if ch.isupper() else lat)
    return "".join(out)


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ß", "ss")


def name_key(name: str) -> str:
    """A folded form: equal keys mean "the same name, spelled differently"."""
    text = strip_accents(transliterate(name)).casefold()
    text = text.replace("&", " and ")
    text = re.sub(r"[^\w\s]", " ", text)
    words = [w for w in text.split() if w != "the"]
    return " ".join(words)


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def artist_name(rng: np.random.Generator) -> str:
    style = rng.random()
    if style < 0.30:
        return f"{_pick(rng, FIRST)} {_pick(rng, LAST)}"
    if style < 0.50:
        return f"The {_pick(rng, ADJ)} {_pick(rng, NOUN)}"
    if style < 0.62:
        return f"{_pick(rng, ADJ)} {_pick(rng, SINGULAR)}"
    if style < 0.72:
        return f"{_pick(rng, FIRST)} & the {_pick(rng, NOUN)}"
    if style < 0.80:
        return f"{_pick(rng, ['DJ', 'MC', 'Lil', 'Dr.'])} {_pick(rng, SINGULAR)}"
    if style < 0.88:
        return f"{_pick(rng, SINGULAR)}-{_pick(rng, SINGULAR)}"
    first = "".join(_pick(rng, _CYR_SYLL) for _ in range(2))
    last = "".join(_pick(rng, _CYR_SYLL) for _ in range(int(rng.integers(1, 3)))) + _pick(
        rng, _CYR_LAST_END)
    return to_cyrillic(f"{first} {last}")


_ACCENTS = {"e": "é", "o": "ö", "a": "á", "u": "ü", "i": "í", "n": "ñ"}


def variant_spelling(name: str, rng: np.random.Generator) -> str:
    """Another spelling of ``name`` with the same :func:`name_key` (accents, punctuation, "The",
    transliteration, case)."""
    candidates: list[str] = []
    if transliterate(name) != name:
        candidates.append(transliterate(name))
    if strip_accents(name) != name:
        candidates.append(strip_accents(name))
    else:
        start = 4 if name.startswith("The ") else 0
        for i, ch in enumerate(name[start:], start):
            if ch in _ACCENTS:
                candidates.append(name[:i] + _ACCENTS[ch] + name[i + 1:])
                break
    if name.startswith("The "):
        candidates.append(name[4:])
    elif name.split()[-1] in NOUN:
        candidates.append("The " + name)
    if "&" in name:
        candidates.append(name.replace("&", "and"))
    if "-" in name:
        candidates.append(name.replace("-", " "))
    if "." in name:
        candidates.append(name.replace(".", ""))
    candidates = [c for c in candidates if c != name and name_key(c) == name_key(name)]
    if transliterate(name) != name:
        return transliterate(name)  # a Cyrillic name is delivered transliterated
    if not candidates:
        candidates.append(name.upper() if name != name.upper() else name.title())
    return _pick(rng, candidates)


def album_title(rng: np.random.Generator) -> str:
    style = rng.random()
    if style < 0.35:
        return f"{_pick(rng, ADJ)} {_pick(rng, WORDS)}"
    if style < 0.6:
        return f"{_pick(rng, WORDS)} of {_pick(rng, WORDS)}"
    if style < 0.8:
        return f"{_pick(rng, SINGULAR)} {_pick(rng, ['II', 'III', 'Sessions', 'Live', 'Years'])}"
    return f"{_pick(rng, WORDS)}{_pick(rng, ['', 's', 'line', 'light', 'fall'])}"


def track_title(rng: np.random.Generator) -> str:
    style = rng.random()
    if style < 0.4:
        return f"{_pick(rng, WORDS)} {_pick(rng, WORDS)}"
    if style < 0.7:
        return f"{_pick(rng, ADJ)} {_pick(rng, WORDS)}"
    if style < 0.85:
        return f"The {_pick(rng, WORDS)}"
    return f"{_pick(rng, WORDS)} ({_pick(rng, ['Reprise', 'Interlude', 'Edit', 'Part 2'])})"


def label_name(rng: np.random.Generator) -> str:
    return f"{_pick(rng, LABEL_HEADS)} {_pick(rng, LABEL_WORDS)}"


def safe_path_part(text: str) -> str:
    """A name usable as one folder/file name (no separators, no leading dot, no trailing dot)."""
    text = re.sub(r'[/\\:*?"<>|\x00-\x1f]', "-", text).strip().rstrip(".")
    return text.lstrip(".") or "_"
