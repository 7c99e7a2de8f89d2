"""The trace relay: a process on the target that owns one trace and always cleans it up.

Theory of operation. ``trace`` runs :data:`TRACE_START` through the bounded
runner (:meth:`gateway.target.BoundedTarget.run`). In that short-lived worker
it resolves every name with ``binary_to_existing_atom`` (a misspelt module
creates no atom), checks that the functions exist and are exported (unless
``--local``), rebuilds the match-specification head from the ``--match``
tree, resolves the process scope, and spawns the *relay*, unlinked from the
worker so that it outlives it. The worker returns the relay's pid.

The relay (``max_heap_size`` with kill, off-heap message queue) traps exits
and:

1. on OTP < 27 registers the fixed name ``beamgate_trace_relay``: the legacy
   tracer is node-global, so one beamgate trace per node; a second is
   refused with who holds it and for how long (kept in the relay's process
   dictionary);
2. spawns a linked *cleaner* that traps exits. Before the relay sets each
   trace pattern (or creates its trace session) it tells the cleaner, so the
   cleaner always knows everything that may be set;
3. sets the trace: on OTP 27+ in its own ``trace`` session (concurrent
   traces by other users do not interfere, and destroying the session
   removes exactly its settings); on older releases with the legacy BIFs,
   remembering its own patterns and flags only. It removes its own and the
   cleaner's flags (``all`` includes them);
4. reports ``{ready, Matched, Sessions, Cleaner}`` and relays trace
   messages: each admitted message is formatted on the target (``~tP`` with
   a depth and a ``chars_limit``, after cutting every binary, list, tuple
   and map to what can be shown, within a budget of terms visited: a 100 MB
   argument never crosses the network, nor is it scanned) and sent to the
   owner. The message limit, the rate limit and the deadline are checked
   here for every message, so the gateway never receives more than the
   limit, and a backlog is not relayed past the deadline; a timer ends an
   idle trace at its deadline;
5. bounds its backlog: the rate limit counts messages as the relay handles
   them, so a hot function producing trace messages faster than the relay
   formats and sends them (a rate limit above what it can process) would
   grow its mailbox, off-heap and so outside ``max_heap_size``, until the
   limit or the deadline. With every message the relay reads its own
   ``message_queue_len`` (a counter); past ``MaxBacklog``
   (:data:`~commands.tracing.plan.MAX_BACKLOG`) it stops with reason
   ``rate``, reported as ``{stopped, rate, Count, backlog}``. The queue may
   pass the cap by what the traced processes add while the relay is
   scheduled out, formats one message, or removes its patterns;
6. stops on the first of: limit, rate (or backlog), duration, an explicit
   stop from the gateway before ``ready``, or the cleaner's death. It
   removes its patterns first (no more trace messages are generated), then
   its flags, disarms the cleaner, reports ``{stopped, Reason, Count}`` and
   ends; trace messages still queued die with it.

The relay's mailbox may hold a backlog of trace messages (a hot function,
slow formatting; bounded as above), and anything queued behind it would
wait. So what must act at once goes to the cleaner, whose mailbox stays
nearly empty: it monitors the *owner*, the gateway process of the command
(Ctrl-C, the end of the SSH session, a killed gateway and a lost
connection all end the owner, a lost connection as ``noconnection``), and
receives the gateway's stop once the trace is ready. On either it kills the
relay (an exit signal does not queue behind messages), collects what the
relay armed until it is gone, and removes all of it; nothing is reported,
as the gateway already knows why the trace ended.

If the relay itself dies (killed, heap limit), the cleaner cleans up and
reports ``{stopped, crashed, Why}``. If both are killed at once, an OTP 27+
session is still destroyed, because a session lives only as long as some
process holds its handle.

Every message to the owner is ``{beamgate_trace, RelayPid, Event}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.dist.rpc import Snippet
from gateway.dist.terms import Atom, Pid

from ..format import atom_text, pid_text, sanitize
from ..refs import display_module

TRACE_START = Snippet(
    "trace_start",
    r"""
    BgFail = fun(Kind, Detail) -> throw({beamgate, Kind, Detail}) end,
    BgExisting = fun(Bin, Kind, Detail) ->
        try binary_to_existing_atom(Bin, utf8) catch error:_ -> BgFail(Kind, Detail) end
    end,
    BgSessions = list_to_integer(erlang:system_info(otp_release)) >= 27,
    BgHolder = fun(HolderPid) ->
        HolderNow = erlang:system_time(millisecond),
        case erlang:process_info(HolderPid, dictionary) of
            {dictionary, HolderDict} ->
                case lists:keyfind(beamgate_trace, 1, HolderDict) of
                    {beamgate_trace, {HolderUser, HolderStart, HolderEnd}} ->
                        {HolderUser, HolderNow - HolderStart, max(0, HolderEnd - HolderNow)};
                    _ -> {<<"another session">>, 0, 0}
                end;
            _ -> {<<"another session">>, 0, 0}
        end
    end,
    case BgSessions orelse whereis(beamgate_trace_relay) of
        true -> ok;
        undefined -> ok;
        BusyPid -> BgFail(busy, BgHolder(BusyPid))
    end,
    BgResolve = fun({ModBin, FunBin, Arity}) ->
        Mod = BgExisting(ModBin, no_such_module, {ModBin, FunBin, Arity}),
        erlang:module_loaded(Mod) orelse BgFail(module_not_loaded, {ModBin, FunBin, Arity}),
        case FunBin of
            '_' -> {Mod, '_', '_'};
            _ ->
                Fun = BgExisting(FunBin, no_such_function, {ModBin, FunBin, Arity}),
                Arities = [A || {F, A} <- Mod:module_info(functions), F =:= Fun, Arity =:= '_' orelse A =:= Arity],
                Arities =/= [] orelse BgFail(no_such_function, {ModBin, FunBin, Arity}),
                Scope =:= local
                    orelse lists:any(fun(A) -> erlang:function_exported(Mod, Fun, A) end, Arities)
                    orelse BgFail(not_exported, {ModBin, FunBin, Arity}),
                {Mod, Fun, Arity}
        end
    end,
    BgMFAs = [BgResolve(Spec) || Spec <- Specs],
    BgConv = fun Conv('_') -> '_';
                 Conv({atom, AtomBin}) -> BgExisting(AtomBin, no_such_atom, AtomBin);
                 Conv({lit, Value}) -> Value;
                 Conv({tuple, Items}) -> list_to_tuple([Conv(I) || I <- Items]);
                 Conv({list, Items}) -> [Conv(I) || I <- Items];
                 Conv({cons, Items, Tail}) -> lists:foldr(fun(I, Acc) -> [Conv(I) | Acc] end, Conv(Tail), Items);
                 Conv({map, Pairs}) -> maps:from_list([{Conv(K), Conv(V)} || {K, V} <- Pairs])
             end,
    BgMatchSpec = [{BgConv(Pattern), [], case Return of true -> [{return_trace}]; false -> [] end}],
    BgProcs = case Procs of
        {pid, PidNumber, PidSerial} ->
            PidText = "<0." ++ integer_to_list(PidNumber) ++ "." ++ integer_to_list(PidSerial) ++ ">",
            ProcPid = try list_to_pid(PidText) catch error:_ -> BgFail(no_such_process, list_to_binary(PidText)) end,
            is_process_alive(ProcPid) orelse BgFail(no_such_process, list_to_binary(PidText)),
            ProcPid;
        {name, NameBin} ->
            case whereis(BgExisting(NameBin, no_such_process, NameBin)) of
                NamedPid when is_pid(NamedPid) -> NamedPid;
                _ -> BgFail(no_such_process, NameBin)
            end;
        {global, GlobalBin} ->
            case global:whereis_name(BgExisting(GlobalBin, no_such_process, GlobalBin)) of
                GlobalPid when is_pid(GlobalPid), node(GlobalPid) =:= node() -> GlobalPid;
                GlobalPid when is_pid(GlobalPid) -> BgFail(remote_process, {GlobalBin, node(GlobalPid)});
                _ -> BgFail(no_such_process, GlobalBin)
            end;
        ProcSet -> ProcSet
    end,
    BgFlags = [call, timestamp],
    BgMicros = fun({Mega, Sec, Micro}) -> (Mega * 1000000 + Sec) * 1000000 + Micro end,
    BgTakeMap = fun TM(_, 0, Taken) -> Taken;
                    TM(Iter, Left, Taken) ->
                        case maps:next(Iter) of
                            none -> Taken;
                            {MapKey, MapValue, NextIter} -> TM(NextIter, Left - 1, [{MapKey, MapValue} | Taken])
                        end
                end,
    BgShrink = fun(Whole, Cut) ->
        put(beamgate_budget, 2000),
        Walk = fun W(term, T, Lvl) ->
                       Left = get(beamgate_budget),
                       put(beamgate_budget, Left - 1),
                       if
                           Left =< 0 -> '...';
                           Lvl > Depth -> '...';
                           is_binary(T), byte_size(T) > Cut -> binary:part(T, 0, Cut);
                           is_list(T) -> W(list, T, {Lvl + 1, Cut});
                           is_tuple(T) ->
                               list_to_tuple([W(term, element(I, T), Lvl + 1)
                                              || I <- lists:seq(1, min(tuple_size(T), Cut))]);
                           is_map(T) ->
                               maps:from_list([{W(term, K, Lvl + 1), W(term, V, Lvl + 1)}
                                               || {K, V} <- BgTakeMap(maps:iterator(T), Cut, [])]);
                           true -> T
                       end;
                   W(list, [], _) -> [];
                   W(list, [H | Rest], {Lvl, N}) when N > 0 -> [W(term, H, Lvl) | W(list, Rest, {Lvl, N - 1})];
                   W(list, [_ | _], _) -> [];
                   W(list, Tail, {Lvl, _}) -> W(term, Tail, Lvl)
               end,
        Walk(term, Whole, 0)
    end,
    BgText = fun(Term, Budget) ->
        Shrunk = BgShrink(Term, Budget + 1),
        case unicode:characters_to_binary(io_lib:format("~9999tP", [Shrunk, Depth], [{chars_limit, Budget}])) of
            TextBin when is_binary(TextBin) -> TextBin;
            _ -> <<"?">>
        end
    end,
    BgArgs = fun([]) -> <<>>;
                (ArgList) ->
                    Each = max(MaxChars div length(ArgList), 40),
                    iolist_to_binary(lists:join(<<", ">>, [BgText(Arg, Each) || Arg <- ArgList]))
             end,
    BgClean = fun(Armed, Tracer) ->
        Ours = fun(Traced) -> erlang:trace_info(Traced, tracer) =:= {tracer, Tracer} end,
        Untrace = fun(Traced) -> catch erlang:trace(Traced, false, BgFlags) end,
        {PatternItems, OtherItems} = lists:partition(fun(Item) -> element(1, Item) =:= pattern end, Armed),
        lists:foreach(
            fun({session, Session}) -> catch trace:session_destroy(Session);
               ({pattern, MFA, PatternScope}) -> catch erlang:trace_pattern(MFA, false, [PatternScope]);
               ({procs, Which}) when is_pid(Which); Which =:= new -> Ours(Which) andalso Untrace(Which);
               ({procs, Which}) ->
                   [Untrace(P) || P <- erlang:processes(), Ours(P)],
                   Which =:= all andalso Ours(new) andalso Untrace(new)
            end,
            PatternItems ++ OtherItems)
    end,
    BgRelay = fun() ->
        process_flag(trap_exit, true),
        Self = self(),
        Report = fun(Event) -> Owner ! {beamgate_trace, Self, Event} end,
        Started = erlang:system_time(millisecond),
        put(beamgate_trace, {User, Started, Started + DurationMs}),
        Registered = BgSessions orelse (catch register(beamgate_trace_relay, Self)) =:= true,
        case Registered of
            false ->
                Report({failed, busy, case whereis(beamgate_trace_relay) of
                                          undefined -> {<<"another session">>, 0, 0};
                                          Holder -> BgHolder(Holder)
                                      end});
            true ->
                Cleaner = spawn_opt(
                    fun() ->
                        process_flag(trap_exit, true),
                        put(beamgate_trace_cleaner, Self),
                        OwnerGone = erlang:monitor(process, Owner),
                        Self ! {beamgate_trace_cleaner, self()},
                        Collect = fun C(Armed, RelayGone) ->
                            receive
                                {beamgate_trace_arm, Self, Item} -> C([Item | Armed], RelayGone);
                                {'DOWN', RelayGone, process, _, _} -> Armed
                            end
                        end,
                        Finish = fun(Armed) ->
                            RelayGone = erlang:monitor(process, Self),
                            exit(Self, kill),
                            BgClean(Collect(Armed, RelayGone), Self)
                        end,
                        Watch = fun W(Armed) ->
                            receive
                                {beamgate_trace_arm, Self, Item} -> W([Item | Armed]);
                                {beamgate_trace_disarm, Self} -> ok;
                                {'EXIT', Self, Why} ->
                                    BgClean(Armed, Self),
                                    Owner ! {beamgate_trace, Self, {stopped, crashed, BgText(Why, 300)}};
                                {'DOWN', OwnerGone, process, _, _} -> Finish(Armed);
                                {beamgate_trace_stop, _} -> Finish(Armed);
                                _ -> W(Armed)
                            end
                        end,
                        Watch([])
                    end,
                    [link]),
                receive {beamgate_trace_cleaner, Cleaner} -> ok after 5000 -> exit(no_cleaner) end,
                Arm = fun(Item) -> Cleaner ! {beamgate_trace_arm, Self, Item}, Item end,
                Setup = try
                    case BgSessions of
                        true ->
                            Session = Arm({session, trace:session_create(beamgate_trace, Self, [])}),
                            SessionRef = element(2, Session),
                            SessionMatched = lists:sum([trace:function(SessionRef, MFA, BgMatchSpec, [Scope])
                                                        || MFA <- BgMFAs]),
                            trace:process(SessionRef, BgProcs, true, BgFlags),
                            [catch trace:process(SessionRef, Own, false, BgFlags) || Own <- [Self, Cleaner]],
                            {ok, SessionMatched, [Session]};
                        false ->
                            PatternsSet = [Arm({pattern, MFA, Scope}) || MFA <- BgMFAs],
                            LegacyMatched = lists:sum([erlang:trace_pattern(MFA, BgMatchSpec, [Scope])
                                                       || MFA <- BgMFAs]),
                            ProcsSet = Arm({procs, BgProcs}),
                            erlang:trace(BgProcs, true, [{tracer, Self} | BgFlags]),
                            [catch erlang:trace(Own, false, BgFlags) || Own <- [Self, Cleaner]],
                            {ok, LegacyMatched, [ProcsSet | PatternsSet]}
                    end
                catch SetupClass:SetupReason -> {error, BgText({SetupClass, SetupReason}, 300)}
                end,
                Stop = fun(Why, Count, Extra) ->
                    {ok, _, Items} = Setup,
                    BgClean(Items, Self),
                    unlink(Cleaner),
                    Cleaner ! {beamgate_trace_disarm, Self},
                    Report(list_to_tuple([stopped, Why, Count | Extra]))
                end,
                case Setup of
                    {error, SetupError} ->
                        Report({failed, setup, SetupError}),
                        exit(setup_failed);
                    {ok, 0, _} ->
                        Stop(no_match, 0, []);
                    {ok, Matched, _} ->
                        Report({ready, Matched, BgSessions, Cleaner}),
                        Deadline = erlang:monotonic_time(millisecond) + DurationMs,
                        DurationRef = erlang:start_timer(DurationMs, Self, beamgate_trace_duration),
                        Loop = fun L(Count, WinStart, WinCount) ->
                            Action = receive
                                {trace_ts, CallPid, call, {CallMod, CallFun, CallArgs}, CallStamp} ->
                                    {event, fun() -> {call, BgMicros(CallStamp), CallPid, CallMod, CallFun,
                                                      length(CallArgs), BgArgs(CallArgs)} end};
                                {trace_ts, RetPid, return_from, {RetMod, RetFun, RetArity}, RetValue, RetStamp} ->
                                    {event, fun() -> {return, BgMicros(RetStamp), RetPid, RetMod, RetFun,
                                                      RetArity, BgText(RetValue, MaxChars)} end};
                                {timeout, DurationRef, beamgate_trace_duration} -> {stop, duration};
                                {beamgate_trace_stop, _} -> {stop, interrupted};
                                {'EXIT', Cleaner, _} -> {stop, cleaner_exited};
                                _ -> skip
                            end,
                            case Action of
                                skip -> L(Count, WinStart, WinCount);
                                {stop, StopWhy} -> Stop(StopWhy, Count, []);
                                {event, Make} ->
                                    Now = erlang:monotonic_time(millisecond),
                                    {WS, WC} = case Now - WinStart >= RateMs of
                                                   true -> {Now, 0};
                                                   false -> {WinStart, WinCount}
                                               end,
                                    {message_queue_len, Backlog} = erlang:process_info(Self, message_queue_len),
                                    case WC >= RateN of
                                        true -> Stop(rate, Count, []);
                                        false when Now >= Deadline -> Stop(duration, Count, []);
                                        false when Backlog > MaxBacklog -> Stop(rate, Count, [backlog]);
                                        false ->
                                            Report(Make()),
                                            case Count + 1 >= Limit of
                                                true -> Stop(limit, Count + 1, []);
                                                false -> L(Count + 1, WS, WC + 1)
                                            end
                                    end
                            end
                        end,
                        Loop(0, erlang:monotonic_time(millisecond), 0)
                end
        end
    end,
    erlang:spawn_opt(BgRelay, [{max_heap_size, #{size => HeapWords, kill => true, error_logger => false}},
                               {message_queue_data, off_heap}]).
    """,
    (
        "DurationMs",
        "Depth",
        "HeapWords",
        "Limit",
        "MaxBacklog",
        "MaxChars",
        "Owner",
        "Pattern",
        "Procs",
        "RateMs",
        "RateN",
        "Return",
        "Scope",
        "Specs",
        "User",
    ),
)

TAG = Atom("beamgate_trace")
STOP = Atom("beamgate_trace_stop")


@dataclass(frozen=True)
class TraceEvent:
    """One trace message as it arrived: a call or a return, already bounded and formatted."""

    ts_us: int
    pid: str
    kind: str
    module: str
    function: str
    arity: int
    args: str | None = None
    result: str | None = None

    @property
    def mfa(self) -> str:
        return f"{mfa_head(self.module, self.function)}/{self.arity}"


@dataclass(frozen=True)
class Ready:
    matched: int
    sessions: bool
    #: Where an immediate stop goes once the trace runs (see the module comment).
    cleaner: Pid


@dataclass(frozen=True)
class Failed:
    kind: str
    detail: Any


@dataclass(frozen=True)
class Stopped:
    reason: str
    count: int
    detail: str = ""


RelayMessage = TraceEvent | Ready | Failed | Stopped


def mfa_head(module: str, function: str) -> str:
    """``queue:in`` for Erlang modules, ``MyApp.Worker.handle_call`` for Elixir ones (sanitized)."""
    if module.startswith("Elixir."):
        return sanitize(f"{display_module(module)}.{function}")
    return f"{atom_text(module)}:{atom_text(function)}"


def _text(value: Any) -> str:
    data = bytes(value) if isinstance(value, bytes | bytearray) else str(value).encode()
    return sanitize(data.decode("utf-8", "replace"), escape_backslash=False)


def decode(message: Any, relay: Pid, node: str) -> RelayMessage | None:
    """The relay's message as a value, or ``None`` if it is not from ``relay``."""
    if not (type(message) is tuple and len(message) == 3 and message[0] == TAG and message[1] == relay):
        return None
    event = message[2]
    if not isinstance(event, tuple) or not event:
        return None
    kind = event[0]
    if kind in ("call", "return") and len(event) == 7:
        _, ts, pid, module, function, arity, text = event
        shown = pid_text(pid, node) if isinstance(pid, Pid) else _text(pid)
        body = _text(text)
        return TraceEvent(
            ts_us=int(ts),
            pid=shown,
            kind=str(kind),
            module=str(module),
            function=str(function),
            arity=int(arity),
            args=body if kind == "call" else None,
            result=body if kind == "return" else None,
        )
    if kind == "ready" and len(event) == 4 and isinstance(event[3], Pid):
        return Ready(int(event[1]), bool(event[2]), event[3])
    if kind == "failed" and len(event) == 3:
        return Failed(str(event[1]), event[2])
    if kind == "stopped" and len(event) == 3:
        count, detail = (event[2], "") if isinstance(event[2], int) else (0, _text(event[2]))
        return Stopped(str(event[1]), count, detail)
    if kind == "stopped" and len(event) == 4 and isinstance(event[2], int):
        return Stopped(str(event[1]), event[2], _text(event[3]))
    return None
