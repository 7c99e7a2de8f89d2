"""``info PROC [KEY...]``: one process, in recon:info/1's safe groups.

recon:info/1 is ``erlang:process_info/1`` without the mailbox, sorted into
groups (meta, signals, location, memory_used, work). The same items are
read here in one ``process_info/2`` call; what can be unbounded is cut on
the target before it travels: the dictionary (its first 50 entries, each
printed with depth 8 and cut at 2,000 bytes), links and monitors (the first
50 with their count), and binaries, only on request (count, total bytes and
the 10 largest). ``messages`` is read only on request and as the
``messages`` command reads it (SPEC safety rule 7): refused for protected
processes, and only when the queue is at most ``safety.messages_cap`` long,
checked on the node just before; the first :data:`MESSAGES_SHOWN` messages
are printed there, bounded.

:func:`process_items` lists the ``process_info`` items an invocation reads,
for a policy that denies some of them (``deny_process_keys``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.dist.rpc import Snippet
from gateway.dist.terms import Atom

from .context import Context
from .format import human_bytes, human_count, mfa_text, safe_join, sanitize, term_text
from .procs import (
    RESOLVE,
    SHOW,
    explain_proc,
    frame_text,
    optional_name,
    pid_shown,
    proc_binding,
    protected_bindings,
    queue_too_long,
    shown_text,
)
from .remote import evaluate
from .spec import Invocation

#: recon:info/1's groups, in its order, and the process_info items of each.
GROUPS: Mapping[str, tuple[str, ...]] = {
    "meta": ("registered_name", "dictionary", "group_leader", "status"),
    "signals": ("links", "monitors", "monitored_by", "trap_exit"),
    "location": ("initial_call", "current_stacktrace"),
    "memory_used": ("memory", "message_queue_len", "heap_size", "total_heap_size", "garbage_collection"),
    "work": ("reductions",),
}
#: Read only when asked for by name: the binaries can be many, the mailbox long.
ON_REQUEST = {"binary": "memory_used", "messages": "memory_used"}
#: ``info PROC messages`` shows the first messages, like ``messages PROC``.
MESSAGES_SHOWN = 10
GROUP_OF = {item: group for group, items in GROUPS.items() for item in items} | ON_REQUEST
KEYS = (*GROUPS, *GROUP_OF)

PROC_INFO = Snippet(
    "info_proc",
    RESOLVE
    + SHOW
    + """
    Pid = BgProcess(Proc),
    Shape = fun({dictionary, Dict}) ->
                    {dictionary, length(Dict),
                     [{BgShow(K, 8, 2000), BgShow(V, 8, 2000)} || {K, V} <- lists:sublist(Dict, 50)]};
               ({Key, List}) when Key =:= links; Key =:= monitors; Key =:= monitored_by ->
                    {Key, length(List), lists:sublist(List, 50)};
               ({binary, Bins}) ->
                    {binary, length(Bins), lists:sum(element(2, lists:unzip3(Bins))),
                     lists:sublist(lists:reverse(lists:keysort(2, Bins)), 10)};
               (Other) -> Other
            end,
    Mailbox = case lists:member(messages, Items) of
        false -> [];
        true ->
            _ = BgGuard(Pid, Protected),
            case erlang:process_info(Pid, message_queue_len) of
                {message_queue_len, Len} when Len > Cap -> throw({beamgate, queue_too_long, Len});
                {message_queue_len, _} ->
                    case erlang:process_info(Pid, messages) of
                        {messages, Queue} ->
                            [{messages, length(Queue), [BgShow(M, 10, 2000) || M <- lists:sublist(Queue, Shown)]}];
                        undefined -> throw({beamgate, no_such_process, Proc})
                    end;
                undefined -> throw({beamgate, no_such_process, Proc})
            end
    end,
    case erlang:process_info(Pid, lists:delete(messages, Items)) of
        undefined -> throw({beamgate, no_such_process, Proc});
        Info -> {Pid, lists:map(Shape, Info) ++ Mailbox}
    end.
    """,
    ("Cap", "Items", "Proc", "Protected", "Shown"),
)


def process_items(keys: Iterable[str]) -> tuple[str, ...]:
    """The ``process_info`` items that ``info PROC KEYS...`` reads (all safe groups when empty)."""
    wanted = list(keys) or list(GROUPS)
    items: list[str] = []
    for key in wanted:
        for item in GROUPS.get(key, (key,)):
            if item not in items:
                items.append(item)
    return tuple(items)


async def run_proc(ctx: Context, inv: Invocation) -> dict[str, Any]:
    ref = inv.args["proc"]
    node = ctx.need_target().name
    items = process_items(inv.args.get("key") or ())
    cap = ctx.safety.messages_cap
    bindings = {
        "Proc": proc_binding(ref),
        "Items": [Atom(i) for i in items],
        "Protected": protected_bindings(ctx),
        "Cap": cap,
        "Shown": MESSAGES_SHOWN,
    }
    explain = {**explain_proc(ref, node), "queue_too_long": queue_too_long(ref, cap)}
    pid, info = await evaluate(ctx, PROC_INFO, bindings, explain=explain)
    out: dict[str, Any] = {"pid": pid_shown(pid, node)}
    for entry in info:
        key = str(entry[0])
        out.setdefault(GROUP_OF.get(key, "other"), {})[key] = _value(key, entry[1:], node)
    return out


def _value(key: str, rest: Sequence[Any], node: str) -> Any:
    """One item as plain JSON data, every remote string sanitized."""
    if key == "dictionary":
        count, entries = rest
        return {"count": count, "entries": [[shown_text(k), shown_text(v)] for k, v in entries]}
    if key in ("links", "monitors", "monitored_by"):
        count, items = rest
        return {"count": count, "items": [term_text(i, local_node=node) for i in items]}
    if key == "messages":
        count, shown = rest
        return {"count": count, "messages": [shown_text(m) for m in shown]}
    if key == "binary":
        count, total, largest = rest
        return {"count": count, "bytes": total, "largest": [{"bytes": b[1], "refc": b[2]} for b in largest]}
    value = rest[0]
    if key == "registered_name":
        return optional_name(value)
    if key == "initial_call":
        return mfa_text(value)
    if key == "current_stacktrace":
        return [frame_text(f, node) for f in value] if isinstance(value, list) else term_text(value, local_node=node)
    if key == "garbage_collection" and isinstance(value, list):
        return {str(k): v if isinstance(v, int) else term_text(v) for k, v in value}
    if isinstance(value, bool | int):
        return value
    return term_text(value, local_node=node)


def render_proc(result: Mapping[str, Any], inv: Invocation) -> str:
    lines = [f"process {result['pid']}"]
    for group in (*GROUPS, "other"):
        if group not in result:
            continue
        lines.append(f"{group}:")
        shown = [(key, _shown(key, value)) for key, value in result[group].items()]
        width = max(len(key) for key, _ in shown)
        for key, values in shown:
            pad = " " * (width + 4)
            lines.append(f"  {key + ':':<{width + 1}} {values[0]}")
            lines.extend(pad + more for more in values[1:])
    return "\n".join(lines)


def _shown(key: str, value: Any) -> list[str]:
    """The value's text lines; every piece of remote text sanitized (idempotent on sanitized text)."""
    if value is None:
        return ["-"]
    if key == "current_stacktrace" and isinstance(value, list):
        return [sanitize(frame) for frame in value] or ["-"]
    if key == "dictionary":
        return _listed(value["count"], [safe_join(" => ", pair) for pair in value["entries"]])
    if key in ("links", "monitors", "monitored_by"):
        return _listed(value["count"], [sanitize(item) for item in value["items"]])
    if key == "messages":
        return _listed(value["count"], [sanitize(m) for m in value["messages"]])
    if key == "binary":
        sizes = ", ".join(human_bytes(b["bytes"]) for b in value["largest"])
        return [f"{human_count(value['count'])} refc binaries, {human_bytes(value['bytes'])} (largest: {sizes or '-'})"]
    if key == "memory" and isinstance(value, int):
        return [human_bytes(value)]
    if key in ("heap_size", "total_heap_size") and isinstance(value, int):
        return [f"{human_count(value)} words"]
    if isinstance(value, dict):
        return [safe_join(", ", (safe_join("=", (_safe(k), _safe(v))) for k, v in value.items()))]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int):
        return [human_count(value)]
    return [_safe(value)]


def _safe(value: Any) -> str:
    return sanitize(value if isinstance(value, str) else str(value))


def _listed(count: int, shown: Sequence[str]) -> list[str]:
    """Short lists on one line; longer ones one entry per line under their count."""
    if not count:
        return ["none"]
    more = [f"(+{count - len(shown)} more)"] if count > len(shown) else []
    line = safe_join(", ", [*shown, *more])
    if len(line) <= 60 and "\n" not in line:
        return [line]
    return [f"{count} entries:", *shown, *more]
