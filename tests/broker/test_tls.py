"""The run's throw-away CA and server certificate."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509

from iomt.broker.tls import make_ca_and_server_cert


def test_certificates(tmp_path: Path) -> None:
    files = make_ca_and_server_cert(tmp_path / "tls")
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == [
        "ca.crt",
        "server.crt",
        "server.key",
    ]  # the CA's private key is never written
    assert stat.S_IMODE(files.server_key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)


def test_other_host_names(tmp_path: Path) -> None:
    files = make_ca_and_server_cert(tmp_path, host="broker.lan")
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "broker.lan" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
