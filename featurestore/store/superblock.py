"""Clear the HDF5 file-consistency flags that a killed writer leaves in the superblock.

A writer opened with ``libver="latest"`` marks the superblock (version 2/3) as "open for write";
if the process dies (SIGKILL included) the mark stays and HDF5 refuses to open the file again
("may use h5clear"). Our writes are SWMR-ordered and flushed after every chunk, so the file on
disk is consistent; only the mark is stale. This module does what ``h5clear -s`` does, in pure
Python, and must only be called while holding the store's writer lock (so no writer is alive).

Superblock v2/v3 layout (HDF5 File Format Specification, "Superblock Format Version 2 and 3"):
signature (8) | version (1) | size of offsets (1) | size of lengths (1) | consistency flags (1) |
4 addresses of ``size of offsets`` bytes | checksum (4, Jenkins lookup3 of everything before).
"""
from __future__ import annotations

import os
from typing import BinaryIO

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` on bytes, the checksum HDF5 uses for metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    pos = 0
    while length - pos > 12:
        a = (a + int.from_bytes(data[pos:pos + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[pos + 4:pos + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[pos + 8:pos + 12], "little")) & _MASK
        a = (a - c) & _MASK; a ^= _rot(c, 4); c = (c + b) & _MASK
        b = (b - a) & _MASK; b ^= _rot(a, 6); a = (a + c) & _MASK
        c = (c - b) & _MASK; c ^= _rot(b, 8); b = (b + a) & _MASK
        a = (a - c) & _MASK; a ^= _rot(c, 16); c = (c + b) & _MASK
        b = (b - a) & _MASK; b ^= _rot(a, 19); a = (a + c) & _MASK
        c = (c - b) & _MASK; c ^= _rot(b, 4); b = (b + a) & _MASK
        pos += 12
    tail = data[pos:]
    if not tail:
        return c
    tail = tail + bytes(12 - len(tail))
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK
    c ^= b; c = (c - _rot(b, 14)) & _MASK
    a ^= c; a = (a - _rot(c, 11)) & _MASK
    b ^= a; b = (b - _rot(a, 25)) & _MASK
    c ^= b; c = (c - _rot(b, 16)) & _MASK
    a ^= c; a = (a - _rot(c, 4)) & _MASK
    b ^= a; b = (b - _rot(a, 14)) & _MASK
    c ^= b; c = (c - _rot(b, 24)) & _MASK
    return c


def _find_superblock(f: BinaryIO) -> int:
    """Offset of the superblock: 0, 512, 1024, 2048, ... (the spec's search rule)."""
    size = os.fstat(f.fileno()).st_size
    offset = 0
    while offset + 8 <= size:
        f.seek(offset)
        if f.read(8) == SIGNATURE:
            return offset
        offset = 512 if offset == 0 else offset * 2
    raise ValueError("no HDF5 superblock found")


def consistency_flags(path: str | os.PathLike) -> int:
    """The superblock's file-consistency flags (0 when the file was closed cleanly)."""
    with open(path, "rb") as f:
        base = _find_superblock(f)
        f.seek(base + 8)
        version, _, _, flags = f.read(4)
    return flags if version >= 2 else 0


def clear_consistency_flags(path: str | os.PathLike) -> bool:
    """Reset the flags to 0 and rewrite the checksum; returns True if anything changed.

    Like ``h5clear -s --increment``, the recorded end-of-file address also grows to the file's
    real size: a writer killed in the middle of a flush can leave chunks written (and indexed)
    past the end it last recorded, which HDF5 refuses to touch ("len not positive after
    adjustment for EOA"). A file shorter than its recorded end is extended with zeros to it: a
    writer killed in the middle of a flush can have recorded the end before writing the last
    blocks (only the flags say a writer was active; a file closed cleanly is never touched).
    """
    with open(path, "r+b") as f:
        base = _find_superblock(f)
        f.seek(base)
        head = bytearray(f.read(12))
        version, offsets = head[8], head[9]
        if version < 2 or head[11] == 0:
            return False
        body_len = 12 + 4 * offsets
        f.seek(base)
        block = bytearray(f.read(body_len + 4))
        if int.from_bytes(block[body_len:], "little") != lookup3(bytes(block[:body_len])):
            raise ValueError("HDF5 superblock checksum mismatch; not touching the file")
        block[11] = 0
        eof_at = 12 + 2 * offsets
        recorded_eof = int.from_bytes(block[eof_at:eof_at + offsets], "little")
        real_eof = os.fstat(f.fileno()).st_size - base
        if real_eof > recorded_eof:
            block[eof_at:eof_at + offsets] = real_eof.to_bytes(offsets, "little")
        elif real_eof < recorded_eof:
            os.ftruncate(f.fileno(), base + recorded_eof)
        checksum = lookup3(bytes(block[:body_len]))
        block[body_len:] = checksum.to_bytes(4, "little")
        f.seek(base)
        f.write(bytes(block))
        f.flush()
        os.fsync(f.fileno())
    return True


def superblock_eof(path: str | os.PathLike) -> int | None:
    """The end-of-file address a v2/v3 superblock records (None for older superblocks).

    HDF5 refuses a file shorter than this when opening it normally, but not in SWMR-read
    mode, where reads past the end return zeros; readers check it themselves.
    """
    with open(path, "rb") as f:
        base = _find_superblock(f)
        f.seek(base)
        head = f.read(12)
        version, offsets = head[8], head[9]
        if version < 2:
            return None
        addresses = f.read(4 * offsets)
    eof = int.from_bytes(addresses[2 * offsets:3 * offsets], "little")
    return base + eof
