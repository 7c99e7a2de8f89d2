%% Test-only module loaded on fixture nodes for the trace tests (never by beamgate).
%%
%% work/2 is the traced function; loops call it at a fixed interval from a
%% named process, so tests can scope traces by --pid and filter by --match.
-module(bg_traced).
-export([work/2, start/3, stop/1, big/1, call_big/1, hammer/2, burst/2, echo/1, start_echo/2]).

%% The traced function: calls the local inner/1 (visible with --local only).
work(N, Tag) -> inner(N) + byte_size(atom_to_binary(Tag, utf8)) * 0.

inner(N) -> N * 2.

%% A process registered as Name calling work(I, Tag) every IntervalMs.
start(Name, IntervalMs, Tag) ->
    Pid = spawn(fun() -> loop(0, IntervalMs, Tag) end),
    register(Name, Pid),
    Pid.

stop(Name) ->
    case whereis(Name) of
        undefined -> ok;
        Pid -> unlink(Pid), exit(Pid, kill), ok
    end.

loop(I, IntervalMs, Tag) ->
    ?MODULE:work(I, Tag),
    receive stop -> ok after IntervalMs -> loop(I + 1, IntervalMs, Tag) end.

%% Takes a (huge) argument; the trace must not ship it.
big(Bin) -> byte_size(Bin).

%% Calls big/1 with a 100 MB binary every 50 ms from a registered process.
call_big(Name) ->
    Pid = spawn(fun() -> Bin = binary:copy(<<"x">>, 100 * 1024 * 1024), big_loop(Bin) end),
    register(Name, Pid),
    Pid.

big_loop(Bin) ->
    ?MODULE:big(Bin),
    receive stop -> ok after 50 -> big_loop(Bin) end.

%% N processes calling work/2 as fast as they can (for a busy node).
hammer(N, Tag) ->
    [spawn(fun() -> hammer_loop(Tag, 0) end) || _ <- lists:seq(1, N)].

hammer_loop(Tag, I) ->
    ?MODULE:work(I, Tag),
    hammer_loop(Tag, I + 1).

%% Calls work(I, Tag) N times in a row from the calling process, as fast as it can.
burst(0, _Tag) -> ok;
burst(N, Tag) ->
    ?MODULE:work(N, Tag),
    burst(N - 1, Tag).

%% Returns its argument; start_echo/2 calls it with Term every 5 ms from Name.
echo(Term) -> Term.

start_echo(Name, Term) ->
    Pid = spawn(fun() -> echo_loop(Term) end),
    register(Name, Pid),
    Pid.

echo_loop(Term) ->
    ?MODULE:echo(Term),
    receive stop -> ok after 5 -> echo_loop(Term) end.
