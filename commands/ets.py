"""``ets [N]``: the N largest ETS tables by memory, with owner, name, size, type and protection.

``ets:info(Tab, memory)`` for every table through ``lists:zipwith/3``
(compiled), one sort of ``{Words, Tab}`` on the node, then ``ets:info/1``
for the N largest only. Tables deleted meanwhile are skipped.
"""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet
from gateway.dist.terms import Atom

from .context import Context
from .format import human_bytes, human_count, name_text, table, term_text
from .procs import optional_name, pid_shown
from .remote import evaluate
from .spec import Command, Invocation, Param

ETS = Snippet(
    "ets",
    """
    Tabs = ets:all(),
    Words = lists:zipwith(fun ets:info/2, Tabs, lists:duplicate(length(Tabs), memory)),
    Live = length(lists:filter(fun erlang:is_integer/1, Words)),
    Largest = lists:sublist(lists:reverse(lists:sublist(lists:keysort(1, lists:zip(Words, Tabs)), Live)), N),
    WordSize = erlang:system_info(wordsize),
    Row = fun({Size, Tab}) ->
        case ets:info(Tab) of
            undefined -> [];
            Info ->
                Owner = proplists:get_value(owner, Info),
                OwnerName = case erlang:process_info(Owner, registered_name) of
                                {registered_name, Registered} -> Registered;
                                _ -> []
                            end,
                [{Tab, Size * WordSize, proplists:get_value(name, Info), Owner, OwnerName,
                  proplists:get_value(size, Info), proplists:get_value(type, Info),
                  proplists:get_value(protection, Info)}]
        end
    end,
    {length(Tabs), lists:append(lists:map(Row, Largest))}.
    """,
    ("N",),
)


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    node = ctx.need_target().name
    count, raw = await evaluate(ctx, ETS, {"N": inv.args["n"]})
    rows = [
        {
            "table": name_text(tab) if isinstance(tab, Atom) else term_text(tab, local_node=node),
            "memory": memory,
            "name": name_text(name) if isinstance(name, Atom) else term_text(name, local_node=node),
            "owner": pid_shown(owner, node),
            "owner_name": optional_name(owner_name),
            "size": size,
            "type": term_text(kind),
            "protection": term_text(protection),
        }
        for tab, memory, name, owner, owner_name, size, kind, protection in raw
    ]
    return {"node": node, "tables": count, "rows": rows}


def render(result: dict[str, Any], inv: Invocation) -> str:
    body = table(
        ["NAME", "MEMORY", "OBJECTS", "TYPE", "PROTECTION", "OWNER", "OWNER NAME"],
        [
            [
                r["name"],
                human_bytes(r["memory"]),
                human_count(r["size"]),
                r["type"],
                r["protection"],
                r["owner"],
                r["owner_name"] or "-",
            ]
            for r in result["rows"]
        ],
        right=(1, 2),
    )
    return f"largest {len(result['rows'])} of {result['tables']} ETS tables on {result['node']}\n{body}"


COMMAND = Command(
    name="ets",
    summary="the largest ETS tables by memory, with owner, size, type and protection",
    shows=(
        "The N ETS tables using the most memory, largest first: name, memory, number of objects, type "
        "(set, ordered_set, bag, duplicate_bag), protection and owning process."
    ),
    when=(
        "erlang:memory(ets) is large or growing: find the table, then its owner (info, state). A table that "
        "only grows is a cache without eviction or a leak of keys."
    ),
    cost="ets:info(Tab, memory) for every table (constant time each) and ets:info/1 for the N shown.",
    params=(Param("N", "int", "how many tables to show", default=10, required=False, min=1, max=1000),),
    run=run,
    render=render,
    to_json=lambda result, inv: result["rows"],
    fanout=True,
    examples=("ets", "ets 25 --json"),
)
