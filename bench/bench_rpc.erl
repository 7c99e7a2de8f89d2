%% Erlang-to-Erlang baseline for bench/rpc.py: rpc:call from this node to
%% another local node, timed here. Compiled and loaded by the bench script
%% on a node of its own; never part of beamgate.
-module(bench_rpc).
-export([latency/2, throughput/3]).

%% Sequential calls: the round-trip time of each, in nanoseconds.
latency(Node, N) ->
    [call(Node) || _ <- lists:seq(1, 200)],
    [begin
         T0 = erlang:monotonic_time(nanosecond),
         call(Node),
         erlang:monotonic_time(nanosecond) - T0
     end || _ <- lists:seq(1, N)].

%% Concurrency workers each making PerWorker sequential calls: elapsed nanoseconds.
throughput(Node, Concurrency, PerWorker) ->
    Parent = self(),
    T0 = erlang:monotonic_time(nanosecond),
    Workers = [spawn_link(fun() -> [call(Node) || _ <- lists:seq(1, PerWorker)], Parent ! {done, self()} end)
               || _ <- lists:seq(1, Concurrency)],
    [receive {done, W} -> ok end || W <- Workers],
    erlang:monotonic_time(nanosecond) - T0.

call(Node) ->
    Node = rpc:call(Node, erlang, node, []).
