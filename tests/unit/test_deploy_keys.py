"""Deploy keys (``mist_core.sources.keys``): the formats OpenSSH reads, and fingerprints as ``ssh-keygen -l``
prints them (checked against the real ``ssh-keygen`` where it is installed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mist_core.errors import InvalidInput
from mist_core.sources.keys import (
    DeployKey,
    fingerprint_of,
    generate_deploy_key,
    known_host_keys,
    public_key_of,
)

# A fixed key, with the fingerprint `ssh-keygen -l` printed for it.
KNOWN_PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPEYnT2EYfgnNghJwIAEhuDYm0hJ79rK8MiZe2EHLZch mist:p/a"
KNOWN_FINGERPRINT = "SHA256:ZzWFGSahF/Wmz+fEl5XfbU2k2q3XzZIZrD1qyQif4Ro"


def test_a_deploy_key_is_an_ed25519_pair_with_the_comment_on_the_public_line():
    key = generate_deploy_key("mist:shop/web")
    assert isinstance(key, DeployKey)
    assert key.private_openssh.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert key.private_openssh.rstrip().endswith("-----END OPENSSH PRIVATE KEY-----")
    kind, data, comment = key.public_openssh.split(" ")
    assert (kind, comment) == ("ssh-ed25519", "mist:shop/web")
    assert data.startswith("AAAAC3NzaC1lZDI1NTE5")
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", key.fingerprint)


def test_every_deploy_key_is_new():
    assert generate_deploy_key("a").private_openssh != generate_deploy_key("a").private_openssh


def test_an_empty_comment_leaves_only_type_and_key():
    assert len(generate_deploy_key("").public_openssh.split(" ")) == 2


def test_the_private_key_gives_back_its_public_key():
    key = generate_deploy_key("x")
    assert public_key_of(key.private_openssh, "x") == key.public_openssh


def test_fingerprint_matches_what_ssh_keygen_printed_for_a_known_key():
    assert fingerprint_of(KNOWN_PUBLIC) == KNOWN_FINGERPRINT
    assert fingerprint_of(" ".join(KNOWN_PUBLIC.split()[:2])) == KNOWN_FINGERPRINT


def test_openssh_reads_the_private_key_and_agrees_on_public_key_and_fingerprint(tmp_path: Path):
    key = generate_deploy_key("mist:shop/web")
    private = tmp_path / "id"
    private.write_text(key.private_openssh)
    private.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True
    )
    assert derived.stdout.split()[:2] == key.public_openssh.split()[:2]
    public = tmp_path / "id.pub"
    public.write_text(key.public_openssh + "\n")
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public)], capture_output=True, text=True, check=True
    )
    assert listed.stdout.split()[1] == key.fingerprint


def test_fingerprint_of_an_rsa_key_matches_ssh_keygen(tmp_path: Path):
    path = tmp_path / "rsa"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, check=True)
    assert fingerprint_of(path.with_suffix(".pub").read_text()) == listed.stdout.split()[1]


@pytest.mark.parametrize("comment", ["two\nlines", "bell\a", "x" * 201, "bidi\u202eoverride"])
def test_a_comment_that_would_break_the_public_key_line_is_refused(comment: str):
    with pytest.raises(InvalidInput) as caught:
        generate_deploy_key(comment)
    assert caught.value.field == "comment"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ssh-ed25519",
        "ssh-ed25519 not*base64",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIPEYnT2EYfgnNghJwIAEhuDYm0hJ79rK8MiZe2EHLZch",  # type and data disagree
        "ssh-ed25519 AAAA",
    ],
)
def test_something_that_is_not_a_public_key_has_no_fingerprint(text: str):
    with pytest.raises(InvalidInput) as caught:
        fingerprint_of(text)
    assert caught.value.field == "public_key"


def test_a_private_key_that_is_not_one_is_refused_with_what_to_give():
    with pytest.raises(InvalidInput, match="BEGIN OPENSSH PRIVATE KEY"):
        public_key_of("hello")
    with pytest.raises(InvalidInput, match="cannot be read"):
        public_key_of("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")


def test_a_passphrase_protected_key_is_refused_saying_so(tmp_path: Path):
    path = tmp_path / "locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret words", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(InvalidInput, match="passphrase"):
        public_key_of(path.read_text())


def test_known_host_keys_lists_each_key_with_host_and_fingerprint():
    data = " ".join(KNOWN_PUBLIC.split()[:2])
    text = "\n".join(
        [
            "# pinned by Mist",
            "",
            f"[127.0.0.1]:2222 {data}",
            f"@cert-authority *.example.com {data}",
            "github.com ssh-ed25519 broken!",
            "garbage",
        ]
    )
    keys = known_host_keys(text)
    assert [(k.hosts, k.key_type, k.fingerprint) for k in keys] == [
        ("[127.0.0.1]:2222", "ssh-ed25519", KNOWN_FINGERPRINT),
        ("*.example.com", "ssh-ed25519", KNOWN_FINGERPRINT),
    ]
