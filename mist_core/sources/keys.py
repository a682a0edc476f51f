"""Deploy keys for fetching over ssh: an ed25519 key pair made per app, in the formats OpenSSH reads and git
hosts accept, and the ``SHA256:`` fingerprints that ``ssh-keygen -l`` shows for keys and pinned host keys."""

from __future__ import annotations

import base64
import binascii
import hashlib
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..errors import InvalidInput

__all__ = [
    "DeployKey",
    "KnownHostKey",
    "fingerprint_of",
    "generate_deploy_key",
    "known_host_keys",
    "public_key_of",
]

COMMENT_MAX = 200


@dataclass(frozen=True)
class DeployKey:
    private_openssh: str  # "-----BEGIN OPENSSH PRIVATE KEY-----...", unencrypted: store it as a secret
    public_openssh: str  # "ssh-ed25519 AAAA... comment", to paste into the git host
    fingerprint: str  # "SHA256:...", as ssh-keygen -l and git hosts show it


@dataclass(frozen=True)
class KnownHostKey:
    """One line of a known_hosts file, as a user would check it against what the server's admin says."""

    hosts: str  # "github.com" or "[127.0.0.1]:2222"
    key_type: str  # "ssh-ed25519"
    fingerprint: str  # "SHA256:..."


def _comment(comment: str) -> str:
    if not isinstance(comment, str):
        raise InvalidInput("the key comment must be text", field="comment")
    comment = comment.strip()
    if len(comment) > COMMENT_MAX:
        raise InvalidInput(
            f"the key comment is {len(comment)} characters long: use at most {COMMENT_MAX}", field="comment"
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in comment):
        # A line break would make the public key two lines wherever it is pasted.
        raise InvalidInput(
            "the key comment contains a line break or a control character: use one line of text",
            field="comment",
        )
    return comment


def generate_deploy_key(comment: str) -> DeployKey:
    """A new ed25519 key pair; ``comment`` ends the public key line (e.g. ``mist:project/app``)."""
    comment = _comment(comment)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode("ascii")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public_line = public.decode("ascii") + (f" {comment}" if comment else "")
    return DeployKey(
        private_openssh=private, public_openssh=public_line, fingerprint=fingerprint_of(public_line)
    )


def _blob_type(blob: bytes) -> str | None:
    """The key type named at the start of an SSH wire-format public key blob."""
    if len(blob) < 4:
        return None
    size = int.from_bytes(blob[:4], "big")
    if size == 0 or len(blob) < 4 + size:
        return None
    try:
        return blob[4 : 4 + size].decode("ascii")
    except UnicodeDecodeError:
        return None


def fingerprint_of(public_openssh: str) -> str:
    """The ``SHA256:<base64 without padding>`` fingerprint of ``"<type> <base64> [comment]"``, as printed by
    ``ssh-keygen -l``."""
    fields = public_openssh.strip().split() if isinstance(public_openssh, str) else []
    if len(fields) < 2:
        raise InvalidInput(
            "not an OpenSSH public key: expected one line like 'ssh-ed25519 AAAA... comment'",
            field="public_key",
        )
    key_type, encoded = fields[0], fields[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"the {key_type} public key is not valid base64: copy the whole line again", field="public_key"
        ) from None
    if _blob_type(blob) != key_type:
        raise InvalidInput(
            f"the public key data does not hold a {key_type} key: copy the whole line again",
            field="public_key",
        )
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def public_key_of(private_openssh: str, comment: str = "") -> str:
    """The public key line of an unencrypted OpenSSH private key; ``InvalidInput`` says why one is unusable
    (not a key, or protected by a passphrase that Mist would have no way to type)."""
    comment = _comment(comment)
    if not isinstance(private_openssh, str) or "PRIVATE KEY-----" not in private_openssh:
        raise InvalidInput(
            "not an OpenSSH private key: give the whole '-----BEGIN OPENSSH PRIVATE KEY-----' block",
            field="ssh_private_key",
        )
    try:
        key = serialization.load_ssh_private_key(private_openssh.strip().encode() + b"\n", password=None)
    except TypeError:
        raise InvalidInput(
            "the private key is protected by a passphrase: give a key without one (ssh-keygen -p -N '')",
            field="ssh_private_key",
        ) from None
    except (ValueError, UnicodeEncodeError):
        raise InvalidInput(
            "the private key cannot be read: give the whole '-----BEGIN OPENSSH PRIVATE KEY-----' block "
            "of an unencrypted key",
            field="ssh_private_key",
        ) from None
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode("ascii") + (f" {comment}" if comment else "")


def known_host_keys(known_hosts: str) -> list[KnownHostKey]:
    """The host keys in known_hosts text, with their fingerprints (lines that are not keys are skipped)."""
    keys = []
    for line in known_hosts.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("@"):  # @cert-authority / @revoked
            fields = fields[1:]
        if len(fields) < 3:
            continue
        try:
            fingerprint = fingerprint_of(f"{fields[1]} {fields[2]}")
        except InvalidInput:
            continue
        keys.append(KnownHostKey(hosts=fields[0], key_type=fields[1], fingerprint=fingerprint))
    return keys
