"""PyTorch access to training pairs: a map-style Dataset and a DataLoader factory.

Items are dicts of float32 tensors (target, context, clap_audio: (2, samples) at 48 kHz)
and metadata (caption, tags, song_id, ...). Because a pair is a pure function of
(seed, epoch, index), any number of workers gives the same batches.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from sideman.data.pairs import PairSampler

AUDIO_KEYS = ("target", "context", "clap_audio")


class PairDataset(Dataset):
    """`length` pairs per epoch from a PairSampler; call `set_epoch` to draw new ones."""

    def __init__(self, sampler: PairSampler, length: int | None = None, epoch: int = 0):
        self.sampler = sampler
        self.length = length or 8 * len(sampler.song_ids)
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        pair = self.sampler.sample(index, self.epoch)
        item = pair.describe()
        for key in AUDIO_KEYS:
            item[key] = torch.from_numpy(getattr(pair, key))
        return item


def collate_pairs(items: list[dict]) -> dict:
    """Stack audio into (B, 2, samples) tensors; keep metadata as lists."""
    batch = {key: torch.stack([it[key] for it in items]) for key in AUDIO_KEYS}
    for key in items[0]:
        if key not in AUDIO_KEYS:
            batch[key] = [it[key] for it in items]
    return batch


def pair_loader(dataset: PairDataset, batch_size: int, workers: int = 0,
                shuffle: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=shuffle,
                      collate_fn=collate_pairs, persistent_workers=False, drop_last=False)
