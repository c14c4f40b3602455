"""Content digests: one helper for hashing settings and one for hashing bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import numpy as np

FINGERPRINT_LENGTH = 16


def fingerprint(value: Any) -> str:
    """A short, stable digest of a JSON-serialisable value (keys sorted): equal settings, equal fingerprint."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def sha256_hex(data: bytes) -> str:
    """The full SHA-256 of some bytes, in hex (a file's checksum in a manifest)."""
    return hashlib.sha256(data).hexdigest()


def digest_arrays(arrays: Iterable[np.ndarray]) -> str:
    """SHA-256 over the arrays' bytes in order (identifies the training data a checkpoint belongs to)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
