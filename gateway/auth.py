"""Who is logging in: key and certificate decisions, and login throttling.

Pure logic, no sockets: :mod:`gateway.server` feeds it what the SSH client
offered and acts on the answer.

Identity comes from the key, never from the login name. Everyone may log in
as the shared ``server.login`` (``diag``) and the key decides the user; a
user may also log in under their own name, which must then be the key's user.

* A plain public key names the configured user it is listed under
  (``users.NAME.keys``). Unknown keys are refused.
* An OpenSSH user certificate must be signed by one of
  ``server.trusted_user_ca_keys`` (the CA's signature over the certificate is
  verified when it is decoded), be within its validity window, be used from
  an address its ``source-address`` critical option allows, and carry a
  principal that names a configured user: exactly one when logging in as
  ``diag`` (a certificate naming several users is ambiguous and refused), or
  the login name itself. Its ``force-command`` is kept for the session.

Every refusal carries a reason for the audit log; the client only ever sees
"Permission denied".

:class:`LoginThrottle` slows down and then locks out an address that keeps
failing: each failure within ``auth_failure_window`` doubles the delay before
the next attempt is answered, and ``auth_max_failures`` of them lock the
address out for ``auth_lockout``.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address

import asyncssh
from asyncssh.public_key import CERT_TYPE_USER, SSHOpenSSHCertificate, decode_ssh_certificate, decode_ssh_public_key

from .config import Config
from .sshkeys import fingerprint, key_identity, parse_public_key


@dataclass(frozen=True)
class Login:
    """An accepted login: the user, and how they proved it."""

    user: str
    key_fingerprint: str
    method: str  # "publickey" or "certificate"
    #: The OpenSSH line asyncssh must then verify the signature against (the key, or the CA).
    authorized_line: str
    ca_fingerprint: str | None = None
    force_command: str | None = None

    def describe(self) -> dict[str, str]:
        """The login's details for ``whoami`` and the audit log."""
        details = {"method": self.method}
        if self.ca_fingerprint:
            details["ca_fingerprint"] = self.ca_fingerprint
        if self.force_command is not None:
            details["force_command"] = self.force_command
        return details


@dataclass(frozen=True)
class Refusal:
    """A refused key or certificate, with the reason written to the audit log."""

    reason: str
    key_fingerprint: str | None = None


class KeyDirectory:
    """Configured users' keys and trusted CAs, indexed for login decisions."""

    def __init__(
        self,
        login: str,
        user_keys: Mapping[str, Iterable[str]],
        trusted_cas: Iterable[str] = (),
    ) -> None:
        self.login = login
        self.users = frozenset(user_keys)
        self._key_user: dict[bytes, str] = {}
        for user, lines in user_keys.items():
            for line in lines:
                self._key_user.setdefault(key_identity(line), user)
        self._cas: dict[bytes, asyncssh.SSHKey] = {}
        for line in trusted_cas:
            key = parse_public_key(line)
            self._cas[bytes(key.public_data)] = key

    @classmethod
    def from_config(cls, config: Config, users: Config | None = None) -> KeyDirectory:
        """From ``[server]`` of ``config`` and the ``[users]`` of ``users`` (a reloaded config) or ``config``."""
        return cls(
            config.server.login,
            {name: user.keys for name, user in (users or config).users.items()},
            config.server.trusted_user_ca_keys,
        )

    def decide(self, login: str, key_data: bytes, client_ip: str) -> Login | Refusal:
        """Accept or refuse the key or certificate blob a client offers for ``login``."""
        try:
            cert = decode_ssh_certificate(key_data)
        except (asyncssh.KeyImportError, ValueError):
            cert = None
        if isinstance(cert, SSHOpenSSHCertificate):
            return self._certificate(login, cert, client_ip)
        if cert is not None:
            return Refusal("X.509 certificates are not accepted")
        try:
            key = decode_ssh_public_key(key_data)
        except (asyncssh.KeyImportError, ValueError):
            return Refusal("undecodable public key or certificate (or a certificate with a bad CA signature)")
        return self._key(login, key)

    def _key(self, login: str, key: asyncssh.SSHKey) -> Login | Refusal:
        fp = fingerprint(key)
        user = self._key_user.get(bytes(key.public_data))
        if user is None:
            return Refusal("unknown key", fp)
        if login != self.login and login != user:
            return Refusal(f"key of user {user} offered for login {login}", fp)
        line = key.export_public_key("openssh").decode("ascii").strip()
        return Login(user, fp, "publickey", line)

    def _certificate(self, login: str, cert: SSHOpenSSHCertificate, client_ip: str) -> Login | Refusal:
        fp = fingerprint(cert.key)
        ca = self._cas.get(bytes(cert.signing_key.public_data))
        if ca is None:
            return Refusal(f"certificate signed by an untrusted CA {fingerprint(cert.signing_key)}", fp)
        problem = _validity_problem(cert)
        if problem:
            return Refusal(problem, fp)
        allowed = cert.options.get("source-address")
        if allowed and not _address_in(client_ip, allowed):  # type: ignore[arg-type]
            return Refusal(f"certificate source-address does not allow {client_ip}", fp)
        principals = list(cert.principals)
        if not principals:
            return Refusal("certificate has no principals", fp)
        named = [p for p in principals if p in self.users]
        if login != self.login:
            if login not in named:
                return Refusal(f"certificate principals {principals} do not include login {login}", fp)
            user = login
        elif len(named) == 1:
            user = named[0]
        elif not named:
            return Refusal(f"certificate principals {principals} name no configured user", fp)
        else:
            return Refusal(f"certificate names several users {named}: log in under one of those names", fp)
        ca_line = ca.export_public_key("openssh").decode("ascii").strip()
        force = cert.options.get("force-command")
        return Login(
            user,
            fp,
            "certificate",
            f'cert-authority,principals="{user}" {ca_line}',
            ca_fingerprint=fingerprint(ca),
            force_command=str(force) if force is not None else None,
        )


def _validity_problem(cert: SSHOpenSSHCertificate) -> str | None:
    """Why the certificate is not usable as a user certificate now (asyncssh checks the clock), or ``None``."""
    try:
        cert.validate(CERT_TYPE_USER, None)
    except ValueError as exc:
        text = str(exc).lower()
        if "expired" in text:
            return "certificate expired"
        if "not yet valid" in text:
            return "certificate not yet valid"
        if "type" in text:
            return "not a user certificate"
        return f"certificate not valid: {exc}"
    return None


def _address_in(client_ip: str, networks: Iterable[object]) -> bool:
    try:
        ip = ip_address(client_ip)
    except ValueError:
        return False
    return any(ip in net for net in networks)  # type: ignore[operator]


# -- throttling --------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottleState:
    """What to do with a new login attempt from an address."""

    delay: float
    locked_for: float = 0.0

    @property
    def locked(self) -> bool:
        return self.locked_for > 0


class LoginThrottle:
    """Per-address failure counting: growing delays, then a lockout.

    ``max_failures`` failed logins within ``window`` seconds lock the address
    out for ``lockout`` seconds. Before that, the n-th recent failure delays
    the next attempt by ``base_delay * 2**(n-1)`` (at most ``max_delay``).
    At most ``max_addresses`` addresses are tracked (the oldest are forgotten).
    """

    def __init__(
        self,
        max_failures: int,
        window: float,
        lockout: float,
        *,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: collections.OrderedDict[str, list[float]] = collections.OrderedDict()
        self._locked: dict[str, float] = {}

    def state(self, address: str) -> ThrottleState:
        now = self._clock()
        until = self._locked.get(address)
        if until is not None:
            if until > now:
                return ThrottleState(0.0, until - now)
            del self._locked[address]
        recent = self._recent(address, now)
        if not recent:
            return ThrottleState(0.0)
        return ThrottleState(min(self.base_delay * 2 ** (len(recent) - 1), self.max_delay))

    def failure(self, address: str) -> ThrottleState:
        """Count one failed login; returns the state the next attempt will meet."""
        now = self._clock()
        recent = self._recent(address, now)
        recent.append(now)
        self._failures[address] = recent
        self._failures.move_to_end(address)
        if len(recent) >= self.max_failures:
            self._locked[address] = now + self.lockout
            del self._failures[address]
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        if len(self._locked) > self.max_addresses:
            for addr in [a for a, t in self._locked.items() if t <= now]:
                del self._locked[addr]
        return self.state(address)

    def success(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str, now: float) -> list[float]:
        return [t for t in self._failures.get(address, ()) if now - t < self.window]
