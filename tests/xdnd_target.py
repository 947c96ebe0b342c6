"""A minimal X11 drop target (XDND version 5, the protocol desktop applications and DAWs on
Linux accept file drags by), for testing the plugin's drag source: a window that accepts a
drop of text/uri-list and records the files it was handed.

Target side of https://freedesktop.org/wiki/Specifications/XDND/: announce XdndAware; answer
each XdndPosition with XdndStatus (accept, copy); on XdndDrop convert the XdndSelection to
text/uri-list, read it, send XdndFinished.
"""
from __future__ import annotations

import threading
import time
from urllib.parse import unquote, urlparse

from Xlib import X, Xatom, display
from Xlib.protocol import event


class DropTarget:
    """A window at (x, y) of size (w, h) on `display_name`, serving drops on its own thread."""

    def __init__(self, display_name: str, x: int, y: int, w: int = 240, h: int = 240):
        self.d = display.Display(display_name)
        self.files: list[str] = []
        self.types: list[str] = []
        self.dropped = threading.Event()
        atom = self.d.intern_atom
        self.a = {n: atom(n) for n in ("XdndAware", "XdndEnter", "XdndPosition", "XdndStatus", "XdndLeave",
                                       "XdndDrop", "XdndFinished", "XdndSelection", "XdndActionCopy",
                                       "XdndTypeList", "text/uri-list", "SIDEMAN_DROP")}
        screen = self.d.screen()
        self.window = screen.root.create_window(x, y, w, h, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
                                                background_pixel=screen.white_pixel,
                                                event_mask=X.StructureNotifyMask | X.PropertyChangeMask,
                                                override_redirect=1)
        self.window.set_wm_name("drop target")
        self.window.change_property(self.a["XdndAware"], Xatom.ATOM, 32, [5])
        self.window.map()
        self.d.sync()
        self._source = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _send(self, to: int, kind: str, data: list[int]) -> None:
        target = self.d.create_resource_object("window", to)
        message = event.ClientMessage(window=target, client_type=self.a[kind], data=(32, (data + [0] * 5)[:5]))
        target.send_event(message, event_mask=0)
        self.d.flush()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.d.pending_events():
                time.sleep(0.01)
                continue
            e = self.d.next_event()
            if e.type == X.ClientMessage:
                kind, data = e.client_type, e.data[1]
                if kind == self.a["XdndEnter"]:
                    self._source = data[0]
                    self.types = [self.d.get_atom_name(t) for t in data[2:5] if t]
                elif kind == self.a["XdndPosition"]:
                    # accept (1), keep sending positions (2); the whole window; copy
                    self._send(data[0], "XdndStatus", [self.window.id, 3, 0, 0, self.a["XdndActionCopy"]])
                elif kind == self.a["XdndDrop"]:
                    self.window.convert_selection(self.a["XdndSelection"], self.a["text/uri-list"],
                                                  self.a["SIDEMAN_DROP"], data[2])
                    self.d.flush()
            elif e.type == X.SelectionNotify and e.property != X.NONE:
                value = self.window.get_full_property(self.a["SIDEMAN_DROP"], X.AnyPropertyType)
                text = bytes(value.value).decode("utf-8", "replace") if value else ""
                self.files = [unquote(urlparse(u.strip()).path) for u in text.splitlines()
                              if u.strip() and not u.startswith("#")]
                if self._source is not None:
                    self._send(self._source, "XdndFinished", [self.window.id, 1, self.a["XdndActionCopy"]])
                self.dropped.set()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.d.close()
