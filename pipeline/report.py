"""REPORT.md of a `sideman train all` run: stage times, the autoencoder's reconstruction
table, the bundle's Table-1 report, the text-control check, speed, and the issue's
targets next to the measured figures."""
from __future__ import annotations

import json
from pathlib import Path

from sideman.data.files import atomic_write
from sideman.evaluation.text_control import markdown as text_control_markdown

TARGET_APA, TARGET_FAD_FRACTION, TARGET_TEXT, TARGET_RTF = 0.8, 0.5, 0.7, 0.1


def targets(records: dict[str, dict]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each quality and speed target of the default bundle."""
    ev = records["eval"]["summary"]
    rows, out = ev["rows"], []
    apa = rows.get("ctx", {}).get("apa")
    out.append((f"APA with context >= {TARGET_APA}", "n/a" if apa is None else f"{apa:.3f}",
                None if apa is None else apa >= TARGET_APA))
    fad, bound = rows.get("ctx+clap_t", {}).get("fad"), rows.get("random", {}).get("fad")
    if fad is None or bound is None:
        out.append(("FAD ctx+CLAP_T < half the random-pairing FAD", "n/a", None))
    else:
        out.append(("FAD ctx+CLAP_T < half the random-pairing FAD",
                    f"{fad:.3f} vs {bound:.3f} (ratio {fad / bound:.2f})", fad < TARGET_FAD_FRACTION * bound))
    control = ev["text_control"]
    for key, label in (("clap_t", "CLAP_T"), ("clap_b", "CLAP_B")):
        if key in control:
            acc = control[key]["accuracy"]
            out.append((f"text control ({label}) >= {TARGET_TEXT:.0%}", f"{acc:.0%}", acc >= TARGET_TEXT))
    rtf = ev["speed"]["rtf"]
    out.append((f"real-time factor <= {TARGET_RTF}", f"{rtf:.3f} ({ev['speed']['wall_s']:.2f} s for "
                f"{ev['speed']['seconds']:g} s)", rtf <= TARGET_RTF))
    return out


def write_report(root: Path, records: dict[str, dict]) -> Path:
    root = Path(root)
    recipe = json.loads((root / "recipe.json").read_text())
    lines = [f"# Training run: {recipe['name']}", "",
             "Wall time of the run that finished each stage (a stage resumed from its checkpoints "
             "counts only its last part; the trainers' log.csv files hold every step).", "",
             "| stage | wall time |", "|---|---|"]
    lines += [f"| {name} | {r['seconds'] / 60:.1f} min |" for name, r in records.items()]
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'-' if ok is None else ('yes' if ok else 'no')} |" for t, m, ok in targets(records)]
    size = records.get("export", {}).get("summary", {}).get("megabytes")
    if size is not None:
        lines += ["", f"Bundle: {size:.1f} MB in `bundle/`."]
    ae = root / "autoencoder" / "eval" / "summary.md"
    if ae.is_file():
        lines += ["", "## Autoencoder reconstruction (held-out songs)", "", ae.read_text().strip(), "",
                  "![spectrograms](autoencoder/eval/spectrograms.png)"]
    eq = records.get("decoder_eq", {}).get("summary")
    if eq:
        lines += ["", "## Output equaliser", "",
                  f"Decoding {eq['windows']} training stems with the equaliser off lost {eq['level_loss_db']:.1f} dB "
                  f"of power; the equaliser (smoothed over {eq['smooth_octaves']:.2g} octave, measured by "
                  f"the `decoder_eq` stage) ranges "
                  f"{eq['eq_min_db']:+.1f} to {eq['eq_max_db']:+.1f} dB, mean {eq['eq_mean_db']:+.1f} dB; "
                  f"the reconstruction figures above are with it on.", "",
                  "![equaliser](autoencoder/autoencoder_eq.png)"]
    report = root / "eval" / "report.md"
    if report.is_file():
        lines += ["", "## Generation quality (`sideman eval`)", "", report.read_text().strip()]
    control = records["eval"]["summary"]["text_control"]
    lines += ["", "## Text control", "",
              f"Retrieval of the generated stem's house-CLAP audio embedding among the role prompts "
              f"({control['probes']} probes, {control['steps']} steps); 'real stems' is the same "
              f"retrieval on the real stems, 'real via codec' on those stems encoded and decoded by the "
              f"bundle's autoencoder (the ceiling the codec sets).", "", text_control_markdown(control)]
    curves = [p.relative_to(root) for p in sorted(root.glob("*/**/loss.png"))]
    if curves:
        lines += ["", "## Loss curves", ""] + [f"![{p.parent}]({p})" for p in curves]
    path = root / "REPORT.md"
    atomic_write(path, ("\n".join(lines) + "\n").encode())
    return path
