%% Test-only module loaded on fixture nodes for the policy end-to-end tests (never by beamgate).
%%
%% Its name matches the contractor role's trace modules (my_app_*), so a
%% contractor may trace tick/1; start/2 calls it in a loop from a named process.
-module(my_app_ticker).
-export([tick/1, start/2]).

tick(N) -> N + 1.

%% A process registered as Name calling tick(I) every IntervalMs.
start(Name, IntervalMs) ->
    Pid = spawn(fun() -> loop(0, IntervalMs) end),
    register(Name, Pid),
    Pid.

loop(I, IntervalMs) ->
    ?MODULE:tick(I),
    receive stop -> ok after IntervalMs -> loop(I + 1, IntervalMs) end.
