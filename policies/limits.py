"""Built-in limits and protections: the one place where beamgate's hard numbers live.

No role can lift anything defined here. Roles choose caps *below* the hard
maxima (``beamgate check-config`` rejects a cap above one); the engine clamps
every value to them even if a config slipped through. The numbers are
documented, with their reasons, in ``docs/policies.md``.

* Hard maxima: trace limits (messages, rate, duration) and the integer
  arguments that make a command walk more of the node (top-N, sampling
  windows, call timeouts).
* Protected processes: ``state``, ``messages``, ``kill`` and ``info PROC
  messages`` refuse them for every role (SPEC safety rule 7). The list is
  normalised by :mod:`commands.protected`; the engine refuses the names a
  user types before anything reaches a node, and the commands check the
  resolved pid on the target (``BgGuard``), so a pid or another name of a
  protected process is refused too.
* What makes an invocation *expensive*, and therefore subject to the role's
  ``expensive`` setting and an interactive confirmation.
* The trace command's option names, which its caps are applied to.
"""

from __future__ import annotations

from typing import Final

from commands.procinfo import GROUPS

# -- trace ---------------------------------------------------------------------------

#: Hard maxima of a role's ``trace`` caps (SPEC safety rule 6: limits always exist).
TRACE_MAX_MESSAGES: Final = 10_000
TRACE_MAX_RATE: Final = 1_000  # messages per second
TRACE_MAX_SECONDS: Final = 3_600

#: The command the ``trace`` caps apply to, and the options that carry them.
TRACE_COMMAND: Final = "trace"
TRACE_LIMIT: Final = "limit"  # --limit N: messages in total (int)
TRACE_RATE: Final = "rate"  # --rate N/SECONDS (kind "rate": a (count, seconds) pair)
TRACE_SECONDS: Final = "for"  # --for SECONDS (int)
TRACE_PID: Final = "pid"  # --pid PROC|new|existing|all; absent means all
TRACE_RETURN: Final = "return"  # --return (bool)
TRACE_PID_ALL: Final = "all"
#: Option keys governed by the ``trace`` table, never by ``args.trace.max_*``.
TRACE_KEYS: Final = frozenset({TRACE_LIMIT, TRACE_RATE, TRACE_SECONDS, TRACE_PID, TRACE_RETURN})

# -- integer arguments ---------------------------------------------------------------

#: Hard maxima of integer arguments by key, for every command that has one.
#: ``n``: rows of a top-N; ``ms``: a sampling window; ``timeout``: a call timeout (ms).
HARD_MAX_BY_KEY: Final = {"n": 1_000, "ms": 60_000, "timeout": 30_000}

#: The key of a sampling window (``proc_window ATTR [N] [MS]``, ``scheduler_usage [MS]``).
WINDOW_KEY: Final = "ms"

# -- protected processes and process keys --------------------------------------------

#: Commands that refuse a protected process as their PROC argument.
PROTECTED_COMMANDS: Final = frozenset({"state", "messages", "kill"})
#: The command whose N is capped by ``[safety] messages_cap`` (the mailbox cap).
MAILBOX_COMMAND: Final = "messages"

#: Process keys ``deny_process_keys`` may name: ``erlang:process_info/2`` items and
#: recon's groups. A denied key that a whole command also shows denies that command.
PROCESS_KEYS: Final = frozenset(
    {
        "backtrace", "binary", "catchlevel", "current_function", "current_location",
        "current_stacktrace", "dictionary", "error_handler", "garbage_collection",
        "garbage_collection_info", "group_leader", "heap_size", "initial_call", "links",
        "last_calls", "memory", "message_queue_data", "message_queue_len", "messages",
        "min_bin_vheap_size", "min_heap_size", "monitored_by", "monitors", "parent",
        "priority", "reductions", "registered_name", "sequential_trace_token", "stack_size",
        "status", "suspending", "total_heap_size", "trace", "trap_exit",
        "meta", "signals", "location", "memory_used", "work",
    }
)  # fmt: skip
#: recon's ``info`` groups and the keys each shows, as ``info PROC`` reads them. A denied key
#: denies asking for a group that shows it; when KEY is omitted (every group), such groups
#: are narrowed to their other keys.
PROCESS_KEY_GROUPS: Final = GROUPS
#: A denied key also denies the whole command that shows the same data.
KEY_COMMANDS: Final = {"messages": "messages"}

# -- expensive invocations -----------------------------------------------------------

#: Commands that are expensive whatever their arguments, with the reason shown to the user.
EXPENSIVE_COMMANDS: Final = {
    "bin_leak": "it forces a garbage collection of every process on the node",
}
#: A sampling window longer than this (ms) is expensive.
EXPENSIVE_WINDOW_MS: Final = 10_000
#: A ``--nodes`` fan-out reaching more nodes than this is expensive.
EXPENSIVE_FANOUT_NODES: Final = 5
