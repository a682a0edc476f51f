"""Secrets at rest: AES-256-GCM bound to their row, a 0600 key file, rotation by key id."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mist_core.secrets import SecretBox, SecretError


def test_a_sealed_value_opens_only_in_its_own_row():
    box = SecretBox(AESGCM.generate_key(bit_length=256))
    sealed = box.seal("hunter2-but-longer", bound_to="env:1:TOKEN")
    assert "hunter2" not in sealed and sealed.startswith("v1:")
    assert box.open(sealed, bound_to="env:1:TOKEN") == "hunter2-but-longer"
    with pytest.raises(SecretError, match="does not match its row"):
        box.open(sealed, bound_to="env:2:TOKEN")


def test_the_key_file_is_created_0600_and_a_readable_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("MIST_MASTER_KEY", raising=False)
    path = tmp_path / "master.key"
    box = SecretBox.from_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = SecretBox.from_file(path)
    assert again.open(box.seal("x", bound_to="r"), bound_to="r") == "x"
    os.chmod(path, 0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        SecretBox.from_file(path)


def test_values_sealed_under_an_older_key_still_open_after_rotation():
    old, new = AESGCM.generate_key(bit_length=256), AESGCM.generate_key(bit_length=256)
    sealed_old = SecretBox(old).seal("before", bound_to="r")
    rotated = SecretBox(new, old)
    assert rotated.open(sealed_old, bound_to="r") == "before"
    assert rotated.seal("after", bound_to="r").split(":")[1] != sealed_old.split(":")[1]
    with pytest.raises(SecretError, match="unknown key"):
        SecretBox(new).open(sealed_old, bound_to="r")
