"""Bridge core, take player: transport-locked playback, checked against the analytic ppq -> sample map.

The expected output is computed here independently of the C++ code: transport position of each
output sample -> take position through the take's tempo map -> the take's frame there (exact on
whole frames, linear between frames, silence outside the take).
"""
from __future__ import annotations

import numpy as np
import pytest

from sideman.plugin_host import _bridge

SR = 48000.0


def noise_take(frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(frames, 2)).astype(np.float32)


def take_position(ppq, anchor: float, segments: list[tuple[float, float]]) -> np.ndarray:
    """Take sample position at `ppq` for a take whose tempo map is [(start_ppq, samples_per_beat), ...]."""
    ppq = np.asarray(ppq, dtype=np.float64)
    starts = np.array([s for s, _ in segments])
    spb = np.array([v for _, v in segments])
    assert starts[0] == anchor
    offsets = np.concatenate([[0.0], np.cumsum(np.diff(starts) * spb[:-1])])
    seg = np.clip(np.searchsorted(starts, ppq, side="right") - 1, 0, len(starts) - 1)
    return offsets[seg] + (ppq - starts[seg]) * spb[seg]


def read_take(take: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Frames of `take` at fractional positions: linear between frames, zero outside."""
    padded = np.concatenate([take.astype(np.float64), np.zeros((1, 2))])
    whole = np.floor(pos)
    frac = pos - whole
    snap_up = frac > 1 - 1e-4
    whole = np.where(snap_up, whole + 1, whole)
    frac = np.where(snap_up | (frac < 1e-4), 0.0, frac)

    def at(i):
        inside = (i >= 0) & (i < len(take))
        return np.where(inside[:, None], padded[np.where(inside, i, len(take)).astype(np.int64)], 0.0)

    return (at(whole) * (1 - frac[:, None]) + at(whole + 1) * frac[:, None]).astype(np.float32)


def play(player, blocks) -> np.ndarray:
    """blocks: iterable of (num_samples, ppq, bpm[, kwargs]); returns the concatenated output."""
    out = []
    for block in blocks:
        n, ppq, bpm, *rest = block
        kwargs = {"playing": True, "sample_rate": SR, **(rest[0] if rest else {})}
        out.append(player.process(n, ppq=ppq, bpm=bpm, **kwargs))
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


def continuous_blocks(total: int, size: int, bpm: float, start_ppq: float = 0.0, sr: float = SR):
    step = bpm / (60.0 * sr)
    return [(min(size, total - n), start_ppq + n * step, bpm, {"sample_rate": sr}) for n in range(0, total, size)]


def test_tempo_matched_take_is_copied_sample_for_sample_at_its_anchor():
    take = noise_take(3 * 24000)  # three beats at 120 bpm
    player = _bridge.TakePlayer()
    player.set_take(take, 2.0, bpm=120.0, sample_rate=SR)
    out = play(player, continuous_blocks(6 * 24000, 512, 120.0))
    expected = np.zeros_like(out)
    expected[2 * 24000: 5 * 24000] = take  # silence before the anchor and after the end
    np.testing.assert_array_equal(out, expected)


def test_samples_per_beat_and_bpm_describe_the_same_take():
    take = noise_take(30000)
    a, b = _bridge.TakePlayer(), _bridge.TakePlayer()
    a.set_take(take, 0.5, bpm=90.0, sample_rate=44100.0)
    b.set_take(take, 0.5, samples_per_beat=44100.0 * 60 / 90)
    blocks = continuous_blocks(40000, 256, 90.0, sr=44100.0)
    out = play(a, blocks)
    np.testing.assert_array_equal(out, play(b, blocks))
    expected = read_take(take, take_position(0.0 + np.arange(40000) * 90 / 60 / 44100, 0.5, [(0.5, 29400.0)]))
    np.testing.assert_array_equal(out, expected)


def host_blocks_for_tempo_map(host_map, total: int, sizes):
    """Blocks of a host whose tempo changes at the ppq positions of host_map [(ppq, bpm), ...];
    blocks are cut where the tempo changes (as hosts report tempo per block). Also returns the
    ppq of every output sample, computed analytically from the map."""
    bounds = []  # (first sample, ppq there, bpm)
    sample, ppq = 0.0, host_map[0][0]
    for i, (start, bpm) in enumerate(host_map):
        bounds.append((sample, start, bpm))
        if i + 1 < len(host_map):
            sample += (host_map[i + 1][0] - start) * 60 * SR / bpm
    assert all(float(s).is_integer() for s, _, _ in bounds), "tempo changes must fall on samples"
    n = np.arange(total, dtype=np.float64)
    idx = np.searchsorted([b[0] for b in bounds], n, side="right") - 1
    ppqs = np.array([bounds[i][1] for i in idx]) + (n - np.array([bounds[i][0] for i in idx])) * \
        np.array([bounds[i][2] for i in idx]) / (60 * SR)
    cuts = sorted({int(s) for s, _, _ in bounds} | {total})
    blocks, pos, k = [], 0, 0
    while pos < total:
        next_cut = min(c for c in cuts if c > pos)
        n_block = min(sizes[k % len(sizes)], next_cut - pos)
        seg = max(i for i, b in enumerate(bounds) if b[0] <= pos)
        blocks.append((n_block, float(ppqs[pos]), bounds[seg][2]))
        pos += n_block
        k += 1
    return blocks, ppqs


def test_take_rendered_for_a_tempo_map_stays_aligned_through_host_tempo_changes():
    # The take was rendered for the project's tempo map: 120 bpm, 90 bpm from beat 4, 150 from beat 6.
    tempo_map = [(0.0, 120.0), (4.0, 90.0), (6.0, 150.0)]
    take = noise_take(4 * 24000 + 2 * 32000 + 4 * 19200)
    player = _bridge.TakePlayer()
    player.set_take(take, 0.0, tempo_map=tempo_map, sample_rate=SR)
    total = len(take) + 1000
    blocks, ppqs = host_blocks_for_tempo_map(tempo_map, total, sizes=[300, 512, 77, 1024])
    out = play(player, blocks)
    expected = read_take(take, take_position(ppqs, 0.0, [(p, SR * 60 / b) for p, b in tempo_map]))
    # Tempo-matched: every sample lands on a whole take frame, so the take is copied exactly.
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out[:len(take)], take)
    # Spot check: the sample played at beat 5 is take frame 4 * 24000 + 32000.
    np.testing.assert_array_equal(out[int(np.argmin(np.abs(ppqs - 5.0)))], take[4 * 24000 + 32000])


def test_host_tempo_change_mid_take_keeps_ppq_alignment_by_varispeed():
    # A take rendered at 120 bpm; the host slows to 100 bpm at beat 2 and speeds to 133 at beat 3.
    take = noise_take(5 * 24000, seed=3)
    player = _bridge.TakePlayer()
    player.set_take(take, 0.0, bpm=120.0)
    host_map = [(0.0, 120.0), (2.0, 100.0), (3.0, 133.0)]  # 133 bpm: ppq steps are not binary fractions
    blocks, ppqs = host_blocks_for_tempo_map(host_map, 130000, sizes=[512, 64, 1000])
    out = play(player, blocks)
    expected = read_take(take, take_position(ppqs, 0.0, [(0.0, 24000.0)]))
    np.testing.assert_allclose(out, expected, atol=2e-6, rtol=0)
    # Before the change it is a plain copy; at beat 3 it plays take frame 3 * 24000.
    np.testing.assert_array_equal(out[:48000], take[:48000])
    at_beat_3 = int(round(48000 + 60 * SR / 100))
    np.testing.assert_array_equal(out[at_beat_3], take[72000])


def test_loop_wrap_inside_a_block_jumps_back_sample_accurately():
    take = noise_take(8 * 24000, seed=4)
    player = _bridge.TakePlayer()
    player.set_take(take, 0.0, bpm=120.0)
    loop = (1.25, 3.5)  # 54000 samples long; wraps fall inside blocks of 512
    step = 120 / 60 / SR
    ppqs = 0.0 + np.arange(200000) * step
    loop_len = loop[1] - loop[0]
    wrapped = np.where(ppqs >= loop[1], loop[0] + np.mod(ppqs - loop[1], loop_len), ppqs)
    blocks = [(512, float(wrapped[n]), 120.0, {"loop": loop}) for n in range(0, 200000, 512)]
    out = play(player, blocks)[:200000]
    expected = read_take(take, take_position(wrapped, 0.0, [(0.0, 24000.0)]))
    np.testing.assert_array_equal(out, expected)
    first_wrap = 3 * 24000 + 12000  # beat 3.5
    np.testing.assert_array_equal(out[first_wrap - 1], take[first_wrap - 1])
    np.testing.assert_array_equal(out[first_wrap], take[30000])  # back at beat 1.25


def test_host_reported_loop_jump_and_seeks_follow_the_block_ppq():
    take = noise_take(10 * 24000, seed=5)
    player = _bridge.TakePlayer()
    player.set_take(take, 0.0, bpm=120.0)
    starts = [0.0, 512 / 24000, 8.0, 1.0, 1.0 + 512 / 24000, 0.5, 9.99, 4.123456]  # forward, back, near the end
    out = play(player, [(512, p, 120.0) for p in starts])
    expected = np.concatenate([read_take(take, take_position(p + np.arange(512) / 24000, 0.0, [(0.0, 24000.0)]))
                               for p in starts])
    np.testing.assert_array_equal(out[:7 * 512], expected[:7 * 512])  # on whole frames: exact
    np.testing.assert_allclose(out[7 * 512:], expected[7 * 512:], atol=1e-6, rtol=0)  # between frames
    np.testing.assert_array_equal(out[3 * 512], take[24000])  # the seek to beat 1 lands on frame 24000


@pytest.mark.parametrize("bpm, loop, crossfade", [
    (120.0, None, 0),          # tempo-matched: plain copy
    (97.0, None, 0),           # varispeed
    (120.0, (0.7, 2.3), 0),    # loop wraps inside some block sizes, on boundaries of others
    (120.0, (0.7, 2.3), 48),   # crossfades at the wraps, carried across blocks
])
def test_block_size_does_not_change_the_output(bpm, loop, crossfade):
    take = noise_take(4 * 24000, seed=6)
    total = 4096 * 24
    step = bpm / 60 / SR
    outs = {}
    for size in (32, 64, 512, 4096):
        player = _bridge.TakePlayer(crossfade_samples=crossfade)
        player.set_take(take, 0.25, bpm=120.0)
        blocks = []
        for n in range(0, total, size):
            ppq = n * step
            if loop is not None and ppq >= loop[1]:  # where the host is at this block's first sample
                ppq = loop[0] + np.mod(ppq - loop[1], loop[1] - loop[0])
            blocks.append((size, ppq, bpm, {"loop": loop}))
        outs[size] = play(player, blocks)
    assert np.abs(outs[32]).max() > 0.5
    for size in (64, 512, 4096):
        if bpm == 120.0:
            np.testing.assert_array_equal(outs[size], outs[32])
        else:  # positions between frames: the same up to float rounding of ppq
            np.testing.assert_allclose(outs[size], outs[32], atol=1e-6, rtol=0)


def test_stopped_transport_is_silent_and_restart_resumes_exactly():
    take = noise_take(48000, seed=7)
    player = _bridge.TakePlayer()
    player.set_take(take, 0.0, bpm=120.0)
    assert np.abs(player.process(512, ppq=0.0, bpm=120.0, playing=True)).max() > 0
    stopped = player.process(512, ppq=512 / 24000, bpm=120.0, playing=False)
    assert stopped.shape == (512, 2) and not stopped.any()
    again = player.process(512, ppq=512 / 24000, bpm=120.0, playing=True)
    np.testing.assert_array_equal(again, take[512:1024])


def test_no_take_cleared_take_and_zero_length_take_are_silent():
    player = _bridge.TakePlayer()
    assert player.current_take_id == 0
    assert not player.process(256, ppq=0.0, bpm=120.0, playing=True).any()
    player.set_take(noise_take(1000), 0.0, bpm=120.0)
    assert player.process(256, ppq=0.0, bpm=120.0, playing=True).any()
    player.clear_take()
    assert not player.process(256, ppq=0.0, bpm=120.0, playing=True).any()
    player.set_take(np.zeros((0, 2), np.float32), 0.0, bpm=120.0)
    assert not player.process(256, ppq=0.0, bpm=120.0, playing=True).any()


def test_output_channel_layouts_and_mono_take():
    take = noise_take(2000, seed=8)
    player = _bridge.TakePlayer()
    player.set_take(take, 0.0, bpm=120.0)
    mono = player.process(100, ppq=0.0, bpm=120.0, playing=True, num_channels=1)
    np.testing.assert_allclose(mono[:, 0], 0.5 * (take[:100, 0] + take[:100, 1]), atol=1e-7)
    three = player.process(100, ppq=0.0, bpm=120.0, playing=True, num_channels=3)
    np.testing.assert_array_equal(three[:, :2], take[:100])
    assert not three[:, 2].any()
    player.set_take(take[:, 0], 0.0, bpm=120.0)  # a mono take plays on both sides
    out = player.process(100, ppq=0.0, bpm=120.0, playing=True)
    np.testing.assert_array_equal(out, np.repeat(take[:100, :1], 2, axis=1))


def test_host_sample_rate_is_honoured():
    take = noise_take(44100, seed=9)
    player = _bridge.TakePlayer()
    player.set_take(take, 0.0, bpm=120.0, sample_rate=44100.0)
    out = play(player, continuous_blocks(44100, 441, 120.0, sr=44100.0))
    np.testing.assert_array_equal(out, take)
    # The same take in a 96 kHz session: still locked to ppq (each take frame spans ~2.18 samples).
    out = play(player, continuous_blocks(20000, 1000, 120.0, sr=96000.0))
    expected = read_take(take, take_position(np.arange(20000) * 2 / 96000, 0.0, [(0.0, 22050.0)]))
    np.testing.assert_allclose(out, expected, atol=2e-6, rtol=0)


def test_take_swap_while_playing_retires_the_old_take_for_collection():
    base = _bridge.live_takes()
    a, b = noise_take(48000, seed=10), noise_take(48000, seed=11)
    player = _bridge.TakePlayer()
    id_a = player.set_take(a, 0.0, bpm=120.0)
    np.testing.assert_array_equal(player.process(512, ppq=0.0, bpm=120.0, playing=True), a[:512])
    assert player.current_take_id == id_a
    id_b = player.set_take(b, 0.0, bpm=120.0)
    assert id_b != id_a and player.has_pending_take and player.current_take_id == id_a
    assert _bridge.live_takes() == base + 2
    np.testing.assert_array_equal(player.process(512, ppq=512 / 24000, bpm=120.0, playing=True), b[512:1024])
    assert player.current_take_id == id_b and not player.has_pending_take
    assert _bridge.live_takes() == base + 2  # the audio side retired take A but did not free it
    assert player.collect_garbage() == 1
    assert _bridge.live_takes() == base + 1
    assert player.collect_garbage() == 0
    # A take replaced before the audio side saw it is freed by set_take at once.
    player.set_take(a, 0.0, bpm=120.0)
    assert _bridge.live_takes() == base + 2
    id_c = player.set_take(a, 0.0, bpm=120.0)
    assert _bridge.live_takes() == base + 2
    player.process(64, ppq=0.0, bpm=120.0, playing=True)
    assert player.current_take_id == id_c and player.collect_garbage() == 1
    del player
    assert _bridge.live_takes() == base


def test_uncollected_retire_queue_holds_new_takes_back_instead_of_leaking():
    base = _bridge.live_takes()
    player = _bridge.TakePlayer(retire_capacity=2)
    ids = []
    for seed in range(3):
        ids.append(player.set_take(noise_take(1000, seed=seed), 0.0, bpm=120.0))
        player.process(64, ppq=0.0, bpm=120.0, playing=True)
    # Take 0 sits in the retire queue; with one free slot left the audio side must not adopt take 2.
    assert player.current_take_id == ids[1] and player.has_pending_take
    assert _bridge.live_takes() == base + 3
    assert player.collect_garbage() == 1
    player.process(64, ppq=0.0, bpm=120.0, playing=True)
    assert player.current_take_id == ids[2]


def test_crossfade_on_seek_and_start():
    fade = 16
    take = noise_take(96000, seed=12)
    player = _bridge.TakePlayer(crossfade_samples=fade)
    player.set_take(take, 0.0, bpm=120.0)
    w = (np.arange(fade) + 1) / (fade + 1)
    start = player.process(64, ppq=0.0, bpm=120.0, playing=True)  # fades in from silence
    np.testing.assert_allclose(start[:fade], take[:fade] * w[:, None], atol=1e-6)
    np.testing.assert_array_equal(start[fade:], take[fade:64])
    jumped = player.process(64, ppq=2.0, bpm=120.0, playing=True)  # seek to frame 48000
    old, new = take[64:64 + fade], take[48000:48000 + fade]
    np.testing.assert_allclose(jumped[:fade], old * (1 - w[:, None]) + new * w[:, None], atol=1e-6)
    np.testing.assert_array_equal(jumped[fade:], take[48000 + fade:48064])
    # Host rounding of ppq (far below 1e-4 samples) still reads whole frames.
    np.testing.assert_array_equal(player.process(64, ppq=2.0 + 64 / 24000 + 1e-9, bpm=120.0, playing=True),
                                  take[48064:48128])
    # A block whose ppq is a little off (host quantisation, here 0.3 samples) is continuous:
    # it does not fade and keeps playing sample-contiguously on the player's own clock.
    nudged = player.process(64, ppq=2.0 + 128.3 / 24000, bpm=120.0, playing=True)
    np.testing.assert_array_equal(nudged, take[48128:48192])


def test_ardour_like_ppq_jitter_plays_the_take_without_a_seam():
    """Ardour 7 reports ppq off by up to ~1e-4 beat (2.4 samples at 120 bpm) from one block to
    the next; the take must still come out sample-contiguous, with no fades."""
    take = noise_take(30000, seed=21)
    player = _bridge.TakePlayer(crossfade_samples=32)
    player.set_take(take, 0.0, bpm=120.0)
    rng = np.random.default_rng(0)
    blocks = []
    for k in range(20):
        jitter = 0.0 if k == 0 else rng.uniform(-1e-4, 1e-4)
        blocks.append(player.process(1024, ppq=k * 1024 / 24000 + jitter, bpm=120.0, playing=True))
    out = np.concatenate(blocks)
    w = (np.arange(32) + 1) / 33
    np.testing.assert_allclose(out[:32], take[:32] * w[:, None], atol=1e-6)  # fade-in at the start only
    np.testing.assert_array_equal(out[32:], take[32:20 * 1024])


def test_crossfade_on_take_swap_keeps_the_old_take_until_the_fade_ends():
    fade = 40
    base = _bridge.live_takes()
    a, b = noise_take(20000, seed=13), noise_take(20000, seed=14)
    player = _bridge.TakePlayer(crossfade_samples=fade)
    player.set_take(a, 0.0, bpm=120.0)
    player.process(100, ppq=0.0, bpm=120.0, playing=True)
    player.set_take(b, 0.0, bpm=120.0)
    first = player.process(32, ppq=100 / 24000, bpm=120.0, playing=True)
    assert player.collect_garbage() == 0  # take A is still fading out
    second = player.process(32, ppq=132 / 24000, bpm=120.0, playing=True)
    out = np.concatenate([first, second])
    w = (np.arange(fade) + 1) / (fade + 1)
    np.testing.assert_allclose(out[:fade], a[100:140] * (1 - w[:, None]) + b[100:140] * w[:, None], atol=1e-6)
    np.testing.assert_array_equal(out[fade:], b[140:164])
    assert player.collect_garbage() == 1 and _bridge.live_takes() == base + 1


def test_set_take_rejects_bad_input():
    player = _bridge.TakePlayer()
    take = noise_take(100)
    with pytest.raises(ValueError, match="exactly one"):
        player.set_take(take, 0.0, bpm=120.0, samples_per_beat=24000.0)
    with pytest.raises(ValueError, match="exactly one"):
        player.set_take(take, 0.0)
    with pytest.raises(ValueError, match="start at the anchor"):
        player.set_take(take, 1.0, tempo_map=[(0.0, 120.0)])
    with pytest.raises(ValueError, match="increase"):
        player.set_take(take, 0.0, tempo_map=[(0.0, 120.0), (0.0, 90.0)])
    with pytest.raises(ValueError, match="positive"):
        player.set_take(take, 0.0, samples_per_beat=0.0)
    with pytest.raises(ValueError, match="frames"):
        player.set_take(np.zeros((10, 3), np.float32), 0.0, bpm=120.0)
    with pytest.raises(ValueError, match="crossfade"):
        _bridge.TakePlayer(crossfade_samples=-1)
    with pytest.raises(ValueError, match="2 slots"):
        _bridge.TakePlayer(retire_capacity=1)
    assert player.current_take_id == 0 and not player.has_pending_take
