"""Training commands: the autoencoder (train, eval, encode, decode), the house CLAP and its
bridge (train, eval), DiT latent pairs, and EDM then consistency training of the DiT."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sideman.commands.options import add_dataclass_options, add_number, from_options


def _stage_options(parser: argparse.ArgumentParser, name: str) -> None:
    """The trainer options of stage dataclass training.stages.<name>, and --seed."""
    from sideman.training import stages

    kind = getattr(stages, name)
    add_dataclass_options(parser, kind, stages.option_fields(kind))
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the data order (default: 0)")


def _pair_codec(spec: str):
    """--autoencoder: "band" or "band:FRAMES" (numerics.band_codec), a bundle folder (its ONNX
    codec), or an autoencoder file or spectral codec checkpoint."""
    from sideman.commands.options import band_codec_option
    from sideman.training.dit_data import NumpyCodec

    band = band_codec_option(spec)
    if band is not None:
        return NumpyCodec(band, band.cfg.latent_hop, band.latent_dim)
    if Path(spec).is_dir():
        from sideman.plugin_host.engine import OnnxEngine

        codec = OnnxEngine(Path(spec)).codec
        return NumpyCodec(codec, codec.cfg.chunk_samples, codec.cfg.latent_dim)
    from sideman.training.codec_training import load_codec_file

    return load_codec_file(Path(spec))


def _pair_clap(args: argparse.Namespace, threads: int = 0):
    """The CLAP audio embedder of --clap (a house CLAP file) or --clap-bundle (a bundle's tower,
    on `threads` onnxruntime threads, 0: all cores)."""
    if (args.clap is None) == (args.clap_bundle is None):
        raise ValueError("give one of --clap (a house CLAP file) and --clap-bundle (a bundle folder)")
    if args.clap is not None:
        from sideman.models.clap_house import HouseClap, HouseClapEmbedder

        return HouseClapEmbedder(HouseClap.load(args.clap))
    from sideman.plugin_host.engine import OnnxEngine

    return OnnxEngine(args.clap_bundle, intra_threads=threads)


def _build_pairs(args: argparse.Namespace, part: tuple[int, int] = (0, 1), progress: bool = True,
                 threads: int = 0):
    from sideman.training.dit_data import build_pair_latents

    return build_pair_latents(_pair_codec(str(args.autoencoder)), _pair_clap(args, threads), args.data, args.out,
                              args.count, args.seconds, args.clap_seconds, args.seed, args.split,
                              progress=progress, part=part, threads=threads or None)


def _pairs_worker(args: argparse.Namespace, part: tuple[int, int]) -> None:
    _build_pairs(args, part, progress=False, threads=1)


def _dit_pairs(args: argparse.Namespace) -> int:
    if args.jobs > 1:
        import multiprocessing
        import time
        from concurrent.futures import ProcessPoolExecutor, wait

        from tqdm.auto import tqdm

        args.out.mkdir(parents=True, exist_ok=True)
        total = -(-args.count // 64)
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            from sideman.data.layouts import warm_activity_cache

            # Each process would decode every stem once to find where it sounds: share that first.
            for job in [pool.submit(warm_activity_cache, args.data, (i, args.jobs)) for i in range(args.jobs)]:
                job.result()
            jobs = [pool.submit(_pairs_worker, args, (i, args.jobs)) for i in range(args.jobs)]
            with tqdm(total=total, desc="encoding DiT pairs", unit="shard", disable=args.quiet) as bar:
                while True:
                    pending = wait(jobs, timeout=2.0).not_done
                    bar.update(min(total, len(list(args.out.glob("shard_*.npz")))) - bar.n)
                    if not pending:
                        break
            for job in jobs:
                job.result()  # a worker's error, raised here
    # What is left (nothing after --jobs), then pairs.json.
    out = _build_pairs(args, progress=not args.quiet and args.jobs == 1)
    print(f"DiT training pairs in {out}")
    return 0


def _dit_loss(args: argparse.Namespace) -> int:
    import json

    from sideman.evaluation.dit_loss import held_out_edm_loss

    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    print(json.dumps(held_out_edm_loss(args.dit, args.pairs, repeats=args.repeats, seed=args.seed), indent=1))
    return 0


def _train_dit(args: argparse.Namespace) -> int:
    from sideman.training.stages import DiTStage
    from sideman.training.train_dit import train_dit

    path = train_dit(args.pairs, args.out, args.kind, from_options(DiTStage, args), init=args.init, seed=args.seed,
                     val_pairs=args.val_pairs, progress=not args.quiet)
    print(f"{args.kind} DiT written to {path} (logs and loss curves in {Path(args.out) / args.kind})")
    return 0


def _ae_train(args: argparse.Namespace) -> int:
    from sideman.training.ae_training import train_autoencoder
    from sideman.training.stages import AutoencoderStage

    path = train_autoencoder(args.data, args.out, from_options(AutoencoderStage, args), seed=args.seed,
                             progress=not args.quiet)
    print(f"autoencoder written to {path} (logs and loss curves in {args.out})")
    return 0


def _ae_eval(args: argparse.Namespace) -> int:
    from sideman.evaluation.ae_eval import evaluate_autoencoder

    evaluate_autoencoder(args.checkpoint, args.data, args.out, clips=args.clips, seconds=args.seconds,
                         steps=args.decode_steps, seed=args.seed, split=args.split, mode=args.decode_mode,
                         progress=not args.quiet)
    print(f"reconstruction report, table and spectrograms in {args.out}")
    return 0


def _ae_equalise(args: argparse.Namespace) -> int:
    from sideman.training.decoder_eq import EqSettings, calibrate_autoencoder

    if args.out.resolve() == args.checkpoint.resolve():
        raise ValueError("--out must differ from the checkpoint: the measurement needs the original")
    settings = EqSettings(windows=args.windows, seconds=args.seconds, max_boost_db=args.max_boost_db,
                          max_cut_db=args.max_cut_db)
    summary = calibrate_autoencoder(args.checkpoint, args.data, args.out, settings, args.decode_steps,
                                    args.decode_mode, seed=args.seed, progress=not args.quiet)
    print(f"equalised autoencoder written to {args.out} (decoding lost {summary['level_loss_db']:.1f} dB; "
          f"equaliser {summary['eq_min_db']:+.1f} to {summary['eq_max_db']:+.1f} dB, plot in "
          f"{args.out.with_suffix('.png')})")
    return 0


def _encode(args: argparse.Namespace) -> int:
    from sideman.training.latent_cache import encode_corpus

    encode_corpus(args.checkpoint, args.data, args.out, split=args.split, progress=not args.quiet)
    print(f"latent cache in {args.out}")
    return 0


def _decode(args: argparse.Namespace) -> int:
    from sideman.training.latent_cache import decode_latents

    decode_latents(args.checkpoint, args.latents, args.output, stem=args.stem, steps=args.decode_steps,
                   seed=args.seed)
    print(f"wrote {args.output}")
    return 0


def _register_autoencoder(sub) -> None:
    ae = sub.add_parser("ae", help="the autoencoder").add_subparsers(dest="action", required=True)
    train = ae.add_parser("train", help="consistency-train the autoencoder on a multitrack data set "
                                        "(defaults: the demo recipe's, training.stages.AutoencoderStage)")
    train.add_argument("--data", type=Path, required=True, help="multitrack data set (any layout)")
    train.add_argument("--out", type=Path, required=True, help="run folder (resumes from its last.pt)")
    _stage_options(train, "AutoencoderStage")
    train.set_defaults(func=_ae_train)
    ev = ae.add_parser("eval", help="reconstruction metrics on held-out songs, with reference points")
    ev.add_argument("checkpoint", type=Path, help='autoencoder checkpoint')
    ev.add_argument("--data", type=Path, required=True, help="the data set's folder")
    ev.add_argument("--out", type=Path, required=True, help='folder for the report, audio and pictures')
    ev.add_argument("--clips", type=int, default=8, help='held-out clips measured (default: 8)')
    ev.add_argument("--seconds", type=float, default=10.0, help='length of each clip (default: 10)')
    ev.add_argument("--decode-steps", type=int, default=2, choices=(1, 2),
                    help="decoding steps (default: 2, M2L2's two-step decoding)")
    ev.add_argument("--decode-mode", default="sequential", choices=("sequential", "parallel"),
                    help="M2L2's chunk-by-chunk loop, or all chunks batched")
    ev.add_argument("--split", default="validation", choices=("train", "validation", "all"),
                    help='which songs (default: validation)')
    ev.add_argument("--seed", type=int, default=0, help='seed of the clip choice and decoding noise (default: 0)')
    ev.set_defaults(func=_ae_eval)
    eq = ae.add_parser("equalise", help="measure the output equaliser on training songs; write the "
                                         "equalised autoencoder (what `sideman export` should get)")
    eq.add_argument("checkpoint", type=Path, help='autoencoder checkpoint')
    eq.add_argument("--data", type=Path, required=True, help="the data set's folder (training stems)")
    eq.add_argument("--out", type=Path, required=True, help="the equalised autoencoder file (.pt)")
    eq.add_argument("--windows", type=int, default=64, help="training-split target stems to measure on")
    eq.add_argument("--seconds", type=float, default=10.0, help='length of each window (default: 10)')
    eq.add_argument("--max-boost-db", type=float, default=24.0, help='largest boost of any bin, dB (default: 24)')
    eq.add_argument("--max-cut-db", type=float, default=12.0, help='largest cut of any bin, dB (default: 12)')
    eq.add_argument("--decode-steps", type=int, default=1, choices=(1, 2), help="as the bundle will decode")
    eq.add_argument("--decode-mode", default="parallel", choices=("sequential", "parallel"),
                    help='decoding used while measuring (default: parallel)')
    eq.add_argument("--seed", type=int, default=0,
                    help='seed of the window choice and decoding noise (default: 0)')
    eq.set_defaults(func=_ae_equalise)
    enc = sub.add_parser("encode", help="encode a data set into a sharded latent cache (resumable)")
    enc.add_argument("checkpoint", type=Path, help='autoencoder checkpoint')
    enc.add_argument("--data", type=Path, required=True, help="the data set's folder")
    enc.add_argument("--out", type=Path, required=True, help='folder of the latent cache (resumes a partial one)')
    enc.add_argument("--split", default="all", choices=("train", "validation", "all"),
                     help='which songs (default: all)')
    enc.set_defaults(func=_encode)
    dec = sub.add_parser("decode", help="decode cached latents back to audio for listening")
    dec.add_argument("checkpoint", type=Path, help='autoencoder checkpoint')
    dec.add_argument("latents", type=Path, help="a song file of the latent cache")
    dec.add_argument("-o", "--output", type=Path, required=True, help='the audio file to write')
    dec.add_argument("--stem", default="mix", help="which stem of the song's latents (default: mix)")
    dec.add_argument("--decode-steps", type=int, default=2, choices=(1, 2), help='decoding steps (default: 2)')
    dec.add_argument("--seed", type=int, default=0, help='seed of the decoding noise (default: 0)')
    dec.set_defaults(func=_decode)


def _train_clap(args: argparse.Namespace) -> int:
    from sideman.training.stages import ClapStage
    from sideman.training.train_clap import train_house_clap

    path = train_house_clap(args.data, args.out, from_options(ClapStage, args), seed=args.seed,
                            progress=not args.quiet)
    print(f"house CLAP written to {path} (logs and loss curves in {args.out})")
    return 0


def _train_bridge(args: argparse.Namespace) -> int:
    from sideman.training.stages import BridgeStage
    from sideman.training.train_bridge import train_bridge

    path = train_bridge(args.clap, args.data, args.out, from_options(BridgeStage, args), seed=args.seed,
                        progress=not args.quiet)
    print(f"CLAP bridge written to {path} (logs and loss curves in {args.out})")
    return 0


def _clap_eval(args: argparse.Namespace) -> int:
    from sideman.evaluation.clap_eval import evaluate_clap

    evaluate_clap(args.clap, args.bridge, args.data, args.out, seed=args.seed,
                  validation_fraction=args.validation_fraction)
    print(f"retrieval and modality-gap report in {args.out}")
    return 0


def _train_all(args: argparse.Namespace) -> int:
    from sideman.defaults import EMBEDDED_BUNDLE
    from sideman.pipeline.pipeline import STAGES, install_bundle, run_pipeline
    from sideman.pipeline.recipes import RECIPES

    records = run_pipeline(args.out, RECIPES[args.preset], stop_after=args.stop_after,
                           progress=not args.quiet)
    if args.install:
        if "export" not in records:
            print("--install: the run stopped before the export stage", file=sys.stderr)
            return 1
        print(f"default bundle installed at {install_bundle(args.out / 'bundle', EMBEDDED_BUNDLE)}")
    if len(records) == len(STAGES):
        print(f"bundle: {args.out / 'bundle'}; report: {args.out / 'REPORT.md'}")
    return 0


def _register_all(train) -> None:
    from sideman.pipeline.pipeline import STAGES
    from sideman.pipeline.recipes import RECIPES

    run = train.add_parser(
        "all", help="the whole stack: corpus, autoencoder, CLAP, bridge, DiT (EDM, C-DiT), export, eval",
        description="Render the corpus, train and evaluate the autoencoder, train the house CLAP and the "
                    "bridge, encode DiT pairs, train the EDM DiT and the C-DiT, export the bundle and "
                    "evaluate it, into one run folder. Rerun the same command to resume: finished "
                    "stages are skipped, unfinished ones resume from their checkpoints.")
    run.add_argument("--preset", default="demo", choices=sorted(RECIPES),
                     help="the recipe (pipeline/recipes.py): demo = the embedded default bundle")
    run.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    run.add_argument("--stop-after", choices=list(STAGES), help="end after this stage")
    run.add_argument("--install", action="store_true",
                     help="copy the exported bundle to the embedded default (sideman/default_bundle)")
    run.set_defaults(func=_train_all)


def _register_clap(sub, train) -> None:
    clap = train.add_parser("clap", help="the house CLAP on a data set's stems and tag captions")
    clap.add_argument("--data", type=Path, required=True, help="multitrack data set (any layout)")
    clap.add_argument("--out", type=Path, required=True, help="run folder (resumes from its last.pt)")
    _stage_options(clap, "ClapStage")
    clap.set_defaults(func=_train_clap)
    bridge = train.add_parser("bridge", help="the text-to-audio CLAP bridge (needs a house CLAP)")
    bridge.add_argument("--clap", type=Path, required=True, help="house CLAP file")
    bridge.add_argument("--data", type=Path, required=True, help="multitrack data set (any layout)")
    bridge.add_argument("--out", type=Path, required=True, help="run folder (resumes from its last.pt)")
    _stage_options(bridge, "BridgeStage")
    bridge.set_defaults(func=_train_bridge)
    ev = sub.add_parser("clap-eval", help="CLAP retrieval with paraphrased prompts and the modality gap")
    ev.add_argument("--clap", type=Path, required=True, help='house CLAP file')
    ev.add_argument("--bridge", type=Path, required=True, help='CLAP bridge file')
    ev.add_argument("--data", type=Path, required=True, help="the data set's folder")
    ev.add_argument("--out", type=Path, required=True, help='folder for the report')
    ev.add_argument("--seed", type=int, default=0, help='seed of the clip choice (default: 0)')
    ev.add_argument("--validation-fraction", type=float, default=0.1,
                    help="fraction of songs held out (by a hash of the song id), as in training")
    ev.set_defaults(func=_clap_eval)


def register(sub) -> None:
    _register_autoencoder(sub)
    pairs = sub.add_parser("dit-pairs", help="encode training pairs into latents for the DiT")
    pairs.add_argument("--autoencoder", required=True,
                       help="the codec: an autoencoder file, a spectral codec checkpoint, 'band' or 'band:FRAMES' "
                            "(the band codec), or a bundle folder (its ONNX codec)")
    pairs.add_argument("--clap", type=Path, help="house CLAP file (CLAP segments)")
    pairs.add_argument("--clap-bundle", type=Path, help="or a bundle folder: its ONNX audio tower")
    pairs.add_argument("--data", type=Path, required=True, help="a multitrack data set")
    pairs.add_argument("--out", type=Path, required=True, help='folder the latent pairs are written into')
    _stage_options(pairs, "PairsStage")
    pairs.add_argument("--split", default="train", choices=("train", "validation", "all"),
                       help="songs the pairs come from (default: train)")
    add_number(pairs, "--jobs", low=1, high=64, default=1,
               help="processes encoding shards side by side (default: 1)")
    pairs.set_defaults(func=_dit_pairs)
    loss = sub.add_parser("dit-loss", help="held-out EDM loss of a DiT on latent pairs (how well it fits a codec)")
    loss.add_argument("--dit", type=Path, required=True, help="an EDM DiT file (sideman train dit)")
    loss.add_argument("--pairs", type=Path, required=True, help="held-out pairs (sideman dit-pairs --split validation)")
    loss.add_argument("--repeats", type=int, default=4, help="noise draws per pair (default: 4)")
    loss.add_argument("--seed", type=int, default=0, help="seed of the noise levels and noise (default: 0)")
    loss.set_defaults(func=_dit_loss)

    train = sub.add_parser("train", help="train a model").add_subparsers(dest="model", required=True)
    dit = train.add_parser("dit", help="the DiT: EDM first, then consistency (--kind consistency --init EDM)")
    dit.add_argument("--pairs", type=Path, required=True, help="folder made by `sideman dit-pairs`")
    dit.add_argument("--out", type=Path, required=True, help='folder for checkpoints, logs and curves')
    dit.add_argument("--kind", default="edm", choices=("edm", "consistency"),
                     help='edm: EDM training; consistency: consistency training from --init (default: edm)')
    dit.add_argument("--init", type=Path, help="EDM DiT file to start consistency training from")
    dit.add_argument("--val-pairs", type=Path, help="held-out pairs (sideman dit-pairs --split validation) "
                     "whose EDM loss goes to val.csv every --val-every steps")
    _stage_options(dit, "DiTStage")
    dit.set_defaults(func=_train_dit)
    _register_clap(sub, train)
    _register_all(train)
