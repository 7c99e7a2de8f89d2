"""TLS distribution (``inet_tls_dist``) against a real node, with mutual certificates.

OTP 25 only: the OTP 28 runtime of the fixture wheel ships without the
``ssl`` application, so it cannot run ``inet_tls_dist``. Debian's OTP 25
has it (``erlang-ssl``).

Certificates are made here with ``cryptography``: a cluster CA that signs the
node's server certificate and the gateway's client certificate, and a second
CA for the failure cases.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.cluster import tls_context
from gateway.config import ClusterConfig, TlsConfig
from gateway.dist.errors import HandshakeFailed
from gateway.dist.node import LocalNode, NodeOptions
from gateway.dist.rpc import RemoteNode, RpcClient
from gateway.dist.terms import Atom
from gateway.secret import Cookie
from tests.support.erlang import ErlangNode, Runtime, short_host


@dataclass
class Issued:
    cert: Path
    key: Path


class CA:
    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            self._builder(subject, self.key.public_key())
            .issuer_name(subject)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = workdir / f"{name}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _builder(subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(self, cn: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(short_host()), x509.DNSName("localhost")]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (
            self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]), key.public_key())
            .issuer_name(self.cert.subject)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        issued = Issued(self.workdir / f"{self.name}-{cn}.pem", self.workdir / f"{self.name}-{cn}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        issued.key.chmod(0o600)
        return issued


def start_tls_node(
    factory: Callable[..., ErlangNode], runtime: Runtime, workdir: Path, ca: CA, server: Issued
) -> ErlangNode:
    optfile = workdir / f"ssl_dist_{secrets.token_hex(3)}.conf"
    opts = (
        f'[{{certfile, "{server.cert}"}}, {{keyfile, "{server.key}"}}, {{cacertfile, "{ca.path}"}}, '
        "{verify, verify_peer}, {fail_if_no_peer_cert, true}]"
    )
    optfile.write_text(f"[{{server, {opts}}}, {{client, {opts}}}].\n")
    return factory(runtime, extra_args=["-proto_dist", "inet_tls", "-ssl_dist_optfile", str(optfile)])


def gateway(node: ErlangNode, client: Issued, ca: CA, *, verify_hostname: bool = True) -> tuple[LocalNode, RemoteNode]:
    config = ClusterConfig(
        name="tls",
        cookie_file=node.cookie_file,
        nodes=(node.name,),
        tls=TlsConfig(client.cert, client.key, ca.path, verify_hostname),
    )
    ctx = tls_context(config)
    assert ctx is not None
    local = LocalNode(
        f"beamgate_tls_{secrets.token_hex(3)}@{short_host()}",
        Cookie(node.cookie.encode()),
        NodeOptions(tls=ctx, connect_timeout=10),
    )
    return local, RemoteNode(local, node.name, RpcClient(local), call_timeout=10)


@pytest.fixture
def cluster_ca(tmp_path: Path) -> CA:
    return CA(tmp_path, "cluster-ca")


@pytest.fixture
def other_ca(tmp_path: Path) -> CA:
    return CA(tmp_path, "other-ca")


def test_connect_and_call_over_tls(
    node_factory: Callable[..., ErlangNode], otp25_runtime: Runtime, tmp_path: Path, cluster_ca: CA
) -> None:
    node = start_tls_node(node_factory, otp25_runtime, tmp_path, cluster_ca, cluster_ca.issue("node", server=True))
    assert node.eval_bool('init:get_argument(proto_dist) =:= {ok, [["inet_tls"]]}.')

    async def main() -> None:
        local, remote = gateway(node, cluster_ca.issue("gateway", server=False), cluster_ca)
        assert await remote.call("erlang", "node") == Atom(node.name)
        assert await remote.call("lists", "seq", [1, 5]) == [1, 2, 3, 4, 5]
        assert await remote.otp_release() == "25"
        # Seen from the node: our connection is controlled by a TLS process (a pid), not a plain port.
        controlled_by_tls = f"[C || {{N, C}} <- erlang:system_info(dist_ctrl), N =:= '{local.name}', is_pid(C)] =/= []."
        assert await asyncio.to_thread(node.eval_bool, controlled_by_tls)
        local.close()

    asyncio.run(main())


def test_client_certificate_from_another_ca_is_refused(
    node_factory: Callable[..., ErlangNode], otp25_runtime: Runtime, tmp_path: Path, cluster_ca: CA, other_ca: CA
) -> None:
    node = start_tls_node(node_factory, otp25_runtime, tmp_path, cluster_ca, cluster_ca.issue("node", server=True))

    async def main() -> None:
        # We trust the node (right CA) but present a certificate the node does not trust.
        local, remote = gateway(node, other_ca.issue("gateway", server=False), cluster_ca)
        with pytest.raises(HandshakeFailed) as err:
            await remote.connect()
        message = str(err.value)
        assert message.startswith(f"TLS with {node.name} failed (")
        assert "does not trust our certificate" in message or "rejected our certificate" in message, message
        assert "\n" not in message
        local.close()

    asyncio.run(main())


def test_untrusted_server_certificate_is_refused(
    node_factory: Callable[..., ErlangNode], otp25_runtime: Runtime, tmp_path: Path, cluster_ca: CA, other_ca: CA
) -> None:
    # The node's certificate is signed by a CA our cafile does not hold.
    node = start_tls_node(node_factory, otp25_runtime, tmp_path, other_ca, other_ca.issue("node", server=True))

    async def main() -> None:
        local, remote = gateway(node, cluster_ca.issue("gateway", server=False), cluster_ca)
        with pytest.raises(
            HandshakeFailed,
            match=f"^TLS with {node.name} failed \\(CERTIFICATE_VERIFY_FAILED\\): "
            "the node's certificate is not signed by the cluster's cafile, or names another host$",
        ):
            await remote.connect()
        local.close()

    asyncio.run(main())


def test_plain_client_against_tls_node_is_diagnosed(
    node_factory: Callable[..., ErlangNode], otp25_runtime: Runtime, tmp_path: Path, cluster_ca: CA
) -> None:
    node = start_tls_node(node_factory, otp25_runtime, tmp_path, cluster_ca, cluster_ca.issue("node", server=True))

    async def main() -> None:
        local = LocalNode(f"beamgate_plain_{secrets.token_hex(3)}@{short_host()}", Cookie(node.cookie.encode()))
        remote = RemoteNode(local, node.name, RpcClient(local))
        with pytest.raises(HandshakeFailed, match="answered with TLS: it is an inet_tls_dist node"):
            await remote.connect()
        local.close()

    asyncio.run(main())
