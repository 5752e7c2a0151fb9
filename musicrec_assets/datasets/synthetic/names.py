"""Made-up names and ids: people, artists, MusicBrainz-style UUIDs, Last.fm-style hex ids.

Everything is drawn from the caller's seeded generator, so the same seed gives the same names.
Some vocabulary carries diacritics, so non-ASCII text is exercised on every run.
"""

from __future__ import annotations

import unicodedata
import uuid

import numpy as np

# fmt: off
FIRST_NAMES = (
    "Seamus", "Aaliyah", "Abdul", "Ada", "Adele", "Agnes", "Aiko", "Alejandro", "Amara",
    "Anders", "Anika", "Arjun", "Astrid", "Beatriz", "Benedikt", "Bjorn", "Bruno", "Camille",
    "Carmen", "Chen", "Chiara", "Dagny", "Dario", "Dmitri", "Eamon", "Elif", "Elena", "Emeka",
    "Emil", "Esperanza", "Fatima", "Felix", "Freya", "Gaspard", "Greta", "Guillermo", "Hana",
    "Hamid", "Hugo", "Ingrid", "Ines", "Isaac", "Jamal", "Jana", "Jonas", "Jorge", "Kai",
    "Kamala", "Keanu", "Kenji", "Lars", "Leila", "Lena", "Liam", "Lorenzo", "Lucia", "Magnus",
    "Malik", "Maren", "Mateo", "Mei", "Milan", "Mira", "Nadia", "Naveen", "Nils", "Noor",
    "Oksana", "Olga", "Omar", "Oscar", "Paloma", "Pavel", "Priya", "Quentin", "Rafael", "Rania",
    "Rhiannon", "Rosa", "Ruben", "Saanvi", "Selma", "Sergei", "Sigrid", "Silas", "Sofia",
    "Soren", "Tariq", "Thea", "Tomas", "Ulla", "Valentina", "Viktor", "Wanjiru", "Wei",
    "Xavier", "Yara", "Yusuf", "Zainab", "Zoe", "Zoltan", "Maeve", "Declan", "Siobhan",
    "Ronan", "Tove", "Eero", "Aino", "Kalani", "Leilani", "Ngozi", "Chidi", "Ayesha", "Diego",
    "Renata", "Ivo", "Petra", "Marek", "Zuzana", "Hiroshi", "Yuki", "Min-jun", "Ji-woo",
)

LAST_NAMES = (
    "Runolfsdottir", "Abernathy", "Adeyemi", "Albrecht", "Almeida", "Andersson", "Bakshi",
    "Balogun", "Bauer", "Bergstrom", "Bianchi", "Borkowski", "Brennan", "Castellanos",
    "Chakraborty", "Cho", "Christiansen", "Dalgaard", "Delacroix", "Dimitrov", "Donnelly",
    "Eriksen", "Esposito", "Fagerlund", "Farouk", "Fitzgerald", "Fontaine", "Gallagher",
    "Gonzaga", "Gudmundsson", "Haddad", "Halvorsen", "Hashimoto", "Hernandez", "Hoffmann",
    "Ibrahim", "Ivanova", "Jablonski", "Jakobsen", "Jimenez", "Kaminski", "Karlsson",
    "Kawasaki", "Kowalczyk", "Kuznetsov", "Lachance", "Lindqvist", "Lombardi", "Lundgren",
    "MacAllister", "Magnusson", "Marchetti", "Mbeki", "Moreau", "Nakamura", "Navarro",
    "Nieminen", "Novak", "Nwosu", "Obrien", "Okafor", "Oliveira", "Ortega", "Ostrowski",
    "Papadopoulos", "Petrov", "Quintero", "Rahman", "Ramirez", "Rasmussen", "Reinholt",
    "Rinaldi", "Rosenberg", "Sandoval", "Santangelo", "Schneider", "Silvestri", "Sokolova",
    "Stefansson", "Svensson", "Takahashi", "Thorsdottir", "Toivonen", "Trujillo", "Vasquez",
    "Verhoeven", "Villanueva", "Virtanen", "Wachowski", "Weatherby", "Whitfield", "Wojcik",
    "Yamamoto", "Zamora", "Zielinski", "Zubrowski", "Ashworth", "Blackwood", "Carrington",
    "Davenport", "Ellsworth", "Fairbanks", "Greenleaf", "Hargreaves", "Kilpatrick",
    "Lockhart", "Montgomery", "Pemberton", "Rutherford", "Thistlewood", "Underhill",
    "Van der Berg", "O'Sullivan", "Müller", "Þórsson", "Nørgaard", "Åberg", "Şahin",
    "Gómez", "Kovačević", "Dvořák", "Łukasik",
)

ADJECTIVES = (
    "Black", "Silver", "Electric", "Velvet", "Hollow", "Crimson", "Golden", "Broken",
    "Midnight", "Paper", "Neon", "Quiet", "Wild", "Frozen", "Burning", "Lonely", "Cosmic",
    "Secret", "Northern", "Lunar", "Savage", "Gentle", "Restless", "Violet", "Iron", "Glass",
    "Sleeping", "Wandering", "Radiant", "Faded", "Hidden", "Distant", "Static", "Tender",
    "Bitter", "Sunken", "Crystal", "Dusty", "Endless", "Feral", "Haunted", "Infinite",
    "Little", "Magnetic", "Obsidian", "Pale", "Rusty", "Scarlet", "Twin", "Wicked", "Young",
    "Ancient", "Analog", "Blue", "Copper", "Drowned", "Empty", "Fading", "Grey", "Holy",
)

NOUNS = (
    "Wolf", "Harbor", "Echo", "Mirror", "Lantern", "Comet", "Garden", "Engine", "River",
    "Ghost", "Falcon", "Island", "Machine", "Orchid", "Prophet", "Saint", "Shadow", "Signal",
    "Temple", "Thunder", "Tide", "Tower", "Valley", "Violin", "Whale", "Anchor", "Cathedral",
    "Desert", "Ember", "Forest", "Glacier", "Horizon", "Kingdom", "Lighthouse", "Meadow",
    "Monarch", "Ocean", "Parade", "Pilot", "Raven", "Satellite", "Serpent", "Sparrow",
    "Storm", "Summer", "Tiger", "Union", "Vapor", "Winter", "Canyon", "Circus", "Diamond",
    "Fortress", "Heart", "Jaguar", "Mountain", "Palace", "Rocket", "Siren", "Station",
)

PLURAL_NOUNS = (
    "Wolves", "Echoes", "Mirrors", "Lanterns", "Comets", "Gardens", "Engines", "Rivers",
    "Ghosts", "Falcons", "Islands", "Machines", "Orchids", "Prophets", "Saints", "Shadows",
    "Signals", "Temples", "Tides", "Towers", "Valleys", "Whales", "Anchors", "Embers",
    "Forests", "Horizons", "Kingdoms", "Meadows", "Monarchs", "Oceans", "Pilots", "Ravens",
    "Satellites", "Serpents", "Sparrows", "Storms", "Tigers", "Diamonds", "Hearts",
    "Jaguars", "Mountains", "Rockets", "Sirens", "Stations", "Strangers", "Lovers",
    "Brothers", "Sisters", "Kids", "Dreamers", "Drifters", "Outlaws", "Pioneers", "Giants",
)

PLACES = (
    "Brooklyn", "Reykjavik", "Lagos", "Kyoto", "Marseille", "Detroit", "Bergen", "Havana",
    "Tbilisi", "Memphis", "Glasgow", "Montreal", "Bristol", "Osaka", "Lisbon", "Nairobi",
    "Gothenburg", "Seattle", "Manchester", "Kraków", "São Paulo", "Tromsø", "Zürich",
)

# Syllables of invented band names; a few carry diacritics so that non-ASCII names
# (and ensure_ascii=False) get exercised on every run.
SYLLABLES = (
    "ka", "lo", "mi", "ra", "ven", "tor", "shi", "na", "bel", "dor", "zu", "qua", "rin",
    "sol", "mar", "vi", "ta", "ne", "xo", "lu", "gra", "fen", "ori", "tha", "mo", "sen",
    "ly", "kor", "dra", "eli", "ro", "sa", "an", "ul", "ix", "jo", "pe", "ri", "vo", "za",
    "rø", "sé", "lú", "mä", "ñu", "kø", "tí", "ös",
)
# fmt: on

PREFIXES = ("DJ", "MC", "Lil", "Big", "Young")
ENSEMBLES = ("Trio", "Quartet", "Collective", "Orchestra", "Ensemble", "Sound System", "Band")

# Letters that Unicode decomposition does not reduce to ASCII, for user ids.
ASCII_FALLBACKS = str.maketrans(
    {"Þ": "Th", "þ": "th", "Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Æ": "Ae", "æ": "ae", "ß": "ss"}
)

ARTIST_NAME_TEMPLATES = 9
MAX_NAME_ATTEMPTS = 50


def _random_uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """MusicBrainz-style (version 4) UUID strings from the seeded generator."""
    words = rng.integers(0, 2**64, size=(n, 2), dtype=np.uint64).tolist()
    return np.asarray(
        [str(uuid.UUID(int=(high << 64) | low, version=4)) for high, low in words], dtype=object
    )


def _random_hex_ids(rng: np.random.Generator, n: int, n_hex: int = 40) -> np.ndarray:
    """Hex ids shaped like Last.fm-360K's SHA-1 user ids."""
    digits = rng.bytes(n * n_hex // 2).hex()
    return np.asarray([digits[i : i + n_hex] for i in range(0, n * n_hex, n_hex)], dtype=object)


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(ASCII_FALLBACKS))
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


def _person_names(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First names, last names and unique ids (first initial + last name, then 2, 3, …)."""
    first = np.asarray(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.asarray(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)]
    seen: dict[str, int] = {}
    ids = []
    for first_name, last_name in zip(first, last, strict=True):
        base = _ascii_slug(first_name)[0] + _ascii_slug(last_name)
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}{seen[base]}")
    return first, last, np.asarray(ids, dtype=object)


def _invented_word(picks: list[int]) -> str:
    """A made-up word of 2 or 3 syllables, e.g. "Korvina"; uses up to 4 picks."""
    n_syllables = 2 + picks[0] % 2
    return "".join(SYLLABLES[p % len(SYLLABLES)] for p in picks[1 : 1 + n_syllables]).title()


def _artist_name(picks: list[int]) -> str:
    """One artist name from 6 random integers: a template and the words it takes."""

    def word(words: tuple[str, ...], pick: int) -> str:
        return words[pick % len(words)]

    template, a, b, c, _, f = picks[0] % ARTIST_NAME_TEMPLATES, *picks[1:]
    if template == 0:
        return f"The {word(ADJECTIVES, a)} {word(PLURAL_NOUNS, b)}"
    if template == 1:
        return f"{word(ADJECTIVES, a)} {word(NOUNS, b)}"
    if template == 2:
        return f"{word(FIRST_NAMES, a)} {word(LAST_NAMES, b)}"
    if template == 3:
        return f"{word(PLURAL_NOUNS, a)} of {word(PLACES, b)}"
    if template == 4:
        return _invented_word(picks[1:5])
    if template == 5:
        return f"{word(FIRST_NAMES, a)} {word(LAST_NAMES, b)} & the {word(PLURAL_NOUNS, c)}"
    if template == 6:
        return f"{word(PREFIXES, a)} {_invented_word(picks[2:6])}"
    if template == 7:
        return f"{_invented_word(picks[1:5])} {word(NOUNS, f)}"
    return f"{word(NOUNS, a)}{word(NOUNS, b).lower()} {word(ENSEMBLES, c)}"


def _artist_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct plausible artist names; collisions are redrawn."""
    names: list[str | None] = [None] * n
    taken: set[str] = set()
    pending = np.arange(n)
    for _ in range(MAX_NAME_ATTEMPTS):
        picks = rng.integers(0, 2**31, size=(len(pending), 6)).tolist()
        still_pending = []
        for position, row in zip(pending.tolist(), picks, strict=True):
            name = _artist_name(row)
            if name in taken:
                still_pending.append(position)
            else:
                taken.add(name)
                names[position] = name
        pending = np.asarray(still_pending, dtype=np.int64)
        if not len(pending):
            return np.asarray(names, dtype=object)
    raise ValueError(f"could not draw {n} distinct artist names")
