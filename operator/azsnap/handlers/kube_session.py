"""One aiohttp session to the Kubernetes API with kopf's connection info, for the few requests kopf does not make.

The credentials come from kopf's own login (the service account in a pod, a kubeconfig elsewhere); a pod's token is
read again for every request, because the kubelet rotates it. Used by restored volumes and published VolumeSnapshots.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final

import aiohttp
import kopf

__all__ = ["TOKEN_FILE", "KubeSession"]

#: A pod's service-account token, re-read for every request (the kubelet rotates it).
TOKEN_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubeSession:
    """The session (made on first use), the server's URL and the request headers."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        self._info = info
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        info = self._info
        if info.insecure:
            return False
        context = ssl.create_default_context(
            cafile=str(info.ca_path) if info.ca_path else None,
            cadata=info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data,
        )
        if info.certificate_path and info.private_key_path:
            context.load_cert_chain(str(info.certificate_path), str(info.private_key_path))
        return context

    def _headers(self) -> dict[str, str]:
        token = self._info.token
        if TOKEN_FILE.exists() and self._info.scheme in (None, "Bearer") and token:
            token = TOKEN_FILE.read_text().strip() or token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _url(self, path: str) -> str:
        return self._info.server.rstrip("/") + path

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            ssl_arg = self._ssl() if self._info.server.startswith("https") else True
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_arg))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
