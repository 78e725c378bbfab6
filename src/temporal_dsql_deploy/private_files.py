"""Files only their owner may read (passwords, generated credentials, a .env with secrets)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write `text` to `path` with mode 0600, also when the file exists (unless `exclusive`: then it must not)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    descriptor = os.open(path, flags, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
