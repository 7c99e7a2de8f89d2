"""Processes on the target: resolving a PROC argument, measuring attributes, describing rows.

Every command that takes ``PROC`` resolves it on the target with the
:data:`RESOLVE` fragment, from data built by :func:`proc_binding` (bound as
``Proc``):

* ``{pid, Number, Serial}`` for ``<0.N.S>``: a pid of the target itself;
* ``{name, <<"my_server">>}`` and ``{global, <<"name">>}``: names travel as
  binaries and are looked up with ``binary_to_existing_atom/2``, so an
  unknown name is simply "no such process" and never creates an atom
  (SPEC safety rule 3).

``BgProcess(Proc)`` returns a live local pid or throws
``{beamgate, no_such_process | not_a_process | remote_process, ...}``;
``BgGuard(Pid, Protected)`` throws ``{beamgate, protected, Who}`` when one of
the protected processes (:func:`protected_bindings`, resolved with
``BgWhere`` like any name) is that pid (SPEC safety rule 7).

:data:`MEASURE` defines ``BgProcValues(Attr)``, the per-chunk measurement
for :mod:`commands.sampling` (recon's ``proc_attrs``, with ``binary_memory``
as the sum of the refc binaries a process references; a process gone
meanwhile measures -1, or 0 for ``binary_memory``), ``BgProcRank(Attr)``,
the same for ranking only (the raw ``{Attr, Value}`` answers compare like
their values and ``undefined`` below all of them, so two list passes
fewer), and
``BgProcRows(Best, N)``, which turns the kept ``{Value, Pid}`` pairs into
``{Pid, Value, Name, CurrentFunction, InitialCall}`` rows, leaving out
beamgate's own worker and runner (``BgOurs``; so keep ``N + 2``) and
processes that died meanwhile. The initial call is the
one ``proc_lib`` records (``MyApp.Worker:init/1`` rather than
``proc_lib:init_p/5``) where the node can read it without copying the
process dictionary (OTP 26+).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gateway.dist.terms import Atom, Pid

from .context import Context
from .errors import CommandError
from .format import (
    SafeText,
    chars_text,
    human_bytes,
    human_count,
    mfa_text,
    name_text,
    pid_text,
    safe_join,
    sanitize,
    table,
    term_text,
)
from .protected import protected_refs
from .refs import GlobalRef, NameRef, PidRef, ProcRef, format_mfa
from .remote import Explain

RESOLVE = """
    BgWhere = fun({pid, BgNum, BgSerial}) ->
                      try erlang:list_to_pid(lists:flatten(
                              ["<0.", integer_to_list(BgNum), ".", integer_to_list(BgSerial), ">"]))
                      catch error:badarg -> undefined end;
                 ({name, BgName}) ->
                      try erlang:whereis(erlang:binary_to_existing_atom(BgName, utf8))
                      catch error:badarg -> undefined end;
                 ({global, BgName}) ->
                      try global:whereis_name(erlang:binary_to_existing_atom(BgName, utf8))
                      catch error:badarg -> undefined end
              end,
    BgProcess = fun(BgWho) ->
        case BgWhere(BgWho) of
            BgPid when is_pid(BgPid), node(BgPid) =/= node() ->
                throw({beamgate, remote_process, node(BgPid)});
            BgPid when is_pid(BgPid) ->
                case erlang:is_process_alive(BgPid) of
                    true -> BgPid;
                    false -> throw({beamgate, no_such_process, BgWho})
                end;
            BgPort when is_port(BgPort) -> throw({beamgate, not_a_process, BgWho});
            _ -> throw({beamgate, no_such_process, BgWho})
        end
    end,
    BgGuard = fun(BgPid, BgProtected) ->
        case [BgWho || BgWho <- BgProtected, BgWhere(BgWho) =:= BgPid] of
            [] -> BgPid;
            [BgFirst | _] -> throw({beamgate, protected, BgFirst})
        end
    end,
"""

#: ``BgShow(Term, Depth, MaxBytes) -> {Truncated, Utf8}``: a term printed on the node, bounded.
#: ``~tP`` stops at ``Depth`` (nesting and elements alike), so a huge state prints in bounded
#: time and space; the text is then cut at ``MaxBytes``.
SHOW = """
    BgShow = fun(BgTerm, BgDepth, BgMax) ->
        BgText = unicode:characters_to_binary(io_lib:format("~tP", [BgTerm, BgDepth])),
        case byte_size(BgText) > BgMax of
            true -> {true, binary:part(BgText, 0, BgMax)};
            false -> {false, BgText}
        end
    end,
"""

MEASURE = """
    BgProcValues = fun(binary_memory) ->
                           fun(BgPids) ->
                               BgLen = length(BgPids),
                               BgTwos = lists:duplicate(BgLen, 2),
                               BgInfos = lists:zipwith(fun erlang:max/2,
                                   lists:zipwith(fun erlang:process_info/2, BgPids, lists:duplicate(BgLen, binary)),
                                   lists:duplicate(BgLen, {binary, []})),
                               BgSplit = lists:map(fun lists:unzip3/1,
                                                   lists:zipwith(fun erlang:element/2, BgTwos, BgInfos)),
                               lists:map(fun lists:sum/1, lists:zipwith(fun erlang:element/2, BgTwos, BgSplit))
                           end;
                      (BgAttr) ->
                           fun(BgPids) ->
                               BgLen = length(BgPids),
                               BgInfos = lists:zipwith(fun erlang:max/2,
                                   lists:zipwith(fun erlang:process_info/2, BgPids, lists:duplicate(BgLen, BgAttr)),
                                   lists:duplicate(BgLen, {BgAttr, -1})),
                               lists:zipwith(fun erlang:element/2, lists:duplicate(BgLen, 2), BgInfos)
                           end
                   end,
    BgProcRank = fun(binary_memory) -> BgProcValues(binary_memory);
                    (BgAttr) ->
                         fun(BgPids) ->
                             lists:zipwith(fun erlang:process_info/2, BgPids, lists:duplicate(length(BgPids), BgAttr))
                         end
                 end,
    BgInitialCall = fun(BgPid, {proc_lib, init_p, 5} = BgRaw) ->
                            try erlang:process_info(BgPid, {dictionary, '$initial_call'}) of
                                {_, {BgM, BgF, BgA} = BgMfa} when is_atom(BgM), is_atom(BgF), is_integer(BgA) -> BgMfa;
                                _ -> BgRaw
                            catch error:badarg -> BgRaw
                            end;
                       (_, BgRaw) -> BgRaw
                    end,
    BgProcRow = fun({BgValue, BgPid}) ->
        case erlang:process_info(BgPid, [registered_name, current_function, initial_call]) of
            [{registered_name, BgName}, {current_function, BgCurrent}, {initial_call, BgInit}] ->
                [{BgPid, BgValue, BgName, BgCurrent, BgInitialCall(BgPid, BgInit)}];
            _ -> []
        end
    end,
    BgOurs = [self() | try [element(2, erlang:process_info(self(), parent))] catch error:badarg -> [] end],
    BgProcRows = fun(BgBest, BgN) ->
        BgTheirs = [BgPair || {_, BgPid} = BgPair <- BgBest, not lists:member(BgPid, BgOurs)],
        lists:sublist(lists:append(lists:map(BgProcRow, BgTheirs)), BgN)
    end,
"""

#: What process attributes ``proc_count``/``proc_window`` rank by, and the unit of each.
ATTRS: Mapping[str, str] = {
    "memory": "bytes",
    "reductions": "count",
    "message_queue_len": "count",
    "total_heap_size": "words",
    "heap_size": "words",
    "binary_memory": "bytes",
}

ATTR_HELP = """Attributes (recon's proc_attrs, read with erlang:process_info/2):
  memory             bytes: heap, stack, mailbox and internal structures
  reductions         work done (function calls, BIFs, GC), a CPU proxy
  message_queue_len  messages waiting in the mailbox
  total_heap_size    words: all heap fragments, young and old generations
  heap_size          words: the young heap only
  binary_memory      bytes of refc binaries the process references"""


def proc_binding(ref: ProcRef) -> tuple[Any, ...]:
    """``ref`` as data for the target's ``BgProcess`` (bound as ``Proc``)."""
    if isinstance(ref, PidRef):
        if ref.node_index != 0:
            raise CommandError(
                f"{ref} names a process of another node; run on that node (--node) and give it as "
                f"<0.{ref.number}.{ref.serial}>"
            )
        return (Atom("pid"), ref.number, ref.serial)
    if isinstance(ref, GlobalRef):
        return (Atom("global"), ref.name.encode())
    return (Atom("name"), ref.name.encode())


def protected_bindings(ctx: Context) -> list[tuple[Any, ...]]:
    """The protected processes (:mod:`commands.protected`) as data for ``BgGuard`` (bound as ``Protected``)."""
    return [proc_binding(ref) for ref in protected_refs(ctx.safety.protected_processes)]


def explain_proc(ref: ProcRef, node: str) -> Explain:
    """Messages for what ``BgProcess`` and ``BgGuard`` throw."""
    return {
        "no_such_process": lambda _d: f"no such process: {ref} on {node}",
        "not_a_process": lambda _d: f"{ref} is a port, not a process (try: port_info {ref})",
        "remote_process": lambda d: f"{ref} runs on {name_text(d)}; run the command there (--node {name_text(d)})",
        "protected": lambda d: f"{ref} is a protected process ({_protected_text(d)}): refused for everyone",
    }


def _protected_text(who: Any) -> str:
    """What ``BgGuard`` threw (``{name, Bin}`` or ``{global, Bin}``) as users write it."""
    if isinstance(who, tuple) and len(who) == 2 and isinstance(who[1], bytes):
        name = who[1].decode("utf-8", "replace")
        return sanitize(str(GlobalRef(name) if who[0] == "global" else NameRef(name)))
    return sanitize(str(who))


def queue_too_long(ref: ProcRef, cap: int) -> Callable[[Any], str]:
    """The message for a mailbox longer than ``safety.messages_cap`` (``messages``, ``info PROC messages``)."""
    return lambda queued: (
        f"{ref} has {human_count(queued)} messages queued, above the cap of {cap} (safety.messages_cap): "
        "reading them could hurt the node; see proc_count message_queue_len and stack instead"
    )


def optional_name(name: Any) -> str | None:
    """A registered name (atom) as users write it, or ``None`` (``[]``, ``undefined``)."""
    if isinstance(name, Atom) and name != "undefined":
        return name_text(name)
    return None


def proc_rows(raw: Iterable[Sequence[Any]], node: str) -> list[dict[str, Any]]:
    """``{Pid, Value, Name, Current, Initial}`` tuples as SPEC's JSON rows."""
    return [
        {
            "pid": pid_shown(pid, node),
            "value": value,
            "name": optional_name(name),
            "current_function": mfa_text(current),
            "initial_call": mfa_text(initial),
        }
        for pid, value, name, current, initial in raw
    ]


def shown_text(shown: Any) -> str:
    """What ``BgShow`` returned, decoded and sanitized (newlines kept), ``...`` when cut.

    ``~tP`` already writes control characters inside strings as Erlang escapes
    (``\\e``, ``\\r``), and a backslash of the data as ``\\\\``, so backslashes
    are left as printed; anything raw that remains (layout newlines aside) is escaped.
    """
    truncated, data = shown
    text = sanitize(data.decode("utf-8", "replace"), keep_newlines=True, escape_backslash=False)
    return SafeText(text + " ...") if truncated is True else text


def pid_shown(pid: Any, node: str) -> str:
    """A pid from the node as ``<0.123.0>`` (sanitized text for anything else)."""
    return pid_text(pid, node) if isinstance(pid, Pid) else sanitize(str(pid))


def value_text(value: Any, unit: str) -> str:
    """A ranked value for the text table, in its unit."""
    if not isinstance(value, int | float):
        return sanitize(str(value))
    if unit == "bytes":
        return human_bytes(value)
    if unit == "words":
        return f"{human_count(value)} words"
    return human_count(value)


def rows_table(rows: Sequence[Mapping[str, Any]], value_header: str, unit: str) -> str:
    """The text table of ``proc_count`` and ``proc_window``."""
    return table(
        ["PID", value_header, "NAME", "CURRENT FUNCTION", "INITIAL CALL"],
        [
            [
                r["pid"],
                value_text(r["value"], unit),
                r["name"] or "-",
                r["current_function"] or "-",
                r["initial_call"] or "-",
            ]
            for r in rows
        ],
        right=(1,),
    )


def frame_text(frame: Any, node: str | None = None) -> str:
    """One ``current_stacktrace`` frame: ``mod:fun/2 (file.erl:12)``, Elixir modules in Elixir form."""
    if not (isinstance(frame, tuple) and len(frame) == 4) or mfa_text(frame[:3]) is None:
        return term_text(frame, local_node=node)
    module, function, arity, location = frame
    text = format_mfa(str(module), str(function), len(arity) if isinstance(arity, list) else arity)
    where = dict(i for i in location if isinstance(i, tuple) and len(i) == 2) if isinstance(location, list) else {}
    file, line = where.get("file"), where.get("line")
    if not isinstance(file, bytes | list):
        return sanitize(text)
    return safe_join("", (text, " (", chars_text(file), f":{line})" if isinstance(line, int) else ")"))
