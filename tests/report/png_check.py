"""A PNG validity check shared by the report tests."""

from __future__ import annotations

import struct
import zlib


def is_png(data: bytes) -> bool:
    """PNG signature, IHDR first with a non-empty size, every chunk's CRC, IEND last, and the
    image data inflates."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, kinds, idat = 8, [], b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if zlib.crc32(kind + body) != crc:
            return False
        kinds.append(kind)
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
            if w == 0 or h == 0:
                return False
        idat += body if kind == b"IDAT" else b""
        pos += 12 + n
    return kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and len(zlib.decompress(idat)) > 0
