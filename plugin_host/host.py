"""The host process: an OSC server on UDP that serves every Sideman plugin instance.

One receiving thread parses and answers control messages at once (ack, settings, status,
ping); generation runs on the job worker (plugin_host.jobs). Replies go to the source
address of the request, or to the reply port an instance named in its hello.

What holds, whatever a client sends (docs/osc.md, "Limits and safety"):
- every field is checked against the schema (osc_protocol) and the host's limits before
  anything is stored or queued;
- any exception while handling a datagram becomes an error reply that always encodes
  (`_fail`), sending never raises (`send`), and the receive loop catches everything;
- the job worker outlives its jobs and callbacks, and a supervisor restarts it (jobs);
- paths are checked when a request arrives and again, without following symbolic links,
  when the worker reads them (paths); instance ids become file names only after the id
  grammar (instances); temporary files live in SESSION/tmp and are swept on start;
- instances, queued jobs, messages per datagram and the take length are bounded (Limits).
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np

from sideman.plugin_host import osc_protocol as osc
from sideman.plugin_host.engine_api import Controls, Engine, GenerationSettings
from sideman.plugin_host.instances import Address, InstanceIdError, InstanceRegistry
from sideman.plugin_host.jobs import Cancelled, Job, JobQueue, QueueClosed
from sideman.plugin_host.limits import Limits
from sideman.plugin_host.models import DEFAULT, ModelShelf
from sideman.plugin_host.paths import FolderPolicy
from sideman.plugin_host.postprocess import bar_aligned_seconds, bar_seconds, process_take
from sideman.plugin_host.takes import TakeStore

log = logging.getLogger("sideman.host")
VERSION = "0.1.0"


# Exceptions that are the client's doing: answered with their message. Anything else is a
# bug of the host, logged with its traceback and answered 'internal error'.
CLIENT_ERRORS = (ValueError, KeyError, PermissionError, QueueClosed)


def edit_seed(seed: int, take_id: str) -> int:
    """The noise seed of a variation or inpainting of `take_id` at the instance's `seed`."""
    offset = int.from_bytes(hashlib.sha256(take_id.encode()).digest()[:4], "big")
    return (seed + offset) % (osc.INT32[1] + 1)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Host:
    """Binds `host:port` (port 0 picks a free one) and serves until `stop()` or /sideman/quit."""

    def __init__(self, engine: Engine, session: Path, cache: Path, host: str = "127.0.0.1",
                 port: int = 9050, bundle_name: str = "", limits: Limits | None = None,
                 models: ModelShelf | None = None):
        self.engine = engine  # the default model's
        self.models = models or ModelShelf(engine)
        self.limits = limits or Limits()
        self.bundle_name = bundle_name or engine.bundle_id[:12]
        self.session, self.cache = Path(session), Path(cache)
        self.policy = FolderPolicy(self.session, self.cache)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.bind((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self._send_failures = 0
        try:
            self._open_session()
        except BaseException:
            self.sock.close()
            raise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.take_listeners: list = []  # callables (instance, Take) run after each done reply

    def _open_session(self) -> None:
        if not is_loopback(self.address[0]):
            log.warning("listening on %s:%d, beyond this computer: the host has no authentication, "
                        "anyone who can reach this port can generate and write takes into %s",
                        self.address[0], self.address[1], self.session)
        # Temporary files (pyo's render folder) live here; a killed host leaves them, so sweep.
        self.tmp = self.session / "tmp"
        self.swept_tmp = self._sweep_tmp()
        self.takes = TakeStore(self.session)
        if self.takes.finished_deletes:
            log.info("finished moving %d deleted take(s) into %s: %s", len(self.takes.finished_deletes),
                     self.takes.trash, ", ".join(self.takes.finished_deletes))
        if self.takes.removed_orphans:
            log.info("removed %d partial take file(s) an interrupted job left in %s: %s",
                     len(self.takes.removed_orphans), self.takes.folder, ", ".join(self.takes.removed_orphans))
        self.instances = InstanceRegistry(self.session, max_instances=self.limits.max_instances)
        if self.instances.removed_partial:
            log.info("removed %d partial instance file(s) in %s: %s", len(self.instances.removed_partial),
                     self.instances.folder, ", ".join(self.instances.removed_partial))
        for instance, takes in self.takes.by_instance().items():
            try:
                self.instances.restore_takes(instance, [t.take_id for t in takes])
            except InstanceIdError as exc:
                log.warning("%d take(s) not restored: %s", len(takes), exc)
        self._warm_up()
        self.jobs = JobQueue(self.limits.max_queued, self.limits.max_queued_per_instance)

    def _warm_up(self) -> None:
        """Load what the engine loads lazily (the text encoder) now rather than in the first
        job: loading it holds the GIL for 60-70 ms, which the OSC thread would wait out."""
        embed_text = getattr(self.engine, "embed_text", None)
        if embed_text is None:
            return
        try:
            embed_text(["warm up"])
        except ValueError as exc:  # a bundle without a text tower: nothing to load
            log.debug("no text encoder to load: %s", exc)
        except Exception as exc:  # e.g. the text encoder's files are not installed
            log.warning("text prompts will fail: %s", exc)

    def _sweep_tmp(self) -> list[str]:
        """Empty SESSION/tmp (only this host writes there); returns what was removed."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        removed = []
        for path in sorted(self.tmp.iterdir()):
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path.name)
            except OSError as exc:
                log.warning("cannot remove temporary %s: %s", path, exc)
        if removed:
            log.info("removed %d temporary file(s) or folder(s) an interrupted job left in %s: %s",
                     len(removed), self.tmp, ", ".join(removed))
        return removed

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Host":
        self._thread = threading.Thread(target=self.serve_forever, name="sideman-osc", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Receive and handle datagrams until stopped; nothing a datagram does ends this loop."""
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(osc.MAX_DATAGRAM)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            try:
                self.handle_datagram(data, source)
            except Exception:  # handle_datagram answers its own errors; this is the last guard
                log.exception("unhandled error for a datagram from %s", source)

    def stop(self) -> None:
        self._stop.set()
        self.jobs.close()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(5)
        self.sock.close()

    def wait(self) -> None:
        """Block until stopped (Ctrl-C raises KeyboardInterrupt here)."""
        while not self._stop.wait(0.2):
            pass

    # ------------------------------------------------------------------ messages

    def send(self, address: Address, osc_address: str, *args) -> None:
        """Send one message; never raises (a reply that cannot be sent is logged)."""
        try:
            data = osc.encode(osc_address, *args)
        except Exception:
            log.exception("cannot encode a reply to %s", osc_address[:100])
            return
        try:
            self.sock.sendto(data, address)
        except Exception as exc:  # a client that went away, a bad address: the host lives on
            self._send_failures += 1
            n = self._send_failures
            if n <= 10 or n % 1000 == 0:  # a stream of them must not flood the log
                log.warning("cannot reply to %s: %s (%d replies failed so far)", address, exc, n)

    def reply(self, instance: str | None, source: Address, verb: str, *args) -> None:
        try:
            target = self.instances.reply_address(instance, source) if instance else source
        except Exception:
            target = source
        self.send(target, osc.reply_address(instance, verb), *args)

    def _error(self, instance: str | None, source: Address, req, reason) -> None:
        """An error reply, made so that it always encodes (int32 req, short UTF-8 reason)."""
        self.reply(instance, source, "error", *osc.error_args(req, reason))

    def _fail(self, address, params, source: Address, exc: Exception) -> None:
        """Turn any exception raised handling one message into its error reply."""
        known = set(self.instances.ids())
        instance = exc.instance if isinstance(exc, osc.ProtocolError) else osc.address_instance(address)
        instance = instance if instance in known else None
        req = exc.req if isinstance(exc, osc.ProtocolError) else osc.request_id(params)
        try:
            if isinstance(exc, CLIENT_ERRORS):
                reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            else:
                log.error("error handling %s", str(address)[:100], exc_info=exc)
                reason = f"internal error: {type(exc).__name__}: {exc}"
        except Exception:  # even the exception's text may fail
            reason = f"internal error: {type(exc).__name__}"
        self._error(instance, source, req, reason)

    def handle_datagram(self, data: bytes, source: Address) -> None:
        """Answer every message of a datagram; never raises."""
        try:
            messages = osc.parse_datagram(data, self.limits.max_messages)
        except Exception as exc:
            self._fail(None, None, source, exc)
            return
        for address, params in messages:
            try:
                self.dispatch(osc.parse_request(address, params), source)
            except Exception as exc:
                try:
                    self._fail(address, params, source, exc)
                except Exception:
                    log.exception("cannot answer an error for %s", str(address)[:100])

    def dispatch(self, request: osc.Request, source: Address) -> None:
        args, instance = request.args, request.instance
        if instance is None:
            if request.verb == "hello":
                assigned, status = self.instances.hello(args["instance"], source, args.get("reply_port", 0))
                self.reply(assigned, source, "welcome", request.req, assigned, status, VERSION,
                           self.bundle_name, int(self.engine.sample_rate))
                return
            if request.verb == "quit":
                self.send(source, osc.reply_address(None, "bye"), request.req)
                threading.Thread(target=self.stop, daemon=True).start()
                return
            if request.verb == "ping":  # answered here, on the OSC thread, whatever the worker does
                health = self.jobs.health()
                self.send(source, osc.reply_address(None, "pong"), request.req, health.state,
                          health.queued, health.restarts, int(min(health.busy_seconds, osc.INT32[1])))
                return
        self.instances.require(instance)  # KeyError for an instance that never said hello
        self.instances.touch(instance, source)
        handler = getattr(self, "_on_" + request.verb.replace("/", "_"))
        handler(instance, args, source)

    def _ack(self, instance: str, source: Address, req: int, verb: str) -> None:
        self.reply(instance, source, "ack", req, verb)

    def _on_prompt(self, instance, args, source):
        self.instances.update(instance, prompt=args["text"])
        self._ack(instance, source, args["req"], "prompt")

    def _on_style(self, instance, args, source):
        path = ""
        if args["path"]:
            path = str(self.policy.check(args["path"]))
            self.policy.open(path).close()  # a regular file, reachable without a symbolic link
        self.instances.update(instance, style_path=path)
        self._ack(instance, source, args["req"], "style")

    def _on_seed(self, instance, args, source):
        self.instances.update(instance, seed=args["seed"])
        self._ack(instance, source, args["req"], "seed")

    def _on_steps(self, instance, args, source):
        limit = self.engine.max_steps  # of the default model; a job clamps to its own model's
        if not 1 <= args["steps"] <= limit:
            raise ValueError(f"steps must be within 1..{limit}, got {args['steps']}")
        self.instances.update(instance, steps=args["steps"])
        self._ack(instance, source, args["req"], "steps")

    def _on_guidance(self, instance, args, source):
        for name in ("context", "clap"):
            if not 0.0 <= args[name] <= 10.0:
                raise ValueError(f"guidance '{name}' must be within 0..10, got {args[name]}")
        self.instances.update(instance, guidance_context=args["context"], guidance_clap=args["clap"])
        self._ack(instance, source, args["req"], "guidance")

    def _on_goodbye(self, instance, args, source):
        """The plugin instance closes: its id is free for the next hello (a project reopened
        within the 30 s a silent owner keeps it). Queued jobs still finish and keep their takes."""
        self._ack(instance, source, args["req"], "goodbye")
        self.instances.release(instance, source)

    def _on_status(self, instance, args, source):
        state, queued = self.jobs.state(instance)
        st = self.instances.state(instance)
        self.reply(instance, source, "status", args["req"], state, queued, st.selected_take, len(st.takes),
                   self.jobs.ahead(instance))

    def _on_take_select(self, instance, args, source):
        take = self._own_take(instance, args["take"])
        self.instances.update(instance, selected_take=take.take_id)
        self.reply(instance, source, "take", args["req"], take.take_id, str(take.path), float(take.anchor_ppq))

    def _own_take(self, instance: str, take_id: str, trash: bool = False):
        if trash:
            if self.takes.in_trash(take_id).get("instance") != instance:
                raise ValueError(f"take '{take_id}' belongs to another instance")
            return self.takes.restore(take_id)
        take = self.takes.get(take_id)
        if take.instance != instance:
            raise ValueError(f"take '{take_id}' belongs to another instance")
        return take

    def _on_models(self, instance, args, source):
        """One model/item per model the host knows (the default first), then model/end."""
        current = self.instances.state(instance).model or DEFAULT
        names = self.models.names()
        for name in names[:osc.MODEL_LIMIT]:
            self.reply(instance, source, "model/item", args["req"], name, int(name == current))
        self.reply(instance, source, "model/end", args["req"], len(names))

    def _on_model(self, instance, args, source):
        """Switch the instance's model; its next job loads it (the first use takes seconds)."""
        self.instances.update(instance, model=self.models.check(args["name"]))
        self._ack(instance, source, args["req"], "model")

    def _on_take_list(self, instance, args, source):
        """Up to osc.TAKE_PAGE takes from `offset` (oldest first), then take/end with the total."""
        st = self.instances.state(instance)
        page = st.takes[args["offset"]:args["offset"] + osc.TAKE_PAGE]
        for take_id in page:
            try:
                meta = self.takes.get(take_id).meta
            except KeyError:
                continue
            self.reply(instance, source, "take/item", args["req"], take_id, st.names.get(take_id, ""),
                       str(meta.get("prompt", ""))[:osc.MAX_STRING], int(meta.get("seed", 0)),
                       time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(meta.get("created", 0.0)))),
                       int(take_id in st.starred))
        self.reply(instance, source, "take/end", args["req"], args["offset"], len(st.takes))

    def _on_take_rename(self, instance, args, source):
        take = self._own_take(instance, args["take"])
        names = {**self.instances.state(instance).names, take.take_id: args["name"]}
        self.instances.update(instance, names={k: v for k, v in names.items() if v})
        self._ack(instance, source, args["req"], "take/rename")

    def _on_take_star(self, instance, args, source):
        take = self._own_take(instance, args["take"])
        starred = [t for t in self.instances.state(instance).starred if t != take.take_id]
        self.instances.update(instance, starred=starred + ([take.take_id] if args["on"] else []))
        self._ack(instance, source, args["req"], "take/star")

    def _on_take_delete(self, instance, args, source):
        """The take goes to SESSION/trash (take/restore brings it back); nothing is destroyed."""
        take = self._own_take(instance, args["take"])
        if self.jobs.state(instance)[0] != "idle":
            raise ValueError("a job of this instance is queued or running (it may start from this take): "
                             "delete when it is done")
        self.takes.delete(take.take_id)
        self.instances.drop_take(instance, take.take_id)
        self._ack(instance, source, args["req"], "take/delete")

    def _on_take_restore(self, instance, args, source):
        take = self._own_take(instance, args["take"], trash=True)
        self.instances.add_take(instance, take.take_id)
        self._ack(instance, source, args["req"], "take/restore")

    def _on_cancel(self, instance, args, source):
        found = self.jobs.cancel(instance)
        self._ack(instance, source, args["req"], "cancel" if found else "cancel: nothing to cancel")

    def take_length(self, seconds: float, bpm: float, beats_per_bar: int) -> float:
        """The take's length after rounding to whole bars; ValueError past the host's limit."""
        limit = self.limits.max_take_seconds
        if not 0.5 <= seconds <= limit:
            raise ValueError(f"seconds must be within 0.5..{limit:g}, got {seconds:g}")
        bar = bar_seconds(bpm, beats_per_bar)
        if bar > limit:
            raise ValueError(f"one bar of {beats_per_bar} beats at {bpm:g} bpm lasts {bar:.4g} s, longer "
                             f"than the host's limit of {limit:g} s per take")
        length = bar_aligned_seconds(seconds, bpm, beats_per_bar)
        if length > limit * (1 + 1e-9):
            raise ValueError(f"{seconds:g} s rounded to whole bars at {bpm:g} bpm is {length:.4g} s, longer "
                             f"than the host's limit of {limit:g} s per take")
        return length

    def _on_loop(self, instance, args, source):
        self.instances.update(instance, loop=bool(args["on"]))
        self._ack(instance, source, args["req"], "loop")

    def _on_clap_mix(self, instance, args, source):
        self.instances.update(instance, clap_mix=float(args["mix"]))
        self._ack(instance, source, args["req"], "clap_mix")

    def _selected_take(self, instance: str):
        """The instance's selected take (variations and inpainting start from it)."""
        selected = self.instances.state(instance).selected_take
        if not selected:
            raise ValueError("no take is selected: generate one or select one (take/select) first")
        take = self.takes.get(selected)
        self.policy.open(str(take.path)).close()  # read again by the worker
        return take

    def _on_generate(self, instance, args, source, verb: str = "generate", edit: dict | None = None):
        if args["context"]:
            self.policy.open(args["context"]).close()  # checked again when the worker reads it
        length = self.take_length(args["seconds"], args["bpm"], args["beats_per_bar"])
        style = self.instances.state(instance).style_path
        if style:
            self.policy.open(style).close()
        job = Job(instance, args["req"],
                  work=lambda job: self._generate(job, dict(args), length, source, edit),
                  on_dropped=lambda job, why: self._error(instance, source, job.req, why))
        self.jobs.submit(job)
        self._ack(instance, source, args["req"], verb)

    def _on_vary(self, instance, args, source):
        """A variation of the selected take: strength 0 gives it back, 1 a fresh take."""
        take = self._selected_take(instance)
        self._on_generate(instance, args, source, "vary", {"take": take, "strength": args["strength"], "keep": ()})

    def _on_inpaint(self, instance, args, source):
        """Bars start_bar..end_bar (from the take's start, 0-based) of the selected take made
        again; the other bars are kept."""
        take = self._selected_take(instance)
        length = self.take_length(args["seconds"], args["bpm"], args["beats_per_bar"])
        bar = bar_seconds(args["bpm"], args["beats_per_bar"])
        start, end = args["start_bar"] * bar, args["end_bar"] * bar
        if not args["start_bar"] < args["end_bar"] or end > length * (1 + 1e-9):
            raise ValueError(f"bars {args['start_bar']:g}..{args['end_bar']:g} are not a range inside the "
                             f"take's {length / bar:g} bars")
        keep = tuple((a, b) for a, b in ((0.0, start), (end, length)) if b > a)
        self._on_generate(instance, args, source, "inpaint",
                          {"take": take, "strength": 1.0, "keep": keep, "bars": (args["start_bar"], args["end_bar"])})

    # ------------------------------------------------------------------ generation

    def _generate(self, job: Job, args: dict, seconds: float, source: Address, edit: dict | None = None):
        """Run one generation; returns the final reply to send (done or error). Files are
        read here through the folder policy again (they may have changed since the request).
        `edit` (vary, inpaint): the take to start from, the strength and the seconds kept."""
        instance, req = job.instance, job.req
        try:
            st = self.instances.state(instance)
            engine = self.models.engine(st.model)
            rate = engine.sample_rate
            limit = self.limits.max_input_seconds
            context, context_sha = (self.policy.read_audio(args["context"], rate, limit)
                                    if args["context"] else (None, ""))
            style = self.policy.read_audio(st.style_path, rate, limit)[0] if st.style_path else None
            # An edit draws other noise than its take did (same seed, same noise: the same
            # bars again), reproducibly: the seed moved by a hash of the take's id.
            seed = st.seed if edit is None else edit_seed(st.seed, edit["take"].take_id)
            settings = GenerationSettings(st.prompt, style, seed, min(st.steps, engine.max_steps),
                                          st.guidance_context, st.guidance_clap)

            def progress(step: int, total: int) -> None:
                job.check_cancelled()
                self.reply(instance, source, "progress", req, int(step), int(total))

            job.check_cancelled()
            extra = {}
            if edit is not None or st.loop or (style is not None and st.prompt and st.clap_mix != 0.5):
                base = self.policy.read_audio(str(edit["take"].path), rate, limit)[0] if edit else None
                extra["controls"] = Controls(take=base, strength=edit["strength"] if edit else 1.0,
                                             keep=edit["keep"] if edit else (), loop=st.loop, clap_mix=st.clap_mix)
            stem = engine.generate(context, seconds, settings, progress, **extra)
            job.check_cancelled()
            audio = process_take(stem, rate, context, args["sample_rate"], seconds, args["bpm"],
                                 args["beats_per_bar"], tmp_dir=self.tmp, loop=st.loop)
            if not np.isfinite(audio).all():
                raise ValueError("the model produced NaN or infinite samples; no take written")
            meta = {"prompt": st.prompt, "style_path": st.style_path, "seed": seed,
                    "steps": st.steps, "guidance_context": st.guidance_context,
                    "guidance_clap": st.guidance_clap, "bundle": engine.bundle_id, "model": st.model or DEFAULT,
                    "context_sha256": context_sha,
                    "bpm": args["bpm"], "beats_per_bar": args["beats_per_bar"],
                    "seconds": seconds, "request": req, "loop": st.loop, "clap_mix": st.clap_mix}
            if edit is not None:
                meta.update({"from_take": edit["take"].take_id, "strength": edit["strength"]})
                if "bars" in edit:
                    meta["inpainted_bars"] = list(edit["bars"])
            job.check_cancelled()
            take = self.takes.write(instance, audio, args["sample_rate"], args["anchor_ppq"], meta)
            self.instances.add_take(instance, take.take_id)

            def finish() -> None:
                self.reply(instance, source, "done", req, take.take_id, str(take.path),
                           float(args["anchor_ppq"]))
                for listener in self.take_listeners:
                    try:
                        listener(instance, take)
                    except Exception:  # a DAW link that fails must not stop the host
                        log.exception("take listener %r failed", listener)
            return finish
        except Cancelled:
            return lambda: self._error(instance, source, req, "cancelled")
        except Exception as exc:
            if isinstance(exc, CLIENT_ERRORS):
                log.warning("generation failed for %s/%s: %s", instance, req, exc)
            else:
                log.exception("generation failed for %s/%s", instance, req)
            reason = f"generation failed: {type(exc).__name__}: {exc}"
            return lambda: self._error(instance, source, req, reason)
