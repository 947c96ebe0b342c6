"""Takes on disk: generated stems written atomically into the session folder, never overwritten.

    SESSION/takes/take-<hash>.wav    the processed stem at the DAW's sample rate (float32 WAV)
    SESSION/takes/take-<hash>.json   sidecar: instance, prompt, seed, settings, bundle hash,
                                     context hash, anchor ppq, tempo, created time
    SESSION/trash/take-<hash>.*      deleted takes, until restored (nothing is destroyed)

The name is a hash of the audio and its sidecar, so two different takes never share a name
and an identical take is written only once. A take becomes visible only after both files
are complete (audio first, sidecar last), so a killed job leaves no partial take. The
sidecar is strict JSON: a NaN or infinite value is refused before anything is written.

Deleting moves a take into the trash, audio first and sidecar last; restoring moves it
back, sidecar first. A kill between the two moves leaves a sidecar whose audio is in the
trash, and the next start completes the move to the trash: the take is deleted, never lost.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sideman.data.files import atomic_write



@dataclass(frozen=True)
class Take:
    take_id: str
    instance: str
    path: Path  # the audio file
    sample_rate: int
    anchor_ppq: float
    meta: dict

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")


def audio_sha256(audio: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes()).hexdigest()


class TakeStore:
    """All takes of a session folder, by instance, in creation order."""

    def __init__(self, session: Path):
        self.folder = Path(session) / "takes"
        self.trash = Path(session) / "trash"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.trash.mkdir(exist_ok=True)
        self.finished_deletes = self._finish_deletes()
        self.removed_orphans = self._remove_orphans()

    def _finish_deletes(self) -> list[str]:
        """Sidecars whose audio is already in the trash (a kill mid-delete or mid-restore) follow it."""
        done = []
        for sidecar in self.folder.glob("take-*.json"):
            if not sidecar.with_suffix(".wav").exists() and (self.trash / sidecar.with_suffix(".wav").name).exists():
                sidecar.replace(self.trash / sidecar.name)
                done.append(sidecar.stem)
        return done

    def delete(self, take_id: str) -> Take:
        """Move a take into the session's trash (audio, then sidecar); returns it."""
        take = self.get(take_id)
        take.path.replace(self.trash / take.path.name)
        take.sidecar.replace(self.trash / take.sidecar.name)
        return take

    def in_trash(self, take_id: str) -> dict:
        """The sidecar of a take in the trash; KeyError if it is not there."""
        self._check_id(take_id)
        try:
            return json.loads((self.trash / f"{take_id}.json").read_text())
        except (OSError, ValueError) as exc:
            raise KeyError(f"no take '{take_id}' in the trash") from exc

    def restore(self, take_id: str) -> Take:
        """Move a take back from the trash (sidecar, then audio); returns it."""
        self._check_id(take_id)
        sidecar, audio = self.trash / f"{take_id}.json", self.trash / f"{take_id}.wav"
        if not (sidecar.is_file() and audio.is_file()):
            raise KeyError(f"no take '{take_id}' in the trash")
        sidecar.replace(self.folder / sidecar.name)
        audio.replace(self.folder / audio.name)
        return self.get(take_id)

    def _remove_orphans(self) -> list[str]:
        """Delete what a killed job may have left: temporary files, audio without sidecar."""
        removed = []
        for path in self.folder.iterdir():
            orphan = path.name.endswith(".tmp") or (path.suffix == ".wav" and not path.with_suffix(".json").exists())
            if orphan and path.is_file():
                path.unlink()
                removed.append(path.name)
        return removed

    def write(self, instance: str, audio: np.ndarray, sample_rate: int, anchor_ppq: float,
              meta: dict) -> Take:
        """Write a (2, N) float take and its sidecar atomically; returns the Take."""
        buffer = io.BytesIO()
        sf.write(buffer, np.ascontiguousarray(audio.T), sample_rate, format="WAV", subtype="FLOAT")
        data = buffer.getvalue()
        sidecar = {**meta, "instance": instance, "sample_rate": sample_rate,
                   "anchor_ppq": anchor_ppq, "frames": int(audio.shape[1]),
                   "audio_sha256": hashlib.sha256(data).hexdigest(), "created": time.time()}
        # strict JSON (no NaN or Infinity), serialised before anything is written
        digest = hashlib.sha256(data + json.dumps({k: v for k, v in sidecar.items() if k != "created"},
                                                  sort_keys=True, allow_nan=False).encode()).hexdigest()
        take_id = f"take-{digest[:16]}"
        sidecar["take_id"] = take_id
        text = json.dumps(sidecar, indent=2, allow_nan=False).encode()
        path = self.folder / f"{take_id}.wav"
        if not path.with_suffix(".json").exists():
            atomic_write(path, data)
            atomic_write(path.with_suffix(".json"), text)
        return self.get(take_id)

    @staticmethod
    def _check_id(take_id: str) -> None:
        if not take_id.startswith("take-") or "/" in take_id or not take_id[5:].isalnum():
            raise KeyError(f"bad take id '{take_id}'")

    def get(self, take_id: str) -> Take:
        self._check_id(take_id)
        sidecar = self.folder / f"{take_id}.json"
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            raise KeyError(f"no take '{take_id}'") from exc
        return Take(take_id, meta["instance"], sidecar.with_suffix(".wav"), meta["sample_rate"],
                    meta["anchor_ppq"], meta)

    def by_instance(self) -> dict[str, list[Take]]:
        """Every complete take (sidecar present), grouped by instance, oldest first."""
        takes = []
        for sidecar in self.folder.glob("take-*.json"):
            try:
                takes.append(self.get(sidecar.stem))
            except (KeyError, ValueError):
                continue
        out: dict[str, list[Take]] = {}
        for take in sorted(takes, key=lambda t: t.meta.get("created", 0.0)):
            out.setdefault(take.instance, []).append(take)
        return out

