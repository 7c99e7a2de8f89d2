"""Top-N and sliding windows over every process (or port), evaluated on the target.

recon's ``proc_count``/``proc_window`` build the full list of
``{Pid, Value, Info}`` and sort it; with a million processes that is a
million tuples, a sort, and a dictionary of both samples. Here the same
answers come from a fixed Erlang fragment, :data:`SAMPLING`, that a command
prepends to its snippet. It defines three funs (all names start with ``Bg``
so they cannot collide with a snippet's own variables):

``BgFold(List, Fun, Acc)``
    folds ``Fun(Chunk, Acc)`` over ``List`` in chunks of 2048. This is the
    only loop erl_eval interprets: one step per chunk, never per element.
``BgOffer(Values, Items, Keep, Best)``
    keeps ``Best``, the ``Keep`` largest ``{Value, Item}`` seen so far,
    largest first. A chunk whose maximum does not beat the smallest kept
    value is dropped after one ``lists:max/1``; only chunks that can change
    the answer are zipped and sorted. Memory stays at one chunk plus ``Keep``.
``BgWindow(ListFun, ValuesOf, Keep, Ms)``
    recon's sliding window: values of every item now, wait ``Ms``, values
    again; the result ranks the difference. Between the samples it keeps
    only the item list and one tuple of integers per chunk (one word per
    item). Items born during the window count from zero (as in recon);
    items gone by the second sample are left out (recon would report their
    first value, which measures nothing about the window).

``ValuesOf(Chunk)`` is the command's per-chunk measurement: it must return
one term per item, in order, built with compiled stdlib functions over the
whole chunk (``lists:zipwith(fun erlang:process_info/2, ...)``), so the
per-item work runs at compiled speed. Values compare in Erlang term order;
the top-N is cut on the target and only ``Keep`` rows cross the network.

``erlang:processes_iterator/0`` (OTP 28) is not used: stepping it from
erl_eval costs one interpreted call per process (about 2 µs, thirty times
``processes/0`` for the whole list), and the list is the only per-process
structure these funs keep.
"""

from __future__ import annotations

#: Chunk size: large enough that erl_eval's per-chunk cost vanishes, small enough to stay cheap.
CHUNK = 2048

SAMPLING = f"""
    BgChunk = {CHUNK},
    BgFold = fun BgFoldChunks([], _, BgAcc0) -> BgAcc0;
                 BgFoldChunks(BgList, BgFun, BgAcc0) ->
                     {{BgPart, BgRest}} = try lists:split(BgChunk, BgList)
                                        catch error:badarg -> {{BgList, []}} end,
                     BgFoldChunks(BgRest, BgFun, BgFun(BgPart, BgAcc0))
             end,
    BgOffer = fun(BgValues, BgItems, BgKeep, BgBest) ->
        case length(BgBest) < BgKeep orelse lists:max(BgValues) > element(1, lists:last(BgBest)) of
            true -> lists:sublist(lists:reverse(lists:sort(lists:zip(BgValues, BgItems) ++ BgBest)), BgKeep);
            false -> BgBest
        end
    end,
    BgWindow = fun(BgListFun, BgValuesOf, BgKeep, BgMs) ->
        BgFirst = BgListFun(),
        BgBefore = lists:reverse(BgFold(BgFirst,
            fun(BgPart, BgSaved) -> [list_to_tuple(BgValuesOf(BgPart)) | BgSaved] end, [])),
        receive after BgMs -> ok end,
        {{BgKept, []}} = BgFold(BgFirst,
            fun(BgPart, {{BgTop, [BgOld | BgOlds]}}) ->
                BgDelta = lists:zipwith(fun erlang:'-'/2, BgValuesOf(BgPart), tuple_to_list(BgOld)),
                {{BgOffer(BgDelta, BgPart, BgKeep, BgTop), BgOlds}}
            end, {{[], BgBefore}}),
        BgBorn = BgListFun() -- BgFirst,
        BgFold(BgBorn, fun(BgPart, BgTop) -> BgOffer(BgValuesOf(BgPart), BgPart, BgKeep, BgTop) end, BgKept)
    end,
"""
