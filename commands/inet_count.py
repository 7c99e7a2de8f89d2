"""``inet_count ATTR [N]``: the N sockets with the largest traffic counter (recon:inet_count/2)."""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet
from gateway.dist.terms import Atom

from .context import Context
from .netports import INET, INET_ATTRS, INET_HELP, inet_rows, inet_table
from .remote import evaluate
from .sampling import SAMPLING
from .spec import Command, Invocation, Param

INET_COUNT = Snippet(
    "inet_count",
    SAMPLING
    + INET
    + """
    Values = BgInetValues(Keys),
    BgInetRows(BgFold(BgInetPorts(), fun(Part, Top) -> BgOffer(Values(Part), Part, N, Top) end, []), Keys, N).
    """,
    ("Keys", "N"),
)

ATTR_PARAM = Param("ATTR", "choice", "the counter to rank by", choices=tuple(INET_ATTRS))
N_PARAM = Param("N", "int", "how many sockets to show", default=10, required=False, min=1, max=1000)


def keys(attr: str) -> list[Atom]:
    return [Atom(k) for k in INET_ATTRS[attr]]


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    attr, node = inv.args["attr"], ctx.need_target().name
    raw = await evaluate(ctx, INET_COUNT, {"Keys": keys(attr), "N": inv.args["n"]})
    return {"node": node, "attr": attr, "rows": inet_rows(raw, node)}


def render(result: dict[str, Any], inv: Invocation) -> str:
    title = f"top {len(result['rows'])} sockets by {result['attr']} on {result['node']}"
    return title + "\n" + inet_table(result["rows"], result["attr"], result["attr"].upper())


COMMAND = Command(
    name="inet_count",
    summary="the sockets with the most bytes or packets sent/received since they opened",
    shows=(
        "The N TCP/UDP/SCTP sockets with the largest ATTR counter (inet:getstat/2) since they were opened, "
        "with local and peer address and owning process (recon:inet_count/2)."
    ),
    when=(
        "Network-heavy nodes: which connection (a client, a peer node, a database pool) carries the "
        "traffic. Counters are totals since each socket opened: inet_window shows current traffic."
    ),
    cost="inet:getstat/2 for every inet port, compiled and chunked; the top N is cut on the node.",
    params=(ATTR_PARAM, N_PARAM),
    run=run,
    render=render,
    to_json=lambda result, inv: result["rows"],
    fanout=True,
    notes=INET_HELP,
    examples=("inet_count oct", "inet_count recv_cnt 5 --json"),
)
