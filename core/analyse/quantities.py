"""Numbers, measurements and dates in an answer, as comparable values.

"forty-two", "42" and "42.0" are one number; "100 °C", "212°F" and "373.15 K" are one
temperature; "July 20, 1969", "20/07/1969" and "1969-07-20" are one date. Each is read
as a `Quantity`: a value in SI units (dates as day numbers), its dimension, and how
precisely it was written, so that "About 42 km" matches 42.195 km but "1968" never
matches "1969".
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass

# --- numbers written as words ----------------------------------------------------------

_ONES = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
           "trillion": 1_000_000_000_000}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
             "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
             "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
             "nineteenth": 19, "twentieth": 20, "thirtieth": 30}
_ORDINALS.update({f"{tens}-{unit}": value + _ORDINALS[unit] for tens, value in (("twenty", 20), ("thirty", 30))
                  for unit in ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
                  if value + _ORDINALS[unit] <= 31})
_NUMBER_WORD = "|".join(sorted([*_ONES, *_TENS, *_SCALES], key=len, reverse=True))
# A run of number words: "forty-two", "one hundred and five", "twenty four".
_WORD_RUN = re.compile(rf"\b(?:{_NUMBER_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_NUMBER_WORD}))*\b"
                       r"(?!-(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth))", re.I)


def _words_value(run: str) -> int | None:
    total, current = 0, 0
    for word in re.split(r"[\s-]+", run.lower()):
        if word == "and":
            continue
        if word in _ONES:
            current += _ONES[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word in _SCALES:
            total += max(current, 1) * _SCALES[word]
            current = 0
    return total + current


_A_SCALE = re.compile(r"\ba (hundred|thousand|million|billion|dozen)\b", re.I)
_MINUS = re.compile(r"\bminus\s+(?=\d)", re.I)


def words_to_digits(text: str) -> str:
    """"It's forty-two." -> "It's 42."; "one hundred degrees" -> "100 degrees".

    A scale word after digits ("1.08 billion", "345 thousand") is left alone: the
    number reader multiplies it out. A lone "one" is often a pronoun ("which one")
    and is kept as a word."""
    text = _A_SCALE.sub(lambda m: {"hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
                                   "dozen": "12"}[m.group(1).lower()], text)

    def replace(match: re.Match) -> str:
        run = match.group(0)
        if run.lower() in _SCALES or run.lower() == "one":
            return run
        return str(_words_value(run))
    return _MINUS.sub("-", _WORD_RUN.sub(replace, text))


# --- units -----------------------------------------------------------------------------
# name -> (dimension, factor to SI, offset); temperatures go to kelvin.
_UNITS = {
    "km": ("length", 1000.0), "kilometre": ("length", 1000.0), "kilometer": ("length", 1000.0),
    "m": ("length", 1.0), "metre": ("length", 1.0), "meter": ("length", 1.0),
    "cm": ("length", 0.01), "centimetre": ("length", 0.01), "centimeter": ("length", 0.01),
    "mm": ("length", 0.001), "millimetre": ("length", 0.001), "millimeter": ("length", 0.001),
    "mi": ("length", 1609.344), "mile": ("length", 1609.344), "yd": ("length", 0.9144),
    "yard": ("length", 0.9144), "ft": ("length", 0.3048), "foot": ("length", 0.3048), "feet": ("length", 0.3048),
    "inch": ("length", 0.0254), "inches": ("length", 0.0254),
    "km2": ("area", 1e6), "square kilometre": ("area", 1e6), "square kilometer": ("area", 1e6),
    "square mile": ("area", 2_589_988.11), "m2": ("area", 1.0), "square metre": ("area", 1.0),
    "square meter": ("area", 1.0),
    "g": ("mass", 0.001), "gram": ("mass", 0.001), "gramme": ("mass", 0.001), "mg": ("mass", 1e-6),
    "milligram": ("mass", 1e-6), "kg": ("mass", 1.0), "kilogram": ("mass", 1.0), "lb": ("mass", 0.45359237),
    "lbs": ("mass", 0.45359237), "pound": ("mass", 0.45359237), "oz": ("mass", 0.028349523),
    "ounce": ("mass", 0.028349523), "tonne": ("mass", 1000.0),
    "s": ("time", 1.0), "sec": ("time", 1.0), "second": ("time", 1.0), "min": ("time", 60.0),
    "minute": ("time", 60.0), "h": ("time", 3600.0), "hr": ("time", 3600.0), "hour": ("time", 3600.0),
    "day": ("time", 86400.0), "week": ("time", 604800.0),
    "m/s": ("speed", 1.0), "km/s": ("speed", 1000.0), "km/h": ("speed", 1 / 3.6), "kph": ("speed", 1 / 3.6),
    "kmh": ("speed", 1 / 3.6), "mph": ("speed", 0.44704), "mi/s": ("speed", 1609.344),
    "metre per second": ("speed", 1.0), "meter per second": ("speed", 1.0),
    "kilometre per second": ("speed", 1000.0), "kilometer per second": ("speed", 1000.0),
    "km per second": ("speed", 1000.0), "km per hour": ("speed", 1 / 3.6), "kilometre per hour": ("speed", 1 / 3.6),
    "kilometer per hour": ("speed", 1 / 3.6), "mile per hour": ("speed", 0.44704),
    "mile per second": ("speed", 1609.344),
    "mg/kg": ("dose", 1e-6), "mg per kg": ("dose", 1e-6), "g/kg": ("dose", 1e-3),
    "nm": ("length", 1e-9), "nanometre": ("length", 1e-9), "nanometer": ("length", 1e-9),
    "µm": ("length", 1e-6), "micrometre": ("length", 1e-6), "micrometer": ("length", 1e-6), "micron": ("length", 1e-6),
    "nautical mile": ("length", 1852.0), "nmi": ("length", 1852.0), "light-year": ("length", 9.4607e15),
    "light year": ("length", 9.4607e15), "ly": ("length", 9.4607e15), "au": ("length", 1.495978707e11),
    "astronomical unit": ("length", 1.495978707e11),
    "hectare": ("area", 1e4), "ha": ("area", 1e4), "acre": ("area", 4046.8564224), "km²": ("area", 1e6),
    "m²": ("area", 1.0), "mi²": ("area", 2_589_988.11), "square foot": ("area", 0.09290304),
    "square feet": ("area", 0.09290304), "sq ft": ("area", 0.09290304),
    "l": ("volume", 1e-3), "litre": ("volume", 1e-3), "liter": ("volume", 1e-3), "ml": ("volume", 1e-6),
    "millilitre": ("volume", 1e-6), "milliliter": ("volume", 1e-6), "gallon": ("volume", 3.785411784e-3),
    "quart": ("volume", 9.46352946e-4), "pint": ("volume", 4.73176473e-4), "fl oz": ("volume", 2.95735296e-5),
    "m3": ("volume", 1.0), "m³": ("volume", 1.0), "cubic metre": ("volume", 1.0), "cubic meter": ("volume", 1.0),
    "cm3": ("volume", 1e-6), "cm³": ("volume", 1e-6), "cc": ("volume", 1e-6),
    "pa": ("pressure", 1.0), "pascal": ("pressure", 1.0), "kpa": ("pressure", 1e3), "hpa": ("pressure", 100.0),
    "mbar": ("pressure", 100.0), "bar": ("pressure", 1e5), "atm": ("pressure", 101325.0),
    "atmosphere": ("pressure", 101325.0), "psi": ("pressure", 6894.757), "mmhg": ("pressure", 133.322),
    "j": ("energy", 1.0), "joule": ("energy", 1.0), "kj": ("energy", 1e3), "cal": ("energy", 4.184),
    "calorie": ("energy", 4.184), "kcal": ("energy", 4184.0), "kilocalorie": ("energy", 4184.0),
    "kwh": ("energy", 3.6e6), "ev": ("energy", 1.602176634e-19),
    "w": ("power", 1.0), "watt": ("power", 1.0), "kw": ("power", 1e3), "kilowatt": ("power", 1e3),
    "mw": ("power", 1e6), "megawatt": ("power", 1e6), "hp": ("power", 745.7), "horsepower": ("power", 745.7),
    "hz": ("frequency", 1.0), "hertz": ("frequency", 1.0), "khz": ("frequency", 1e3), "mhz": ("frequency", 1e6),
    "ghz": ("frequency", 1e9),
    "ms": ("time", 1e-3), "millisecond": ("time", 1e-3), "year": ("time", 31_557_600.0), "yr": ("time", 31_557_600.0),
    "decade": ("time", 315_576_000.0), "century": ("time", 3_155_760_000.0), "centuries": ("time", 3_155_760_000.0),
    "knot": ("speed", 1852 / 3600), "kn": ("speed", 1852 / 3600), "ft/s": ("speed", 0.3048),
    "mile an hour": ("speed", 0.44704), "km an hour": ("speed", 1 / 3.6), "kilometre an hour": ("speed", 1 / 3.6),
    "kilometer an hour": ("speed", 1 / 3.6),
    "µg": ("mass", 1e-9), "microgram": ("mass", 1e-9), "ton": ("mass", 907.18474), "stone": ("mass", 6.35029318),
    "byte": ("data", 1.0), "kb": ("data", 1e3), "mb": ("data", 1e6), "gb": ("data", 1e9), "tb": ("data", 1e12),
    "kib": ("data", 1024.0), "mib": ("data", 1024.0 ** 2), "gib": ("data", 1024.0 ** 3),
    "cent": ("usd", 0.01), "cup": ("volume", 2.365882365e-4), "tbsp": ("volume", 1.478676478e-5),
    "tablespoon": ("volume", 1.478676478e-5), "tsp": ("volume", 4.92892159e-6), "teaspoon": ("volume", 4.92892159e-6),
    "hrs": ("time", 3600.0), "mins": ("time", 60.0), "secs": ("time", 1.0), "yrs": ("time", 31_557_600.0),
    "km/hr": ("speed", 1 / 3.6), "mi/h": ("speed", 0.44704), "miles/hour": ("speed", 0.44704),
    "kilojoule": ("energy", 1e3), "pc": ("length", 3.0857e16), "parsec": ("length", 3.0857e16),
    "%": ("percent", 1.0), "percent": ("percent", 1.0), "per cent": ("percent", 1.0),
    "°": ("angle", 1.0), "degree": ("angle", 1.0),
    "$": ("usd", 1.0), "dollar": ("usd", 1.0), "usd": ("usd", 1.0), "€": ("eur", 1.0), "euro": ("eur", 1.0),
    "£": ("gbp", 1.0),
}
_TEMPERATURES = {  # name -> (factor, offset) to kelvin
    "°c": (1.0, 273.15), "° c": (1.0, 273.15), "degrees celsius": (1.0, 273.15), "degree celsius": (1.0, 273.15),
    "celsius": (1.0, 273.15), "degrees c": (1.0, 273.15), "c": (1.0, 273.15),
    "°f": (5 / 9, 273.15 - 32 * 5 / 9), "° f": (5 / 9, 273.15 - 32 * 5 / 9),
    "degrees fahrenheit": (5 / 9, 273.15 - 32 * 5 / 9), "degree fahrenheit": (5 / 9, 273.15 - 32 * 5 / 9),
    "fahrenheit": (5 / 9, 273.15 - 32 * 5 / 9), "degrees f": (5 / 9, 273.15 - 32 * 5 / 9),
    "f": (5 / 9, 273.15 - 32 * 5 / 9),
    "k": (1.0, 0.0), "kelvin": (1.0, 0.0), "kelvins": (1.0, 0.0), "°k": (1.0, 0.0),
    "degrees centigrade": (1.0, 273.15), "centigrade": (1.0, 273.15),
    "ºc": (1.0, 273.15), "℃": (1.0, 273.15),
    "ºf": (5 / 9, 273.15 - 32 * 5 / 9), "℉": (5 / 9, 273.15 - 32 * 5 / 9),
    "deg c": (1.0, 273.15), "deg f": (5 / 9, 273.15 - 32 * 5 / 9),
}


def _unit_pattern() -> str:
    names = set(_TEMPERATURES) | {n for n in _UNITS if n not in "$€£"}
    plural = {n + "s" for n in names if n[-1].isalpha() and len(n) > 2}
    plural |= {n.replace(" per", "s per") for n in names if " per " in n}
    choices = sorted(names | plural, key=len, reverse=True)
    return "|".join(re.escape(c).replace(r"\ ", r"\s*") for c in choices)


# A number as written: 1,000 / 299 792 458 / 42.195 / 3.00e8 / 3 × 10^8, then a scale
# word and a unit. Unit names must end at a word boundary ("m" in "metres" is not a metre).
_NUMBER = r"(?<![\w.])[-−]?\d{1,3}(?:(?:,\d{3})+|(?: \d{3})+(?![\d.,]))(?:\.\d+)?|(?<![\w.])[-−]?\d+(?:\.\d+)?"
_QUANTITY = re.compile(
    rf"(?P<currency>[$€£])?\s?(?P<number>{_NUMBER})"
    r"(?:\s?(?:[eE](?P<exp>[-+]?\d+)|\s?[×x*]\s?10\^(?P<exp10>[-+]?\d+)))?"
    r"(?:\s(?P<scale>thousand|million|billion|trillion)\b)?"
    rf"(?:\s?(?P<unit>{_unit_pattern()})(?![\w/]))?",
    re.I,
)
_HEDGES = re.compile(
    r"\b(about|around|roughly|approximately|approx|nearly|almost|some|circa|ca|close to)\s*$|[~≈]\s*$", re.I)

# --- dates -----------------------------------------------------------------------------
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"])}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2}|" + "|".join(sorted(_ORDINALS, key=len, reverse=True)) + r")(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})"
_DATES = [
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.I),                     # July 20, 1969
    re.compile(rf"\b(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.I),  # 20 July 1969, 9th of November, 1989
    re.compile(r"\b(?P<year>\d{4})[-/.](?P<month>\d{1,2})[-/.](?P<day>\d{1,2})\b"),  # 1969-07-20, 1969/07/20
    re.compile(rf"\b{_DAY}[-\s]{_MONTH}[-\s]{_YEAR}\b", re.I),                     # 20-Jul-1969
    re.compile(r"\b(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<year>\d{4})\b"),        # 20/07/1969 or 07/20/1969
]
# A day without a year ("July 4", "the 4th of July") compares only with another such day.
_DAYS = [
    re.compile(rf"\b{_MONTH}\s+{_DAY}\b(?!,?\s*\d)", re.I),
    re.compile(rf"\b(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH}\b(?!,?\s*\d)", re.I),
]


@dataclass(frozen=True)
class Quantity:
    """One number an answer states. `values` are the readings in SI units (two for an
    ambiguous date like 03/04/2020); `raw` is the number as written."""
    text: str
    dimension: str  # "" for a bare number, else "length", "temperature", "date", ...
    values: tuple[float, ...]
    tolerance: float
    raw: float
    start: int = 0
    end: int = 0

    def equals(self, other: "Quantity", *, bare_ok: bool = False) -> bool | None:
        """True or False when the two can be compared, None when they measure different
        things (a length against a date). A bare number compares with a measurement by
        the number as written only when `bare_ok` (it is the whole answer)."""
        if self.dimension != other.dimension:
            if not (bare_ok and "" in (self.dimension, other.dimension) and "date" not in
                    (self.dimension, other.dimension)):
                return None
            return abs(self.raw - other.raw) < max(precision(self.raw), precision(other.raw))
        # Within the rounding of the less precise one: "8,849 m" covers 8,848.86 m, "12" not 12.5.
        slack = max(self.tolerance, other.tolerance)
        return any(abs(a - b) < slack or math.isclose(a, b, rel_tol=1e-9) for a in self.values for b in other.values)


def precision(number: float | str) -> float:
    """Half a unit of the last digit written: "42" covers 41.5–42.5, "42.20" 42.195–42.205."""
    text = number if isinstance(number, str) else f"{number:.10g}"
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return 0.5 * 10 ** -decimals


def _number(text: str) -> float:
    text = text.replace("−", "-").replace(",", "").replace(" ", "")
    return float(text)


def _day(text: str) -> int:
    return _ORDINALS.get(text.lower()) or int(re.sub(r"\D", "", text))


def _date_quantity(match: re.Match) -> Quantity | None:
    groups = match.groupdict()
    year = int(groups["year"])
    try:
        if "a" in groups and groups.get("a"):
            a, b = int(groups["a"]), int(groups["b"])
            readings = {(a, b), (b, a)} if a <= 12 and b <= 12 else {(b, a) if a > 12 else (a, b)}
            days = tuple(sorted(datetime.date(year, month, day).toordinal()
                                for month, day in readings if 1 <= month <= 12))
        else:
            month = groups["month"]
            month = int(month) if month.isdigit() else _MONTHS[month.lower().rstrip(".")]
            days = (datetime.date(year, month, _day(groups["day"])).toordinal(),)
    except (ValueError, KeyError):
        return None
    return Quantity(match.group(0), "date", days, 0.0, float(days[0]), match.start(), match.end()) if days else None


def read(text: str) -> list[Quantity]:
    """Every number, measurement and date in `text`, in reading order. Numbers in words
    count; digits inside names ("K2") do not. Spans (start, end) refer to
    words_to_digits(text)."""
    text = words_to_digits(text)
    found, taken = [], []
    for pattern in _DATES:
        for match in pattern.finditer(text):
            if any(s < match.end() and match.start() < e for s, e in taken):
                continue
            quantity = _date_quantity(match)
            if quantity:
                found.append(quantity)
                taken.append(match.span())
    for pattern in _DAYS:
        for match in pattern.finditer(text):
            if any(s < match.end() and match.start() < e for s, e in taken):
                continue
            month = _MONTHS.get(match["month"].lower().rstrip("."))
            try:
                day = _day(match["day"])
            except ValueError:
                continue
            if month and 1 <= day <= 31:
                found.append(Quantity(match.group(0), "day", (month * 100.0 + day,), 0.0, float(day),
                                      match.start(), match.end()))
                taken.append(match.span())
    for match in _QUANTITY.finditer(text):
        if any(s < match.end() and match.start() < e for s, e in taken):
            continue
        quantity = _quantity(match, text)
        if quantity:
            found.append(quantity)
    found.sort(key=lambda q: q.start)
    return _add_compounds(found, text)


def _quantity(match: re.Match, text: str) -> Quantity | None:
    raw = _number(match["number"])
    value = raw
    if match["exp"]:
        value *= 10 ** int(match["exp"])
    if match["exp10"]:
        value *= 10 ** int(match["exp10"])
    if match["scale"]:
        value *= _SCALES[match["scale"].lower()]
    # Precision as written ("3.00e8" is ±0.005e8), widened for hedged numbers ("about 42").
    tolerance = precision(match["number"]) * value / raw if raw else 0.5
    if _HEDGES.search(text[max(0, match.start() - 20):match.start()]):
        tolerance = max(tolerance, 0.025 * abs(value))
    dimension, factor, offset = "", 1.0, 0.0
    unit = (match["unit"] or "").lower()
    unit = re.sub(r"\s+", " ", unit)
    if match["currency"]:
        dimension, factor = _UNITS[match["currency"]]
    elif unit:
        if unit in _TEMPERATURES:
            dimension = "temperature"
            factor, offset = _TEMPERATURES[unit]
        else:
            singular = unit.replace("s per", " per").rstrip("s") if unit not in _UNITS else unit
            if singular not in _UNITS and unit.replace("s per", " per") in _UNITS:
                singular = unit.replace("s per", " per")
            if singular in _UNITS:
                dimension, factor = _UNITS[singular]
            elif unit in _UNITS:
                dimension, factor = _UNITS[unit]
    if dimension == "angle" and re.match(r"\s*(?:celsius|c\b)", text[match.end():], re.I):
        dimension, factor, offset = "temperature", 1.0, 273.15
    si = value * factor + offset
    start = match.start() + len(match.group(0)) - len(match.group(0).lstrip())
    return Quantity(match.group(0).strip(), dimension, (si,), tolerance * factor, raw, start, match.end())


def _add_compounds(found: list[Quantity], text: str) -> list[Quantity]:
    """"26 miles 385 yards" is one length: adjacent quantities of one dimension add up."""
    out: list[Quantity] = []
    for q in found:
        prev = out[-1] if out else None
        if (prev and prev.dimension == q.dimension and q.dimension in {"length", "mass", "time"}
                and re.fullmatch(r"\s*(?:and\s*)?", text[prev.end:q.start])):
            total = prev.values[0] + q.values[0]
            out[-1] = Quantity(text[prev.start:q.end], q.dimension, (total,), prev.tolerance + q.tolerance,
                               total, prev.start, q.end)
        else:
            out.append(q)
    return out
