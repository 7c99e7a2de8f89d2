"""Policy checks for ``beamgate check-config``, ``beamgate serve`` and a reload.

:func:`validate_config` returns *errors*: a config with any of them is not
served (``serve`` refuses to start, a reload keeps the previous config).
:func:`config_warnings` returns *warnings*: things that are probably not
meant but are safe, above all the states an offboarding leaves behind (a
user whose roles were emptied, a role whose last user was removed). They are
printed and logged, and never block a start or a reload: revoking access
must always be possible.

The config loader checks types and key names; these checks need the
command registry and the hard maxima. Each issue has the key path of the
offending entry (``roles.contractor.args.proc_count.max_n``):

* commands and denies: unknown names, malformed globs, globs that match no
  command, and globs that match only privileged commands (a glob never
  grants those, so such a pattern grants nothing);
* nodes and clusters: malformed globs, globs that match no configured node
  or cluster;
* constraints: unknown commands or attributes (``max_<key>``/``allow_<key>``
  naming no argument of the command), values outside a command's choices,
  caps above the hard maxima, constraints on commands the role does not grant;
* trace caps above the hard maxima; unknown process keys;
* registered commands that do not carry what the engine applies caps to.

Warnings: users without roles (they log in and may run nothing), roles no
user has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from commands.grammar import matches_glob
from commands.protected import parse_protected
from commands.refs import RefError
from commands.spec import Command
from gateway.config import Config, Issue, RoleConfig

from . import limits
from .rights import grants
from .vocabulary import choice_specs, hard_max, int_specs, process_key_params, registry_issues

_COMMAND_GLOB = re.compile(r"^[A-Za-z0-9_*?\[\]!-]+$")
_NODE_GLOB = re.compile(r"^[A-Za-z0-9_.*?@:\[\]!-]+$")
_MODULE_GLOB = re.compile(r"^[A-Za-z0-9_.@*?\[\]!:-]+$")
_GLOB_CHARS = re.compile(r"[*?\[]")


def glob_problem(pattern: str, charset: re.Pattern[str]) -> str | None:
    """Why ``pattern`` is not a usable glob, or ``None``."""
    if not charset.match(pattern):
        return f"{pattern!r} is not a valid pattern (letters, digits and the glob characters * ? [ ] only)"
    depth = 0
    for ch in pattern:
        if ch == "[":
            if depth:
                return f"{pattern!r} has a '[' inside a '[...]' class"
            depth = 1
        elif ch == "]" and depth:
            depth = 0
    if depth:
        return f"{pattern!r} has an unclosed '['"
    return None


def is_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def validate_config(config: Config, registry: Mapping[str, Command] | None = None) -> list[Issue]:
    """Every policy problem in ``config``, each with its key path; empty when the policy is sound."""
    if registry is None:
        from commands import REGISTRY

        registry = REGISTRY
    issues = [Issue("", f"command registry: {p}") for p in registry_issues(registry)]
    for role in config.roles.values():
        issues += _role(role, config, registry)
    d = config.safety.trace_defaults
    issues += _trace_above_hard("safety.trace_defaults", d.max_messages, d.max_rate, d.max_seconds)
    for i, entry in enumerate(config.safety.protected_processes):
        try:
            parse_protected(entry)
        except RefError as exc:
            issues.append(Issue(f"safety.protected_processes[{i}]", str(exc)))
    return issues


def config_warnings(config: Config) -> list[Issue]:
    """What is probably not meant but safe to serve: users without roles, roles without users.

    Never an error: deleting a user or emptying their roles is how access is revoked.
    """
    warnings = []
    used: set[str] = set()
    for user in config.users.values():
        used.update(user.roles)
        if not user.roles:
            warnings.append(Issue(f"users.{user.name}.roles", "no roles: this user can log in but may run nothing"))
    for name in config.roles:
        if name not in used:
            warnings.append(Issue(f"roles.{name}", "no user has this role"))
    return warnings


def _commands(role: RoleConfig, key: str, patterns: tuple[str, ...], registry: Mapping[str, Command]) -> list[Issue]:
    issues = []
    for i, pattern in enumerate(patterns):
        path = f"roles.{role.name}.{key}[{i}]"
        problem = glob_problem(pattern, _COMMAND_GLOB)
        if problem:
            issues.append(Issue(path, problem))
            continue
        matched = [c for name, c in registry.items() if matches_glob(name, pattern)]
        if not is_glob(pattern):
            if not matched:
                issues.append(Issue(path, f"unknown command {pattern!r}"))
        elif not matched:
            issues.append(Issue(path, f"{pattern!r} matches no command"))
        elif key == "commands" and all(c.privileged for c in matched):
            names = ", ".join(c.name for c in matched)
            reason = f"{pattern!r} matches only privileged commands ({names}); a glob never grants them"
            issues.append(Issue(path, reason + ": name each one exactly"))
    return issues


def _role(role: RoleConfig, config: Config, registry: Mapping[str, Command]) -> list[Issue]:
    base = f"roles.{role.name}"
    issues = _commands(role, "commands", role.commands, registry)
    issues += _commands(role, "deny", role.deny, registry)
    nodes = [n for n, _ in config.all_nodes()]
    for key, patterns, names, what in (
        ("nodes", role.nodes, nodes, "configured node"),
        ("clusters", role.clusters, list(config.clusters), "configured cluster"),
    ):
        for i, pattern in enumerate(patterns):
            problem = glob_problem(pattern, _NODE_GLOB)
            if problem is None and not any(matches_glob(n, pattern) for n in names):
                problem = f"{pattern!r} matches no {what}"
            if problem:
                issues.append(Issue(f"{base}.{key}[{i}]", problem))
    known_keys = limits.PROCESS_KEYS.union(*(p.choices for c in registry.values() for p in process_key_params(c)))
    for i, key in enumerate(role.deny_process_keys):
        if key not in known_keys:
            issues.append(Issue(f"{base}.deny_process_keys[{i}]", f"unknown process key {key!r}"))
    issues += _trace(role, registry)
    for name, rules in role.args.items():
        path = f"{base}.args.{name}"
        command = registry.get(name)
        if command is None:
            issues.append(Issue(path, f"unknown command {name!r}"))
            continue
        if not grants(role, command):
            issues.append(Issue(path, f"the role does not grant {name}, so these constraints have no effect"))
        ints = int_specs(command)
        for key, value in rules.max.items():
            if key not in ints:
                issues.append(Issue(f"{path}.max_{key}", _unknown(command, key, ints, "integer")))
                continue
            top = hard_max(command, ints[key], config.safety.messages_cap)
            if top is not None and value > top:
                issues.append(Issue(f"{path}.max_{key}", f"{value} is above the hard maximum {top}"))
        choices = choice_specs(command)
        for key, values in rules.allow.items():
            if key not in choices:
                issues.append(Issue(f"{path}.allow_{key}", _unknown(command, key, choices, "choice")))
                continue
            known = choices[key].choices
            bad = [v for v in values if known and v not in known]
            if bad:
                issues.append(Issue(f"{path}.allow_{key}", f"not among {', '.join(known)}: {', '.join(bad)}"))
            if not values:
                issues.append(Issue(f"{path}.allow_{key}", "an empty list allows nothing; deny the command instead"))
        if rules.fanout is not None and not command.fanout:
            issues.append(Issue(f"{path}.fanout", f"{name} does not fan out (it has no --nodes option)"))
    return issues


def _unknown(command: Command, key: str, known: Mapping[str, object], kind: str) -> str:
    if command.name == limits.TRACE_COMMAND and key in limits.TRACE_KEYS:
        return f"trace's --{key} is capped by the role's trace table (max_messages, max_rate, max_seconds, ...)"
    has = ", ".join(sorted(known)) or "none"
    return f"unknown attribute: {command.name} has no {kind} argument {key!r} (it has: {has})"


def _trace(role: RoleConfig, registry: Mapping[str, Command]) -> list[Issue]:
    if role.trace is None:
        return []
    base = f"roles.{role.name}.trace"
    issues = []
    trace = registry.get(limits.TRACE_COMMAND)
    if trace is None or not grants(role, trace):
        issues.append(Issue(base, "the role does not grant trace, so its trace caps have no effect"))
    t = role.trace
    issues += _trace_above_hard(base, t.max_messages, t.max_rate, t.max_seconds)
    for i, pattern in enumerate(role.trace.modules or ()):
        problem = glob_problem(pattern, _MODULE_GLOB)
        if problem:
            issues.append(Issue(f"{base}.modules[{i}]", problem))
    if role.trace.modules == ():
        issues.append(Issue(f"{base}.modules", "an empty list allows no module; deny trace instead"))
    return issues


def _trace_above_hard(base: str, messages: float | None, rate: float | None, seconds: float | None) -> list[Issue]:
    issues = []
    for key, value, top in (
        ("max_messages", messages, limits.TRACE_MAX_MESSAGES),
        ("max_rate", rate, limits.TRACE_MAX_RATE),
        ("max_seconds", seconds, limits.TRACE_MAX_SECONDS),
    ):
        if value is not None and value > top:
            issues.append(Issue(f"{base}.{key}", f"{value:g} is above the hard maximum {top}"))
    return issues
