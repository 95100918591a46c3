"""How the panel and the command line write errors, sizes, times, rates and capacities: one convention
for each.

Sizes are binary with IEC names (1024 bytes make a KiB), so a backup reads "3.4 MiB" in the panel and in
``semcache-tui backup list`` alike. No Textual or Rich here: the command line imports this too.
"""

from __future__ import annotations

import asyncio
import math
import re

from engine.errors import SemcacheError

#: (below this many seconds, seconds per unit, unit, decimals), smallest unit first.
Steps = tuple[tuple[float, float, str, int], ...]

#: An estimate or an ETA, at the precision an operator needs: 45s, 12m, 3.5h.
ETA_STEPS: Steps = ((120, 1, "s", 0), (7200, 60, "m", 0), (math.inf, 3600, "h", 1))
#: How old a file is, at a glance: 45s, 12m, 5h, 3d.
AGE_STEPS: Steps = ((120, 1, "s", 0), (7200, 60, "m", 0), (172800, 3600, "h", 0), (math.inf, 86400, "d", 0))
#: A span on the panel's clock (an entry's age or remaining time): each unit from its first whole one.
SPAN_STEPS: Steps = ((60, 1, "s", 0), (3600, 60, "m", 0), (86400, 3600, "h", 0), (math.inf, 86400, "d", 0))

SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def describe_error(error: BaseException | None) -> str:
    """One line for a failure: our errors say what to do; a file error names the file and what went
    wrong (``/x/y.gz: No such file or directory``), never an exception class; the class only when the
    error has nothing else to say."""
    if error is None:
        return "unknown error"
    if isinstance(error, SemcacheError):
        return str(error)
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return " ".join(str(error).split()) or type(error).__name__


def size(value: object) -> str:
    """A size in bytes: 512 B, 3.4 MiB; ``-`` when unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-" if value is None else str(value)
    amount = float(value)
    for unit in SIZE_UNITS:
        if abs(amount) < 1024 or unit == SIZE_UNITS[-1]:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable: the last unit takes any size")


#: What each eviction policy (SEMCACHE_EVICTION_POLICY) removes first, in a few words.
POLICY_MEANING = {
    "lru": "least recently hit first",
    "lfu": "least often hit first",
    "ttl": "soonest to expire first",
}


def capacity(
    count: int, max_entries: int | None, per_scope: int | None = None, *, noun: str = "entries"
) -> str:
    """How full an index is: ``12,345 / 100,000 entries``, ``12 entries (no limit)``, with ``, 1,000 per
    scope`` when scopes have a limit of their own; ``noun=""`` leaves the word out (a row named entries)."""
    held = f"{count:,}" if not max_entries else f"{count:,} / {max_entries:,}"
    text = f"{held} {noun}".rstrip()
    if per_scope:
        return f"{text}, {per_scope:,} per scope"
    return text if max_entries else f"{text} (no limit)"


def policy(name: str | None, limited: bool) -> str:
    """An eviction policy and what it removes first: ``lru (least recently hit first)``; an index without
    a limit never evicts, whatever its policy says."""
    if not limited:
        return f"{name or '-'}, unused: no limit"
    meaning = POLICY_MEANING.get(name or "")
    return f"{name} ({meaning})" if meaning else str(name or "-")


def per_minute(rate: float | None) -> str:
    """A rate per minute: 3.5/min; ``-`` when it is not known yet (one reading of the counter)."""
    return "-" if rate is None else f"{rate:,.1f}/min"


def evictions(total: int, rate: float | None) -> str:
    """Evictions ever, and per minute when the rate is known: ``1,234 (3.5/min)``, ``1,234``."""
    return f"{total:,}" if rate is None else f"{total:,} ({per_minute(rate)})"


def ms(value: float | None) -> str:
    """A latency: 8.3 ms; ``-`` when there is none yet."""
    return "-" if value is None else f"{value:.1f} ms"


def percent(share: float | None) -> str:
    """A share in [0, 1]: 12.5%; ``-`` when there is none yet."""
    return "-" if share is None else f"{share * 100:.1f}%"


def clock(seconds: float, steps: Steps) -> str:
    """``seconds`` in the first unit of ``steps`` it stays below."""
    for below, unit_seconds, unit, decimals in steps:
        if seconds < below:
            return f"{seconds / unit_seconds:.{decimals}f}{unit}"
    _, unit_seconds, unit, decimals = steps[-1]
    return f"{seconds / unit_seconds:.{decimals}f}{unit}"


def duration(seconds: float | None) -> str:
    """An estimate or an ETA: 45s, 12m, 3.5h; ``?`` when it cannot be told yet."""
    return "?" if seconds is None else clock(seconds, ETA_STEPS)


def age(seconds: float) -> str:
    """How old something is: 45s, 12m, 5h, 3d (a clock skew never shows a negative age)."""
    return clock(max(0.0, seconds), AGE_STEPS)


def span(seconds: float) -> str:
    """A span either side of now, without its sign: 45s, 2m, 5h, 3d."""
    return clock(abs(seconds), SPAN_STEPS)


def one_line(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters, cut with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


#: A URL's scheme, its credentials (to the netloc's last '@'), its host part and the rest (query, fragment).
_URL = re.compile(r"^([a-z][a-z0-9+.-]*://)(?:[^/?#]*@)?([^?#]*)(.*)$", re.IGNORECASE | re.DOTALL)
#: The end of a URL's host part worth keeping whole: the (last) port and the path after it.
_PORT_AND_PATH = re.compile(r":\d+(?:/.*)?$", re.DOTALL)


def fit_url(url: str, width: int) -> str | None:
    """``url`` (already redacted) in at most ``width`` characters, or ``None`` when it cannot be told in so
    few (fewer than 8 after the scheme). What says where the URL leads stays: first the credentials go (the
    password is never shown anyway), and the query and fragment (TLS file names); then the middle of the
    host is cut, so the scheme (``redis://`` or ``rediss://``: encrypted or not) and the port stay whole."""
    if len(url) <= width:
        return url
    found = _URL.match(url)
    if found is None:
        return None
    scheme, place, _ = found.groups()
    if len(scheme) + len(place) <= width:
        return scheme + place
    room = width - len(scheme) - 1
    if room < 8:
        return None
    end = _PORT_AND_PATH.search(place)
    tail = min(max(len(end.group(0)) if end else 0, room // 2), room - 4)
    return f"{scheme}{place[: room - tail]}…{place[len(place) - tail :]}"
