"""Pure parts of the diagnostic commands: allocator arithmetic, argument shapes, formatting, the registry."""

from __future__ import annotations

import pytest

from commands import REGISTRY, allocators
from commands.alloc import _arguments
from commands.context import Context, Identity
from commands.errors import CommandError
from commands.format import SafeText, mfa_text, name_text, safe_join, sanitize, table
from commands.grammar import UsageError, parse_line
from commands.help import describe
from commands.netports import address_text, port_binding
from commands.procinfo import process_items
from commands.procs import frame_text, proc_binding, protected_bindings, shown_text, value_text
from commands.protected import name_label, parse_protected, protected_labels, protected_refs
from commands.refs import GlobalRef, NameRef, PidRef, RefError, parse_proc
from commands.scheduler_usage import usage
from gateway.config import SafetyConfig
from gateway.dist.terms import Atom

A = Atom

# -- allocators (recon_alloc semantics) ----------------------------------------------


def new_format(blocks: tuple[int, int], size: tuple[int, int], carriers: tuple[int, int]) -> list[tuple[object, ...]]:
    """A section as OTP 23+ reports it: blocks per allocation type."""
    return [
        (A("blocks"), [(A("x_alloc"), [(A("count"), blocks[0], 0, blocks[1]), (A("size"), size[0], 0, size[1])])]),
        (A("carriers"), 1, 1, 1),
        (A("carriers_size"), carriers[0], 0, carriers[1]),
    ]


def old_format(blocks: tuple[int, int], size: tuple[int, int], carriers: tuple[int, int]) -> list[tuple[object, ...]]:
    return [
        (A("blocks"), blocks[0], 0, blocks[1]),
        (A("blocks_size"), size[0], 0, size[1]),
        (A("carriers"), 1, 1, 1),
        (A("carriers_size"), carriers[0], 0, carriers[1]),
    ]


POOL = [
    (A("blocks"), [(A("x_alloc"), [(A("count"), 2), (A("size"), 100)])]),
    (A("carriers"), 1),
    (A("carriers_size"), 1000),
]

RAW = [
    (
        A("binary_alloc"),
        [
            (
                0,
                [
                    (A("mbcs"), new_format((10, 20), (4000, 9000), (8000, 16000))),
                    (A("sbcs"), new_format((1, 2), (600, 900), (700, 1000))),
                ],
            ),
            (
                1,
                [
                    (A("mbcs"), new_format((5, 5), (500, 500), (1000, 1000))),
                    (A("mbcs_pool"), POOL),
                    (A("sbcs"), new_format((0, 0), (0, 0), (0, 0))),
                ],
            ),
        ],
    ),
    (
        A("ets_alloc"),
        [
            (
                0,
                [
                    (A("mbcs"), old_format((3, 3), (300, 300), (1000, 2000))),
                    (A("sbcs"), old_format((0, 1), (0, 50), (0, 60))),
                ],
            )
        ],
    ),
]


def test_alloc_parse_reads_both_formats_and_the_pool() -> None:
    instances = allocators.parse(RAW)
    assert [(i.allocator, i.number) for i in instances] == [("binary_alloc", 0), ("binary_alloc", 1), ("ets_alloc", 0)]
    binary1 = instances[1]
    assert binary1.value("mbcs", "blocks_size", "current") == 500 + 100  # the pool counts for current...
    assert binary1.value("mbcs", "blocks_size", "max") == 500  # ...not for max
    assert binary1.value("sbcs", "carriers_size", "current") == 0
    ets = instances[2]
    assert ets.value("mbcs", "blocks", "max") == 3 and ets.value("sbcs", "blocks_size", "max") == 50


def test_alloc_memory() -> None:
    instances = allocators.parse(RAW)
    assert allocators.memory(instances, "used", "current") == 4000 + 600 + 600 + 300
    assert allocators.memory(instances, "allocated", "current") == 8000 + 700 + 2000 + 1000
    assert allocators.memory(instances, "allocated", "max") == 16000 + 1000 + 1000 + 2000 + 60
    assert allocators.memory(instances, "unused", "current") == 11700 - 5500
    assert allocators.memory(instances, "usage", "current") == pytest.approx(5500 / 11700)
    assert allocators.memory(instances, "allocated_types", "current") == [
        {"allocator": "binary_alloc", "bytes": 8700 + 2000},
        {"allocator": "ets_alloc", "bytes": 1000},
    ]
    assert allocators.memory(instances, "allocated_instances", "current") == [
        {"instance": 0, "bytes": 8700 + 1000},
        {"instance": 1, "bytes": 2000},
    ]
    assert allocators.memory([], "usage", "current") == 1.0


def test_alloc_fragmentation_ranks_unused_carrier_bytes() -> None:
    rows = allocators.fragmentation(allocators.parse(RAW), "current")
    assert [(r["allocator"], r["instance"]) for r in rows] == [
        ("binary_alloc", 0),
        ("binary_alloc", 1),
        ("ets_alloc", 0),
    ]
    first = rows[0]
    assert first["mbcs_usage"] == 0.5 and first["sbcs_usage"] == pytest.approx(600 / 700)
    assert rows[2]["sbcs_usage"] == 1.0  # an empty carrier is not fragmented


def test_alloc_sbcs_to_mbcs_and_averages() -> None:
    instances = allocators.parse(RAW)
    ratios = allocators.sbcs_to_mbcs(instances, "current")
    assert ratios[0] == {"allocator": "binary_alloc", "instance": 0, "ratio": 0.1}
    only_sbcs = allocators.Instance("temp_alloc", 3, sbcs={"blocks": (2, 2)})
    assert allocators.sbcs_to_mbcs([*instances, only_sbcs], "max")[0]["ratio"] == "infinity"
    averages = allocators.average_block_sizes(instances, "current")
    assert averages[0] == {"allocator": "binary_alloc", "sbcs": 600 / 1, "mbcs": (4000 + 600) / (10 + 7)}
    assert averages[1]["sbcs"] == 0


def test_alloc_cache_hit_rates() -> None:
    def mseg(n: int, hits: int, giga: int, ones: int) -> tuple[int, list[tuple[object, ...]]]:
        return (n, [(A("status"), [(A("cache_hits"), hits)]), (A("calls"), [(A("mseg_alloc"), giga, ones)])])

    rows = allocators.cache_hit_rates([mseg(0, 9, 0, 10), mseg(1, 0, 0, 0), mseg(2, 1, 1, 0)])
    assert [r["instance"] for r in rows] == [2, 0, 1]
    assert rows[0]["calls"] == 1_000_000_000 and rows[1]["hit_rate"] == 0.9 and rows[2]["hit_rate"] == 1.0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("alloc memory", ("memory", None, "current")),
        ("alloc memory usage", ("memory", "usage", "current")),
        ("alloc memory allocated_types max", ("memory", "allocated_types", "max")),
        ("alloc memory max", ("memory", None, "max")),
        ("alloc fragmentation max", ("fragmentation", None, "max")),
        ("alloc sbcs_to_mbcs", ("sbcs_to_mbcs", None, "current")),
    ],
)
def test_alloc_arguments(line: str, expected: tuple[str, str | None, str]) -> None:
    inv = parse_line(line, REGISTRY)
    assert inv is not None and _arguments(inv) == expected


@pytest.mark.parametrize("line", ["alloc fragmentation used", "alloc cache_hit_rates max", "alloc memory max used"])
def test_alloc_bad_arguments(line: str) -> None:
    inv = parse_line(line, REGISTRY)
    assert inv is not None
    with pytest.raises(UsageError, match="unexpected"):
        _arguments(inv)


def test_scheduler_usage_diff() -> None:
    rows = usage([(2, 10, 100), (1, 0, 100), (3, 5, 50)], [(1, 50, 200), (2, 10, 200), (3, 5, 50)], 2)
    assert rows == [
        {"id": 1, "type": "normal", "usage": 0.5},
        {"id": 2, "type": "normal", "usage": 0.0},
        {"id": 3, "type": "dirty_cpu", "usage": 0.0},
    ]


# -- process and port references -----------------------------------------------------


def test_proc_binding() -> None:
    assert proc_binding(PidRef(0, 123, 4)) == (A("pid"), 123, 4)
    assert proc_binding(NameRef("Elixir.MyApp.Worker")) == (A("name"), b"Elixir.MyApp.Worker")
    assert proc_binding(GlobalRef("cache")) == (A("global"), b"cache")
    with pytest.raises(CommandError, match="another node"):
        proc_binding(PidRef(7, 1, 0))


def test_protected_bindings_include_the_fixed_ones_elixir_and_global_forms() -> None:
    ctx = Context(
        Identity("u", (), ""),
        REGISTRY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        SafetyConfig(protected_processes=("my_secrets", "MyApp.Vault", "global:vault", "global:MyApp.Vault")),
    )
    assert protected_bindings(ctx) == [
        (A("name"), b"auth"),
        (A("name"), b"net_kernel"),
        (A("name"), b"my_secrets"),
        (A("name"), b"Elixir.MyApp.Vault"),
        (A("global"), b"vault"),
        (A("global"), b"Elixir.MyApp.Vault"),
    ]


def test_protected_entries_normalise_like_the_names_users_type() -> None:
    entries = ("MyApp.Vault", "global:MyApp.Vault", "global:vault", "'odd name'", ":auth_srv")
    labels = protected_labels(entries)
    assert labels == {
        "auth",
        "net_kernel",
        "Elixir.MyApp.Vault",
        "global:Elixir.MyApp.Vault",
        "global:vault",
        "odd name",
        "auth_srv",
    }
    # Whatever spelling a user types for one of them gives the same label.
    for typed in ("MyApp.Vault", "Elixir.MyApp.Vault", "global:MyApp.Vault", "global:Elixir.MyApp.Vault", "'odd name'"):
        assert name_label(parse_proc(typed)) in labels, typed
    assert name_label(parse_proc("<0.1.0>")) is None
    # check-config rejects what the checks would not understand; the checks still fail closed.
    for bad in ("<0.1.0>", "global:", "my-srv", "global:a b"):
        with pytest.raises(RefError):
            parse_protected(bad)
    assert protected_refs(("my-srv", "global:a b"))[2:] == (NameRef("my-srv"), GlobalRef("a b"))


@pytest.mark.parametrize(
    ("text", "binding"),
    [
        ("#Port<0.42>", (A("number"), 42)),
        ("0.42", (A("number"), 42)),
        ("42", (A("number"), 42)),
        ("my_port", (A("name"), b"my_port")),
    ],
)
def test_port_binding(text: str, binding: tuple[object, ...]) -> None:
    assert port_binding(text) == binding


def test_port_grammar() -> None:
    inv = parse_line("port_info #Port<0.42>", REGISTRY)
    assert inv is not None and inv.args["port"] == "#Port<0.42>"
    for bad in ("#Port<0.x>", "<0.1.2>", "Port", "x-1"):
        with pytest.raises(UsageError, match="is not a port"):
            parse_line(f"port_info {bad}", REGISTRY)
    with pytest.raises(CommandError, match="another node"):
        port_binding("#Port<3.9>")


def test_addresses() -> None:
    assert address_text(((127, 0, 0, 1), 4369)) == "127.0.0.1:4369"
    assert address_text(((0, 0, 0, 0, 0, 0, 0, 1), 80)) == "[::1]:80"
    assert address_text(None) is None and address_text(A("undefined")) is None
    assert address_text((A("local"), b"/tmp/sock\x1b")) == '{local,<<"/tmp/sock\\x1b">>}'


# -- formatting -------------------------------------------------------------------


def test_elixir_and_erlang_names() -> None:
    assert name_text(A("Elixir.MyApp.Worker")) == "MyApp.Worker"
    assert mfa_text((A("Elixir.MyApp.Worker"), A("handle_call"), 3)) == "MyApp.Worker.handle_call/3"
    assert mfa_text((A("queue"), A("in"), [1, 2])) == "queue:in/2"
    assert mfa_text(A("undefined")) is None
    frame = (A("Elixir.MyApp.Worker"), A("init"), 1, [(A("file"), list(b"lib/worker.ex")), (A("line"), 7)])
    assert frame_text(frame) == "MyApp.Worker.init/1 (lib/worker.ex:7)"
    assert frame_text((A("m"), A("f"), 0, [])) == "m:f/0"


def test_sanitize_once() -> None:
    once = sanitize("a\x1bb\\c")
    assert once == "a\\x1bb\\\\c" and isinstance(once, SafeText)
    assert sanitize(once) is once
    assert table(["X"], [[once]]).splitlines()[1] == once
    assert safe_join(", ", [once, "\x07"]) == "a\\x1bb\\\\c, \\x07"
    assert shown_text((True, b"#{a => \\e}\n\xc2\x9b")) == "#{a => \\e}\n\\x9b ..."


def test_value_units() -> None:
    assert value_text(1536, "bytes") == "1.5 KiB"
    assert value_text(1234, "words") == "1,234 words"
    assert value_text(1234, "count") == "1,234"


def test_info_items() -> None:
    assert process_items([])[:4] == ("registered_name", "dictionary", "group_leader", "status")
    assert "messages" not in process_items([]) and "binary" not in process_items([])
    assert process_items(["work", "binary", "reductions"]) == ("reductions", "binary")


# -- the registry ----------------------------------------------------------------------

DIAGNOSTICS = (
    "info proc_count proc_window bin_leak alloc scheduler_usage ports inet_count inet_window port_info ets stack "
    "state messages apps kill"
).split()


def test_every_diagnostic_is_registered_with_recon_style_help() -> None:
    for name in DIAGNOSTICS:
        command = REGISTRY[name]
        assert command.shows and command.when and command.cost, name
        assert command.remote
        for param in command.params:
            if param.kind == "choice":
                assert param.choices, (name, param.name)
        described = describe(command)
        assert described["usage"].startswith(name)
    assert "garbage-collects EVERY process" in REGISTRY["bin_leak"].cost


def test_fanout_and_privilege() -> None:
    read_only = set(DIAGNOSTICS) - {"bin_leak", "kill"}
    assert {n for n in DIAGNOSTICS if REGISTRY[n].fanout} == read_only
    assert [n for n in REGISTRY if REGISTRY[n].privileged] == ["kill"]


def test_choices_are_declared_for_completion_and_policy() -> None:
    assert REGISTRY["proc_count"].params[0].choices == (
        "memory",
        "reductions",
        "message_queue_len",
        "total_heap_size",
        "heap_size",
        "binary_memory",
    )
    assert "allocated_instances" in REGISTRY["alloc"].params[1].choices
    assert set(REGISTRY["inet_window"].params[0].choices) == {
        "recv_cnt",
        "recv_oct",
        "send_cnt",
        "send_oct",
        "cnt",
        "oct",
    }
    assert "messages" in REGISTRY["info"].params[1].choices  # on request only, read as `messages` reads it
    timeout = REGISTRY["state"].flag("timeout")
    assert timeout is not None and timeout.kind == "int"
