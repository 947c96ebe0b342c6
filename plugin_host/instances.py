"""Plugin instances: registration by id, clash resolution, per-instance settings.

Each plugin instance says hello with the id kept in its saved state. A duplicated track
duplicates the id, so when an id is held by another live client (a different address
heard from within `stale_after` seconds) the newcomer gets a fresh id ("<id>-2", "-3", ...,
the id cut short so the new one is still at most 64 characters) and the welcome reply tells
it so; the plugin stores the new id. A client silent for longer than `stale_after` (a
restarted DAW) may take its id back.

Settings persist in SESSION/instances/<id>.json so a restarted host knows every instance.
An id becomes a file name only after the id grammar (osc_protocol.instance_id_problem) is
checked here, whoever calls; at most `max_instances` instances are kept.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from sideman.data.files import atomic_write, remove_partial_writes

from sideman.plugin_host.osc_protocol import instance_id_problem

log = logging.getLogger("sideman.host")


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
    loop: bool = False      # takes loop seamlessly
    clap_mix: float = 0.5   # with a prompt and a style reference: 0 = all prompt, 1 = all style
    names: dict[str, str] = field(default_factory=dict)  # take id -> the name the musician gave it
    starred: list[str] = field(default_factory=list)     # take ids
    model: str = ""         # the model the instance generates with ("": the host's default)


def _fields(state: InstanceState) -> dict:
    """The state's fields as a dict (what dataclasses.asdict gives, without its deep copy:
    every field is a str, a number, a list of str or a str -> str dict)."""
    return {**vars(state), "takes": list(state.takes), "names": dict(state.names), "starred": list(state.starred)}


def _copy(state: InstanceState) -> InstanceState:
    return InstanceState(**_fields(state))


_TYPES = {"instance_id": str, "prompt": str, "style_path": str, "seed": int, "steps": int,
          "guidance_context": float, "guidance_clap": float, "selected_take": str, "takes": list,
          "loop": bool, "clap_mix": float, "names": dict, "starred": list, "model": str}
_ADDED = {"loop": False, "clap_mix": 0.5, "names": {}, "starred": [], "model": ""}  # fields newer than the first instance files: default when absent


def _state_from_json(data) -> InstanceState:
    """An InstanceState from a saved file; ValueError if any field is missing or of a wrong kind."""
    if not isinstance(data, dict):
        raise ValueError("not an instance file")
    data = {**_ADDED, **data}
    if set(data) != {f.name for f in fields(InstanceState)}:
        raise ValueError("not an instance file")
    for name, kind in _TYPES.items():
        value = data[name]
        if kind is bool:
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float) if kind is float else kind) and not isinstance(value, bool)
        if not ok or (kind is float and not math.isfinite(value)):
            raise ValueError(f"field '{name}' is {value!r}")
    if not all(isinstance(t, str) for t in data["takes"] + data["starred"]):
        raise ValueError("field 'takes' or 'starred' holds a non-string")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data["names"].items()):
        raise ValueError("field 'names' holds a non-string")
    return InstanceState(**data)


class InstanceIdError(ValueError):
    """An instance id that may not be used (it would not be a plain file name)."""


class TooManyInstances(ValueError):
    """The registry is full (`max_instances`)."""


def check_instance_id(instance) -> str:
    problem = instance_id_problem(instance)
    if problem:
        raise InstanceIdError(problem)
    return instance


@dataclass
class _Owner:
    address: Address
    reply_port: int
    last_seen: float


class InstanceRegistry:
    """Thread-safe map of instance id -> state and owner, persisted in the session folder."""

    def __init__(self, session: Path, stale_after: float = 30.0, max_instances: int = 256):
        self.folder = Path(session) / "instances"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.stale_after = stale_after
        self.max_instances = max_instances
        self._lock = threading.Lock()
        self._states: dict[str, InstanceState] = {}
        self._owners: dict[str, _Owner] = {}
        self.removed_partial = [p.name for p in remove_partial_writes(self.folder)]
        self.skipped: list[str] = []  # files that are not instance files (kept, not read)
        for file in sorted(self.folder.glob("*.json")):
            try:
                state = _state_from_json(json.loads(file.read_text()))
                check_instance_id(state.instance_id)
                if file.name != f"{state.instance_id}.json":
                    raise ValueError(f"it names instance '{state.instance_id}'")
            except (OSError, ValueError, TypeError) as exc:
                log.warning("instance file %s skipped: %s", file, exc)
                self.skipped.append(file.name)
                continue
            self._states[state.instance_id] = state

    def _new_id(self, requested: str) -> str:
        """'<id>-N' for the smallest free N >= 2, `requested` cut so the result has at most 64 characters."""
        n = 2
        while True:
            suffix = f"-{n}"
            candidate = requested[:64 - len(suffix)] + suffix
            if candidate not in self._owners and candidate not in self._states:
                return candidate
            n += 1

    def _check_room(self, instance: str) -> None:
        if instance not in self._states and len(self._states) >= self.max_instances:
            raise TooManyInstances(
                f"the host keeps at most {self.max_instances} instances and has {len(self._states)}; "
                "restart it with a larger --max-instances, or remove unused files from the session's "
                "instances folder")

    def hello(self, requested: str, address: Address, reply_port: int = 0) -> tuple[str, str]:
        """Register a client; returns (instance id to use, 'ok' | 'renamed')."""
        check_instance_id(requested)
        if not (isinstance(reply_port, int) and 0 <= reply_port <= 65535):
            raise ValueError(f"reply port must be 0..65535 (0: the request's own port), got {reply_port!r}")
        now = time.monotonic()
        with self._lock:
            instance, status = requested, "ok"
            owner = self._owners.get(requested)
            if owner and owner.address != address and now - owner.last_seen < self.stale_after:
                instance, status = self._new_id(requested), "renamed"
            self._check_room(instance)
            if status == "renamed":
                base = self._states.get(requested)
                if base is not None:  # the duplicate starts from the original's settings
                    self._states[instance] = InstanceState(**{**_fields(base), "instance_id": instance,
                                                              "takes": [], "selected_take": "",
                                                              "names": {}, "starred": []})
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

    def release(self, instance: str, address: Address) -> bool:
        """The owner of `instance` leaves (its plugin closes): the id is free at once for the next
        hello, from any address (a project reopened), instead of after `stale_after`. Only the
        owner's own address can release it; returns whether it did."""
        with self._lock:
            owner = self._owners.get(instance)
            if owner is None or owner.address != address:
                return False
            del self._owners[instance]
            return True

    def reply_address(self, instance: str, source: Address) -> Address:
        """Where replies for this instance go: the hello's reply port, else the source."""
        with self._lock:
            owner = self._owners.get(instance)
        if owner and owner.reply_port > 0:
            return owner.address[0], owner.reply_port
        return source

    def require(self, instance: str) -> None:
        """KeyError unless `instance` has said hello (now or before a restart)."""
        if instance not in self._states:
            raise KeyError(f"unknown instance '{instance}' (send /sideman/hello first)")

    def state(self, instance: str) -> InstanceState:
        with self._lock:
            if instance not in self._states:
                raise KeyError(f"unknown instance '{instance}' (send /sideman/hello first)")
            return _copy(self._states[instance])

    def update(self, instance: str, **changes) -> InstanceState:
        with self._lock:
            if instance not in self._states:
                raise KeyError(f"unknown instance '{instance}' (send /sideman/hello first)")
            state = self._states[instance]
            for key, value in changes.items():
                setattr(state, key, value)
            self._save(instance)
            return _copy(state)

    def add_take(self, instance: str, take_id: str) -> None:
        with self._lock:
            state = self._states[instance]
            if take_id not in state.takes:
                state.takes.append(take_id)
            state.selected_take = take_id
            self._save(instance)

    def drop_take(self, instance: str, take_id: str) -> None:
        """A deleted take leaves the history (its name and star stay, for a restore)."""
        with self._lock:
            state = self._states[instance]
            state.takes = [t for t in state.takes if t != take_id]
            if state.selected_take == take_id:
                state.selected_take = state.takes[-1] if state.takes else ""
            self._save(instance)

    def restore_takes(self, instance: str, take_ids: list[str]) -> None:
        """After a restart: make sure every take found on disk is in its instance's history."""
        check_instance_id(instance)
        with self._lock:
            state = self._states.setdefault(instance, InstanceState(instance))
            state.takes += [t for t in take_ids if t not in state.takes]
            state.selected_take = state.selected_take or (state.takes[-1] if state.takes else "")
            self._save(instance)

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._states)

    def _save(self, instance: str) -> None:
        path = self.folder / f"{check_instance_id(instance)}.json"
        if path.parent != self.folder:  # cannot happen after the grammar check; never write elsewhere
            raise InstanceIdError(f"bad instance id '{instance}'")
        data = json.dumps(_fields(self._states[instance]), indent=2, allow_nan=False).encode()
        atomic_write(path, data, durable=False)
