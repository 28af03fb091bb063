"""Certificates and keys for a throwaway local control plane.

Rules of this module: everything is generated fresh per control plane (nothing is
reused across sessions or committed), written with 0600 permissions into one
folder, and valid for loopback only: the serving certificate names `localhost`
and `127.0.0.1` and nothing else. One CA signs both the serving certificate and
the client certificates, and the apiserver trusts it as `--client-ca-file`; that
is fine for tests and nothing more. Keys are ECDSA P-256 (fast to generate; the
apiserver accepts ES256 for service-account tokens).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files of one control plane (all inside `folder`)."""

    folder: Path
    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_public_key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        # Backdated a little: the processes may check validity before our clock ticks.
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    alternative_names: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    builder = (
        _builder(subject, ca_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if alternative_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternative_names), critical=False
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _load_ca(keys: Pki) -> tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    ca_key = serialization.load_pem_private_key(keys.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(keys.ca_cert.read_bytes())
    return ca_key, ca_cert.subject


def user_certificate(
    keys: Pki, user: str, groups: tuple[str, ...] = (), *, folder: Path | None = None
) -> tuple[Path, Path]:
    """A client certificate (and key) for `user` in `groups`, signed by the plane's CA.

    The apiserver takes the user name from the CN and the groups from the O
    attributes, as for any x509 client. Example: `user_certificate(keys, "alice",
    ("team-b",))` returns the paths of `user-alice.crt` and `user-alice.key`.
    """
    if any(group == "system:masters" for group in groups):
        raise ValueError("tenant certificates never carry system:masters")
    ca_key, ca_name = _load_ca(keys)
    subject = x509.Name(
        [
            *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups),
            x509.NameAttribute(NameOID.COMMON_NAME, user),
        ]
    )
    key, cert = _leaf(ca_key, ca_name, subject, ExtendedKeyUsageOID.CLIENT_AUTH)
    target = folder or keys.folder
    target.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
    return (
        _write(target / f"user-{slug}.crt", cert.public_bytes(serialization.Encoding.PEM)),
        _write(target / f"user-{slug}.key", _key_pem(key)),
    )


def generate(folder: Path) -> Pki:
    """Write a CA, the apiserver's serving pair, an admin client pair and an SA key pair.

    Example: `generate(Path("/tmp/cp/pki")).admin_cert` is a client certificate with
    subject `O=system:masters, CN=galleon-admin`, which RBAC treats as cluster-admin.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_name = _name("galleon-test-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    serving_key, serving_cert = _leaf(
        ca_key,
        ca_name,
        _name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
        ],
    )
    admin_key, admin_cert = _leaf(
        ca_key,
        ca_name,
        _name("galleon-admin", organization="system:masters"),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    service_account_key = _new_key()

    def cert_pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    return Pki(
        folder=folder,
        ca_cert=_write(folder / "ca.crt", cert_pem(ca_cert)),
        ca_key=_write(folder / "ca.key", _key_pem(ca_key)),
        apiserver_cert=_write(folder / "apiserver.crt", cert_pem(serving_cert)),
        apiserver_key=_write(folder / "apiserver.key", _key_pem(serving_key)),
        admin_cert=_write(folder / "admin.crt", cert_pem(admin_cert)),
        admin_key=_write(folder / "admin.key", _key_pem(admin_key)),
        service_account_key=_write(folder / "sa.key", _key_pem(service_account_key)),
        service_account_public_key=_write(
            folder / "sa.pub",
            service_account_key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            ),
        ),
    )
