"""Reading a CSV file the way spreadsheets write them: the encoding and the delimiter.

Excel saves "CSV" in the machine's code page (Windows-1252 in Western Europe and the US),
often with a UTF-8 BOM when asked for UTF-8, and with ``;`` where the decimal separator is a
comma; Google Sheets and CRMs export UTF-8 with ``,``; some tools write tabs. Both are
decided from the start of the file, then the whole file is decoded as a stream (memory stays
flat whatever its size).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from typing import BinaryIO

SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t")
# What a file that is not UTF-8 most likely is: Excel on Windows in the West. Short Latin
# samples decode equally well in several code pages; among equals this one is chosen.
PREFERRED_LEGACY = "cp1252"


def detect_encoding(sample: bytes) -> str:
    """The codec of a file starting with ``sample``: ``utf-8-sig`` with a BOM, ``utf-8`` when
    the sample decodes as UTF-8 (a character cut at its end is fine), else charset-normalizer's
    guess: Windows-1252 whenever it is among the least chaotic readings (``René`` reads the
    same in cp1250 and cp1252; the Windows West code page is the likelier), else another
    Windows code page among them, else its best."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    from charset_normalizer import from_bytes  # imported when needed: rarely

    results = list(from_bytes(sample))
    if not results:
        return PREFERRED_LEGACY
    least = min(r.chaos for r in results)
    calm = [r for r in results if r.chaos == least]
    readings = [name for r in calm for name in r.could_be_from_charset]
    if PREFERRED_LEGACY in readings:
        return PREFERRED_LEGACY
    # Spreadsheets write Windows code pages (cp1251 over mac_cyrillic, which reads the same).
    windows = [name for name in readings if name.startswith("cp125")]
    return windows[0] if windows else str(calm[0].encoding)


def sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV whose first line is ``header``: whichever of ``,`` ``;`` and
    tab it holds most of (a header names columns; it rarely has the others), else ``,``."""
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def decoded_lines(
    stream: BinaryIO, encoding: str, on_bytes: Callable[[int], None]
) -> Iterator[str]:
    """The text lines of ``stream`` decoded with ``encoding`` (undecodable bytes replaced),
    reporting the bytes consumed for a progress bar."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    for raw in stream:
        on_bytes(len(raw))
        text = decoder.decode(raw)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail
