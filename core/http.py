"""Every request the portal sends for a tenant goes through here, and never into its own network.

Tenants define custom apps (whose API the proxy and verification call) and webhook endpoints, so
without a guard a tenant could aim the portal at 127.0.0.1, a private network or a cloud
metadata address (SSRF). Each new connection's peer address is checked right after the socket
connects, before anything is sent: only globally routable addresses pass. Checking the connected
socket, not a DNS answer, means a name that resolves differently on a second lookup (DNS
rebinding) cannot slip through.

Connections are pooled: each thread keeps one ``requests.Session`` per guard policy, so calls to
the same upstream reuse a kept-alive connection instead of opening a TCP (and TLS) connection
each time. A session holds no tenant state: auth is passed with each request and never set on
the session, cookies are refused (one tenant's upstream cannot set a cookie another tenant's
call would send), and the guard runs on every new connection the pool opens.

``PORTAL_ALLOW_PRIVATE_NETWORK`` turns the guard off: the demo and the tests need it, since their
providers (the sandbox, local test servers) run on this machine. A deployment that sends
outbound traffic through an egress proxy checks destinations there instead.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import urllib.request
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from core.conf import conf


class DestinationNotAllowed(NewConnectionError):
    """The destination is not a public address; requests reports it as a ConnectionError."""


def _check_peer(connection: HTTPConnection, sock: socket.socket) -> None:
    address = ipaddress.ip_address(sock.getpeername()[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        sock.close()
        raise DestinationNotAllowed(
            connection,
            f"{connection.host} resolves to {address}, which is not a public address: the "
            "portal does not send requests into its own network.",
        )


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(self, sock)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(self, sock)
        return sock


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


# Host pools kept per session (least recently used dropped first), and idle connections per host.
POOLED_HOSTS = 100
POOLED_CONNECTIONS_PER_HOST = 10


class PooledAdapter(HTTPAdapter):
    """A transport keeping connections alive per host; it retries nothing."""

    def __init__(self) -> None:
        super().__init__(
            pool_connections=POOLED_HOSTS, pool_maxsize=POOLED_CONNECTIONS_PER_HOST, max_retries=0
        )


class PublicOnlyAdapter(PooledAdapter):
    """A transport whose connections refuse non-public peers."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }


def destination_refused(exc: BaseException | None) -> str:
    """The guard's reason when ``exc`` (a requests error) comes from its refusal, else ''."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DestinationNotAllowed):
            return str(exc).split(": ", 1)[-1]
        # requests wraps urllib3's MaxRetryError, whose ``reason`` is the connection error.
        reason = getattr(exc, "reason", None)
        exc = reason if isinstance(reason, BaseException) else exc.__cause__ or exc.__context__
    return ""


_sessions = threading.local()


def _new_session(*, guarded: bool) -> requests.Session:
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    if not urllib.request.getproxies():
        # requests looks through the environment for proxy settings on every call, a cost
        # comparable to the rest of the call; with none set (as usual) there is nothing to find.
        # Its CA bundle variables are read once here instead. (This also keeps ~/.netrc
        # credentials away from tenants' hosts.)
        session.trust_env = False
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
    adapter = PublicOnlyAdapter() if guarded else PooledAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def outbound_session() -> requests.Session:
    """This thread's pooled session for the current guard policy (see the module docstring)."""
    guarded = not conf.ALLOW_PRIVATE_NETWORK
    name = "guarded" if guarded else "open"
    session = getattr(_sessions, name, None)
    if session is None:
        session = _new_session(guarded=guarded)
        setattr(_sessions, name, session)
    return session


def outbound_request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """``requests.request`` for calls made on a tenant's behalf (timeouts stay the caller's).

    Auth, headers and parameters are the caller's, for this request only; the connection comes
    from this thread's pool.
    """
    return outbound_session().request(method, url, **kwargs)
