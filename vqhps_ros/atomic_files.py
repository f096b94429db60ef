"""Writing files so that a crash or an error never leaves a half-written file under the final name."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(stream)` on a hidden temporary file in the target folder (created if missing), fsync, rename.

    The rename is atomic because source and target are in the same folder, and fsync makes the content durable
    before the name points at it (robots lose power). On any error the temporary file is removed and an existing
    file under `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # 0o666 lets the umask decide the permissions, as for any new file (mkstemp would force 0o600, unreadable for
    # a node that runs as another user).
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomically(data: bytes, path: str | Path) -> Path:
    return atomic_write(path, lambda stream: stream.write(data))
