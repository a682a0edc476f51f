"""Obtaining a certificate from an ACME server (Let's Encrypt or any RFC 8555 CA) over HTTP-01, with certbot's
``acme`` library. The library is synchronous (requests), so an order runs in a worker thread."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import AcmeError
from .challenges import ChallengeResponder

if TYPE_CHECKING:
    import josepy as jose
    from acme import errors as acme_errors
    from acme import messages

USER_AGENT = "mist"
DEFAULT_TIMEOUT = 90.0


@dataclass(frozen=True)
class IssuedCertificate:
    cert_pem: str  # the leaf
    chain_pem: str  # the intermediates, leaf excluded (may be empty)
    key_pem: str  # PKCS#8, unencrypted: seal it before storing
    not_before: dt.datetime
    not_after: dt.datetime
    serial: str  # hex
    account_uri: str = ""

    @property
    def fullchain_pem(self) -> str:
        return self.cert_pem + self.chain_pem


def new_account_key() -> str:
    """A fresh ACME account key (EC P-256), as PKCS#8 PEM."""
    return _pem(ec.generate_private_key(ec.SECP256R1()))


def new_certificate_key() -> str:
    """A fresh certificate key (EC P-256), as PKCS#8 PEM: small, fast, accepted by every current client."""
    return _pem(ec.generate_private_key(ec.SECP256R1()))


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def split_pem_chain(fullchain_pem: str) -> list[str]:
    """The PEM blocks of a chain, in order, each ending with a newline."""
    marker = "-----END CERTIFICATE-----"
    blocks = []
    for part in fullchain_pem.split(marker):
        start = part.find("-----BEGIN CERTIFICATE-----")
        if start >= 0:
            blocks.append(part[start:] + marker + "\n")
    return blocks


def describe_certificate(cert_pem: str) -> tuple[dt.datetime, dt.datetime, str]:
    """not_before, not_after (UTC) and the serial (hex) of a PEM certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.not_valid_before_utc, cert.not_valid_after_utc, format(cert.serial_number, "x")


async def issue(
    domains: list[str],
    *,
    directory_url: str,
    account_key: str,
    email: str = "",
    responder: ChallengeResponder,
    ca_bundle: str | None = None,
    on_line: Callable[[str], None] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> IssuedCertificate:
    """Run one ACME order for ``domains`` (the first is the main name) and return the certificate.

    ``account_key`` is the account's private key (PEM); the account is registered on first use and found
    again by its key afterwards. HTTP-01 answers go through ``responder`` (which must be reachable on port
    80 of each domain, directly or through the proxy). ``on_line`` receives progress lines, on the event
    loop. Raises ``AcmeError`` with the server's explanation when the order fails.
    """
    if not domains:
        raise AcmeError("a certificate needs at least one domain name")
    loop = asyncio.get_running_loop()

    def say(line: str) -> None:
        if on_line is not None:
            loop.call_soon_threadsafe(on_line, line)

    tokens: list[str] = []
    try:
        return await asyncio.to_thread(
            _issue_sync,
            [d.lower() for d in domains],
            directory_url=directory_url,
            account_key=account_key,
            email=email,
            responder=responder,
            tokens=tokens,
            ca_bundle=ca_bundle,
            say=say,
            timeout=timeout,
        )
    finally:
        for token in tokens:
            responder.remove(token)


def _issue_sync(domains: list[str], *, directory_url: str, timeout: float, **order: Any) -> IssuedCertificate:
    """``_order`` with the library's errors turned into ``AcmeError`` messages a user can act on."""
    # The ACME library (with josepy, requests, pyOpenSSL) loads only when an order runs: a daemon
    # with no certificate to get does not pay its memory.
    import requests
    from acme import errors as acme_errors
    from acme import messages

    try:
        return _order(domains, directory_url=directory_url, timeout=timeout, **order)
    except AcmeError:
        raise
    except acme_errors.ValidationError as err:
        raise AcmeError(_validation_detail(err)) from None
    except acme_errors.IssuanceError as err:
        raise AcmeError(f"the ACME server did not issue the certificate: {_problem(err.error)}") from None
    except messages.Error as err:
        raise AcmeError(f"the ACME server refused the request: {_problem(err)}") from None
    except acme_errors.TimeoutError:
        raise AcmeError(
            f"the ACME order for {', '.join(domains)} did not complete within {timeout:.0f} s; it will be retried"
        ) from None
    except requests.exceptions.SSLError as err:
        raise AcmeError(
            f"the ACME server at {directory_url} presented a certificate that is not trusted ({err}); "
            "for a private ACME server set acme_ca_bundle to its CA bundle"
        ) from None
    except requests.exceptions.RequestException as err:
        raise AcmeError(f"cannot reach the ACME server at {directory_url}: {err}") from None
    except acme_errors.Error as err:
        raise AcmeError(f"the ACME exchange failed: {err}") from None


def _order(
    domains: list[str],
    *,
    directory_url: str,
    account_key: str,
    email: str,
    responder: ChallengeResponder,
    tokens: list[str],
    ca_bundle: str | None,
    say: Callable[[str], None],
    timeout: float,
) -> IssuedCertificate:
    import josepy as jose
    from acme import challenges, client, crypto_util, messages
    from acme import errors as acme_errors

    key = serialization.load_pem_private_key(account_key.encode(), password=None)
    jwk: jose.JWK
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk, alg = jose.JWKEC(key=key), jose.ES256
    elif isinstance(key, rsa.RSAPrivateKey):
        jwk, alg = jose.JWKRSA(key=key), jose.RS256
    else:
        raise AcmeError("the ACME account key must be an EC P-256 or RSA key")
    net = client.ClientNetwork(
        jwk,
        alg=alg,
        # requests takes a CA bundle path where the library's annotation says bool.
        verify_ssl=ca_bundle or True,  # type: ignore[arg-type]
        user_agent=USER_AGENT,
    )
    say(f"ACME: reading the directory {directory_url}")
    directory = client.ClientV2.get_directory(directory_url, net)
    acme = client.ClientV2(directory, net)

    registration = messages.NewRegistration.from_data(email=email or None, terms_of_service_agreed=True)
    try:
        account = acme.new_account(registration)
        say(f"ACME: registered the account {account.uri}")
    except acme_errors.ConflictError as existing:
        # The key already has an account there: use it (the Location header names it).
        account = messages.RegistrationResource(body=registration, uri=str(existing.location))
        net.account = account
        say(f"ACME: using the account {account.uri}")

    cert_key = new_certificate_key()
    csr_pem = crypto_util.make_csr(cert_key.encode(), domains)
    say(f"ACME: new order for {', '.join(domains)}")
    order = acme.new_order(csr_pem)

    for authz in order.authorizations:
        name = authz.body.identifier.value
        if authz.body.status == messages.STATUS_VALID:
            say(f"ACME: {name} is already authorized")
            continue
        challb = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
        if challb is None:
            offered = ", ".join(str(c.chall.typ) for c in authz.body.challenges)
            raise AcmeError(f"the ACME server offers no HTTP-01 challenge for {name} (only: {offered})")
        response, validation = challb.response_and_validation(jwk)
        token = challb.chall.encode("token")
        responder.add(token, validation)
        tokens.append(token)
        say(f"ACME: answering the HTTP-01 challenge for {name}")
        acme.answer_challenge(challb, response)

    deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
    say("ACME: waiting for validation")
    order = acme.poll_authorizations(order, deadline)
    say("ACME: validated; finalizing the order")
    order = acme.finalize_order(order, deadline)

    blocks = split_pem_chain(order.fullchain_pem)
    if not blocks:
        raise AcmeError("the ACME server returned no certificate")
    not_before, not_after, serial = describe_certificate(blocks[0])
    say(f"ACME: issued, serial {serial}, valid until {not_after:%Y-%m-%d %H:%M} UTC")
    return IssuedCertificate(
        cert_pem=blocks[0],
        chain_pem="".join(blocks[1:]),
        key_pem=cert_key,
        not_before=not_before,
        not_after=not_after,
        serial=serial,
        account_uri=str(account.uri or ""),
    )


def _problem(error: messages.Error | None) -> str:
    if error is None:
        return "no reason given"
    kind = error.code or error.typ
    detail = error.detail or error.title or kind
    return f"{detail} ({kind})" if kind and kind not in detail else str(detail)


def _validation_detail(err: acme_errors.ValidationError) -> str:
    reasons = []
    for authz in err.failed_authzrs:
        name = authz.body.identifier.value
        for chall in authz.body.challenges:
            if chall.error is not None:
                reasons.append(f"{name}: {_problem(chall.error)}")
    joined = "; ".join(reasons) or "no reason given"
    return f"the ACME server could not validate the domain: {joined}"
