"""Training commands: DiT latent pairs, EDM and consistency training of the DiT."""
from __future__ import annotations

import argparse
from pathlib import Path


def _dit_pairs(args: argparse.Namespace) -> int:
    from sideman.models.autoencoder import load_autoencoder
    from sideman.models.clap_house import HouseClap, HouseClapEmbedder
    from sideman.training.dit_data import build_pair_latents

    out = build_pair_latents(load_autoencoder(args.autoencoder).eval(),
                             HouseClapEmbedder(HouseClap.load(args.clap)), args.data, args.out,
                             args.pairs, args.seconds, args.clap_seconds, args.seed, args.split,
                             progress=not args.quiet)
    print(f"DiT training pairs in {out}")
    return 0


def _train_dit(args: argparse.Namespace) -> int:
    from sideman.training.train_dit import train_dit

    path = train_dit(args.pairs, args.out, args.kind, args.preset, args.steps, args.batch_size,
                     args.lr, args.warmup, init=args.init, seed=args.seed, progress=not args.quiet)
    print(f"{args.kind} DiT written to {path} (logs and loss curves in {Path(args.out) / args.kind})")
    return 0


def register(sub) -> None:
    pairs = sub.add_parser("dit-pairs", help="encode training pairs into latents for the DiT")
    pairs.add_argument("--autoencoder", type=Path, required=True)
    pairs.add_argument("--clap", type=Path, required=True, help="house CLAP file (CLAP segments)")
    pairs.add_argument("--data", type=Path, required=True, help="a multitrack data set")
    pairs.add_argument("--out", type=Path, required=True)
    pairs.add_argument("--pairs", type=int, default=2000)
    pairs.add_argument("--seconds", type=float, default=10.0)
    pairs.add_argument("--clap-seconds", type=float, default=10.0)
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--split", default="train", choices=("train", "validation", "all"))
    pairs.set_defaults(func=_dit_pairs)

    train = sub.add_parser("train", help="train a model").add_subparsers(dest="model", required=True)
    dit = train.add_parser("dit", help="the DiT: EDM first, then consistency (--kind consistency --init EDM)")
    dit.add_argument("--pairs", type=Path, required=True, help="folder made by `sideman dit-pairs`")
    dit.add_argument("--out", type=Path, required=True)
    dit.add_argument("--kind", default="edm", choices=("edm", "consistency"))
    dit.add_argument("--init", type=Path, help="EDM DiT file to start consistency training from")
    dit.add_argument("--preset", default="small")
    dit.add_argument("--steps", type=int, default=2000)
    dit.add_argument("--batch-size", type=int, default=16)
    dit.add_argument("--lr", type=float, default=1e-4)
    dit.add_argument("--warmup", type=int, default=1000)
    dit.add_argument("--seed", type=int, default=0)
    dit.set_defaults(func=_train_dit)
