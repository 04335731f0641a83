"""Write facts kept durable in the write's own transaction until its entry is appended: who
wrote them, and when a broker may seal another's (broker/store/sqlite_audit.py,
postgres_audit.py; docs/auditors.md "For operators").

A broker seals its own kept facts as soon as the entry they stand for is appended (deleting
them in that transaction). Facts still there belong to a broker that died first, or whose
append failed; `recovered` seals them with status null (the response was never recorded): at
once when their writer is known dead (same host, no such process), after OTHER_AFTER_S when
it is another live or unknown broker's, after OWN_AFTER_S when it is this broker's own.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable

from security.audit.entry import Pseudonyms, Sealed, from_facts, seal

OTHER_AFTER_S = 5.0  # another live broker's kept facts are sealed by it well within this
OWN_AFTER_S = 60.0  # this broker's own: their entry's append failed, or never came
RECOVER_MAX = 4096  # kept facts one recovery seals

# A kept row: (id, instance, written at (Unix time), facts)
KeptRow = tuple[int, str, float, bytes]


def instance_id() -> str:
    """A broker process's mark on the facts it keeps: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def writer_dead(instance: str) -> bool:
    """Whether the process that wrote kept facts is known to be gone (on this host only)."""
    host, _, rest = instance.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


def own_cutoff(at: float) -> float:
    """This broker's own facts written before this may be sealed (the storages read no
    younger ones of its own: those are entries still coming)."""
    return at - OWN_AFTER_S


def recovered(rows: Iterable[KeptRow], me: str, at: float,
              pseudonyms: Pseudonyms) -> list[Sealed]:
    """The entries of the kept rows that are due for sealing here (each deletes its row)."""
    dead: dict[str, bool] = {}
    out: list[Sealed] = []
    for row_id, instance, written, kept in rows:
        if instance == me:
            due = written < own_cutoff(at)
        else:
            due = written < at - OTHER_AFTER_S or dead.setdefault(instance,
                                                                   writer_dead(instance))
        if due:
            record, entry_time, request_id = from_facts(kept)
            out.append(seal(record, time=entry_time, request_id=request_id, status=None,
                            pseudonyms=pseudonyms, pending=row_id))
    return out
