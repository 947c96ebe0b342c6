"""The host process: an OSC server on UDP that serves every Sideman plugin instance.

One receiving thread parses and answers control messages at once (ack, settings, status);
generation runs on the job worker (plugin_host.jobs). Replies go to the source address of
the request, or to the reply port an instance named in its hello. Malformed input of any
kind is answered with an error and never stops the server.
"""
from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

from sideman.data.audio import AudioFileError, load_audio

from sideman.plugin_host import osc_protocol as osc
from sideman.plugin_host.bundle import file_sha256
from sideman.plugin_host.engine_api import Engine, GenerationSettings
from sideman.plugin_host.instances import Address, InstanceRegistry
from sideman.plugin_host.jobs import Cancelled, Job, JobQueue
from sideman.plugin_host.paths import FolderPolicy, PathRefused
from sideman.plugin_host.postprocess import bar_aligned_seconds, process_take
from sideman.plugin_host.takes import TakeStore

log = logging.getLogger("sideman.host")
VERSION = "0.1.0"
MAX_SECONDS = 600.0


class Host:
    """Binds `host:port` (port 0 picks a free one) and serves until `stop()` or /sideman/quit."""

    def __init__(self, engine: Engine, session: Path, cache: Path, host: str = "127.0.0.1",
                 port: int = 9050, bundle_name: str = ""):
        self.engine = engine
        self.bundle_name = bundle_name or engine.bundle_id[:12]
        self.session, self.cache = Path(session), Path(cache)
        self.policy = FolderPolicy(self.session, self.cache)
        self.takes = TakeStore(self.session)
        self.instances = InstanceRegistry(self.session)
        for instance, takes in self.takes.by_instance().items():
            self.instances.restore_takes(instance, [t.take_id for t in takes])
        self.jobs = JobQueue()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.take_listeners: list = []  # callables (instance, Take) run after each done reply

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Host":
        self._thread = threading.Thread(target=self.serve_forever, name="sideman-osc", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(osc.MAX_DATAGRAM)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            self.handle_datagram(data, source)

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
        try:
            self.sock.sendto(osc.encode(osc_address, *args), address)
        except OSError as exc:  # a client that went away must not stop the host
            log.warning("cannot reply to %s: %s", address, exc)

    def reply(self, instance: str | None, source: Address, verb: str, *args) -> None:
        target = self.instances.reply_address(instance, source) if instance else source
        self.send(target, osc.reply_address(instance, verb), *args)

    def handle_datagram(self, data: bytes, source: Address) -> None:
        try:
            messages = osc.parse_datagram(data)
        except osc.ProtocolError as exc:
            self.reply(None, source, "error", -1, str(exc))
            return
        for address, params in messages:
            try:
                self.dispatch(osc.parse_request(address, params), source)
            except osc.ProtocolError as exc:
                known = exc.instance if exc.instance in self.instances.ids() else None
                self.reply(known, source, "error", exc.req, str(exc))
            except (KeyError, ValueError, PathRefused, AudioFileError) as exc:
                instance = osc.split_address(address)[0] if address.startswith(osc.PREFIX) else None
                req = params[0] if params and isinstance(params[0], int) else -1
                message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                self.reply(instance if instance in self.instances.ids() else None, source, "error",
                           req, str(message))
            except Exception as exc:  # the host lives on, whatever a message does
                log.exception("error handling %s", address)
                self.reply(None, source, "error", -1, f"internal error: {type(exc).__name__}: {exc}")

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
        self.instances.state(instance)  # KeyError for an instance that never said hello
        self.instances.touch(instance, source)
        handler = getattr(self, "_on_" + request.verb.replace("/", "_"))
        handler(instance, args, source)

    def _ack(self, instance: str, source: Address, req: int, verb: str) -> None:
        self.reply(instance, source, "ack", req, verb)

    def _on_prompt(self, instance, args, source):
        self.instances.update(instance, prompt=args["text"])
        self._ack(instance, source, args["req"], "prompt")

    def _on_style(self, instance, args, source):
        path = str(self.policy.check(args["path"])) if args["path"] else ""
        if path and not Path(path).is_file():
            raise ValueError(f"style reference '{args['path']}' does not exist")
        self.instances.update(instance, style_path=path)
        self._ack(instance, source, args["req"], "style")

    def _on_seed(self, instance, args, source):
        self.instances.update(instance, seed=args["seed"])
        self._ack(instance, source, args["req"], "seed")

    def _on_steps(self, instance, args, source):
        if not 1 <= args["steps"] <= self.engine.max_steps:
            raise ValueError(f"steps must be 1..{self.engine.max_steps}, got {args['steps']}")
        self.instances.update(instance, steps=args["steps"])
        self._ack(instance, source, args["req"], "steps")

    def _on_guidance(self, instance, args, source):
        for name in ("context", "clap"):
            if not 0.0 <= args[name] <= 10.0:
                raise ValueError(f"guidance '{name}' must be within 0..10, got {args[name]}")
        self.instances.update(instance, guidance_context=args["context"], guidance_clap=args["clap"])
        self._ack(instance, source, args["req"], "guidance")

    def _on_status(self, instance, args, source):
        state, queued = self.jobs.state(instance)
        st = self.instances.state(instance)
        self.reply(instance, source, "status", args["req"], state, queued, st.selected_take, len(st.takes))

    def _on_take_select(self, instance, args, source):
        take = self.takes.get(args["take"])
        if take.instance != instance:
            raise ValueError(f"take '{args['take']}' belongs to another instance")
        self.instances.update(instance, selected_take=take.take_id)
        self.reply(instance, source, "take", args["req"], take.take_id, str(take.path), float(take.anchor_ppq))

    def _on_cancel(self, instance, args, source):
        found = self.jobs.cancel(instance)
        self._ack(instance, source, args["req"], "cancel" if found else "cancel: nothing to cancel")

    def _on_generate(self, instance, args, source):
        context_path = self.policy.check(args["context"]) if args["context"] else None
        if context_path is not None and not context_path.is_file():
            raise ValueError(f"context file '{args['context']}' does not exist")
        if not 0.5 <= args["seconds"] <= MAX_SECONDS:
            raise ValueError(f"seconds must be within 0.5..{MAX_SECONDS:.0f}, got {args['seconds']}")
        if not 8000 <= args["sample_rate"] <= 384000:
            raise ValueError(f"sample_rate {args['sample_rate']} is not an audio rate")
        bar_aligned_seconds(args["seconds"], args["bpm"], args["beats_per_bar"])  # validates tempo
        job = Job(instance, args["req"],
                  work=lambda job: self._generate(job, dict(args, context=context_path), source),
                  on_dropped=lambda job, why: self.reply(instance, source, "error", job.req, why))
        self.jobs.submit(job)
        self._ack(instance, source, args["req"], "generate")

    # ------------------------------------------------------------------ generation

    def _generate(self, job: Job, args: dict, source: Address):
        """Run one generation; returns the final reply to send (done or error)."""
        instance, req = job.instance, job.req
        try:
            st = self.instances.state(instance)
            rate = self.engine.sample_rate
            context = load_audio(args["context"], sample_rate=rate) if args["context"] else None
            style = load_audio(Path(st.style_path), sample_rate=rate) if st.style_path else None
            seconds = bar_aligned_seconds(args["seconds"], args["bpm"], args["beats_per_bar"])
            settings = GenerationSettings(st.prompt, style, st.seed, st.steps,
                                          st.guidance_context, st.guidance_clap)

            def progress(step: int, total: int) -> None:
                job.check_cancelled()
                self.reply(instance, source, "progress", req, int(step), int(total))

            job.check_cancelled()
            stem = self.engine.generate(context, seconds, settings, progress)
            job.check_cancelled()
            audio = process_take(stem, rate, context, args["sample_rate"], seconds, args["bpm"],
                                 args["beats_per_bar"])
            meta = {"prompt": st.prompt, "style_path": st.style_path, "seed": st.seed,
                    "steps": st.steps, "guidance_context": st.guidance_context,
                    "guidance_clap": st.guidance_clap, "bundle": self.engine.bundle_id,
                    "context_sha256": file_sha256(args["context"]) if args["context"] else "",
                    "bpm": args["bpm"], "beats_per_bar": args["beats_per_bar"],
                    "seconds": seconds, "request": req}
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
            return lambda: self.reply(instance, source, "error", req, "cancelled")
        except Exception as exc:
            log.exception("generation failed for %s/%s", instance, req)
            reason = f"generation failed: {type(exc).__name__}: {exc}"
            return lambda: self.reply(instance, source, "error", req, reason)

