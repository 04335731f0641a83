"""Signed notes and checkpoints against the golang.org/x/mod/sumdb/note vectors and the C2SP text.

Vector: the PeterNeumann key, text and signature of golang.org/x/mod/sumdb/note (note.go's
package documentation and note_test.go). Ed25519 is deterministic, so signing the same text
with the same seed must give the same bytes.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from security.audit.keys import KeyRing, read_or_create_secret
from security.audit.merkle import EMPTY_ROOT
from security.audit.note import (
    Checkpoint,
    NoteError,
    NoteSigner,
    VerifierKey,
    open_checkpoint,
    open_note,
    sign_checkpoint,
)

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = GO_TEXT + ("\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FF"
                     "YC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def go_signer() -> NoteSigner:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert seed[0] == 1
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed[1:]))


def test_go_verifier_key_and_signature_are_reproduced() -> None:
    signer = go_signer()
    assert signer.verifier.text() == GO_VKEY
    assert signer.sign(GO_TEXT) == GO_NOTE


def test_go_note_opens_with_its_verifier_key() -> None:
    key = VerifierKey.parse(GO_VKEY)
    assert key.key_id.hex() == "c74f20a3"
    text, signers = open_note(GO_NOTE, [key])
    assert text == GO_TEXT
    assert signers == [key]


def test_unknown_keys_are_ignored_but_one_known_key_must_sign() -> None:
    other = NoteSigner("EnochRoot", Ed25519PrivateKey.generate())
    double = GO_NOTE + other.signature_line(GO_TEXT)
    assert open_note(double, [VerifierKey.parse(GO_VKEY)])[0] == GO_TEXT
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(GO_NOTE, [other.verifier])


@pytest.mark.parametrize("mangle", [
    lambda n: n.replace("problem,", "problem;"),  # text changed
    lambda n: n.replace("x08go", "x09go"),  # signature changed
    lambda n: n.replace("\n\n", "\n"),  # no blank line
    lambda n: n.replace("\u2014", "-"),  # not an em dash
    lambda n: n[:-1],  # no final newline
])
def test_altered_go_notes_are_rejected(mangle: object) -> None:
    with pytest.raises(NoteError):
        open_note(mangle(GO_NOTE), [VerifierKey.parse(GO_VKEY)])  # type: ignore[operator]


@pytest.mark.parametrize("bad", [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key ID
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
    "PeterNeumann+c74f20a3+AhpjMQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not type 0x01
    "PeterNeumann+c74f20a3",
])
def test_malformed_verifier_keys(bad: str) -> None:
    with pytest.raises(NoteError):
        VerifierKey.parse(bad)


def test_checkpoint_body_is_the_c2sp_format() -> None:
    cp = Checkpoint("example.com/behind-the-sofa", 20852163,
                    base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="))
    assert cp.text() == ("example.com/behind-the-sofa\n20852163\n"
                         "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
    assert Checkpoint.parse(cp.text()) == cp
    signer = NoteSigner("example.com/behind-the-sofa", Ed25519PrivateKey.generate())
    note = sign_checkpoint(cp, signer)
    assert note.startswith(cp.text() + "\n\u2014 example.com/behind-the-sofa ")
    assert open_checkpoint(note, [signer.verifier], origin=cp.origin) == cp
    with pytest.raises(NoteError):
        open_checkpoint(note, [signer.verifier], origin="other/log")


@pytest.mark.parametrize("text", ["o\n01\nAAAA\n", "o\n1\n\n", "o\n-1\n" + "A" * 44 + "\n",
                                  "o\n1\n" + base64.b64encode(b"x" * 31).decode() + "\n",
                                  "o\n1\n"])
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_keys_are_private_files_and_rotation_keeps_old_checkpoints_verifiable(
        tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys", "cetate.test/audit")
    first = ring.signer()
    assert ring.signer().verifier == first.verifier  # stable across loads
    pems = list((tmp_path / "keys").glob("*.pem"))
    assert len(pems) == 1 and stat.S_IMODE(os.stat(pems[0]).st_mode) == 0o600
    old = sign_checkpoint(Checkpoint("cetate.test/audit", 0, EMPTY_ROOT), first)
    second = ring.rotate()
    assert second.verifier != first.verifier
    assert ring.signer().verifier == second.verifier
    assert [k.text() for k in ring.published()] == [second.verifier.text(),
                                                    first.verifier.text()]
    assert len(list((tmp_path / "keys").glob("*.pem"))) == 1  # the retired private key is gone
    assert open_checkpoint(old, ring.published()).size == 0
    secret = read_or_create_secret(tmp_path / "keys" / "pseudonym.key")
    assert read_or_create_secret(tmp_path / "keys" / "pseudonym.key") == secret
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "pseudonym.key").st_mode) == 0o600
