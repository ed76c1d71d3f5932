"""Numbers in text: written as digits, English words or Chinese numerals — read them, and write them.

Used both ways: a question may say "the last five minutes" or "过去五分钟", and an LLM-phrased answer is
checked number by number against the facts it was given, whichever way it writes them.
"""

from __future__ import annotations

import re
from typing import List, Optional

__all__ = ["parse_number_word", "numbers_in", "en_number", "zh_number"]

_EN_UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
             "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
             "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
            "ninety": 90}
_EN_WORDS = {**_EN_UNITS, **_EN_TENS, "hundred": 100, "thousand": 1000, "dozen": 12, "once": 1, "twice": 2,
             "none": 0, "no": 0}
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_ZH_RUN = re.compile(r"[零〇一二两三四五六七八九十百千万]+")
_EN_RUN = re.compile(r"\b(?:(?:%s)(?:[\s-]+(?:and[\s-]+)?)?)+\b" % "|".join(
    sorted([w for w in _EN_WORDS if w not in ("no", "none", "once", "twice")], key=len, reverse=True)),
    re.IGNORECASE)
_DIGITS = re.compile(r"(?<![A-Za-z0-9_.])\d+(?:[.,]\d+)*(?:\.\d+)?")


def _en_value(words: List[str]) -> Optional[int]:
    total, current = 0, 0
    seen = False
    for w in words:
        w = w.lower()
        if w == "and":
            continue
        if w in _EN_UNITS or w in _EN_TENS:
            current += _EN_UNITS.get(w, 0) + _EN_TENS.get(w, 0)
        elif w == "dozen":
            current = (current or 1) * 12
        elif w == "hundred":
            current = (current or 1) * 100
        elif w == "thousand":
            total += (current or 1) * 1000
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def _zh_value(text: str) -> Optional[int]:
    if not text:
        return None
    if all(c in _ZH_DIGITS for c in text) and len(text) > 1:  # 二〇二六: digit by digit
        return int("".join(str(_ZH_DIGITS[c]) for c in text))
    total, section, digit = 0, 0, None
    for c in text:
        if c in _ZH_DIGITS:
            digit = _ZH_DIGITS[c]
        elif c in _ZH_UNITS:
            unit = _ZH_UNITS[c]
            if unit == 10000:
                total += (section + (digit or 0)) * unit
                section, digit = 0, None
            else:
                section += (1 if digit is None else digit) * unit
                digit = None
        else:
            return None
    return total + section + (digit or 0)


def parse_number_word(text: str) -> Optional[float]:
    """A number written as digits ("5", "2.5"), English words ("five", "twenty-one", "a dozen") or
    Chinese numerals ("五", "十五", "两"); None if the text is not one."""
    t = text.strip().lower()
    if not t:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        return float(t)
    if t in ("a", "an"):
        return 1.0
    if t in ("half", "半"):
        return 0.5
    if _ZH_RUN.fullmatch(t):
        v = _zh_value(t)
        return None if v is None else float(v)
    v = _en_value(re.split(r"[\s-]+", t))
    return None if v is None else float(v)


def numbers_in(text: str) -> List[float]:
    """Every number a reader would see in ``text``: digits (times such as 08:05 give 8 and 5), English
    number words and Chinese numerals, in order of appearance."""
    found = []
    for m in _DIGITS.finditer(text):
        for part in re.split(r"[:]", m.group(0)):
            try:
                found.append((m.start(), float(part.replace(",", ""))))
            except ValueError:
                continue
    for m in _EN_RUN.finditer(text):
        v = _en_value(re.split(r"[\s-]+", m.group(0).strip(" -")))
        if v is not None:
            found.append((m.start(), float(v)))
    for m in _ZH_RUN.finditer(text):
        v = _zh_value(m.group(0))
        if v is not None:
            found.append((m.start(), float(v)))
    return [v for _, v in sorted(found, key=lambda p: p[0])]


def en_number(n: int) -> str:
    """An integer 0..999 in English words ("twenty-one"); larger ones as digits."""
    if n < 0 or n > 999:
        return str(n)
    names = {v: k for k, v in _EN_UNITS.items()}
    tens = {v: k for k, v in _EN_TENS.items()}
    if n < 20:
        return names[n]
    if n < 100:
        return tens[n - n % 10] + ("" if n % 10 == 0 else "-" + names[n % 10])
    rest = n % 100
    return names[n // 100] + " hundred" + ("" if rest == 0 else " and " + en_number(rest))


def zh_number(n: int) -> str:
    """An integer 0..9999 in Chinese numerals ("二十一"); larger ones as digits."""
    if n < 0 or n > 9999:
        return str(n)
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    out, zero = "", False
    for unit, name in ((1000, "千"), (100, "百"), (10, "十")):
        d = n // unit % 10
        if d:
            if zero:
                out += "零"
            out += ("" if (unit == 10 and d == 1 and n < 20) else digits[d]) + name
            zero = False
        elif out:
            zero = True
    if n % 10:
        out += ("零" if zero else "") + digits[n % 10]
    return out
