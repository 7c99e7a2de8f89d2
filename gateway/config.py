"""The TOML configuration file: parsing and validation into frozen dataclasses.

The loader never stops at the first problem: it walks the whole file and
collects every :class:`Issue` with its key path (``clusters.prod.cookie_file``)
and a reason a person can act on, so ``beamgate check-config`` can list them
all at once. Relative paths are resolved against the config file's folder.

Checks that need other layers (role commands against the command registry,
policy caps) are done by :mod:`policies` on the loaded :class:`Config`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .secret import Cookie, CookieError

T = TypeVar("T")

DEFAULT_LISTEN = "127.0.0.1:2222"


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


# -- value parsers ------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def parse_duration(value: Any) -> float:
    """``"90s"``, ``"15m"``, ``"8h"``, ``"1d"``, ``"500ms"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError('expected a duration such as "90s", "15m" or "8h"')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(f'{value!r} is not a duration (use e.g. "90s", "15m", "8h", "1d")')


def parse_size(value: Any) -> int:
    """``"64MiB"``, ``"512KiB"``, ``"1GiB"`` or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    raise ValueError(f'{value!r} is not a size (use e.g. "64MiB", "512KiB" or a number of bytes)')


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- the model --------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 2222
    host_key: Path = Path("state/ssh_host_ed25519_key")
    login: str = "diag"
    idle_timeout: float = 900.0
    max_session: float = 8 * 3600.0
    max_sessions_per_user: int = 4
    max_sessions: int = 64
    trusted_user_ca_keys: tuple[str, ...] = ()
    login_grace_time: float = 30.0
    #: Failed logins from one address before it is refused for ``auth_lockout``.
    auth_max_failures: int = 5
    auth_failure_window: float = 600.0
    auth_lockout: float = 900.0


@dataclass(frozen=True)
class TlsConfig:
    certfile: Path
    keyfile: Path
    cafile: Path
    verify_hostname: bool = True


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    cookie_file: Path
    nodes: tuple[str, ...]
    node_name: str = "beamgate"
    node_host: str | None = None
    epmd_port: int = 4369
    connect_timeout: float = 5.0
    call_timeout: float = 10.0
    net_ticktime: float = 60.0
    max_packet: int = 64 * 1024 * 1024
    tls: TlsConfig | None = None

    def load_cookie(self) -> Cookie:
        return Cookie.from_file(self.cookie_file)


@dataclass(frozen=True)
class TraceLimits:
    max_messages: int
    max_rate: int
    max_seconds: float


@dataclass(frozen=True)
class SafetyConfig:
    protected_processes: tuple[str, ...] = ()
    #: Heap limit of each target-side worker, in bytes.
    max_heap: int = 64 * 1024 * 1024
    eval_timeout: float = 10.0
    max_reply: int = 4 * 1024 * 1024
    messages_cap: int = 100
    state_timeout: float = 1.0
    #: Trace limits for a role without trace caps, and for a trace that asks for none
    #: (a role may raise its caps above these, up to the hard maxima in policies/limits.py).
    trace_defaults: TraceLimits = TraceLimits(max_messages=100, max_rate=20, max_seconds=60)


@dataclass(frozen=True)
class RecordingConfig:
    dir: Path = Path("state/recordings")
    signing_key: Path = Path("state/recording_ed25519_key")
    retention_days: int = 365
    checkpoint_interval: float = 5.0
    #: New sessions are refused while the recording folder's file system has less free space.
    min_free_space: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class SyslogConfig:
    host: str
    port: int
    protocol: str = "udp"
    app_name: str = "beamgate"


@dataclass(frozen=True)
class AuditConfig:
    path: Path = Path("state/audit.jsonl")
    syslog: SyslogConfig | None = None


@dataclass(frozen=True)
class UserConfig:
    name: str
    keys: tuple[str, ...]
    roles: tuple[str, ...]


@dataclass(frozen=True)
class RoleTrace:
    """A role's ``trace`` caps (``None``: the role leaves it at ``safety.trace_defaults``)."""

    max_messages: int | None = None
    #: Messages per second.
    max_rate: int | None = None
    max_seconds: float | None = None
    #: Module globs the role may trace (``None``: any module).
    modules: tuple[str, ...] | None = None
    allow_return: bool = True
    allow_pid_all: bool = True


@dataclass(frozen=True)
class CommandRules:
    """One role's constraints on one command (``[roles.R.args.CMD]``); :mod:`policies` checks the names."""

    #: ``max_<key> = N``: cap on the integer argument or option ``<key>`` (``max_n``, ``max_ms``).
    max: dict[str, int] = field(default_factory=dict)
    #: ``allow_<key> = [...]``: the only values the role allows for ``<key>`` (``allow_attr``).
    allow: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: ``fanout = false``: no ``--nodes`` for this command (``None``: the role's ``fanout``).
    fanout: bool | None = None
    #: ``confirm = true``: ask the user to confirm before each run.
    confirm: bool = False


#: Values of a role's ``expensive`` key, least to most permissive.
EXPENSIVE_MODES = ("refuse", "confirm", "allow")


@dataclass(frozen=True)
class RoleConfig:
    """A role as written; :mod:`policies` gives it meaning (``docs/policies.md``)."""

    name: str
    #: Command names or globs; a privileged command (``kill``) only by its exact name.
    commands: tuple[str, ...] = ()
    #: Node-name globs.
    nodes: tuple[str, ...] = ()
    #: Cluster-name globs; a node must also be in one of these clusters.
    clusters: tuple[str, ...] = ("*",)
    #: Command globs refused to whoever has this role, whatever other roles grant.
    deny: tuple[str, ...] = ()
    #: ``info PROC KEY`` keys refused to whoever has this role (``messages`` also refuses ``messages PROC``).
    deny_process_keys: tuple[str, ...] = ()
    trace: RoleTrace | None = None
    #: Per-command argument constraints, e.g. ``{"proc_window": CommandRules(max={"ms": 5000})}``.
    args: dict[str, CommandRules] = field(default_factory=dict)
    #: Whether ``--nodes GLOB`` fan-out is allowed (per command: ``args.CMD.fanout``).
    fanout: bool = True
    #: Expensive invocations (``bin_leak``, long windows, wide fan-out): one of :data:`EXPENSIVE_MODES`.
    expensive: str = "confirm"


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig
    clusters: dict[str, ClusterConfig]
    safety: SafetyConfig
    recording: RecordingConfig
    audit: AuditConfig
    users: dict[str, UserConfig]
    roles: dict[str, RoleConfig]

    def all_nodes(self) -> Iterator[tuple[str, ClusterConfig]]:
        for cluster in self.clusters.values():
            for node in cluster.nodes:
                yield node, cluster

    def cluster_of(self, node: str) -> ClusterConfig | None:
        for name, cluster in self.all_nodes():
            if name == node:
                return cluster
        return None


# -- the reader --------------------------------------------------------------------


class _Table:
    """Reads one TOML table, recording issues and unknown keys."""

    def __init__(self, data: Any, path: str, issues: list[Issue]) -> None:
        self.path = path
        self.issues = issues
        if not isinstance(data, dict):
            self.error("", f"expected a table, got {type(data).__name__}")
            data = {}
        self.data: dict[str, Any] = dict(data)

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path and key else self.path or key

    def error(self, key: str, message: str) -> None:
        self.issues.append(Issue(self.key_path(key), message))

    def has(self, key: str) -> bool:
        return key in self.data

    def take(self, key: str, kind: type[T] | tuple[type, ...], default: T) -> T:
        if key not in self.data:
            return default
        value = self.data.pop(key)
        if isinstance(value, bool) and kind is not bool and not (isinstance(kind, tuple) and bool in kind):
            self.error(key, f"expected {_kind_name(kind)}, got a boolean")
            return default
        if not isinstance(value, kind):
            self.error(key, f"expected {_kind_name(kind)}, got {type(value).__name__}")
            return default
        return value  # type: ignore[return-value]

    def required(self, key: str, kind: type[T], what: str) -> T | None:
        if key not in self.data:
            self.error(key, f"missing ({what})")
            return None
        value = self.take(key, kind, None)
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.take(key, list, None)
        if value is None:
            return default
        bad = [v for v in value if not isinstance(v, str)]
        if bad:
            self.error(key, "expected a list of strings")
            return default
        return tuple(value)

    def duration(self, key: str, default: float) -> float:
        if key not in self.data:
            return default
        try:
            return parse_duration(self.data.pop(key))
        except ValueError as exc:
            self.error(key, str(exc))
            return default

    def size(self, key: str, default: int) -> int:
        if key not in self.data:
            return default
        try:
            return parse_size(self.data.pop(key))
        except ValueError as exc:
            self.error(key, str(exc))
            return default

    def positive_int(self, key: str, default: int, *, maximum: int | None = None) -> int:
        value = self.take(key, int, default)
        if (value < 1 and key in self.data) or value < 1:
            self.error(key, "must be a positive integer")
            return default
        if maximum is not None and value > maximum:
            self.error(key, f"must be at most {maximum}")
            return default
        return value

    def sub(self, key: str) -> _Table | None:
        if key not in self.data:
            return None
        return _Table(self.data.pop(key), self.key_path(key), self.issues)

    def finish(self) -> None:
        for key in sorted(self.data):
            self.error(key, "unknown key")


def _kind_name(kind: Any) -> str:
    names = {
        str: "a string",
        int: "an integer",
        list: "a list",
        dict: "a table",
        bool: "true or false",
        float: "a number",
    }
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, str(kind.__name__))


def _optional_positive(t: _Table, key: str) -> int | None:
    """A positive integer, or ``None`` when the key is absent (each problem reported once)."""
    if not t.has(key):
        return None
    value = t.take(key, int, None)
    if value is not None and value < 1:
        t.error(key, "must be a positive integer")
        return None
    return value


def _optional_positive_duration(t: _Table, key: str) -> float | None:
    if not t.has(key):
        return None
    value = t.duration(key, 0.0)
    if value <= 0:
        t.error(key, "must be a positive duration")
        return None
    return value


def _command_rules(t: _Table) -> CommandRules:
    """``[roles.R.args.CMD]``: ``max_<key>``, ``allow_<key>``, ``fanout``, ``confirm``."""
    caps: dict[str, int] = {}
    allow: dict[str, tuple[str, ...]] = {}
    for key in sorted(t.data):
        if key.startswith("max_") and len(key) > 4:
            value = _optional_positive(t, key)
            if value is not None:
                caps[key[4:]] = value
        elif key.startswith("allow_") and len(key) > 6:
            allow[key[6:]] = t.strings(key, ())
    fanout = t.take("fanout", bool, None)
    confirm = t.take("confirm", bool, False)
    t.finish()
    return CommandRules(max=caps, allow=allow, fanout=fanout, confirm=confirm)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def _key_identity(key: str) -> bytes:
    from .sshkeys import key_identity  # asyncssh: imported only when a config lists keys

    return key_identity(key)


class _Loader:
    def __init__(self, path: Path, *, check_files: bool) -> None:
        self.path = path
        self.base = path.parent
        self.issues: list[Issue] = []
        self.check_files = check_files
        #: Every public key read so far (its blob, comment stripped) -> the key path that listed it first.
        self.keys_seen: dict[bytes, str] = {}

    def resolve(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p)

    def load(self, data: dict[str, Any]) -> Config:
        root = _Table(data, "", self.issues)
        server = self.server(root.sub("server") or _Table({}, "server", self.issues))
        clusters = self.clusters(root.sub("clusters"))
        safety = self.safety(root.sub("safety"))
        recording = self.recording(root.sub("recording"))
        audit = self.audit(root.sub("audit"))
        roles = self.roles(root.sub("roles"))
        users = self.users(root.sub("users"), roles, server)
        root.finish()
        if not clusters:
            self.issues.append(Issue("clusters", "no cluster is configured"))
        return Config(self.path, server, clusters, safety, recording, audit, users, roles)

    def server(self, t: _Table) -> ServerConfig:
        d = ServerConfig()
        listen = t.take("listen", str, DEFAULT_LISTEN)
        host, port = d.listen_host, d.listen_port
        m = re.match(r"^\[?([^\]]*)\]?:(\d+)$", listen)
        if not m or not 0 <= int(m.group(2)) < 65536:  # port 0: any free port (tests)
            t.error("listen", f"{listen!r} is not HOST:PORT")
        else:
            host, port = m.group(1), int(m.group(2))
        host_key = self.resolve(t.take("host_key", str, str(d.host_key)))
        login = t.take("login", str, d.login)
        if not _NAME.match(login):
            t.error("login", f"{login!r} is not a valid login name")
        cas = []
        for i, entry in enumerate(t.strings("trusted_user_ca_keys")):
            path = f"{t.key_path('trusted_user_ca_keys')}[{i}]"
            key = self.public_key_text(entry, path)
            if key:
                cas.append(key)
                self.keys_seen.setdefault(_key_identity(key), path)
        result = ServerConfig(
            listen_host=host,
            listen_port=port,
            host_key=host_key,
            login=login,
            idle_timeout=t.duration("idle_timeout", d.idle_timeout),
            max_session=t.duration("max_session", d.max_session),
            max_sessions_per_user=t.positive_int("max_sessions_per_user", d.max_sessions_per_user),
            max_sessions=t.positive_int("max_sessions", d.max_sessions),
            trusted_user_ca_keys=tuple(cas),
            login_grace_time=t.duration("login_grace_time", d.login_grace_time),
            auth_max_failures=t.positive_int("auth_max_failures", d.auth_max_failures),
            auth_failure_window=t.duration("auth_failure_window", d.auth_failure_window),
            auth_lockout=t.duration("auth_lockout", d.auth_lockout),
        )
        t.finish()
        return result

    def public_key_text(self, entry: str, path: str) -> str | None:
        """A key line, or the content of a ``.pub`` file named by path."""
        text = entry.strip()
        if not text.startswith(("ssh-", "ecdsa-", "sk-")):
            p = self.resolve(text)
            try:
                text = p.read_text().strip()
            except OSError as exc:
                self.issues.append(Issue(path, f"neither a public key nor a readable file: {exc.strerror}"))
                return None
        from .sshkeys import KeyFormatError, parse_public_key

        try:
            parse_public_key(text)
        except KeyFormatError as exc:
            self.issues.append(Issue(path, str(exc)))
            return None
        return text

    def unique_user_key(self, key: str, path: str, user: str) -> None:
        """A key identifies one user: the same key under two users, or as a CA too, is refused.

        Listed twice under the same user, it is harmless and accepted.
        """
        first = self.keys_seen.setdefault(_key_identity(key), path)
        if first == path or first.startswith(f"users.{user}.keys["):
            return
        if first.startswith("server."):
            self.issues.append(
                Issue(path, f"same key as {first}: whoever holds it could sign certificates for any user")
            )
        else:
            self.issues.append(Issue(path, f"same key as {first}: a key must identify exactly one user"))

    def clusters(self, t: _Table | None) -> dict[str, ClusterConfig]:
        result: dict[str, ClusterConfig] = {}
        if t is None:
            return result
        seen_nodes: dict[str, str] = {}
        for name in list(t.data):
            sub = t.sub(name)
            assert sub is not None
            if not _NAME.match(name):
                sub.error("", "cluster names use letters, digits, '_', '-' and '.'")
            cluster = self.cluster(name, sub)
            if cluster is None:
                continue
            for node in cluster.nodes:
                if node in seen_nodes:
                    sub.error("nodes", f"{node} is also in cluster {seen_nodes[node]}")
                seen_nodes[node] = name
            result[name] = cluster
        return result

    def cluster(self, name: str, t: _Table) -> ClusterConfig | None:
        from .dist.errors import NodeNameError
        from .dist.names import NodeName

        cookie_file = t.required("cookie_file", str, "the path of the cluster's cookie file")
        nodes = t.strings("nodes")
        if not nodes:
            t.error("nodes", "list at least one node (name@host)")
        styles = set()
        for node in nodes:
            try:
                styles.add(NodeName.parse(node).longnames)
            except NodeNameError as exc:
                t.error("nodes", str(exc))
        if len(styles) > 1:
            t.error("nodes", "mixes short and long node names; a cluster uses one style")
        node_name = t.take("node_name", str, "beamgate")
        if "@" in node_name or not re.match(r"^[A-Za-z0-9_-]{1,64}$", node_name):
            t.error("node_name", "the gateway's node name is a plain name (no @host): letters, digits, '_', '-'")
        tls = None
        tt = t.sub("tls")
        if tt is not None:
            files = {k: tt.required(k, str, "a PEM file") for k in ("certfile", "keyfile", "cafile")}
            verify = tt.take("verify_hostname", bool, True)
            tt.finish()
            if all(files.values()):
                paths = {k: self.resolve(v) for k, v in files.items() if v}
                if self.check_files:
                    for k, p in paths.items():
                        if not p.is_file():
                            tt.error(k, f"{p} does not exist")
                tls = TlsConfig(paths["certfile"], paths["keyfile"], paths["cafile"], verify)
        d = ClusterConfig(name=name, cookie_file=Path(), nodes=())
        cookie_path = self.resolve(cookie_file) if cookie_file else Path()
        if cookie_file and self.check_files:
            try:
                Cookie.from_file(cookie_path)
            except CookieError as exc:
                t.error("cookie_file", str(exc))
        result = ClusterConfig(
            name=name,
            cookie_file=cookie_path,
            nodes=nodes,
            node_name=node_name,
            node_host=t.take("node_host", str, None),
            epmd_port=t.positive_int("epmd_port", d.epmd_port, maximum=65535),
            connect_timeout=t.duration("connect_timeout", d.connect_timeout),
            call_timeout=t.duration("call_timeout", d.call_timeout),
            net_ticktime=t.duration("net_ticktime", d.net_ticktime),
            max_packet=t.size("max_packet", d.max_packet),
            tls=tls,
        )
        t.finish()
        return result if cookie_file else None

    def safety(self, t: _Table | None) -> SafetyConfig:
        d = SafetyConfig()
        if t is None:
            return d
        trace = d.trace_defaults
        tt = t.sub("trace_defaults")
        if tt is not None:
            trace = TraceLimits(
                max_messages=tt.positive_int("max_messages", trace.max_messages),
                max_rate=tt.positive_int("max_rate", trace.max_rate),
                max_seconds=tt.duration("max_seconds", trace.max_seconds),
            )
            tt.finish()
        result = SafetyConfig(
            protected_processes=t.strings("protected_processes"),
            max_heap=t.size("max_heap", d.max_heap),
            eval_timeout=t.duration("eval_timeout", d.eval_timeout),
            max_reply=t.size("max_reply", d.max_reply),
            messages_cap=t.positive_int("messages_cap", d.messages_cap),
            state_timeout=t.duration("state_timeout", d.state_timeout),
            trace_defaults=trace,
        )
        t.finish()
        return result

    def recording(self, t: _Table | None) -> RecordingConfig:
        d = RecordingConfig()
        if t is None:
            return RecordingConfig(self.resolve(str(d.dir)), self.resolve(str(d.signing_key)))
        result = RecordingConfig(
            dir=self.resolve(t.take("dir", str, str(d.dir))),
            signing_key=self.resolve(t.take("signing_key", str, str(d.signing_key))),
            retention_days=t.positive_int("retention_days", d.retention_days),
            checkpoint_interval=t.duration("checkpoint_interval", d.checkpoint_interval),
            min_free_space=t.size("min_free_space", d.min_free_space),
        )
        t.finish()
        return result

    def audit(self, t: _Table | None) -> AuditConfig:
        d = AuditConfig()
        if t is None:
            return AuditConfig(self.resolve(str(d.path)))
        path = self.resolve(t.take("path", str, str(d.path)))
        syslog = None
        st = t.sub("syslog")
        if st is not None:
            address = st.required("address", str, "HOST:PORT of the syslog collector")
            protocol = st.take("protocol", str, "udp")
            if protocol not in ("udp", "tcp"):
                st.error("protocol", 'must be "udp" or "tcp"')
            app_name = st.take("app_name", str, "beamgate")
            st.finish()
            if address:
                m = re.match(r"^\[?([^\]]*)\]?:(\d+)$", address)
                if not m:
                    st.error("address", f"{address!r} is not HOST:PORT")
                else:
                    syslog = SyslogConfig(m.group(1), int(m.group(2)), protocol, app_name)
        t.finish()
        return AuditConfig(path, syslog)

    def roles(self, t: _Table | None) -> dict[str, RoleConfig]:
        result: dict[str, RoleConfig] = {}
        if t is None:
            return result
        for name in list(t.data):
            sub = t.sub(name)
            assert sub is not None
            if not _NAME.match(name):
                sub.error("", "role names use letters, digits, '_', '-' and '.'")
            result[name] = self.role(name, sub)
        return result

    def role(self, name: str, t: _Table) -> RoleConfig:
        trace = None
        tt = t.sub("trace")
        if tt is not None:
            trace = RoleTrace(
                max_messages=_optional_positive(tt, "max_messages"),
                max_rate=_optional_positive(tt, "max_rate"),
                max_seconds=_optional_positive_duration(tt, "max_seconds"),
                modules=tt.strings("modules") if tt.has("modules") else None,
                allow_return=tt.take("allow_return", bool, True),
                allow_pid_all=tt.take("allow_pid_all", bool, True),
            )
            tt.finish()
        args: dict[str, CommandRules] = {}
        at = t.sub("args")
        if at is not None:
            for command in list(at.data):
                rules = at.sub(command)
                assert rules is not None
                args[command] = _command_rules(rules)
            at.finish()
        expensive = t.take("expensive", str, "confirm")
        if expensive not in EXPENSIVE_MODES:
            t.error("expensive", f"must be one of {', '.join(repr(m) for m in EXPENSIVE_MODES)}")
            expensive = "confirm"
        result = RoleConfig(
            name=name,
            commands=t.strings("commands"),
            nodes=t.strings("nodes"),
            clusters=t.strings("clusters", ("*",)),
            deny=t.strings("deny"),
            deny_process_keys=t.strings("deny_process_keys"),
            trace=trace,
            args=args,
            fanout=t.take("fanout", bool, True),
            expensive=expensive,
        )
        t.finish()
        return result

    def users(self, t: _Table | None, roles: dict[str, RoleConfig], server: ServerConfig) -> dict[str, UserConfig]:
        result: dict[str, UserConfig] = {}
        if t is None:
            return result
        for name in list(t.data):
            sub = t.sub(name)
            assert sub is not None
            if not _NAME.match(name):
                sub.error("", "user names use letters, digits, '_', '-' and '.'")
            if name == server.login:
                sub.error("", f"a user cannot be named like the shared login {server.login!r}")
            keys = []
            for i, entry in enumerate(sub.strings("keys")):
                path = f"{sub.key_path('keys')}[{i}]"
                key = self.public_key_text(entry, path)
                if key:
                    keys.append(key)
                    self.unique_user_key(key, path, name)
            user_roles = sub.strings("roles")
            for role in user_roles:
                if role not in roles:
                    sub.error("roles", f"unknown role {role!r}")
            sub.finish()
            result[name] = UserConfig(name, tuple(keys), user_roles)
        return result


def load_config(path: str | Path, *, check_files: bool = True) -> Config:
    """Load and validate ``path``; raise :class:`ConfigError` listing every issue."""
    p = Path(path).resolve()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Issue("", f"cannot read {p}: {exc.strerror}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Issue("", f"{p} is not valid TOML: {exc}")]) from None
    loader = _Loader(p, check_files=check_files)
    config = loader.load(data)
    if loader.issues:
        raise ConfigError(loader.issues)
    return config
