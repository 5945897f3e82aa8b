"""A throwaway certificate authority and a loopback server certificate, so the SDK can send its bearer token."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["ServerTLS", "make_server_tls"]


@dataclass(frozen=True)
class ServerTLS:
    """The server's SSL context and the CA bundle (a PEM file) clients must trust."""

    context: ssl.SSLContext
    ca_bundle: Path


def make_server_tls(directory: Path | None = None, hosts: tuple[str, ...] = ()) -> ServerTLS:
    """Make a new CA, issue a certificate for loopback (and `hosts`), write the CA's PEM into `directory`."""
    ca = trustme.CA(organization_name="azsnap emulator")
    names = ("127.0.0.1", "::1", "localhost", *hosts)
    leaf = ca.issue_cert(*dict.fromkeys(names))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    where = directory if directory is not None else Path(tempfile.mkdtemp(prefix="azsnap-emulator-"))
    where.mkdir(parents=True, exist_ok=True)
    bundle = where / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return ServerTLS(context, bundle)
