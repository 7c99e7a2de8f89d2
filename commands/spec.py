"""What a command is: its grammar, its help, its policy-relevant traits, and how it runs.

Every diagnostic is one :class:`Command` value, declared in its own module
next to the Erlang snippet it evaluates and its formatter. The registry
(:mod:`commands`) collects them; the parser, ``help``, completion and the
policy engine all read the same values, so they cannot drift apart.

Help text follows recon's documentation style: ``shows`` (what you get),
``when`` (which symptom it answers) and ``cost`` (what it does to the node).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import Context

#: Kinds of positional and option values, parsed by :mod:`commands.grammar`.
KINDS = frozenset(
    {"word", "int", "choice", "proc", "funspec", "node", "command", "port", "glob", "bool", "rate", "text"}
)


@dataclass(frozen=True)
class Param:
    """A positional argument. ``name`` is the metavar shown in usage (``ATTR``)."""

    name: str
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    default: Any = None
    required: bool = True
    many: bool = False
    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")

    @property
    def key(self) -> str:
        """The name under which the parsed value is stored (``ATTR`` -> ``attr``)."""
        return self.name.lower()


@dataclass(frozen=True)
class Flag:
    """A ``--name [VALUE]`` option. ``kind="bool"`` options take no value."""

    name: str
    kind: str
    help: str
    metavar: str = ""
    choices: tuple[str, ...] = ()
    default: Any = None
    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    @property
    def shown(self) -> str:
        if self.kind == "bool":
            return f"--{self.name}"
        return f"--{self.name} {self.metavar or self.name.upper()}"


#: Options every command accepts (SPEC: "Every command accepts --node NODE and --json").
NODE_FLAG = Flag("node", "node", "run on NODE instead of the current node", metavar="NODE")
#: ``--node`` of a command that runs on the gateway: accepted, so that every command takes it, and ignored.
LOCAL_NODE_FLAG = Flag("node", "node", "ignored: this command runs on the gateway", metavar="NODE")
JSON_FLAG = Flag("json", "bool", "print one JSON document (JSON lines for streaming commands)")
NODES_FLAG = Flag(
    "nodes", "glob", "run on every configured node matching GLOB, concurrently, results per node", metavar="GLOB"
)


Runner = Callable[["Context", "Invocation"], Awaitable[Any]]
Renderer = Callable[[Any, "Invocation"], str]
JsonShape = Callable[[Any, "Invocation"], Any]


def _no_json(result: Any, inv: Invocation) -> Any:
    return result


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    shows: str
    when: str
    cost: str
    run: Runner
    render: Renderer
    to_json: JsonShape = _no_json
    params: tuple[Param, ...] = ()
    flags: tuple[Flag, ...] = ()
    #: Talks to a target node (gets ``--node``; needs a selected node).
    remote: bool = True
    #: Read-only and safe to run on many nodes at once (gets ``--nodes GLOB``).
    fanout: bool = False
    #: Changes the target (``kill``): never granted by ``"*"`` in a role.
    privileged: bool = False
    #: Produces output over time (``trace``): JSON lines, cancelled by Ctrl-C.
    streaming: bool = False
    #: Asks the user itself, naming the exact target, before changing anything
    #: (``kill`` resolves the pid and has it typed back). Such a command needs the
    #: interactive shell, and the policy does not add a second, generic prompt.
    confirms: bool = False
    examples: tuple[str, ...] = ()
    #: Extra sections for ``help CMD`` (e.g. the list of attributes).
    notes: str = ""

    def all_flags(self) -> tuple[Flag, ...]:
        common: tuple[Flag, ...] = (NODE_FLAG if self.remote else LOCAL_NODE_FLAG, JSON_FLAG)
        if self.fanout:
            common = (*common, NODES_FLAG)
        return (*self.flags, *common)

    def flag(self, name: str) -> Flag | None:
        for f in self.all_flags():
            if f.name == name:
                return f
        return None

    def usage(self) -> str:
        parts = [self.name]
        for p in self.params:
            text = p.name + ("..." if p.many else "")
            parts.append(text if p.required else f"[{text}]")
        parts.extend(f"[{f.shown}]" for f in self.flags)
        return " ".join(parts)


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: which command, with what values. Policy sees this."""

    command: Command
    args: Mapping[str, Any]
    flags: Mapping[str, Any]
    line: str
    node: str | None = None
    nodes_glob: str | None = None
    json: bool = False
    #: Values the policy engine lowered to a cap (name -> (asked, granted)).
    clamped: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.command.name

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.args:
            return self.args[key]
        return self.flags.get(key, default)
