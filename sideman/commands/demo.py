"""`sideman demo`, the README's main job: the default bundle adds a part to an example song.

Writes into OUT (default ./sideman-demo): ``context.wav`` (the song it was given),
``stem.wav`` (the generated part, at the loudness `--loudness` names: by default 3 LU under
the context, as the host hands takes to the DAW, and as `sideman generate` writes), ``mix.wav`` (both together) and ``spectrograms.png`` (context, stem and mix),
and prints where they are.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sideman.commands.options import add_loudness_option, add_number

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _demo(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf

    from sideman.commands.models import check_steps
    from sideman.commands.options import progress_bar
    from sideman.data.audio import load_input
    from sideman.data.plots import plot_spectrograms
    from sideman.defaults import default_bundle
    from sideman.plugin_host.bundle import describe_figures
    from sideman.plugin_host.engine import OnnxEngine
    from sideman.plugin_host.engine_api import GenerationSettings
    from sideman.plugin_host.postprocess import MAX_PEAK, set_loudness

    info = json.loads((EXAMPLES / "context.json").read_text())
    context_file = args.context or EXAMPLES / "context.flac"
    prompt = info["prompt"] if args.prompt is None else args.prompt
    check_steps(args.steps, args.bundle)
    context = load_input(context_file, "--context")  # before the model loads
    bundle = args.bundle or default_bundle()
    started = time.perf_counter()
    engine = OnnxEngine(bundle)
    loaded = time.perf_counter()
    seconds = context.shape[1] / engine.sample_rate
    settings = GenerationSettings(prompt=prompt, seed=args.seed,
                                  steps=engine.default_steps if args.steps is None else args.steps)
    bar = progress_bar(settings.steps, args.quiet)
    stem = engine.generate(context, seconds, settings, bar)
    bar.close()
    done = time.perf_counter()
    stem = set_loudness(stem, context, engine.sample_rate, args.loudness)
    mix = context + stem
    peak = float(np.abs(mix).max())
    if peak > MAX_PEAK:
        mix = mix * (MAX_PEAK / peak)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"context": out / "context.wav", "stem": out / "stem.wav", "mix": out / "mix.wav"}
    for name, audio in (("context", context), ("stem", stem), ("mix", mix)):
        sf.write(files[name], audio.T, engine.sample_rate, subtype="FLOAT")
    name = Path(context_file).name if args.context else f"example song ({info['genre']}, {info['tempo']:g} bpm)"
    picture = plot_spectrograms(
        [(f"context: {name}", context), (f'generated stem: "{prompt}" (seed {args.seed})', stem),
         ("mix: context + stem", mix)], out / "spectrograms.png",
        title=f"Sideman, bundle {engine.bundle.manifest.get('name', bundle)}")
    print(f"generated {seconds:.1f} s of \"{prompt}\" in {done - loaded:.2f} s "
          f"(model loading {loaded - started:.2f} s) with {bundle}")
    print(f"  stem:          {files['stem']}")
    print(f"  mix:           {files['mix']}")
    print(f"  context:       {files['context']}")
    print(f"  spectrograms:  {picture}")
    print("\n".join(describe_figures(engine.bundle.manifest)))
    return 0


def register(sub) -> None:
    demo = sub.add_parser("demo", help="the main job: the default bundle adds a part to an example song",
                          description=__doc__)
    demo.add_argument("--out", type=Path, default=Path("sideman-demo"),
                      help="folder to write into (default: ./sideman-demo)")
    demo.add_argument("--prompt", help="what to play (default: the example's prompt, 'bass line')")
    demo.add_argument("--context", type=Path, help="your own song (any audio file) instead of the example")
    demo.add_argument("--bundle", type=Path, help="model bundle (default: the embedded one)")
    add_number(demo, "--seed", low=0, default=0, help="seed of the noise: the same seed gives the same stem")
    demo.add_argument("--steps", type=int, help="sampling steps, within 1..the bundle's max_steps "
                                                "(default bundle: 1..8; default: the bundle's, 5)")
    add_loudness_option(demo)
    demo.set_defaults(func=_demo)
