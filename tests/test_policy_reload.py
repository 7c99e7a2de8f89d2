"""SIGHUP reloads end to end: ``beamgate serve`` as a real process, the OpenSSH client, a real node.

* Revoking access always goes through: deleting the only contractor, or
  emptying a user's roles, leaves warnings (a role nobody has, a user with no
  roles), never errors, so the reload is accepted and the old key stops
  working. Warnings never stop ``serve`` from starting either.
* A reload does not change the clusters: the gateway's connections and
  cookies are set up at start, so a node added to the file is unknown until a
  restart, and a node moved to another cluster in the file is still the
  running cluster's node for the roles' ``clusters`` patterns.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from tests.support.erlang import ErlangNode, Runtime
from tests.support.ssh import Client, KeyPair, Served, keygen, write_gateway_config

SRE = '[roles.sre]\ncommands = ["*"]\nnodes = ["*"]\n'
CONTRACTOR = '[roles.contractor]\ncommands = ["help", "whoami", "info"]\nnodes = ["*"]\n'
SPARE = '[roles.spare]\ncommands = ["help"]\n'


def reload(served: Served, generation: int) -> dict[str, object]:
    """SIGHUP, then the ``config_reload`` audit event of ``generation``."""
    mark = served.mark()
    assert served.proc is not None
    served.proc.send_signal(signal.SIGHUP)
    event = served.wait_audit("config_reload", since=mark)
    assert event["generation"] == generation, event
    return event


def test_a_reload_that_revokes_access_is_accepted_and_the_key_stops_working(
    otp25_runtime: Runtime, node_factory: Callable[..., ErlangNode], tmp_path: Path
) -> None:
    node = node_factory(otp25_runtime)
    keys = {name: keygen(tmp_path, name) for name in ("alice", "bob", "carl")}

    def config(users: dict[str, tuple[list[KeyPair], list[str]]]) -> Path:
        return write_gateway_config(
            tmp_path, cookie_file=node.cookie_file, nodes=[node.name], users=users, roles=SRE + CONTRACTOR + SPARE
        )

    path = config(
        {"alice": ([keys["alice"]], ["sre"]), "bob": ([keys["bob"]], ["contractor"]), "carl": ([keys["carl"]], ["sre"])}
    )
    served = Served(path).start()  # a role nobody has (spare) is a warning: serve starts
    try:
        assert "WARNING beamgate.policy: config warning: roles.spare: no user has this role" in served.log()
        bob, carl, alice = (Client(served.endpoint, keys[u], tmp_path) for u in ("bob", "carl", "alice"))
        r = bob.run("whoami", "--json")
        assert (r.returncode, json.loads(r.stdout)["user"]) == (0, "bob"), r.stderr
        r = carl.run("info", "--json")
        assert (r.returncode, json.loads(r.stdout)["node"]) == (0, node.name), r.stderr

        # offboarding: bob (the only contractor) deleted, carl's roles emptied
        config({"alice": ([keys["alice"]], ["sre"]), "carl": ([keys["carl"]], [])})
        event = reload(served, 2)
        assert event["ok"] is True, event
        assert event["warnings"] == [
            "users.carl.roles: no roles: this user can log in but may run nothing",
            "roles.contractor: no user has this role",
            "roles.spare: no user has this role",
        ]
        assert "WARNING beamgate.policy: config warning: roles.contractor: no user has this role" in served.log()

        mark = served.mark()
        r = bob.run("whoami")
        assert (r.returncode, r.stdout) == (255, "") and "Permission denied" in r.stderr, r
        refused = served.wait_audit("auth_fail", since=mark)
        assert (refused["reason"], refused["key_fingerprint"]) == ("unknown key", keys["bob"].fingerprint())
        r = carl.run("info")
        assert (r.returncode, r.stdout, r.stderr) == (
            3,
            "",
            "denied: carl has no roles, so may run nothing (users.carl.roles)\n",
        )
        r = alice.run("info", "--json")
        assert (r.returncode, json.loads(r.stdout)["node"]) == (0, node.name), r.stderr
    finally:
        served.close()


def test_a_reload_does_not_change_the_running_clusters(
    otp25_runtime: Runtime, node_factory: Callable[..., ErlangNode], tmp_path: Path
) -> None:
    node = node_factory(otp25_runtime)
    host = node.name.split("@", 1)[1]
    spare, added = f"bgspare@{host}", f"bgadded@{host}"  # never started: epmd does not know them
    keys = {name: keygen(tmp_path, name) for name in ("alice", "bob")}
    users = {"alice": ([keys["alice"]], ["sre"]), "bob": ([keys["bob"]], ["otherops"])}
    # bob's role covers every node of the cluster "other", and only those
    otherops = '[roles.otherops]\ncommands = ["help", "nodes", "info"]\nnodes = ["*"]\nclusters = ["other"]\n'

    def config(test_nodes: list[str], other_nodes: list[str]) -> Path:
        other = f'[clusters.other]\ncookie_file = "{node.cookie_file}"\nnodes = {json.dumps(other_nodes)}\n'
        return write_gateway_config(
            tmp_path, cookie_file=node.cookie_file, nodes=test_nodes, users=users, roles=SRE + otherops, extra=other
        )

    served = Served(config([node.name], [spare])).start()
    try:
        alice, bob = (Client(served.endpoint, keys[u], tmp_path) for u in ("alice", "bob"))
        r = bob.run("info", "--node", node.name)
        assert r.returncode == 3 and r.stderr.startswith(f"denied: bob may not run info on {node.name}"), r

        # the file now adds a node to "test" and moves the real node to "other"
        config([added], [spare, node.name])
        event = reload(served, 2)
        assert (event["ok"], event["restart_needed"]) == (True, ["clusters"]), event

        r = alice.run("nodes", "--json")
        assert r.returncode == 0, r
        assert {n["node"]: n["cluster"] for n in json.loads(r.stdout)} == {node.name: "test", spare: "other"}
        r = alice.run("info", "--node", added)
        assert r.returncode == 3 and r.stderr.startswith(f"denied: alice may not run info on {added}"), r
        # the node is still reached through "test" (its connection, its cookie): "other" does not cover it
        r = bob.run("info", "--node", node.name)
        assert r.returncode == 3 and r.stderr.startswith(f"denied: bob may not run info on {node.name}"), r
        r = alice.run("info", "--node", node.name, "--json")
        assert (r.returncode, json.loads(r.stdout)["node"]) == (0, node.name), r.stderr
        assert "internal error" not in served.log() and "Traceback" not in served.log()
        assert "config reload: changes to clusters are ignored until a restart" in served.log()
    finally:
        served.close()
