"""Protected processes (SPEC safety rule 7): one list, checked twice.

``state``, ``messages``, ``kill`` and ``info PROC messages`` refuse ``auth``,
``net_kernel`` and the entries of ``[safety] protected_processes``. An entry
is written like a process reference, minus pids: ``my_vault``,
``MyApp.Vault`` (an Elixir alias), ``'quoted name'``, ``global:vault``,
``global:MyApp.Vault``. :func:`protected_refs` normalises the list once, into
:class:`~commands.refs.NameRef` / :class:`~commands.refs.GlobalRef` values
whose names are atom texts (``Elixir.MyApp.Vault``), and both checks use them:

* the policy engine compares :func:`name_label` of what the user typed with
  the labels of the list, and refuses before anything is sent to a node
  (``state global:MyApp.Vault`` and ``state global:Elixir.MyApp.Vault`` alike);
* the commands send the list to the node as data, in the shape of
  :func:`commands.procs.proc_binding` (``{name, Bin}`` or ``{global, Bin}``);
  the target resolves each entry with ``whereis/1`` or
  ``global:whereis_name/1`` after ``binary_to_existing_atom`` (a name the
  node has never seen is simply not registered, and creates no atom) and
  refuses the pid it names, however the user reached it (a pid, a name).

:func:`parse_protected` is also what ``beamgate check-config`` applies to
each entry, so the config accepts exactly what the checks understand.
"""

from __future__ import annotations

from collections.abc import Iterable

from .refs import GlobalRef, NameRef, PidRef, ProcRef, RefError, parse_proc

#: Always protected, whatever the configuration says: their state holds the cookie.
ALWAYS_PROTECTED = ("auth", "net_kernel")

GLOBAL_PREFIX = "global:"

ProtectedRef = NameRef | GlobalRef


def parse_protected(entry: str) -> ProtectedRef:
    """One ``protected_processes`` entry as a reference; :class:`RefError` says why it is not one."""
    ref = parse_proc(entry)
    if isinstance(ref, PidRef):
        raise RefError(
            f"{entry!r} is a pid: protect a process by its registered name or global:NAME (pids change on restart)"
        )
    return ref


def protected_refs(entries: Iterable[str]) -> tuple[ProtectedRef, ...]:
    """``auth``, ``net_kernel`` and ``entries``, normalised.

    An entry ``check-config`` would reject (the loader refuses such a config) is
    kept as the exact atom text it spells rather than dropped: protecting too
    much fails closed.
    """
    refs: list[ProtectedRef] = [NameRef(name) for name in ALWAYS_PROTECTED]
    for entry in entries:
        try:
            refs.append(parse_protected(entry))
        except RefError:
            if entry.startswith(GLOBAL_PREFIX):
                refs.append(GlobalRef(entry[len(GLOBAL_PREFIX) :]))
            else:
                refs.append(NameRef(entry))
    return tuple(refs)


def name_label(ref: ProcRef) -> str | None:
    """A name as one comparable text (``Elixir.MyApp.Vault``, ``global:vault``); ``None`` for a pid."""
    if isinstance(ref, NameRef):
        return ref.name
    if isinstance(ref, GlobalRef):
        return GLOBAL_PREFIX + ref.name
    return None


def protected_labels(entries: Iterable[str]) -> frozenset[str]:
    """The labels of :func:`protected_refs`, for comparing with the names users type."""
    return frozenset(label for ref in protected_refs(entries) if (label := name_label(ref)) is not None)
