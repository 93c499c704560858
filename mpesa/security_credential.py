"""The SecurityCredential the initiator APIs (Transaction Status, Reversal) demand: the initiator's
plain password encrypted with the public key in Safaricom's X.509 certificate, RSA with PKCS#1 v1.5
padding (not OAEP), then base64 (../shared/daraja.md §5.1). Only the public key is used: the
certificates Safaricom hands out are long expired, so expiry is deliberately not checked."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mpesa.exceptions import MpesaError


class SecurityCredentialError(MpesaError):
    pass


def security_credential(*, password: str, certificate: bytes) -> str:
    if not password:
        raise SecurityCredentialError("MPESA_INITIATOR_PASSWORD is not set.")
    public_key = _certificate_load(certificate).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SecurityCredentialError("The M-Pesa certificate does not hold an RSA public key.")
    return base64.b64encode(public_key.encrypt(password.encode(), padding.PKCS1v15())).decode()


def security_credential_from_file(*, password: str, certificate_path: str) -> str:
    if not certificate_path:
        raise SecurityCredentialError("MPESA_CERTIFICATE_PATH is not set.")
    try:
        certificate = Path(certificate_path).read_bytes()
    except OSError as exc:
        raise SecurityCredentialError(f"Cannot read the M-Pesa certificate {certificate_path}: {exc}") from (
            exc
        )
    return security_credential(password=password, certificate=certificate)


def _certificate_load(certificate: bytes) -> x509.Certificate:
    # Safaricom's download is PEM; copies passed around are often DER.
    try:
        if b"-----BEGIN CERTIFICATE-----" in certificate:
            return x509.load_pem_x509_certificate(certificate)
        return x509.load_der_x509_certificate(certificate)
    except ValueError as exc:
        raise SecurityCredentialError(f"Not an X.509 certificate: {exc}") from exc
