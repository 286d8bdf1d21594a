"""Stored values of a ratings database, read as what they mean, whatever their storage.

Chat UIs store an exported flag as a boolean, 0/1, 'false'/'t'/'yes' text or NULL, ids as
integers or UUID text, content as TEXT or a BLOB. Each reader here takes any of these and
returns None where it cannot tell, for the caller to count a skip: it never guesses.
"""

from __future__ import annotations

import math
import re
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

_NUMBER = (int, float, Decimal)
_BINARY = (bytes, bytearray, memoryview)
_EPOCH_TEXT = re.compile(r"-?[0-9]{9,}(?:\.[0-9]*)?")  # from 1973 in seconds: no year or date
_MS_FROM = 100_000_000_000  # epoch values this large are milliseconds (as seconds: year 5138)
# PostgreSQL's boolean spellings; an empty string is the unset flag some UIs write.
_FALSE = {"false", "f", "0", "no", "n", "off", ""}
_TRUE = {"true", "t", "1", "yes", "y", "on"}
# Each spelling's partner that means "exported", so a marked row reads like its neighbours.
_TRUE_SPELLING = {
    **dict.fromkeys(("false", "true"), "true"),
    **dict.fromkeys(("f", "t"), "t"),
    **dict.fromkeys(("0", "1"), "1"),
    **dict.fromkeys(("no", "yes"), "yes"),
    **dict.fromkeys(("n", "y"), "y"),
    **dict.fromkeys(("off", "on"), "on"),
}


def text(value: Any) -> str | None:
    """Text as stored, BLOB/bytea decoded as UTF-8; None for NULL or undecodable bytes."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, _BINARY):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(value)


def exported(value: Any) -> bool | None:
    """Whether a stored exported flag says exported; NULL is not; None for an unknown value."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, _NUMBER):
        return {0: False, 1: True}.get(value)  # type: ignore[call-overload]  # 1.0 == 1
    word = text(value) if isinstance(value, (str, *_BINARY)) else None
    if word is None:
        return None
    word = word.strip().lower()
    return False if word in _FALSE else True if word in _TRUE else None


def ident(value: Any) -> int | str | None:
    """An id as integer or text (UUIDs as their text, 16-byte BLOB UUIDs too), for reports and
    JSON; None if unusable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, _BINARY) and len(value) == 16 and not _printable(bytes(value)):
        return str(uuid.UUID(bytes=bytes(value)))  # a UUID stored as its 16 bytes
    if isinstance(value, (float, Decimal)):
        return int(value) if math.isfinite(value) and value == int(value) else None
    found = text(value) if isinstance(value, (str, *_BINARY)) else None
    return found if found and found.strip() else None


def _printable(raw: bytes) -> bool:
    # A 16-character text id stored as a BLOB; a random UUID's bytes are almost never all ASCII.
    return raw.isascii() and raw.decode("ascii").isprintable()


def key(value: Any) -> str | None:
    """A lookup key that matches an id however each table stores it (5, '5', a UUID)."""
    found = ident(value)
    return None if found is None else str(found)


def id_order(value: int | str) -> tuple[bool, int | str]:
    """Sort key for ids of mixed storage: integers first, then text."""
    return (isinstance(value, str), value)


def as_column_type(value: int | str, kind: Any) -> Any:
    """An id from a report, converted for binding against the reflected column type `kind`;
    None where it cannot be such a value (so it cannot be in that table)."""
    try:
        wanted = kind.python_type
    except NotImplementedError:  # an untyped SQLite column compares by value
        return value
    try:
        if wanted is int:
            return value if isinstance(value, int) else int(str(value).strip())
        if wanted is uuid.UUID:
            return uuid.UUID(str(value))
        if wanted is Decimal:
            return Decimal(str(value))
        if wanted is str:
            return str(value)
        if wanted is bytes:
            return _uuid_bytes(str(value)) or str(value).encode("utf-8")
    except (ValueError, TypeError, ArithmeticError):
        return None
    return value


def _uuid_bytes(value: str) -> bytes | None:
    """The 16 bytes of a UUID's canonical text (ident's reading of a BLOB UUID), else None."""
    try:
        found = uuid.UUID(value)
    except ValueError:
        return None
    return found.bytes if str(found) == value else None


def lookup_values(value: Any) -> list[Any]:
    """An id in every storage a foreign key column may hold it in (5, '5'; a UUID's text and
    its 16 bytes), for an IN filter on SQLite, which compares an untyped column by type."""
    found = key(value)
    if found is None:
        return [value]
    out = [value, found]
    if found.lstrip("-").isdigit():
        out.append(int(found))
    raw = _uuid_bytes(found)
    if raw is not None:
        out += [raw, found.upper()]
    return list(dict.fromkeys(bytes(v) if isinstance(v, _BINARY) else v for v in out))


def order(value: Any) -> tuple[int, Any]:
    """Sort key for a stored position or id: numbers by value (also '10' after '9' in a TEXT
    column), then text, then NULL."""
    if value is None:
        return (2, "")
    if isinstance(value, bool):
        return (0, Decimal(int(value)))
    if isinstance(value, _NUMBER):
        return (0, Decimal(value)) if math.isfinite(value) else (1, str(value))
    word = text(value) if isinstance(value, (str, *_BINARY)) else str(value)
    if word is None:
        return (1, bytes(value).hex())
    try:
        number = Decimal(word.strip())
    except ArithmeticError:
        return (1, word)
    return (0, number) if number.is_finite() else (1, word)


def rating(value: Any) -> int | None:
    """+1 or -1 from an integer, number or text ('1', '+1', '-1'); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, _NUMBER):
        return int(value) if value in (1, -1) else None
    word = text(value) if isinstance(value, (str, *_BINARY)) else None
    return {"1": 1, "+1": 1, "-1": -1}.get((word or "").strip())


def exported_value(kind: Any, dialect: str, stored: Counter[Any]) -> Any:
    """What to write for "exported": what the column's type wants and, where the database
    does not enforce one (SQLite, text columns), the convention of the values already there."""
    if dialect != "sqlite" and isinstance(kind, sa.Boolean):
        return True  # PostgreSQL's boolean refuses 1
    if dialect != "sqlite" and isinstance(kind, (sa.Integer, sa.Numeric)):
        return 1  # and its integer refuses true
    present = Counter({v: n for v, n in stored.items() if v is not None})
    spelled = Counter({v: n for v, n in present.items() if isinstance(v, (str, *_BINARY))})
    textual = isinstance(kind, sa.String)  # Enum included
    if dialect == "sqlite" and present:
        textual = spelled.total() * 2 > present.total()  # SQLite keeps what each row was given
    if not textual:
        return 1  # SQLite stores True as 1 anyway
    spelling = _true_spelling(spelled, getattr(kind, "length", None))
    allowed = [e for e in getattr(kind, "enums", None) or [] if exported(e)]
    return allowed[0] if allowed and spelling not in allowed else spelling


def _true_spelling(spelled: Counter[Any], length: int | None) -> str:
    """The stored spelling of true, or the partner of the most common false spelling, in its
    case; 'true' (or '1' where the column is too narrow) when nothing tells."""
    trues: Counter[str] = Counter()
    partners: Counter[str] = Counter()
    for value, n in spelled.items():
        word = (text(value) or "").strip()
        partner = _TRUE_SPELLING.get(word.lower())
        if partner is None:
            continue
        if word.lower() in _TRUE:
            trues[word] += n
        partners[_cased(partner, word)] += n
    for counts in (trues, partners):
        if counts:
            return counts.most_common(1)[0][0]
    return "1" if length is not None and length < 4 else "true"


def _cased(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word.capitalize() if like[:1].isupper() else word


def instant(value: Any) -> datetime | None:
    """A stored timestamp as an aware datetime (naive ones are taken as UTC), or None. Numbers
    (and digit strings) are Unix epoch seconds, or milliseconds past year 5138 in seconds."""
    if isinstance(value, (str, *_BINARY)):
        word = (text(value) or "").strip()
        try:
            value = datetime.fromisoformat(word)
        except ValueError:
            if not _EPOCH_TEXT.fullmatch(word):  # '2026' is no instant
                return None
            value = _epoch(Decimal(word))
    elif isinstance(value, _NUMBER) and not isinstance(value, bool):
        value = _epoch(value)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _epoch(value: float | Decimal) -> datetime | None:
    try:
        if not math.isfinite(value):
            return None
        seconds = float(value) / 1000 if abs(value) >= _MS_FROM else float(value)
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso(value: Any) -> str:
    """Text timestamps stay as the source wrote them; native and epoch ones become ISO 8601."""
    if isinstance(value, datetime):
        return instant(value).isoformat()  # type: ignore[union-attr]  # a datetime is an instant
    found = text(value) or ""
    if isinstance(value, _NUMBER) or _EPOCH_TEXT.fullmatch(found.strip()):
        when = instant(value)
        return when.isoformat() if when is not None else found
    return found
