"""Certificates for the domains Mist serves: ACME issuance over HTTP-01, the certificate store, renewal
scheduling, and checking certificates users upload."""

from .acme_client import AcmeError, IssuedCertificate, issue
from .challenges import ChallengeResponder
from .renewal import CertificateScheduler, CertificateSettings, acme_issuer
from .store import Certificate, CertificateStore
from .upload import ParsedCertificate, validate_upload

__all__ = [
    "AcmeError",
    "Certificate",
    "CertificateScheduler",
    "CertificateSettings",
    "CertificateStore",
    "ChallengeResponder",
    "IssuedCertificate",
    "ParsedCertificate",
    "acme_issuer",
    "issue",
    "validate_upload",
]
