%% Benchmark-only module for bench/trace.py (loaded on a throwaway node, never by beamgate).
%%
%% A loader calls hot/1 at a paced rate (batches every millisecond) and
%% counts calls and the time it spends calling in a counters array; a
%% sampler records {SystemTimeUs, Calls, BusyUs} every 10 ms. The loader
%% calls hot(I rem Cycle): with a trace matching [0], Cycle sets how many
%% calls per second match (Cycle = 1: every call).
-module(bg_bench_hot).
-export([hot/1, start/2, set_cycle/1, samples/0, stop/0]).

hot(N) -> N + 1.

%% Rate calls per second, hot(I rem Cycle).
start(Rate, Cycle) ->
    Counter = counters:new(2, [write_concurrency]),
    Batch = max(1, Rate div 1000),
    Loader = spawn(fun() -> loader(Counter, Batch, Cycle, erlang:monotonic_time(microsecond), 0) end),
    register(bg_bench_loader, Loader),
    Sampler = spawn(fun() -> sampler(Counter, []) end),
    register(bg_bench_sampler, Sampler),
    ok.

set_cycle(Cycle) -> bg_bench_loader ! {cycle, Cycle}, ok.

%% Samples so far, oldest first.
samples() ->
    bg_bench_sampler ! {samples, self()},
    receive {bg_bench_samples, S} -> S after 5000 -> timeout end.

stop() ->
    [exit(whereis(N), kill) || N <- [bg_bench_loader, bg_bench_sampler], whereis(N) =/= undefined],
    ok.

loader(C, Batch, Cycle, Next, I) ->
    T0 = erlang:monotonic_time(microsecond),
    I2 = batch(Batch, Cycle, I),
    T1 = erlang:monotonic_time(microsecond),
    counters:add(C, 1, Batch),
    counters:add(C, 2, T1 - T0),
    Next2 = Next + 1000,
    Wait = max(0, (Next2 - T1) div 1000),
    receive
        {cycle, NewCycle} -> loader(C, Batch, NewCycle, Next2, I2)
    after Wait -> loader(C, Batch, Cycle, Next2, I2)
    end.

batch(0, _, I) -> I;
batch(K, Cycle, I) ->
    ?MODULE:hot(I rem Cycle),
    batch(K - 1, Cycle, I + 1).

sampler(C, Acc) ->
    receive
        {samples, From} -> From ! {bg_bench_samples, lists:reverse(Acc)}, sampler(C, Acc)
    after 10 ->
        S = {erlang:system_time(microsecond), counters:get(C, 1), counters:get(C, 2)},
        sampler(C, [S | Acc])
    end.
