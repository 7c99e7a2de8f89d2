%% Test-only helper loaded on *fixture* target nodes (never by beamgate).
%%
%% It reads requests from stdin, one per line: "ID<TAB>EXPRS." and answers
%% "ID<TAB>ok<TAB>TEXT" or "ID<TAB>error<TAB>TEXT" on stdout, where TEXT is
%% the value printed with ~w (or ~p, when the request starts with "p").
%% Bindings persist between requests, so a test can write
%% "P = spawn(...)." and later "is_process_alive(P)." It is the tests'
%% independent view of the node: checks made through it never go through
%% beamgate's distribution client.
-module(bg_fixture).
-export([start/0, loop/1, echo/0]).

start() ->
    register(bg_echo, spawn(fun echo/0)),
    io:format("READY ~s~n", [node()]),
    spawn(fun() -> group_leader(whereis(user), self()), loop(erl_eval:new_bindings()) end),
    ok.

%% Sends every message back to its sender, for codec round trips:
%% {From, Ref, Term} -> From ! {Ref, Term}.
echo() ->
    receive
        {From, Ref, Term} -> From ! {Ref, Term};
        _ -> ok
    end,
    echo().

loop(Bindings) ->
    case io:get_line('') of
        eof -> erlang:halt(0);
        {error, _} -> erlang:halt(0);
        Line ->
            {Id, Rest} = split_tab(string:trim(Line, trailing, "\r\n")),
            {Fmt, Src} = case Rest of
                             [$p, $\t | S] -> {"~p", S};
                             S -> {"~w", S}
                         end,
            NewBindings =
                try
                    {ok, Tokens, _} = erl_scan:string(Src),
                    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
                    {value, Value, B} = erl_eval:exprs(Exprs, Bindings),
                    reply(Id, "ok", io_lib:format(Fmt, [Value])),
                    B
                catch Class:Reason:Stack ->
                    reply(Id, "error", io_lib:format("~w:~w ~w", [Class, Reason, Stack])),
                    Bindings
                end,
            loop(NewBindings)
    end.

split_tab(Line) ->
    case string:split(Line, "\t") of
        [Id, Rest] -> {Id, Rest};
        [Rest] -> {"0", Rest}
    end.

reply(Id, Status, Text) ->
    Flat = lists:flatten(Text),
    OneLine = [case C of $\n -> $\s; _ -> C end || C <- Flat],
    io:format("~s\t~s\t~ts~n", [Id, Status, OneLine]).
