"""Text cleaning shared by the seed import and the dataset build.

Everything here is a pure function on strings, so the rules are easy to test and the same for the original
data and for the hand-written sources.
"""

from __future__ import annotations

import re

#: Brand and trademark names we can recognise in a product type, mapped to a generic replacement for the
#: whole product when the brand *is* the product (``None``: just drop the brand words). Small on purpose:
#: it catches the brands seen in the seed and the obvious ones a writer might slip in.
BRANDS: dict[str, str | None] = {
    # kitchen
    "kitchenaid": None,
    "nutribullet": None,
    "instant pot pressure cooker": "electric pressure cooker",
    "instant pot": "multi cooker",
    "keurig": "pod coffee maker",
    "nespresso": "capsule coffee machine",
    "vitamix": None,
    "cuisinart": None,
    "le creuset": None,
    "all-clad": None,
    "pyrex": None,
    "tupperware": "food storage containers",
    "crock-pot": "slow cooker",
    "crockpot": "slow cooker",
    "ziploc": "zip-top",
    "aeropress": "manual coffee press",
    "chemex": "pour-over coffee maker",
    "brita": "water filter",
    "nutella": None,
    "starbucks": None,
    # cleaning, home, health
    "dyson": None,
    "roomba": "robot vacuum",
    "swiffer": "disposable mop",
    "bissell": None,
    "lysol": "disinfectant",
    "clorox": "disinfecting",
    "windex": "glass cleaner",
    "kleenex": "tissues",
    "q-tips": "cotton swabs",
    "band-aid": "adhesive bandage",
    "band-aids": "adhesive bandages",
    "post-it notes": "sticky notes",
    "post-it": "sticky",
    "sharpie": "permanent marker",
    "sharpies": "permanent markers",
    "tempur": None,
    "casper": None,
    "jacuzzi": "hot tub",
    "oral-b": None,
    "philips": None,
    "braun": None,
    "gillette": None,
    "theragun": "massage gun",
    # tech and games
    "apple watch": "smartwatch",
    "iphone": "smartphone",
    "ipad": "tablet",
    "airpods": "wireless earbuds",
    "macbook": "laptop",
    "airtag": "bluetooth tracker",
    "kindle": "e-reader",
    "alexa": "smart speaker",
    "google home": "smart speaker",
    "chromecast": "streaming device",
    "roku": "streaming device",
    "fire stick": "streaming stick",
    "samsung": None,
    "sony": None,
    "bose": None,
    "jbl": None,
    "logitech": None,
    "fitbit": "fitness tracker",
    "garmin": None,
    "gopro": "action camera",
    "peloton": None,
    "nintendo switch": "handheld game console",
    "nintendo": None,
    "playstation": "game console",
    "ps5": "game console",
    "xbox": "game console",
    # toys
    "lego": "building brick",
    "legos": "building bricks",
    "duplo": "large building blocks",
    "barbie": "fashion doll",
    "hot wheels": "toy car",
    "nerf": "foam dart",
    "play-doh": "modeling dough",
    "crayola": None,
    "frisbee": "flying disc",
    # outdoors, tools, clothing
    "yeti": None,
    "stanley cup": "insulated tumbler",
    "hydro flask": "insulated water bottle",
    "camelbak": "hydration pack",
    "coleman": None,
    "jetboil": "backpacking stove",
    "weber": None,
    "traeger": None,
    "jet ski": "personal watercraft",
    "nike": None,
    "adidas": None,
    "under armour": None,
    "dewalt": None,
    "makita": None,
    "ryobi": None,
    "black+decker": None,
    "dremel": "rotary tool",
    "wd-40": "lubricant spray",
    "gorilla glue": "strong glue",
    "velcro": "hook and loop",
}

# Longest names first, so "instant pot" is replaced before a shorter name could match inside it.
_BRAND_PATTERNS = [
    (re.compile(rf"(?<![\w-]){re.escape(brand)}(?![\w-])"), generic)
    for brand, generic in sorted(BRANDS.items(), key=lambda item: -len(item[0]))
]

# What is left of "<brand> set" is no product type.
_NOT_A_PRODUCT_ALONE = frozenset({"set", "kit", "pack", "bundle", "s"})

# Letters, digits and the punctuation product names really use ("painter's tape", "3-in-1", "6.5 qt").
_PRODUCT_CHARS = re.compile(r"^[a-z0-9][a-z0-9 '&/+.\-]*$")


def squash_spaces(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return re.sub(r"\s+", " ", text).strip()


def normalize_quotes(text: str) -> str:
    """Typographic quotes to ASCII ones (the seed's raw file has a stray ``”`` that breaks its CSV)."""
    return text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")


def clean_need(text: str) -> str:
    """A need as users would type it: ASCII quotes, single spaces, no trailing period or outer quotes.

    Casing is kept ("how do I ..."): users type both, and the model should see both.
    """
    text = squash_spaces(normalize_quotes(text)).strip('"').strip()
    return text.rstrip(".").strip()


def letters_key(text: str) -> str:
    """Lowercase letters and single spaces only.

    The seed's ``unique_dataset.txt`` stripped every hyphen, apostrophe and digit ("a 5-year-old" became
    "a yearold"); this key matches those mangled strings back to the raw ones.
    """
    return squash_spaces(re.sub(r"[^a-z ]", "", text.lower()))


def strip_brands(product: str) -> str | None:
    """``product`` with brand names replaced by their generic name or removed; None if nothing is left.

    "kitchenaid stand mixer" -> "stand mixer", "kindle case" -> "e-reader case",
    "sharpie marker" -> "permanent marker" (a word repeated by the replacement is folded).
    """
    branded = False
    for pattern, generic in _BRAND_PATTERNS:
        if pattern.search(product):
            branded = True
            product = squash_spaces(pattern.sub(f" {generic or ''} ", product))
    if branded:  # fold only the repeats a replacement made; "yo yo" and "pom pom maker" are real names
        product = re.sub(r"\b(\w+) \1\b", r"\1", product)
    # A brand removed from "bose headphones" leaves a product; from "yeti" or "ninja set" it leaves none.
    if not re.search(r"[a-z]{2}", product) or product in _NOT_A_PRODUCT_ALONE:
        return None
    return product


def has_brand(product: str) -> bool:
    """Whether a deny-listed brand appears as a word in ``product``."""
    return any(pattern.search(product.lower()) for pattern, _ in _BRAND_PATTERNS)


def clean_product(text: str) -> str | None:
    """A generic, lowercase product type, or None when the text cannot be one.

    Lowercases, drops parenthesised asides ("bibimbap toppings (rice, vegetables)"), outer quotes and
    trailing punctuation, and brand words.
    """
    text = normalize_quotes(text).lower()
    text = re.sub(r"\([^)]*\)?", " ", text)  # also an unclosed "(" left by a split
    text = squash_spaces(text).strip("\"'[] ").rstrip(".,;:").strip()
    if not text:
        return None
    text = strip_brands(text)
    if text is None or not _PRODUCT_CHARS.match(text):
        return None
    return text


def dedup_keep_order(items: list[str]) -> list[str]:
    """Items without repeats (case- and space-insensitive), first occurrence kept."""
    seen: set[str] = set()
    kept = []
    for item in items:
        key = squash_spaces(item.lower())
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept
