"""Clusters: the gateway's node identity per cluster and one connection per target.

A :class:`Cluster` is built from a ``[clusters.NAME]`` section. It owns the
cookie (read once from ``cookie_file``, kept in a :class:`~gateway.secret.Cookie`),
one :class:`~gateway.dist.node.LocalNode` named ``node_name@<our host>`` in
the cluster's name style, and a :class:`~gateway.dist.rpc.RemoteNode` per
configured target. Every session shares these: one distribution connection
per target node, opened on first use and reopened on the next use after a
loss. :class:`Clusters` indexes all of them by node name.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .config import ClusterConfig, Config
from .dist.errors import DistError
from .dist.names import NodeName, local_host
from .dist.node import LocalNode, NodeOptions
from .dist.rpc import RemoteNode, RpcClient
from .secret import Cookie


class ClusterSetupError(Exception):
    """A cluster cannot be set up from its config (its TLS files); the message names the key and file."""


def tls_context(cluster: ClusterConfig) -> ssl.SSLContext | None:
    """Client-side TLS for ``inet_tls_dist`` clusters (mutual: we present a certificate)."""
    tls = cluster.tls
    if tls is None:
        return None
    key = f"clusters.{cluster.name}.tls"
    try:  # ssl.SSLError is an OSError: a missing, unreadable or malformed PEM file
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.cafile))
    except OSError as exc:
        raise ClusterSetupError(f"{key}.cafile: cannot load {tls.cafile}: {exc.strerror or exc}") from None
    try:
        ctx.load_cert_chain(str(tls.certfile), str(tls.keyfile))
    except OSError as exc:
        raise ClusterSetupError(
            f"{key}: cannot load certfile {tls.certfile} with keyfile {tls.keyfile}: {exc.strerror or exc}"
        ) from None
    ctx.check_hostname = tls.verify_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Cluster:
    def __init__(self, config: ClusterConfig, cookie: Cookie | None = None) -> None:
        self.config = config
        self.name = config.name
        cookie = cookie or config.load_cookie()
        longnames = any(NodeName.parse(n).longnames for n in config.nodes)
        own_name = f"{config.node_name}@{local_host(longnames, config.node_host)}"
        tls = tls_context(config)
        options = NodeOptions(
            epmd_port=config.epmd_port,
            connect_timeout=config.connect_timeout,
            tick_interval=config.net_ticktime / 4,
            tick_timeout=config.net_ticktime,
            max_packet=config.max_packet,
            tls=tls,
        )
        self.local = LocalNode(own_name, cookie, options)
        self.rpc = RpcClient(self.local)
        self.nodes = {
            name: RemoteNode(self.local, name, self.rpc, call_timeout=config.call_timeout) for name in config.nodes
        }

    def __repr__(self) -> str:
        return f"<Cluster {self.name} as {self.local.name}: {', '.join(self.nodes)}>"

    def close(self) -> None:
        self.local.close()


class Clusters:
    """Every configured cluster, and lookup of a target node by name."""

    def __init__(self, clusters: Iterable[Cluster]) -> None:
        self.by_name = {c.name: c for c in clusters}

    @classmethod
    def from_config(cls, config: Config) -> Clusters:
        return cls(Cluster(c) for c in config.clusters.values())

    def node(self, name: str) -> RemoteNode:
        for cluster in self.by_name.values():
            if name in cluster.nodes:
                return cluster.nodes[name]
        raise KeyError(name)

    def cluster_of(self, name: str) -> Cluster:
        for cluster in self.by_name.values():
            if name in cluster.nodes:
                return cluster
        raise KeyError(name)

    def node_names(self) -> list[str]:
        return [n for c in self.by_name.values() for n in c.nodes]

    def __iter__(self) -> Iterator[Cluster]:
        return iter(self.by_name.values())

    def close(self) -> None:
        for cluster in self.by_name.values():
            cluster.close()


@dataclass(frozen=True)
class PingResult:
    node: str
    ok: bool
    kind: str
    detail: str
    otp_release: str = ""
    rtt_ms: float = 0.0

    def line(self) -> str:
        if self.ok:
            return f"ok {self.node} otp={self.otp_release} rtt={self.rtt_ms:.1f}ms"
        return f"{self.kind} {self.node}: {self.detail}"


async def ping_node(node: RemoteNode) -> PingResult:
    """Connect (if needed), learn the OTP release, and time one round trip."""
    try:
        NodeName.parse(node.name)
        await node.connect()
        otp = await node.otp_release()
        rtt = await node.ping()
        return PingResult(node.name, True, "ok", "", otp, rtt * 1000)
    except DistError as exc:  # NodeNameError included
        return PingResult(node.name, False, exc.kind, str(exc))
    except (OSError, ValueError) as exc:  # anything undiagnosed still gets its one line
        return PingResult(node.name, False, "error", f"{type(exc).__name__}: {exc}")


async def ping(clusters: Clusters, names: list[str]) -> list[PingResult]:
    """Ping ``names`` (all configured nodes when empty) concurrently, in order."""
    targets = names or clusters.node_names()
    results: list[RemoteNode | None] = []
    for name in targets:
        try:
            results.append(clusters.node(name))
        except KeyError:
            results.append(None)
    pinged = await asyncio.gather(*(ping_node(n) for n in results if n is not None))
    out = []
    it = iter(pinged)
    for name, node in zip(targets, results, strict=True):
        out.append(
            next(it) if node is not None else PingResult(name, False, "unknown_node", "not in any configured cluster")
        )
    return out
