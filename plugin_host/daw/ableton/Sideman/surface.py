"""The Sideman control surface: receive "take ready" messages and place takes on tracks.

Live calls update_display() about every 100 ms on its main thread; each call drains the
non-blocking UDP socket (no threads, so the Live API is only touched where it is allowed).

    /sideman/take_ready  s:path  f:anchor_beats  s:name

creates a new audio track at the end of the set, names it, and creates an arrangement clip
of the file at the anchor (Track.create_audio_clip, Live 12.0.5+), unwarped: the take was
rendered at the song's tempo and must play as it is. On an older Live, the
status bar asks the user to drag the take from the plugin instead. Anything else arriving
on the port is logged (Live's Log.txt) and ignored.
"""
import os
import socket

from _Framework.ControlSurface import ControlSurface

from .osc_decode import OscError, decode_packet

DEFAULT_PORT = 9061  # `sideman serve --ableton` sends here by default; $SIDEMAN_ABLETON_PORT overrides
TAKE_READY = "/sideman/take_ready"
MAX_DATAGRAMS_PER_TICK = 16


class Sideman(ControlSurface):

    def __init__(self, c_instance):
        ControlSurface.__init__(self, c_instance)
        self._sock = None
        self.port = None
        port = int(os.environ.get("SIDEMAN_ABLETON_PORT", DEFAULT_PORT))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            sock.close()
            self.log_message("Sideman: cannot listen on UDP port %d: %s" % (port, exc))
            self.show_message("Sideman: UDP port %d is in use, takes will not be placed" % port)
            return
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self.log_message("Sideman: listening for takes on udp://127.0.0.1:%d" % self.port)

    def update_display(self):
        ControlSurface.update_display(self)
        self.poll()

    def disconnect(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        ControlSurface.disconnect(self)

    def poll(self):
        """Handle what has arrived since the last tick (a bounded number of datagrams)."""
        for _ in range(MAX_DATAGRAMS_PER_TICK):
            if self._sock is None:
                return
            try:
                data = self._sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log_message("Sideman: receive failed: %s" % exc)
                return
            try:
                messages = decode_packet(data)
            except OscError as exc:
                self.log_message("Sideman: ignored a malformed datagram (%s)" % exc)
                continue
            for address, args in messages:
                self._handle(address, args)

    def _handle(self, address, args):
        kinds = [type(a) for a in args]
        if address != TAKE_READY or kinds not in ([str, float, str], [str, int, str]):
            self.log_message("Sideman: ignored %s %r" % (address, args))
            return
        self.place_take(args[0], float(args[1]), args[2])

    def place_take(self, path, anchor_beats, name):
        """A new audio track named `name` with `path` in the arrangement at `anchor_beats`."""
        song = self.song()
        if not hasattr(song.master_track, "create_audio_clip"):
            self.show_message("Sideman: take '%s' is ready - drag it from the Sideman plugin onto a "
                              "track (Live 12.0.5 or later places takes automatically)" % name)
            return
        if not os.path.isfile(path):
            self.show_message("Sideman: the take file %s is missing" % path)
            return
        index = len(song.tracks)
        song.create_audio_track(index)
        track = song.tracks[index]
        track.name = name
        try:
            clip = track.create_audio_clip(path, max(0.0, anchor_beats))
        except Exception as exc:  # Live raises RuntimeError for unreadable files or bad positions
            song.delete_track(index)
            self.show_message("Sideman: Live could not place %s (%s)" % (path, exc))
            return
        if clip is not None and clip.warping:
            clip.warping = False  # the take is rendered at the song's tempo; Auto-Warp could guess another
        self.show_message("Sideman: placed '%s' at beat %g" % (name, anchor_beats))
