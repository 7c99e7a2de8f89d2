%% Benchmark helper for bench/commands.py, loaded on the *bench* node only
%% (a node the benchmark starts; never on a target).
%%
%%   spawn_idle(N)  brings the node to N processes (idle, blocked in receive);
%%   pass()         the physical limit: one compiled pass of
%%                  erlang:process_info(P, memory) over all processes, in µs,
%%                  in a fresh process (as beamgate's worker runs);
%%   iterator_walk() one walk of erlang:processes_iterator/0 (OTP 28) driven by
%%                  erl_eval as a snippet would drive it, in µs (or -1);
%%   watch()/peak() trace the garbage collections of processes spawned from
%%                  now on and report the largest heap one of them had at a GC
%%                  (young + old heap blocks + heap fragments, in bytes): what
%%                  max_heap_size is checked against.
-module(bench_procs).
-export([spawn_idle/1, pass/0, iterator_walk/0, watch/0, peak/0]).

spawn_idle(N) ->
    Missing = N - erlang:system_info(process_count),
    _ = [spawn(fun idle/0) || _ <- lists:seq(1, Missing)],
    erlang:system_info(process_count).

idle() ->
    receive stop -> ok end.

pass() ->
    in_fresh_process(fun() -> [erlang:process_info(P, memory) || P <- erlang:processes()] end).

iterator_walk() ->
    case erlang:function_exported(erlang, processes_iterator, 0) of
        false -> -1;
        true ->
            Source = "Walk = fun Walk(none, N) -> N; Walk({_, I}, N) -> Walk(erlang:processes_next(I), N + 1) end,"
                     " Walk(erlang:processes_next(erlang:processes_iterator()), 0).",
            {ok, Tokens, _} = erl_scan:string(Source),
            {ok, Exprs} = erl_parse:parse_exprs(Tokens),
            in_fresh_process(fun() -> erl_eval:exprs(Exprs, []) end)
    end.

%% Time Fun in a new process, as beamgate's worker runs: no heap history.
in_fresh_process(Fun) ->
    {Pid, Ref} = spawn_monitor(fun() -> {Micros, _} = timer:tc(Fun), exit({micros, Micros}) end),
    receive {'DOWN', Ref, process, Pid, {micros, Micros}} -> Micros end.

watch() ->
    case whereis(bench_gc_watch) of
        undefined -> ok;
        Old -> Old ! {stop, self()}, receive {stopped, _} -> ok end
    end,
    Watcher = spawn(fun() -> collect(#{}) end),
    register(bench_gc_watch, Watcher),
    erlang:trace(new_processes, true, [garbage_collection, {tracer, Watcher}]),
    ok.

peak() ->
    erlang:trace(new_processes, false, [garbage_collection]),
    bench_gc_watch ! {stop, self()},
    receive {stopped, Peaks} -> lists:max([0 | maps:values(Peaks)]) * erlang:system_info(wordsize) end.

collect(Peaks) ->
    receive
        {trace, Pid, Event, Info} when Event =:= gc_minor_start; Event =:= gc_major_start;
                                       Event =:= gc_minor_end; Event =:= gc_major_end ->
            Words = lists:sum([proplists:get_value(K, Info, 0)
                               || K <- [heap_block_size, old_heap_block_size, mbuf_size]]),
            collect(Peaks#{Pid => max(Words, maps:get(Pid, Peaks, 0))});
        {trace, _, _, _} -> collect(Peaks);
        {stop, From} -> From ! {stopped, Peaks}
    end.
