"""Where outbound webhooks may connect: no loopback, link-local, private, unspecified or other
non-public address unless its network is allow-listed (``PHM_WEBHOOK_ALLOWED_NETWORKS``).

Without this an engineer's webhook endpoint is a request forgery tool: ``http://127.0.0.1:6379``,
``http://169.254.169.254/`` (cloud metadata), ``http://[::1]:8000/admin/``, with the first bytes
of each answer stored on the delivery. Most plants run SCADA on a private network, so the allow
list is the normal setup there: ``PHM_WEBHOOK_ALLOWED_NETWORKS=10.20.0.0/16``.

The address is checked twice: when an endpoint is saved (:func:`check_url`, a clear 400) and when
a delivery connects (:class:`GuardedAdapter`). The second check resolves the name itself and
connects to the address it checked, so a name that resolves to a public address at save time and
to 127.0.0.1 later (DNS rebinding) cannot slip through. Environment proxies are not used for
webhooks: through a proxy the destination could not be checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(OSError):
    """The destination address is not one webhooks may reach; the text says which and why."""


def allowed_networks() -> tuple[Network, ...]:
    """``PHM_WEBHOOK_ALLOWED_NETWORKS`` parsed; a bad entry is a configuration error that names it."""
    networks = []
    for entry in getattr(settings, "PHM_WEBHOOK_ALLOWED_NETWORKS", ()) or ():
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"PHM_WEBHOOK_ALLOWED_NETWORKS: {entry!r} is not a network in CIDR form ({exc})") from None
    return tuple(networks)


def _plain(address: Address) -> Address:
    """IPv4-mapped (``::ffff:127.0.0.1``) and 6to4-style forms judged as the IPv4 address they carry."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def refusal(address: Address | str, networks: Sequence[Network] | None = None) -> str | None:
    """What kind of address ``address`` is when webhooks may not reach it ("a loopback address"),
    or None when they may."""
    address = ipaddress.ip_address(str(address).split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    networks = allowed_networks() if networks is None else networks
    plain = _plain(address)
    if any(candidate in network for candidate in {address, plain} for network in networks if candidate.version == network.version):
        return None
    for label, test in (
        ("an unspecified", "is_unspecified"),
        ("a loopback", "is_loopback"),
        ("a link-local", "is_link_local"),
        ("a multicast", "is_multicast"),
        ("a private", "is_private"),
        ("a reserved", "is_reserved"),
    ):
        if getattr(plain, test) or getattr(address, test):
            return f"{label} address"
    if not plain.is_global:
        return "not a public address"
    return None


def _suggested_network(address: str) -> Network:
    plain = _plain(ipaddress.ip_address(address.split("%", 1)[0]))
    return ipaddress.ip_network(f"{plain}/{24 if plain.version == 4 else 64}", strict=False)


def check_address(address: str, *, host: str, networks: Sequence[Network] | None = None) -> None:
    """EgressRefused when ``address`` (what ``host`` resolved to) may not be reached."""
    kind = refusal(address, networks)
    if kind is not None:
        shown = f"{address} is" if host.strip("[]") == address else f"{host} resolves to {address},"
        if kind in ("a private address", "not a public address"):
            hint = f"if it is your SCADA network, allow it with PHM_WEBHOOK_ALLOWED_NETWORKS (e.g. {_suggested_network(address)})"
        else:
            hint = "only a network listed in PHM_WEBHOOK_ALLOWED_NETWORKS may be reached (e.g. a local test receiver)"
        raise EgressRefused(f"webhook destination refused: {shown} {kind}; {hint}")


def resolve(host: str, port: int) -> list[tuple]:
    """getaddrinfo for a TCP connection (a literal address comes back as itself)."""
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


def check_url(url: str) -> None:
    """Raise EgressRefused when ``url`` names (or its host resolves to) an address webhooks may not
    reach. A name that does not resolve now is accepted: it is checked again on every connect."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise EgressRefused("webhook destination refused: the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise EgressRefused(f"webhook destination refused: {exc}") from None
    networks = allowed_networks()
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        try:
            infos = resolve(host, port)
        except (socket.gaierror, UnicodeError):
            return
    else:
        infos = [(None, None, None, None, (host,))]
    for info in infos:
        check_address(info[4][0], host=host, networks=networks)


def connect_checked(host: str, port: int, timeout, *, source_address=None, socket_options=None) -> socket.socket:
    """Resolve ``host``, drop every address the policy refuses, connect to the first allowed one
    that answers. The socket is connected to an address that was checked, whatever DNS says later."""
    networks = allowed_networks()
    refused: list[str] = []
    last_error: OSError | None = None
    for *_family, sockaddr in resolve(host, port):
        address = sockaddr[0]
        try:
            check_address(address, host=host, networks=networks)
        except EgressRefused as exc:
            refused.append(str(exc))
            continue
        try:
            # A literal address: urllib3 does no further name lookup, only the connect.
            return create_connection((address, port), timeout, source_address=source_address, socket_options=socket_options)
        except OSError as exc:
            last_error = exc
    if last_error is not None:
        raise last_error
    raise EgressRefused(refused[0] if refused else f"webhook destination refused: {host} has no address")


class _GuardedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        try:
            return connect_checked(
                self._dns_host, self.port, self.timeout, source_address=self.source_address, socket_options=self.socket_options
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out (connect timeout={self.timeout})") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """requests adapter whose connections go only to addresses the egress policy allows."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise requests.exceptions.InvalidProxyURL("webhooks are not sent through a proxy: the destination could not be checked")


def guarded_session() -> requests.Session:
    """A requests session for webhooks: checked destinations, no environment proxies."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
