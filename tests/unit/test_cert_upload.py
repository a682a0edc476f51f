"""Checking uploaded certificates: what is accepted, and the words each refusal uses."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from mist_core.errors import InvalidInput
from mist_core.tls.upload import name_matches, validate_upload

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    *,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    names: list[str] | None = None,
    ca: bool = False,
    not_before: dt.datetime = NOW - dt.timedelta(days=10),
    not_after: dt.datetime = NOW + dt.timedelta(days=80),
) -> x509.Certificate:
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


class Chain:
    """A root, an intermediate it signed, and a leaf the intermediate signed."""

    def __init__(self, names: list[str], **leaf: object) -> None:
        self.root_key, self.inter_key, self.leaf_key = _key(), _key(), _key()
        self.root = _cert("Test Root", self.root_key, ca=True)
        self.inter = _cert("Test Intermediate", self.inter_key, issuer=("Test Root", self.root_key), ca=True)
        self.leaf = _cert(
            names[0],
            self.leaf_key,
            issuer=("Test Intermediate", self.inter_key),
            names=names,
            **leaf,  # type: ignore[arg-type]
        )

    @property
    def fullchain(self) -> str:
        return _pem(self.leaf) + _pem(self.inter)

    @property
    def key(self) -> str:
        return _key_pem(self.leaf_key)


def test_a_matching_certificate_key_and_chain_is_accepted_with_its_names_and_dates() -> None:
    chain = Chain(["app.example.com", "www.app.example.com"])
    parsed = validate_upload(chain.fullchain, chain.key, domain="app.example.com", now=NOW)
    assert parsed.names == ["app.example.com", "www.app.example.com"]
    assert parsed.cert_pem == _pem(chain.leaf)
    assert parsed.chain_pem == _pem(chain.inter)
    assert parsed.not_after == chain.leaf.not_valid_after_utc
    assert parsed.issuer == "CN=Test Intermediate"
    assert "BEGIN PRIVATE KEY" in parsed.key_pem  # normalized to PKCS#8
    assert parsed.warnings == []


def test_the_full_chain_up_to_the_root_is_accepted() -> None:
    chain = Chain(["app.example.com"])
    parsed = validate_upload(chain.fullchain + _pem(chain.root), chain.key, domain="app.example.com", now=NOW)
    assert parsed.chain_pem == _pem(chain.inter) + _pem(chain.root)


def test_an_rsa_key_is_accepted() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _cert("rsa.example.com", key, names=["rsa.example.com"])
    parsed = validate_upload(_pem(cert), _key_pem(key), domain="rsa.example.com", now=NOW)
    assert parsed.names == ["rsa.example.com"]


def test_a_key_that_does_not_match_is_refused() -> None:
    chain = Chain(["app.example.com"])
    with pytest.raises(InvalidInput, match="the key does not match the certificate") as err:
        validate_upload(chain.fullchain, _key_pem(_key()), domain="app.example.com", now=NOW)
    assert err.value.field == "key"


def test_an_expired_certificate_is_refused_with_its_expiry_date() -> None:
    chain = Chain(
        ["app.example.com"],
        not_before=dt.datetime(2025, 10, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    with pytest.raises(InvalidInput, match="the certificate expired on 2026-01-01"):
        validate_upload(chain.fullchain, chain.key, domain="app.example.com", now=NOW)


def test_an_expired_intermediate_is_refused() -> None:
    chain = Chain(["app.example.com"])
    chain.inter = _cert(
        "Test Intermediate",
        chain.inter_key,
        issuer=("Test Root", chain.root_key),
        ca=True,
        not_before=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
    )
    with pytest.raises(InvalidInput, match=r"certificate 2 \(CN=Test Intermediate\) expired on 2026-02-01"):
        validate_upload(chain.fullchain, chain.key, domain="app.example.com", now=NOW)


def test_a_certificate_not_yet_valid_is_refused_with_its_start_date() -> None:
    chain = Chain(
        ["app.example.com"],
        not_before=dt.datetime(2026, 7, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
    )
    with pytest.raises(InvalidInput, match="not valid yet: it starts on 2026-07-01"):
        validate_upload(chain.fullchain, chain.key, domain="app.example.com", now=NOW)


def test_a_certificate_for_other_names_is_refused_listing_them() -> None:
    chain = Chain(["a.com", "b.com"])
    with pytest.raises(InvalidInput, match="the certificate is for a.com, b.com, not c.com"):
        validate_upload(chain.fullchain, chain.key, domain="c.com", now=NOW)


def test_a_wildcard_certificate_covers_one_label() -> None:
    chain = Chain(["*.example.com"])
    assert validate_upload(chain.fullchain, chain.key, domain="shop.example.com", now=NOW).names == [
        "*.example.com"
    ]
    for domain in ("example.com", "a.shop.example.com"):
        with pytest.raises(InvalidInput, match=rf"the certificate is for \*\.example\.com, not {domain}"):
            validate_upload(chain.fullchain, chain.key, domain=domain, now=NOW)


@pytest.mark.parametrize(
    ("pattern", "domain", "covered"),
    [
        ("app.example.com", "APP.example.com", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "a.example.org", False),
        ("a.example.com", "b.example.com", False),
    ],
)
def test_name_matching(pattern: str, domain: str, covered: bool) -> None:
    assert name_matches(pattern, domain) is covered


def test_a_chain_in_the_wrong_order_is_refused() -> None:
    chain = Chain(["app.example.com"])
    leaf_first_wrong_parent = _pem(chain.leaf) + _pem(chain.root)
    with pytest.raises(InvalidInput, match="the chain is out of order or incomplete: certificate 2"):
        validate_upload(leaf_first_wrong_parent, chain.key, domain="app.example.com", now=NOW)


def test_an_intermediate_placed_before_the_leaf_is_refused_as_out_of_order() -> None:
    chain = Chain(["app.example.com"])
    with pytest.raises(InvalidInput, match="out of order or incomplete: the key belongs to certificate 2"):
        validate_upload(_pem(chain.inter) + _pem(chain.leaf), chain.key, domain="app.example.com", now=NOW)


def test_a_chain_certificate_with_the_right_name_but_another_key_is_refused() -> None:
    chain = Chain(["app.example.com"])
    impostor = _cert("Test Intermediate", _key(), issuer=("Test Root", chain.root_key), ca=True)
    with pytest.raises(InvalidInput, match="out of order or incomplete"):
        validate_upload(_pem(chain.leaf) + _pem(impostor), chain.key, domain="app.example.com", now=NOW)


def test_a_leaf_without_its_chain_is_accepted_with_a_warning() -> None:
    chain = Chain(["app.example.com"])
    parsed = validate_upload(_pem(chain.leaf), chain.key, domain="app.example.com", now=NOW)
    assert parsed.chain_pem == ""
    assert "without its intermediate chain" in parsed.warnings[0]


@pytest.mark.parametrize(
    ("cert_text", "key_text", "message"),
    [
        ("hello", None, "no certificate found"),
        ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", None, "not valid PEM"),
        (None, "hello", "no private key found"),
        (None, "-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n", "not valid PEM"),
    ],
)
def test_garbage_pem_is_refused_in_words(cert_text: str | None, key_text: str | None, message: str) -> None:
    chain = Chain(["app.example.com"])
    with pytest.raises(InvalidInput, match=message):
        validate_upload(
            cert_text or chain.fullchain, key_text or chain.key, domain="app.example.com", now=NOW
        )


def test_a_key_pasted_into_the_certificate_field_is_pointed_out() -> None:
    chain = Chain(["app.example.com"])
    with pytest.raises(InvalidInput, match="the certificate field holds a private key"):
        validate_upload(chain.key, chain.key, domain="app.example.com", now=NOW)


def test_a_passphrase_protected_key_is_refused_with_how_to_remove_it() -> None:
    chain = Chain(["app.example.com"])
    encrypted = chain.leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ).decode()
    with pytest.raises(InvalidInput, match="protected by a passphrase"):
        validate_upload(chain.fullchain, encrypted, domain="app.example.com", now=NOW)
