"""The policy engine: may this user run this parsed command on this node?

Decisions are made server-side, on the parsed :class:`~commands.spec.Invocation`,
before anything reaches a node, in one place shared by the shell and exec
mode. A denial names the rule that decided it.

Rules (see ``docs/policies.md`` for the full model and merge rules):

* a command is allowed when a role's ``commands`` glob matches it; a
  *privileged* command (``kill``) only when a role names it exactly, never
  through ``*``;
* an explicit ``deny`` in any role wins over every grant;
* a node is allowed when a role's ``nodes`` glob matches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from commands.grammar import matches_glob
from commands.spec import Command, Invocation
from gateway.config import Config, Issue, RoleConfig


class Denied(Exception):
    """The policy refuses the command. ``rule`` names the deciding rule."""

    def __init__(self, reason: str, rule: str) -> None:
        super().__init__(reason)
        self.rule = rule


@dataclass(frozen=True)
class Decision:
    invocation: Invocation
    rule: str


class UserPolicy:
    """The merged rights of one user (the union of their roles, minus denies)."""

    def __init__(self, user: str, roles: Iterable[RoleConfig], registry: Mapping[str, Command]) -> None:
        self.user = user
        self.roles = tuple(roles)
        self.registry = registry

    def _grant(self, command: str) -> str | None:
        """The rule that grants ``command``, or ``None``."""
        privileged = self.registry[command].privileged if command in self.registry else False
        for role in self.roles:
            for pattern in role.commands:
                if pattern == command or (not privileged and matches_glob(command, pattern)):
                    return f"roles.{role.name}.commands"
            if command in role.privileged:
                return f"roles.{role.name}.privileged"
        return None

    def _denied_by(self, command: str) -> str | None:
        for role in self.roles:
            for pattern in role.deny:
                if matches_glob(command, pattern):
                    return f"roles.{role.name}.deny"
        return None

    def may_run(self, command: str) -> bool:
        return self._denied_by(command) is None and self._grant(command) is not None

    def may_use_node(self, node: str) -> bool:
        return any(matches_glob(node, pattern) for role in self.roles for pattern in role.nodes)

    def check(self, inv: Invocation, node: str | None) -> Decision:
        """Allow ``inv`` on ``node`` or raise :class:`Denied` naming the rule."""
        name = inv.command.name
        rule = self._denied_by(name)
        if rule is not None:
            raise Denied(f"{name} is denied to {self.user} ({rule})", rule)
        grant = self._grant(name)
        if grant is None:
            what = "privileged command" if inv.command.privileged else "command"
            raise Denied(f"{self.user} may not run the {what} {name} (no role grants it)", "commands")
        if inv.command.remote and node is not None and not self.may_use_node(node):
            raise Denied(f"{self.user} may not use node {node} (no role's nodes pattern matches it)", "nodes")
        return Decision(inv, grant)

    def describe(self) -> Mapping[str, Any]:
        return {
            "user": self.user,
            "roles": [r.name for r in self.roles],
            "commands": sorted(c for c in self.registry if self.may_run(c)),
            "nodes": sorted({p for r in self.roles for p in r.nodes}),
        }


class Policy:
    """Policies of every configured user; rebuilt on config reload."""

    def __init__(self, config: Config, registry: Mapping[str, Command]) -> None:
        self.config = config
        self.registry = registry

    def for_user(self, user: str) -> UserPolicy:
        spec = self.config.users.get(user)
        roles = [self.config.roles[r] for r in spec.roles if r in self.config.roles] if spec else []
        return UserPolicy(user, roles, self.registry)


def validate_config(config: Config, registry: Mapping[str, Command] | None = None) -> list[Issue]:
    """Policy checks for ``beamgate check-config``: roles against the command registry."""
    if registry is None:
        from commands import REGISTRY

        registry = REGISTRY
    issues: list[Issue] = []
    for role in config.roles.values():
        for i, pattern in enumerate(role.commands):
            if not any(matches_glob(name, pattern) for name in registry):
                issues.append(Issue(f"roles.{role.name}.commands[{i}]", f"matches no command: {pattern!r}"))
        for i, name in enumerate(role.privileged):
            if name not in registry:
                issues.append(Issue(f"roles.{role.name}.privileged[{i}]", f"unknown command {name!r}"))
    return issues
