"""Plugin instances: registration by id, clash resolution, per-instance settings.

Each plugin instance says hello with the id kept in its saved state. A duplicated track
duplicates the id, so when an id is held by another live client (a different address
heard from within `stale_after` seconds) the newcomer gets a fresh id ("<id>-2", "-3", ...)
and the welcome reply tells it so; the plugin stores the new id. A client silent for
longer than `stale_after` (a restarted DAW) may take its id back.

Settings persist in SESSION/instances/<id>.json so a restarted host knows every instance.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sideman.data.files import atomic_write


Address = tuple[str, int]


@dataclass
class InstanceState:
    """What the host keeps per plugin instance. Guidance weights as in the paper (1.25)."""

    instance_id: str
    prompt: str = ""
    style_path: str = ""
    seed: int = 0
    steps: int = 5
    guidance_context: float = 1.25
    guidance_clap: float = 1.25
    selected_take: str = ""
    takes: list[str] = field(default_factory=list)


@dataclass
class _Owner:
    address: Address
    reply_port: int
    last_seen: float


class InstanceRegistry:
    """Thread-safe map of instance id -> state and owner, persisted in the session folder."""

    def __init__(self, session: Path, stale_after: float = 30.0):
        self.folder = Path(session) / "instances"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.stale_after = stale_after
        self._lock = threading.Lock()
        self._states: dict[str, InstanceState] = {}
        self._owners: dict[str, _Owner] = {}
        for file in sorted(self.folder.glob("*.json")):
            try:
                state = InstanceState(**json.loads(file.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            self._states[state.instance_id] = state

    def hello(self, requested: str, address: Address, reply_port: int = 0) -> tuple[str, str]:
        """Register a client; returns (instance id to use, 'ok' | 'renamed')."""
        now = time.monotonic()
        with self._lock:
            instance, status = requested, "ok"
            owner = self._owners.get(requested)
            if owner and owner.address != address and now - owner.last_seen < self.stale_after:
                n = 2
                while f"{requested}-{n}" in self._owners or f"{requested}-{n}" in self._states:
                    n += 1
                instance, status = f"{requested}-{n}", "renamed"
                base = self._states.get(requested)
                if base is not None:  # the duplicate starts from the original's settings
                    self._states[instance] = InstanceState(**{**asdict(base), "instance_id": instance,
                                                              "takes": [], "selected_take": ""})
            self._owners[instance] = _Owner(address, reply_port, now)
            self._states.setdefault(instance, InstanceState(instance))
            self._save(instance)
            return instance, status

    def touch(self, instance: str, address: Address) -> None:
        """Note that the owner of `instance` is alive (any message from its address)."""
        with self._lock:
            owner = self._owners.get(instance)
            if owner and owner.address == address:
                owner.last_seen = time.monotonic()

    def reply_address(self, instance: str, source: Address) -> Address:
        """Where replies for this instance go: the hello's reply port, else the source."""
        with self._lock:
            owner = self._owners.get(instance)
        if owner and owner.reply_port > 0:
            return owner.address[0], owner.reply_port
        return source

    def state(self, instance: str) -> InstanceState:
        with self._lock:
            if instance not in self._states:
                raise KeyError(f"unknown instance '{instance}' (send /sideman/hello first)")
            return InstanceState(**asdict(self._states[instance]))

    def update(self, instance: str, **changes) -> InstanceState:
        with self._lock:
            if instance not in self._states:
                raise KeyError(f"unknown instance '{instance}' (send /sideman/hello first)")
            state = self._states[instance]
            for key, value in changes.items():
                setattr(state, key, value)
            self._save(instance)
            return InstanceState(**asdict(state))

    def add_take(self, instance: str, take_id: str) -> None:
        with self._lock:
            state = self._states[instance]
            if take_id not in state.takes:
                state.takes.append(take_id)
            state.selected_take = take_id
            self._save(instance)

    def restore_takes(self, instance: str, take_ids: list[str]) -> None:
        """After a restart: make sure every take found on disk is in its instance's history."""
        with self._lock:
            state = self._states.setdefault(instance, InstanceState(instance))
            state.takes += [t for t in take_ids if t not in state.takes]
            state.selected_take = state.selected_take or (state.takes[-1] if state.takes else "")
            self._save(instance)

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._states)

    def _save(self, instance: str) -> None:
        data = json.dumps(asdict(self._states[instance]), indent=2).encode()
        atomic_write(self.folder / f"{instance}.json", data, durable=False)
