"""Text files' bytes to text, whatever the encoding: BOMs, UTF-16 without a BOM, UTF-8, GBK
(GB18030) judged by its common hanzi, then charset-normalizer; binary content is refused."""

from __future__ import annotations

import codecs
from functools import lru_cache

from charset_normalizer import from_bytes

from ingest._reasons import Rejection

# UTF-32 first: its little-endian BOM starts with the UTF-16 one
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# control codes that do not occur in text files (tab, newlines, form feed and ESC do)
_BINARY_CONTROLS = bytes(b for b in range(0x20) if b not in b"\t\n\r\f\v\x1b")
_BINARY_CONTROL_CHARS = dict.fromkeys(_BINARY_CONTROLS)
_BINARY_CONTROL_SHARE = 0.05
_GB_SAMPLE = 65536  # characters enough to judge an encoding; keeps 100 MB files fast
_UTF16_MIN_NULS = 0.05  # share of ASCII (spaces, newlines, digits) even Chinese text has
_PLAUSIBLE_SHARE = 0.95
_TEXT_BLOCKS = (
    (0x20, 0x7E),  # ASCII
    (0xA0, 0x24F),  # Latin-1 and Latin Extended
    (0x370, 0x4FF),  # Greek, Cyrillic
    (0x2000, 0x206F),  # general punctuation
    (0x3000, 0x30FF),  # CJK punctuation, kana
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0xFF00, 0xFFEF),  # full-width forms
)
# Share of the non-ASCII characters of a GB18030 decode that must be GB2312 hanzi or CJK
# punctuation. Real GBK text scores > 0.9; Big5 or Latin-1 bytes read as GBK land in the GBK
# extension rows, the kana rows or fail, and score far lower.
_GB_COMMON_SHARE = 0.8


def decode_text(data: bytes) -> str:
    """Decode the bytes of a text file whatever its encoding; `binary` / `encoding` if not."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise Rejection("encoding") from exc
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return utf16
    if _looks_binary(data):
        raise Rejection("binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    gb = _gb18030_strict(data)
    if gb is not None and _looks_like_gb_chinese(gb):
        # charset-normalizer misreads short Chinese texts; a clean GB decode of common hanzi is
        # much stronger evidence than its statistics
        return gb
    guessed = _charset_normalizer_guess(data)
    if guessed is not None:
        return guessed
    if gb is not None:
        return gb
    raise Rejection("encoding")


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 written without a BOM (old Windows tools) has NULs as the high byte of every
    ASCII character; such a file is text, not binary."""
    if len(data) < 4 or len(data) % 2:
        return None
    even_nuls, odd_nuls = data[0::2].count(0), data[1::2].count(0)
    if max(even_nuls, odd_nuls) < _UTF16_MIN_NULS * (len(data) // 2):
        return None
    encoding = "utf-16-le" if odd_nuls > even_nuls else "utf-16-be"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return text if _plausible_text(text) else None


def _plausible_text(text: str) -> bool:
    """Binary read as UTF-16 spreads over the whole BMP; text stays in a few blocks."""
    sample = text[:_GB_SAMPLE]
    plausible = sum(1 for ch in sample if _plausible_char(ch))
    return plausible >= _PLAUSIBLE_SHARE * len(sample)


def _plausible_char(ch: str) -> bool:
    code = ord(ch)
    return ch in "\t\n\r\f" or any(low <= code <= high for low, high in _TEXT_BLOCKS)


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data:
        return True
    controls = len(data) - len(data.translate(None, _BINARY_CONTROLS))
    return controls > _BINARY_CONTROL_SHARE * len(data)


def _control_share(text: str) -> float:
    controls = len(text) - len(text.translate(_BINARY_CONTROL_CHARS))
    return controls / max(1, len(text))


def _gb18030_strict(data: bytes) -> str | None:
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        return None


def _looks_like_gb_chinese(text: str) -> bool:
    non_ascii = [ch for ch in text[:_GB_SAMPLE] if ord(ch) > 0x7F and not ch.isspace()]
    if not non_ascii:
        return False
    common = sum(1 for ch in non_ascii if _is_gb2312_common(ch))
    return common >= _GB_COMMON_SHARE * len(non_ascii)


@lru_cache(maxsize=8192)
def _is_gb2312_common(ch: str) -> bool:
    try:
        lead = ch.encode("gb2312")[0]
    except UnicodeEncodeError:
        return False
    # rows 0xA1-0xA3 are punctuation and full-width forms, 0xB0-0xF7 the two levels of hanzi
    return 0xA1 <= lead <= 0xA3 or 0xB0 <= lead <= 0xF7


# UTF-16/32 without a BOM is handled above; charset-normalizer picks them for short Latin-1 bytes
_NO_BOM_GUESSES = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]


def _charset_normalizer_guess(data: bytes) -> str | None:
    best = from_bytes(data, cp_exclusion=_NO_BOM_GUESSES).best()
    if best is None:
        return None
    text = str(best)
    return None if _control_share(text) > _BINARY_CONTROL_SHARE else text
