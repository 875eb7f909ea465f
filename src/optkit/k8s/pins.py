"""The pins of the active plan: which node each pod the plan places must go to.

A plan names pending pods (and StatefulSet pods, recreated under their name) by `ns/name`, and
counts the slots it planned per owner and node for the pods a ReplicaSet will recreate under new
names. Only the controller writes pins (`PinStore(writable=True)`, the default): it sets them,
reserves one planned slot for each new pod of a planned owner as its watch sees the pod, and
ticks slots off as pods get bound. The extender only reads them, so that a caller of `filter`
cannot change what a plan reserved. A store that follows a file written by another process
(`optkit k8s serve --pins-file`) is read-only: one writer per file.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optkit.k8s.snapshot import meta, owner_of


@dataclass
class PinSet:
    """The placements one plan still has to see carried out."""

    plan_id: str
    expires_at: float  # time.time() seconds
    by_name: dict[str, str] = field(default_factory=dict)  # "ns/name" -> node
    by_owner: dict[str, dict[str, int]] = field(default_factory=dict)  # "ns/Kind/name" -> node -> n
    known_uids: set[str] = field(default_factory=set)  # pods of the snapshot: not "recreated"
    # new pod uid -> (owner, node): the planned slot the controller gave it, until it is bound
    reserved: dict[str, tuple[str, str]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not self.by_name and not any(
            c for counts in self.by_owner.values() for c in counts.values()
        )

    def free_slots(self, owner: str, exclude_uid: str | None = None) -> dict[str, int]:
        """Planned slots of `owner` per node, minus those bound or reserved by other pods."""
        free = dict(self.by_owner.get(owner, {}))
        for uid, (o, node) in self.reserved.items():
            if o == owner and uid != exclude_uid and node in free:
                free[node] -= 1
        return {n: c for n, c in free.items() if c > 0}

    def pending(self) -> int:
        """Placements not carried out yet."""
        return len(self.by_name) + sum(
            c for counts in self.by_owner.values() for c in counts.values()
        )

    def to_dict(self) -> dict:
        return {
            "plan_id": self.plan_id,
            "expires_at": self.expires_at,
            "by_name": self.by_name,
            "by_owner": self.by_owner,
            "known_uids": sorted(self.known_uids),
            "reserved": {u: list(v) for u, v in self.reserved.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> PinSet:
        return cls(
            d["plan_id"],
            float(d["expires_at"]),
            dict(d.get("by_name") or {}),
            {k: dict(v) for k, v in (d.get("by_owner") or {}).items()},
            set(d.get("known_uids") or []),
            {u: (v[0], v[1]) for u, v in (d.get("reserved") or {}).items()},
        )


def owner_key(pod: dict) -> str | None:
    owner = owner_of(pod)
    return f"{meta(pod).get('namespace') or 'default'}/{owner}" if owner else None


def pod_key(pod: dict) -> str:
    return f"{meta(pod).get('namespace') or 'default'}/{meta(pod).get('name')}"


class ReadOnlyPins(RuntimeError):
    """A change asked of a store that only follows another process's pins file."""


class PinStore:
    """Thread-safe pins of the active plan, shared by the controller and the extender.

    With `path`, a writable store writes every change there as JSON (atomically, by rename); a
    read-only store (`writable=False`) reloads the file when it changes and never writes it.
    """

    def __init__(
        self, path: str | Path | None = None, clock: Any = time.time, writable: bool = True
    ):
        self._lock = threading.Lock()
        self._pins: PinSet | None = None
        self.path = Path(path) if path else None
        self.writable = writable
        self._mtime: float | None = None
        self.clock = clock

    # -- storage --------------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if not self.writable:
            raise ReadOnlyPins(f"the pins in {self.path} are written by another process")

    def set(self, pins: PinSet | None) -> None:
        self._check_writable()
        with self._lock:
            self._pins = pins
            self._save()

    def clear(self) -> None:
        self.set(None)

    def _save(self) -> None:
        if self.path is None or not self.writable:
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self._pins.to_dict() if self._pins else None))
        tmp.replace(self.path)
        self._mtime = self.path.stat().st_mtime_ns

    def _reload(self) -> None:
        if self.path is None or self.writable:
            return
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            self._pins, self._mtime = None, None
            return
        if mtime != self._mtime:
            try:
                data = json.loads(self.path.read_text())
                self._pins = PinSet.from_dict(data) if data else None
                self._mtime = mtime
            except (ValueError, KeyError, TypeError, OSError):
                pass  # unreadable: keep what we had, try again next time

    def _live(self) -> PinSet | None:
        """The pins, None once expired or all carried out (lock held)."""
        self._reload()
        pins = self._pins
        if pins is not None and (pins.expires_at <= self.clock() or pins.empty()):
            if self.writable:
                self._pins = None
                self._save()
            return None
        return pins

    def current(self) -> PinSet | None:
        with self._lock:
            return self._live()

    # -- reads (the extender) -------------------------------------------------------------------
    def target_nodes(self, pod: dict) -> tuple[set[str] | None, str]:
        """The nodes a pod is pinned to (None: not pinned) and why. Reads only.

        A pod the plan names goes to its node; a new pod of an owner with planned slots goes to
        the slot the controller reserved for it, or, before the controller has seen it, to any
        node with a slot nobody reserved; with no such slot left it is not the plan's business.
        """
        if (pod.get("spec") or {}).get("nodeName"):
            return None, ""
        with self._lock:
            pins = self._live()
            if pins is None:
                return None, ""
            key = pod_key(pod)
            if key in pins.by_name:
                node = pins.by_name[key]
                return {node}, f"optkit plan {pins.plan_id} places {key} on {node}"
            owner, uid = owner_key(pod), meta(pod).get("uid") or key
            if not owner or owner not in pins.by_owner or uid in pins.known_uids:
                return None, ""
            why = f"optkit plan {pins.plan_id} places new {owner} pods on "
            held = pins.reserved.get(uid)
            if held is not None and pins.by_owner[owner].get(held[1], 0) > 0:
                return {held[1]}, why + held[1]
            free = pins.free_slots(owner)
            if not free:
                return None, ""
            return set(free), why + ", ".join(sorted(free))

    # -- writes (the controller) ----------------------------------------------------------------
    def reserve(self, pod: dict) -> str | None:
        """Give a new pending pod of a planned owner one free planned slot; its node, or None."""
        self._check_writable()
        if (pod.get("spec") or {}).get("nodeName"):
            return None
        with self._lock:
            pins = self._live()
            owner, uid = owner_key(pod), meta(pod).get("uid")
            if pins is None or not owner or not uid or owner not in pins.by_owner:
                return None
            if uid in pins.known_uids or pod_key(pod) in pins.by_name:
                return None
            held = pins.reserved.get(uid)
            if held is not None and pins.by_owner[owner].get(held[1], 0) > 0:
                return held[1]
            free = pins.free_slots(owner, exclude_uid=uid)
            if not free:
                return None
            node = min(free)
            pins.reserved[uid] = (owner, node)
            self._save()
            return node

    def observe_bound(self, pod: dict) -> bool:
        """A pod got bound to a node: tick off its pin; True if it was one."""
        self._check_writable()
        node = (pod.get("spec") or {}).get("nodeName")
        with self._lock:
            pins = self._pins
            if pins is None or not node:
                return False
            key, uid = pod_key(pod), meta(pod).get("uid") or pod_key(pod)
            hit = False
            if key in pins.by_name:
                hit = pins.by_name.pop(key) == node  # bound elsewhere: cannot be honoured now
            else:
                pins.reserved.pop(uid, None)
                counts = pins.by_owner.get(owner_key(pod) or "")
                if counts and counts.get(node, 0) > 0 and uid not in pins.known_uids:
                    counts[node] -= 1
                    hit = True
                pins.known_uids.add(uid)  # count each new pod once
            self._save()
            return hit

    def forget(self, pod: dict) -> None:
        """A pod went away: release the slot it had reserved."""
        self._check_writable()
        with self._lock:
            if self._pins is not None and self._pins.reserved.pop(meta(pod).get("uid") or "", None):
                self._save()
