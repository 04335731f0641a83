"""C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

A signed note is its text (ending in a newline), a blank line, then signature lines
"— <key name> <base64(key ID ‖ signature)>\\n" (em dash U+2014). For Ed25519 (type 0x01):
key ID = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)[:4], the signature covers the
text including its final newline but not the blank line. Verifier keys are written as
"<name>+<hex key ID>+<base64(0x01 ‖ public key)>", as golang.org/x/mod/sumdb/note does.
A checkpoint's text is "<origin>\\n<tree size>\\n<base64 root hash>\\n" (+ extension lines).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01  # signed-note signature type byte
EM_DASH = "\u2014"
SIG_PREFIX = EM_DASH + " "
# signed-note: verifiers "MUST accept at least up to 16 signatures"; we bound a note there.
MAX_SIGNATURES = 16
MAX_NOTE_BYTES = 64 * 1024
_SIZE_RE = re.compile(r"^(0|[1-9][0-9]*)$")  # tlog-checkpoint: decimal, no leading zeroes


class NoteError(ValueError):
    """A note or checkpoint that is malformed or carries no valid signature from a known key."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4): canonical form only, so one value has one text."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"not base64: {text[:40]!r}") from None
    if b64(raw) != text:
        raise NoteError(f"non-canonical base64: {text[:40]!r}")
    return raw


def valid_name(name: str) -> bool:
    """Key names: non-empty, no Unicode spaces, no '+' (signed-note § Format)."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class VerifierKey:
    name: str
    public_key: Ed25519PublicKey = field(compare=False)
    raw: bytes

    @classmethod
    def from_public(cls, name: str, key: Ed25519PublicKey) -> VerifierKey:
        if not valid_name(name):
            raise NoteError(f"invalid key name {name!r}")
        return cls(name, key, _raw_public(key))

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.raw)

    def text(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([ED25519]) + self.raw)}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        name, _, rest = text.strip().partition("+")
        hex_id, _, key64 = rest.partition("+")
        if not valid_name(name) or not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise NoteError(f"malformed verifier key {text[:60]!r}")
        typed = unb64(key64)
        if len(typed) != 33 or typed[0] != ED25519:
            raise NoteError("verifier key is not an Ed25519 (type 0x01) key")
        if key_id(name, typed[1:]) != bytes.fromhex(hex_id):
            raise NoteError(f"verifier key {name}+{hex_id}: the key ID does not match the key")
        return cls(name, Ed25519PublicKey.from_public_bytes(typed[1:]), typed[1:])

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def parse_verifier_keys(text: str) -> list[VerifierKey]:
    """Verifier keys one a line (blank lines and # comments skipped)."""
    lines = [ln.strip() for ln in text.splitlines()]
    return [VerifierKey.parse(ln) for ln in lines if ln and not ln.startswith("#")]


@dataclass(frozen=True)
class NoteSigner:
    name: str
    private_key: Ed25519PrivateKey = field(compare=False)

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey.from_public(self.name, self.private_key.public_key())

    def signature_line(self, text: str) -> str:
        sig = self.private_key.sign(text.encode())
        return f"{SIG_PREFIX}{self.name} {b64(self.verifier.key_id + sig)}\n"

    def sign(self, text: str) -> str:
        """The signed note: text, blank line, one signature line."""
        _check_text(text)
        return text + "\n" + self.signature_line(text)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end in a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note text holds control characters")


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[Signature]]:
    """(text, signatures) of a signed note, checking its syntax only."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError(f"note over {MAX_NOTE_BYTES} bytes")
    if not note.endswith("\n"):
        raise NoteError("note does not end in a newline")
    # "the text is separated from the signatures by the last empty line in the note"
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("note has no blank line before its signatures")
    text, sig_block = note[:cut + 1], note[cut + 2:]
    _check_text(text)
    sigs: list[Signature] = []
    for line in sig_block.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line[:60]!r}")
        name, sep, sig64 = line[len(SIG_PREFIX):].partition(" ")
        if not sep or not valid_name(name) or " " in sig64:
            raise NoteError(f"malformed signature line {line[:60]!r}")
        blob = unb64(sig64)
        if len(blob) < 5:
            raise NoteError("signature too short")
        sigs.append(Signature(name, blob[:4], blob[4:]))
    if not sigs:
        raise NoteError("note carries no signature")
    if len(sigs) > MAX_SIGNATURES:
        raise NoteError(f"note carries over {MAX_SIGNATURES} signatures")
    return text, sigs


def open_note(note: str, known: Iterable[VerifierKey]) -> tuple[str, list[VerifierKey]]:
    """The text and the known keys whose signatures verified.

    signed-note § Signatures: unknown keys are ignored; a known key's failing signature rejects
    the note; at least one known key must have signed.
    """
    text, sigs = split_note(note)
    by_id = {(k.name, k.key_id): k for k in known}
    good: list[VerifierKey] = []
    for sig in sigs:
        key = by_id.get((sig.name, sig.key_id))
        if key is None:
            continue
        if not key.verify(text.encode(), sig.signature):
            raise NoteError(f"invalid signature by key {sig.name}+{sig.key_id.hex()}")
        good.append(key)
    if not good:
        raise NoteError("no signature from a known key")
    return text, good


# -- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise NoteError("checkpoint text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or any(not line for line in lines):
            raise NoteError("a checkpoint has at least three non-empty lines")
        origin, size, root64, *ext = lines
        if not _SIZE_RE.match(size):
            raise NoteError(f"malformed tree size {size!r}")
        root = unb64(root64)
        if len(root) != 32:
            raise NoteError("root hash is not 32 bytes")
        return cls(origin, int(size), root, tuple(ext))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    return signer.sign(checkpoint.text())


def open_checkpoint(note: str, known: Sequence[VerifierKey],
                    origin: str | None = None) -> Checkpoint:
    """The checkpoint of a signed note, verified against the known keys (and origin, if given)."""
    text, _ = open_note(note, known)
    checkpoint = Checkpoint.parse(text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint
