"""The audit log's keys in one directory: checkpoint signing keys and the pseudonym key.

    <dir>/signing-<serial>-<key id>.pem   the Ed25519 private key (PKCS#8 PEM, mode 0600)
    <dir>/signing-<serial>-<key id>.pub   its verifier key text, kept forever once published
    <dir>/pseudonym.key                   32 random bytes for subject pseudonyms (mode 0600)

The highest serial with a private key signs. Rotation adds serial+1 and deletes the retired
private key; its .pub stays, so every checkpoint it signed still verifies. Several broker
processes may start at once on one directory: files are created under a temporary name and
published with os.link, which fails if another process won, and the loser reads the winner's;
key generation and rotation also hold an flock on <dir>/.lock so two processes never both add one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from security.audit.note import NoteSigner, VerifierKey, parse_verifier_keys, valid_name

PSEUDONYM_KEY_BYTES = 32  # HMAC-SHA256 keys as long as the hash (RFC 2104 §3)
_KEY_FILE_RE = re.compile(r"^signing-(\d{6})-([0-9a-f]{8})\.(pem|pub)$")
PRIVATE_MODE = 0o600


class KeyDirError(RuntimeError):
    """The key directory is unusable."""


def _publish(path: Path, data: bytes, mode: int) -> bool:
    """Create `path` with `data` atomically; False if it exists already."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def read_or_create_secret(path: Path, size: int = PSEUDONYM_KEY_BYTES) -> bytes:
    """The secret in `path`, created with random bytes (mode 0600) if absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _publish(path, secrets.token_bytes(size), PRIVATE_MODE)
    data = path.read_bytes()
    if len(data) < 16:
        raise KeyDirError(f"{path}: a key needs at least 16 bytes")
    return data


@dataclass
class KeyRing:
    """The signing keys of one log (named like its origin) in `directory`."""

    directory: Path
    name: str

    def __post_init__(self) -> None:
        if not valid_name(self.name):
            raise KeyDirError(f"invalid key name {self.name!r} (no spaces or '+')")
        self.directory = Path(self.directory)

    def _files(self) -> list[tuple[int, str, str, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            m = _KEY_FILE_RE.match(path.name)
            if m:
                found.append((int(m.group(1)), m.group(2), m.group(3), path))
        return sorted(found)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def signer(self) -> NoteSigner:
        """The current signing key, generated on first use."""
        private = [f for f in self._files() if f[2] == "pem"]
        if not private:
            with self._locked():
                if not [f for f in self._files() if f[2] == "pem"]:
                    self._generate(1 + max((f[0] for f in self._files()), default=0))
            private = [f for f in self._files() if f[2] == "pem"]
        _, _, _, path = private[-1]
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyDirError(f"{path} is not an Ed25519 key")
        return NoteSigner(self.name, key)

    def _generate(self, serial: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        signer = NoteSigner(self.name, key)
        kid = signer.verifier.key_id.hex()
        stem = f"signing-{serial:06d}-{kid}"
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        # The public half first: a published private key always has its .pub beside it.
        _publish(self.directory / f"{stem}.pub", (signer.verifier.text() + "\n").encode(), 0o644)
        _publish(self.directory / f"{stem}.pem", pem, PRIVATE_MODE)

    def rotate(self) -> NoteSigner:
        """A new key signs from now on; the old private keys are deleted, their .pub kept."""
        with self._locked():
            self._generate(1 + max((f[0] for f in self._files()), default=0))
            current = self.signer()
            for _, kid, kind, path in self._files():
                if kind == "pem" and kid != current.verifier.key_id.hex():
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        return current

    def published(self) -> list[VerifierKey]:
        """Every verifier key ever used, the current one first."""
        keys: list[VerifierKey] = []
        for _, _, kind, path in reversed(self._files()):
            if kind == "pub":
                keys.extend(parse_verifier_keys(path.read_text()))
        return keys
