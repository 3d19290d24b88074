"""A local certificate authority and the broker's server certificate.

The office PC signs its own broker certificate; each client machine trusts
only that CA, so no public CA is involved and nothing leaves the office.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.security import SecurityError, tls_ca_path, write_private
from broker.site import Site

_LOGGER = logging.getLogger(__name__)

CA_YEARS = 10
SERVER_YEARS = 2


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "antrean"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _alternative_names(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def create_certificates(site: Site, data_dir: Path, *, renew: bool = False) -> Path:
    """Create the CA (once) and a server certificate for the site's broker addresses.

    Returns the directory that holds ca.crt, server.crt and server.key.
    """
    if not site.broker.tls_port:
        raise SecurityError(
            f"{site.source}: [broker] has no tls_port, so no listener would use a "
            "certificate. Add tls_host and tls_port first."
        )
    directory = tls_ca_path(data_dir).parent
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = _load_or_create_ca(directory, site, now, renew)

    server_key = ec.generate_private_key(ec.SECP256R1())
    hosts = [site.broker.tls_host, site.broker.host, "localhost", "127.0.0.1"]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"antrean broker {site.id}"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * SERVER_YEARS))
        .add_extension(_alternative_names(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(directory / "server.key", _key_pem(server_key))
    write_private(directory / "server.crt", server_cert.public_bytes(serialization.Encoding.PEM).decode())
    _LOGGER.info("Wrote the broker certificate for %s in %s", ", ".join(dict.fromkeys(hosts)), directory)
    return directory


def _load_or_create_ca(
    directory: Path, site: Site, now: dt.datetime, renew: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = directory / "ca.key", directory / "ca.crt"
    if key_path.exists() and cert_path.exists() and not renew:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SecurityError(f"{key_path} is not an EC key; remove the tls folder and run again.")
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())

    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"antrean office CA {site.id}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, _key_pem(key))
    # The CA certificate is public: every client machine gets a copy.
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert
