%% Test-only module loaded on *fixture* nodes (never by beamgate): it plants
%% the problems "Erlang in Anger" describes, so the command tests can check
%% that each diagnostic finds them, and computes allocator figures
%% independently of beamgate, for comparison.
-module(bg_plant).
-behaviour(gen_server).
-export([flood/1, leak/2, busy/0, big_ets/1, hung/0, worker/1, evil/0, idle/1,
         wall_time_holder/0, alloc_figures/0, stop/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% A process that never reads its mailbox, with N messages queued.
flood(N) ->
    Pid = spawn(fun hold/0),
    register(bg_flooded, Pid),
    [Pid ! {message, I, <<"payload">>} || I <- lists:seq(1, N)],
    Pid.

%% A process that made Count refc binaries of Size bytes and dropped them
%% without collecting: they stay referenced (and allocated) until its next GC.
leak(Count, Size) ->
    Parent = self(),
    Pid = spawn(fun() ->
                        _ = length(binaries(Count, Size)),
                        Parent ! {leaked, self()},
                        hold()
                end),
    receive {leaked, Pid} -> ok end,
    register(bg_leaker, Pid),
    Pid.

binaries(0, _) -> [];
binaries(N, Size) -> [binary:copy(<<N:8>>, Size) | binaries(N - 1, Size)].

%% A process that burns reductions forever.
busy() ->
    Pid = spawn(fun() -> spin(0) end),
    register(bg_busy, Pid),
    Pid.

spin(N) -> spin(N + 1).

%% A public named table with Rows rows, owned by a process that lives on.
big_ets(Rows) ->
    Parent = self(),
    Pid = spawn(fun() ->
                        T = ets:new(bg_big, [set, public, named_table]),
                        ets:insert(T, [{I, I} || I <- lists:seq(1, Rows)]),
                        Parent ! {filled, self()},
                        hold()
                end),
    receive {filled, Pid} -> ok end,
    Pid.

%% A gen_server stuck in a callback: it cannot answer system messages.
hung() ->
    {ok, Pid} = gen_server:start({local, bg_hung}, ?MODULE, #{hung => true}, []),
    gen_server:cast(Pid, hang),
    Pid.

%% A gen_server with a known state, registered as Name.
worker(Name) ->
    {ok, Pid} = gen_server:start({local, Name}, ?MODULE, #{count => 42, label => <<"hello">>}, []),
    Pid.

%% Remote text with control characters: a registered name, an ETS table
%% name, a state and a queued message all carrying an ANSI escape.
evil() ->
    Name = list_to_atom("bg_\e[31mevil\e[0m"),
    {ok, Pid} = gen_server:start({local, Name}, ?MODULE, #{text => <<"\e[2Jcleared\r\n">>}, []),
    gen_server:call(Pid, {make_table, Name}),
    Box = spawn(fun hold/0),
    register(bg_evil_box, Box),
    Box ! <<"\e]0;title", 7>>,
    Pid.

%% N idle processes (for budget tests).
idle(N) ->
    [spawn(fun hold/0) || _ <- lists:seq(1, N)],
    ok.

%% A process that keeps scheduler_wall_time on for as long as it lives.
wall_time_holder() ->
    Parent = self(),
    Pid = spawn(fun() ->
                        erlang:system_flag(scheduler_wall_time, true),
                        Parent ! {holding, self()},
                        hold()
                end),
    receive {holding, Pid} -> ok end,
    Pid.

stop(Pid) ->
    exit(Pid, kill),
    ok.

hold() ->
    receive stop -> ok end.

%% recon_alloc's used/allocated/allocated_types (current), written
%% independently of beamgate: {Used, Allocated, [{Alloc, Bytes}], Total}.
alloc_figures() ->
    Allocs = [temp_alloc, eheap_alloc, binary_alloc, ets_alloc, driver_alloc,
              sl_alloc, ll_alloc, fix_alloc, std_alloc],
    PerAlloc = [{A, lists:foldl(fun({instance, _, Props}, {U, C}) ->
                                        {U + blocks_size(Props), C + carriers_size(Props)}
                                end, {0, 0}, erlang:system_info({allocator, A}))}
                || A <- Allocs],
    Used = lists:sum([U || {_, {U, _}} <- PerAlloc]),
    Allocated = lists:sum([C || {_, {_, C}} <- PerAlloc]),
    {Used, Allocated, [{A, C} || {A, {_, C}} <- PerAlloc], erlang:memory(total)}.

blocks_size(Props) ->
    lists:sum([S || Section <- [sbcs, mbcs, mbcs_pool],
                    {_, Entries} <- [lists:keyfind(Section, 1, Props)], Entries =/= false,
                    {blocks, PerType} <- Entries, is_list(PerType),
                    {_, Stats} <- PerType,
                    {size, S} <- [first(size, Stats)]]).

carriers_size(Props) ->
    lists:sum([element(2, lists:keyfind(carriers_size, 1, Entries))
               || Section <- [sbcs, mbcs, mbcs_pool],
                  {_, Entries} <- [lists:keyfind(Section, 1, Props)]]).

first(Key, Stats) ->
    case lists:keyfind(Key, 1, Stats) of
        false -> {Key, 0};
        Tuple -> {Key, element(2, Tuple)}
    end.

%% gen_server callbacks for hung/0, worker/1 and evil/0.
init(State) -> {ok, State}.

handle_call({make_table, Name}, _From, State) ->
    ets:new(Name, [named_table, public]),
    {reply, ok, State};
handle_call(_, _From, State) -> {reply, ok, State}.

handle_cast(hang, State) ->
    timer:sleep(infinity),
    {noreply, State}.

handle_info(_, State) -> {noreply, State}.
