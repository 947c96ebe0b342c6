"""Variations, bar inpainting, loops and the prompt/style mix over OSC, end to end on
loopback with a tiny real bundle (the plugin's path to Diff-A-Riff's controls)."""
import json

import numpy as np
import pytest
import soundfile as sf

from test_host import Client, engine, host, write_context  # noqa: F401  (fixtures)
from sideman.plugin_host.host import Host
from sideman.plugin_host.instances import _state_from_json
from sideman.plugin_host.postprocess import process_take


@pytest.fixture(scope="module")
def band_engine(tmp_path_factory):
    """A tiny random C-DiT on the band codec: its decoding is deterministic and close to the
    input, so what inpainting keeps can be measured against the codec's own error."""
    from dataclasses import replace

    from bundle_fixture import perturb
    from sideman.export.bundle import export_bundle
    from sideman.models.consistency import ConsistencyPrecond
    from sideman.models.dit import PRESETS, DiT
    from sideman.numerics.band_codec import BandCodec
    from sideman.plugin_host.engine import OnnxEngine

    codec = BandCodec()
    dit = perturb(ConsistencyPrecond(DiT(replace(PRESETS["tiny"], latent_channels=codec.latent_dim))), seed=5)
    return OnnxEngine(export_bundle(tmp_path_factory.mktemp("band") / "b", codec, dit, name="tiny-band"),
                      intra_threads=1)


@pytest.fixture
def band_host(band_engine, tmp_path):
    h = Host(band_engine, tmp_path / "session", tmp_path / "cache", port=0).start()
    yield h
    h.stop()

GEN = "isfffii"  # generate's type tags


def _generate(client, instance, req, ctx, seconds):
    client.send(f"/sideman/{instance}/generate", req, ctx, seconds, 0.0, 120.0, 4, 48000, types=GEN)
    address, params = client.until("done", req)[-1]
    assert address.endswith("/done"), params
    return params[1], params[2]


def _log_spectra(audio, n=2048, hop=1024):
    """(frames, bins) dB magnitudes of the mono mix, each frame's mean level removed."""
    mono = audio.mean(0)
    frames = np.lib.stride_tricks.sliding_window_view(mono, n)[::hop] * np.hanning(n)
    db = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=-1)) + 1e-6)
    return db - db.mean(axis=1, keepdims=True)


def test_vary_and_inpaint_start_from_the_selected_take(band_host):
    host = band_host
    client = Client(host)
    client.hello("keys")
    client.send("/sideman/keys/vary", 2, "", 2.0, 0.0, 120.0, 4, 48000, 0.5, types=GEN + "f")
    address, params = client.until("error", 2)[-1]
    assert address.endswith("/error") and "no take is selected" in params[1]
    ctx = write_context(host, 8.0)
    base_id, base_path = _generate(client, "keys", 3, ctx, 8.0)  # 4 bars of 2 s
    base = sf.read(base_path, dtype="float32")[0].T
    # strength 0 gives the take back through the codec; 1 a fresh take
    client.send("/sideman/keys/vary", 4, ctx, 8.0, 0.0, 120.0, 4, 48000, 0.0, types=GEN + "f")
    replies = client.until("done", 4)
    assert replies[0][1] == [4, "vary"]
    same_id, same_path = replies[-1][1][1:3]
    same = sf.read(same_path, dtype="float32")[0].T
    sidecar = json.loads(open(same_path[:-4] + ".json").read())
    assert sidecar["from_take"] == base_id and sidecar["strength"] == 0.0
    # the variation is now selected; select the base again and inpaint bar 2 (seconds 2..4)
    client.send("/sideman/keys/take/select", 5, base_id, types="is")
    client.until("take", 5)
    client.send("/sideman/keys/inpaint", 6, ctx, 8.0, 0.0, 120.0, 4, 48000, 1.0, 2.0, types=GEN + "ff")
    new_path = client.until("done", 6)[-1][1][2]
    new = sf.read(new_path, dtype="float32")[0].T
    assert json.loads(open(new_path[:-4] + ".json").read())["inpainted_bars"] == [1.0, 2.0]
    sr, margin = 48000, 4800  # 0.1 s either side of a boundary: the codec's windows overlap it
    kept = np.r_[margin:2 * sr - margin, 4 * sr + margin:8 * sr - margin]
    made = np.r_[2 * sr + margin:4 * sr - margin]
    # The band codec keeps magnitudes and makes phase anew, and each take is loudness-matched
    # as a whole: so the bars are compared as log spectra with their mean level removed.
    a, b, c = _log_spectra(base), _log_spectra(same), _log_spectra(new)
    hop = 1024
    kept_frames = np.r_[margin // hop:(2 * sr - margin) // hop, (4 * sr + margin) // hop:(8 * sr - margin) // hop - 1]
    made_frames = np.r_[(2 * sr + margin) // hop:(4 * sr - margin) // hop]
    codec_error = float(np.mean(np.abs(b - a)[kept_frames]))   # the take through the codec alone
    kept_change = float(np.mean(np.abs(c - a)[kept_frames]))
    made_change = float(np.mean(np.abs(c - a)[made_frames]))
    print(f"inpainting, mean |log-spectrum change| in dB: kept bars {kept_change:.2f} (the codec's own "
          f"error {codec_error:.2f}), inpainted bar {made_change:.2f}")
    assert kept_change <= 1.25 * codec_error, (kept_change, codec_error)
    assert made_change > 1.5 * kept_change, (made_change, kept_change)
    for bars in ((2.0, 2.0), (3.0, 5.0)):  # empty, past the take's 4 bars
        client.send("/sideman/keys/inpaint", 7, ctx, 8.0, 0.0, 120.0, 4, 48000, *bars, types=GEN + "ff")
        address, params = client.until("error", 7)[-1]
        assert address.endswith("/error") and "not a range inside the take's 4 bars" in params[1]


def test_loop_and_clap_mix_are_instance_settings_that_takes_record(host):
    client = Client(host)
    client.hello("pad")
    client.send("/sideman/pad/loop", 2, 1, types="ii")
    client.send("/sideman/pad/clap_mix", 3, 0.25, types="if")
    assert client.until("ack", 3)[-1][1] == [3, "clap_mix"]
    client.send("/sideman/pad/clap_mix", 4, 1.5, types="if")
    assert "within 0..1" in client.until("error", 4)[-1][1][1]
    saved = json.loads((host.session / "instances" / "pad.json").read_text())
    assert saved["loop"] is True and saved["clap_mix"] == 0.25
    _, path = _generate(client, "pad", 5, write_context(host), 2.0)
    sidecar = json.loads(open(path[:-4] + ".json").read())
    assert sidecar["loop"] is True and sidecar["clap_mix"] == 0.25


def test_a_loop_take_has_no_edge_fades():
    """A looped take starts and ends at full level (rendered from before its start, the
    lead cut off); a plain take fades in and out over 10 ms."""
    audio = np.full((2, 96000), 0.5, np.float32)
    loop = process_take(audio, 48000, None, 44100, 2.0, 120.0, 4, loop=True)
    plain = process_take(audio, 48000, None, 44100, 2.0, 120.0, 4)
    assert loop.shape == plain.shape == (2, 88200)
    assert np.allclose(loop[:, :10], 0.5, atol=0.01) and np.allclose(loop[:, -10:-2], 0.5, atol=0.01)
    assert abs(plain[0, 0]) < 1e-3 and abs(plain[0, -1]) < 0.01


def test_instance_files_from_before_loop_and_clap_mix_still_load():
    old = {"instance_id": "a", "prompt": "", "style_path": "", "seed": 0, "steps": 5,
           "guidance_context": 1.25, "guidance_clap": 1.25, "selected_take": "", "takes": []}
    state = _state_from_json(old)
    assert state.loop is False and state.clap_mix == 0.5
    with pytest.raises(ValueError, match="loop"):
        _state_from_json({**old, "loop": 1})


def test_take_browser_lists_renames_stars_deletes_to_trash_and_restores(host, engine, tmp_path):
    client = Client(host)
    client.hello("gtr")
    ctx = write_context(host)
    ids = []
    for req in range(2, 12):  # ten takes: two pages of take/list
        client.send("/sideman/gtr/seed", 100 + req, req, types="ii")
        ids.append(_generate(client, "gtr", req, ctx, 2.0)[0])
    client.send("/sideman/gtr/take/rename", 20, ids[0], "verse idea", types="iss")
    client.send("/sideman/gtr/take/star", 21, ids[1], 1, types="isi")
    assert client.until("ack", 21)[-1][1] == [21, "take/star"]

    def listing(req, offset):
        client.send("/sideman/gtr/take/list", req, offset, types="ii")
        replies = client.until("end", req)
        items = [p for a, p in replies if a.endswith("/take/item")]
        return items, replies[-1][1]

    first, end = listing(22, 0)
    assert end == [22, 0, 10] and [p[1] for p in first] == ids[:8]
    assert first[0][2] == "verse idea" and [p[6] for p in first[:3]] == [0, 1, 0]
    assert first[3][4] == 5 and first[3][5].endswith("Z")  # seed, creation time (UTC)
    second, _ = listing(23, 8)
    assert [p[1] for p in second] == ids[8:]
    client.send("/sideman/gtr/take/rename", 24, ids[0], "bad\nname", types="iss")
    assert "printable" in client.until("error", 24)[-1][1][1]

    # delete: the files move to SESSION/trash, the history and selection follow
    client.send("/sideman/gtr/take/delete", 25, ids[-1], types="is")
    client.until("ack", 25)
    assert (host.session / "trash" / f"{ids[-1]}.wav").is_file()
    assert not (host.session / "takes" / f"{ids[-1]}.wav").exists()
    state = host.instances.state("gtr")
    assert ids[-1] not in state.takes and state.selected_take == ids[-2]
    client.send("/sideman/gtr/take/select", 26, ids[-1], types="is")
    assert "no take" in client.until("error", 26)[-1][1][1]
    client.send("/sideman/gtr/take/restore", 27, ids[-1], types="is")
    client.until("ack", 27)
    assert host.instances.state("gtr").selected_take == ids[-1]
    assert (host.session / "takes" / f"{ids[-1]}.wav").is_file()
    client.send("/sideman/gtr/take/restore", 28, ids[-1], types="is")
    assert "in the trash" in client.until("error", 28)[-1][1][1]

    # another instance can neither delete nor restore these takes
    other = Client(host)
    other.hello("keys")
    other.send("/sideman/keys/take/delete", 29, ids[0], types="is")
    assert "belongs to another instance" in other.until("error", 29)[-1][1][1]

    # a state save and restore: a new host on the same session keeps names, stars, selection
    client.send("/sideman/gtr/take/delete", 30, ids[2], types="is")
    client.until("ack", 30)
    host.stop()
    again = Host(engine, host.session, host.cache, port=0).start()
    try:
        st = again.instances.state("gtr")
        assert st.names == {ids[0]: "verse idea"} and st.starred == [ids[1]]
        assert st.selected_take == ids[-1] and ids[2] not in st.takes and len(st.takes) == 9
    finally:
        again.stop()


def test_a_kill_between_the_two_moves_of_a_delete_loses_nothing(tmp_path):
    """Audio moved to the trash, sidecar not yet: the next start finishes the delete."""
    from sideman.plugin_host.takes import TakeStore

    store = TakeStore(tmp_path)
    take = store.write("a", np.zeros((2, 480), np.float32), 48000, 0.0, {"prompt": "x"})
    take.path.replace(store.trash / take.path.name)  # killed here
    again = TakeStore(tmp_path)
    assert again.finished_deletes == [take.take_id] and again.removed_orphans == []
    assert (store.trash / take.sidecar.name).is_file() and again.by_instance() == {}
    assert again.restore(take.take_id).path.is_file()


def test_an_instance_switches_model_and_its_takes_say_which(engine, tmp_path):
    """The host lists the default model and the bundles of its models folder; an instance
    switches to one, its takes record it, and a name the host does not list is refused."""
    from bundle_fixture import make_tiny_bundle
    from sideman.plugin_host.engine import OnnxEngine
    from sideman.plugin_host.models import ModelShelf

    models = tmp_path / "models"
    make_tiny_bundle(models / "bass-v2", seed=3)
    loads = []
    shelf = ModelShelf(engine, models, loader=lambda path: loads.append(path.name) or OnnxEngine(path, intra_threads=1))
    host = Host(engine, tmp_path / "session", tmp_path / "cache", port=0, models=shelf).start()
    try:
        client = Client(host)
        client.hello("b")
        client.send("/sideman/b/models", 2, types="i")
        replies = client.until("end", 2)
        assert [p[1:] for a, p in replies if a.endswith("/model/item")] == [["default", 1], ["bass-v2", 0]]
        assert replies[-1][1] == [2, 2]
        for name in ("../models/bass-v2", "nope"):
            client.send("/sideman/b/model", 3, name, types="is")
            assert "model" in client.until("error", 3)[-1][1][1]
        client.send("/sideman/b/model", 4, "bass-v2", types="is")
        client.until("ack", 4)
        assert loads == []  # loaded by the first job that needs it, not by the switch
        _, path = _generate(client, "b", 5, write_context(host), 2.0)
        sidecar = json.loads(open(path[:-4] + ".json").read())
        assert sidecar["model"] == "bass-v2" and sidecar["bundle"] != engine.bundle_id and loads == ["bass-v2"]
        client.send("/sideman/b/model", 6, "default", types="is")
        client.until("ack", 6)
        _, path = _generate(client, "b", 7, write_context(host), 2.0)
        assert json.loads(open(path[:-4] + ".json").read())["bundle"] == engine.bundle_id
    finally:
        host.stop()


def test_queue_position_counts_the_jobs_that_run_first():
    """status's last argument: the running job plus the queued jobs of instances ahead."""
    import threading

    from sideman.plugin_host.jobs import Job, JobQueue

    queue = JobQueue(max_total=8)
    started, release = threading.Event(), threading.Event()

    def hold(job):
        started.set()
        release.wait(10)

    try:
        dropped = lambda job, why: None  # noqa: E731
        queue.submit(Job("a", 1, work=hold, on_dropped=dropped))
        assert started.wait(10)
        queue.submit(Job("b", 2, work=lambda job: None, on_dropped=dropped))
        queue.submit(Job("c", 3, work=lambda job: None, on_dropped=dropped))
        assert [queue.ahead(i) for i in ("a", "b", "c", "d")] == [0, 1, 2, 0]
        queue.cancel("b")
        assert queue.ahead("c") == 1
    finally:
        release.set()
        queue.close()
