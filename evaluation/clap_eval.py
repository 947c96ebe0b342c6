"""Evaluate the house CLAP and its bridge on held-out songs: retrieval and the modality gap.

Held-out songs are the VALIDATION split (`song_split`, the hash split every trainer
uses), so neither model saw their audio or their captions.

Prompts are written differently from the training tags by `paraphrase`: a deterministic
generator that reads a tag list into slots (instrument, family, register, tempo, bpm, key,
genre, meter, playing style, descriptive words), swaps the instrument for a synonym
phrase ("picked electric bass" -> "bass guitar played with a pick"), the descriptive words
for synonyms ("melancholic" -> "sorrowful"), turns tempo, key, genre and style into
phrases ("at a slow pace", "in a minor key on C", "playing a walking line"), keeps a
random subset of them and orders them by one of several sentence templates. The
training captions (tag lists joined by commas, thinned and reshuffled) never have this
form.

Retrieval (text -> audio): every paraphrase of a validation stem is a query; the audio
items are one window of every validation stem. Relevance: the query's stem and the audio
item's stem have the same INSTRUMENT FAMILY (the corpus's family of the instrument named
by the first tag: bass, drums, piano, electric piano, keyboard, mallets, organ, guitar,
strings, synth pad, woodwind, brass, saxophone, synth lead, harmonica; the stem's role
for instruments outside the corpus table). Also reported: relevance by role (drums,
bass, keys, guitar, pads, lead) and by stem (the exact stem only). Queries are the raw
text embeddings and, separately, one bridge sample per paraphrase.

Modality gap: each validation stem has `pairs_per_stem` (reference window, other window)
pairs that do not overlap in time. Against the reference windows' audio embeddings (the
"true" audio embeddings) we compare (a) the raw text embeddings of the paraphrases,
(b) one bridge sample per paraphrase, (c) the audio embeddings of the other windows of the
same stems: the mean cosine of the j-th item of a stem to its j-th reference, and the FAD
(squared Frechet distance of Gaussian fits) between each set and the reference set (all
sets have the same size). Extra rows: the tag caption instead of a paraphrase,
unconditional bridge samples (CLAP_A*), and paraphrase-conditioned samples with
classifier-free guidance (w = 2 by default).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from sideman.data.arrangement import GENRES
from sideman.data.audio import load_audio
from sideman.data.instruments import ROLE_TABLE
from sideman.data.layouts import read_multitrack
from sideman.data.multitrack import BLOCK, Song, Stem, default_cache_dir
from sideman.models.bridge import ClapBridge
from sideman.models.clap import EmbeddingCache
from sideman.models.clap_house import HouseClapEmbedder, MiniLMEncoder
from sideman.evaluation.distribution_metrics import fad
from sideman.training.retrieval import retrieval_metrics
from sideman.training.train_bridge import house_embedder
from sideman.training.train_clap import sounding_block_starts, split_songs

# ------------------------------------------------------------------ paraphrases

FAMILY_OF = {p.name: p.family for role in ROLE_TABLE.values() for p in role.programs}
FAMILIES = set(FAMILY_OF.values())
GENRE_NAMES = {g.name for g in GENRES}

INSTRUMENT_PHRASES = {
    "standard drum kit": ("acoustic drum set", "regular drum kit"),
    "room drum kit": ("drum kit recorded in a live room", "roomy acoustic drum set"),
    "power drum kit": ("big punchy rock drum set", "powerful drum set"),
    "electronic drum kit": ("electronic drum set", "e-drum kit"),
    "808 drum machine": ("TR-808 style beat", "classic 808 drum machine"),
    "jazz drum kit": ("jazz drum set", "small jazz kit"),
    "brush drum kit": ("drum kit played with brushes", "brushed jazz kit"),
    "upright bass": ("double bass", "acoustic upright"),
    "fingered electric bass": ("electric bass played fingerstyle", "finger-played bass guitar"),
    "picked electric bass": ("bass guitar played with a pick", "pick bass"),
    "fretless bass": ("fretless bass guitar", "smooth fretless"),
    "slap bass": ("slapped bass guitar", "popping slap bass"),
    "synth bass": ("synthesizer bass", "synthesized bass line"),
    "analog synth bass": ("analogue synthesizer bass", "vintage analog bass synth"),
    "acoustic grand piano": ("grand piano", "concert piano"),
    "bright piano": ("bright-sounding acoustic piano", "brilliant upright piano"),
    "rhodes electric piano": ("Rhodes", "Fender Rhodes style keyboard"),
    "fm electric piano": ("FM e-piano", "DX7 style electric piano"),
    "harpsichord": ("baroque harpsichord", "plucked harpsichord keys"),
    "clavinet": ("clav", "funky clavinet keyboard"),
    "vibraphone": ("vibe", "vibraphone played with mallets"),
    "drawbar organ": ("Hammond-style organ", "tonewheel organ"),
    "percussive organ": ("clicky tonewheel organ", "percussive Hammond"),
    "nylon string guitar": ("classical guitar", "nylon-string acoustic"),
    "steel string acoustic guitar": ("acoustic guitar", "steel-string acoustic"),
    "jazz guitar": ("hollow-body jazz guitar", "archtop guitar"),
    "clean electric guitar": ("clean-toned electric guitar", "electric guitar without distortion"),
    "muted electric guitar": ("palm-muted electric guitar", "damped electric guitar"),
    "overdriven guitar": ("crunchy overdriven electric guitar", "driven electric guitar"),
    "distortion guitar": ("distorted electric guitar", "heavily distorted guitar"),
    "string ensemble": ("string section", "full orchestral string section"),
    "slow strings": ("slow-attack string section", "soft swelling string section"),
    "synth strings": ("synthesizer string section", "string machine"),
    "pizzicato strings": ("plucked string section", "pizzicato string section"),
    "warm pad": ("warm synth pad", "soft warm synth layer"),
    "polysynth pad": ("polyphonic synth pad", "poly synth"),
    "bowed pad": ("bowed synth pad", "bowed-glass texture"),
    "halo pad": ("halo synth pad", "choir-like halo texture"),
    "flute": ("concert flute", "solo flute"),
    "clarinet": ("B-flat clarinet", "solo clarinet"),
    "oboe": ("double-reed oboe", "solo oboe"),
    "trumpet": ("solo trumpet", "horn (trumpet)"),
    "alto sax": ("alto saxophone", "alto saxophone solo"),
    "tenor sax": ("tenor saxophone", "tenor saxophone solo"),
    "violin": ("solo violin", "fiddle"),
    "square lead synth": ("square-wave lead", "chiptune square lead"),
    "sawtooth lead synth": ("saw lead", "sawtooth synthesizer lead"),
    "harmonica": ("blues harp", "mouth harp"),
}
FAMILY_PHRASES = {
    "drums": ("drum groove", "beat"), "bass": ("bass line", "low end bass part"),
    "piano": ("piano part", "piano"), "electric piano": ("e-piano", "electric keys"),
    "keyboard": ("keyboard part", "keyboard"), "mallets": ("mallet percussion", "tuned percussion"),
    "organ": ("organ part", "organ"), "guitar": ("guitar part", "six-string"),
    "strings": ("string part", "string section"), "synth pad": ("pad sound", "ambient synth layer"),
    "woodwind": ("woodwind line", "reed instrument"), "brass": ("horn line", "brass part"),
    "saxophone": ("sax line", "sax"), "synth lead": ("lead synth", "synth melody"),
    "harmonica": ("harp", "harmonica line"),
}
WORD_SYNONYMS = {
    "sad": "sorrowful", "melancholic": "melancholy", "moody": "brooding", "wistful": "yearning",
    "happy": "joyful", "upbeat": "lively", "bright": "sparkling", "cheerful": "cheery", "calm": "serene",
    "warm": "warm-toned", "peaceful": "tranquil", "tender": "gentle", "tense": "nervous",
    "driving": "propulsive", "dark": "sinister", "urgent": "pressing", "energetic": "high-energy",
    "raw": "gritty", "smooth": "silky", "sophisticated": "refined", "danceable": "club-ready",
    "groovy": "grooving", "funky": "funky-feeling", "earthy": "rootsy", "organic": "natural",
    "emotional": "heartfelt", "intimate": "close-miked", "relaxed": "easygoing", "laid-back": "chilled",
    "acoustic": "unplugged", "electric": "amplified", "jazzy": "jazz-inflected", "round": "full-bodied",
    "punchy": "hard-hitting", "percussive": "attacky", "synth": "synthetic", "electronic": "machine-made",
    "fat": "thick", "vintage": "old-school", "mellow": "soft-edged", "glassy": "crystalline",
    "eighties": "80s", "baroque": "period-style", "plucked": "picked", "mallets": "mallet-struck",
    "shimmering": "shimmery", "organ": "organ-like", "classical": "concert-style", "soft": "quiet",
    "folk": "folky", "clean": "undistorted", "muted": "damped", "overdriven": "crunchy", "gritty": "dirty",
    "distorted": "fuzzy", "heavy": "weighty", "orchestral": "symphonic", "lush": "rich", "retro": "throwback",
    "ambient": "atmospheric", "airy": "breathy", "ethereal": "otherworldly", "breathy": "airy",
    "woody": "wooden", "nasal": "pinched", "brassy": "blaring", "bowed": "bowed", "expressive": "emotive",
    "chiptune": "8-bit", "buzzy": "buzzing", "bluesy": "blues-tinged", "reedy": "reed-like",
    "roomy": "spacious", "rock": "rocking", "808": "808-style", "brushes": "brushed",
}
STYLE_PHRASES = {
    "rock beat": "a straight rock groove", "backbeat": "a solid backbeat",
    "four on the floor": "a four-to-the-floor kick", "dance beat": "a club beat",
    "half-time groove": "a half-time feel", "laid back": "a relaxed feel", "swing": "a swing feel",
    "ride cymbal": "time on the ride", "waltz feel": "a waltz rhythm", "breakbeat": "a broken beat",
    "syncopated": "syncopated accents", "sustained": "long held notes", "simple root notes": "plain root notes",
    "driving eighths": "steady eighth notes", "pulsing": "a pulsing rhythm", "root-fifth": "roots and fifths",
    "two-beat": "a two-step pattern", "walking bass": "a walking line", "octave bass": "jumping octaves",
    "disco": "a disco pattern", "funky groove": "a funk groove", "block chords": "big block chords",
    "chordal": "full chords", "comping": "comping chords", "off-beat stabs": "stabs on the off-beats",
    "arpeggiated": "arpeggios", "fast arpeggios": "rapid arpeggios", "broken chords": "broken-up chords",
    "gentle": "a gentle touch", "strummed": "strumming", "rhythm guitar": "a rhythm part",
    "fingerpicked": "fingerpicking patterns", "power chords": "chunky power chords",
    "palm muted": "palm-muted chugs", "off-beat skank": "offbeat skanks", "long chords": "long chords",
    "slow chords": "slow chord changes", "rhythmic": "a rhythmic figure", "drone": "a drone",
    "open fifths": "open fifths", "legato melody": "a smooth connected melody", "singing lead": "a singing line",
    "fast runs": "quick runs", "staccato riff": "a short choppy riff", "long notes": "long notes",
    "slow melody": "a slow tune",
}
TEMPO_PHRASES = {"slow": ("at a slow pace", "slowly"), "medium tempo": ("at a moderate tempo", "mid-tempo"),
                 "fast": ("at a quick pace", "up-tempo")}
REGISTER_PHRASES = {"low": ("in the low register", "down low"), "mid": ("in the middle register", "in the mid range"),
                    "high": ("in the upper register", "up high")}
GENRE_PHRASES = {"dance": "club", "ballad": "slow ballad", "funk": "funk and soul", "folk": "acoustic folk",
                 "rock": "rock and roll", "jazz": "jazz club", "reggae": "roots reggae"}
BPM = re.compile(r"^(\d+)\s*bpm$", re.I)
KEY = re.compile(r"^([A-G][#b]?) (major|minor)$")
TEMPLATES = (
    "{a} {adj}{inst} {clauses}",
    "{Inst}, {adj_words}; {clauses}",
    "I need {a} {adj}{inst} for {genre_a} {genre} song, {clauses}",
    "{Clauses}: {a} {adj}{inst}",
    "{a} {adj}{inst} that sounds {adj_words}, {clauses}",
)


@dataclass
class TagSlots:
    """A tag list read into the slots a prompt talks about."""

    instrument: str
    family: str | None = None
    register: str | None = None
    tempo: str | None = None
    bpm: int | None = None
    key: tuple[str, str] | None = None   # (tonic, mode)
    genre: str | None = None
    meter: str | None = None
    styles: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


def parse_tags(tags: Sequence[str]) -> TagSlots:
    """Slots of a tag list whose first tag names the instrument (the corpus convention)."""
    slots = TagSlots(tags[0], FAMILY_OF.get(tags[0]))
    for tag in tags[1:]:
        bpm, key = BPM.match(tag), KEY.match(tag)
        if bpm:
            slots.bpm = int(bpm.group(1))
        elif key:
            slots.key = (key.group(1), key.group(2))
        elif tag in TEMPO_PHRASES:
            slots.tempo = tag
        elif tag in REGISTER_PHRASES:
            slots.register = tag
        elif tag in GENRE_NAMES and slots.genre is None:
            slots.genre = tag
        elif tag == "3/4 time":
            slots.meter = tag
        elif tag in FAMILIES or tag in ("drum kit", "kit"):
            slots.family = slots.family or tag
        elif tag in STYLE_PHRASES:
            slots.styles.append(tag)
        else:
            slots.words.append(tag)
    return slots


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou8" else "a"


def paraphrase(tags: Sequence[str], variant: int = 0) -> str:
    """A prompt for a tag list, worded unlike the tags; deterministic in (tags, variant)."""
    if not tags:
        raise ValueError("cannot paraphrase an empty tag list")
    s = parse_tags(tags)
    digest = hashlib.sha256(("\x1f".join(tags) + f"|{variant}").encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def pick(options):
        return options[int(rng.integers(len(options)))] if isinstance(options, tuple) else options

    inst = pick(INSTRUMENT_PHRASES.get(s.instrument) or FAMILY_PHRASES.get(s.family or "") or (s.instrument,))
    words = [WORD_SYNONYMS.get(w, w) for w in s.words]
    rng.shuffle(words)
    adjectives = words[:int(rng.integers(1, 3))] if words else []
    clauses = []
    if s.styles:
        clauses.append(f"{pick(('playing', 'with'))} {STYLE_PHRASES[s.styles[0]]}")
    if s.tempo or s.bpm:
        bpm = f"around {s.bpm} beats per minute" if s.bpm else None
        clauses.append(pick(tuple(p for p in (bpm, *(TEMPO_PHRASES.get(s.tempo or "", ()))) if p)))
    if s.key:
        clauses.append(pick((f"in the key of {s.key[0]} {s.key[1]}", f"in a {s.key[1]} key on {s.key[0]}")))
    if s.register:
        clauses.append(pick(REGISTER_PHRASES[s.register]))
    if s.meter:
        clauses.append(pick(("in three", "in waltz time")))
    genre = GENRE_PHRASES.get(s.genre, s.genre) if s.genre else None
    kept = [c for c in clauses if rng.random() < 0.7] or clauses[:1]
    rng.shuffle(kept)
    templates = [t for t in TEMPLATES if (genre or "{genre}" not in t) and (adjectives or "adj_words" not in t)
                 and (kept or "{Clauses}" not in t)]
    template = pick(tuple(templates))
    if genre and "{genre}" not in template and rng.random() < 0.6:
        kept.append(pick((f"in {_article(genre)} {genre} style", f"for {_article(genre)} {genre} tune")))
    joined = ", ".join(kept[:-1]) + (" and " if len(kept) > 1 else "") + kept[-1] if kept else ""
    adj = "".join(f"{a} " for a in adjectives) if "adj_words" not in template else ""
    text = template.format(a=_article(adj or inst), adj=adj, inst=inst, Inst=inst[:1].upper() + inst[1:],
                           adj_words=" and ".join(adjectives), genre=genre, genre_a=_article(genre or ""),
                           clauses=joined,
                           Clauses=joined[:1].upper() + joined[1:])
    return re.sub(r"\s+", " ", text).strip(" ,;:")


def instrument_family(stem: Stem) -> str:
    """The corpus family of the stem's instrument (first tag), else its role."""
    return FAMILY_OF.get(stem.tags[0] if stem.tags else "", stem.role)


# ------------------------------------------------------------------ held-out embeddings

@dataclass
class HeldOutStem:
    """One validation stem's labels, prompts and embeddings (rows: the j-th pair)."""

    key: str
    role: str
    family: str
    caption: str
    prompts: list[str]
    reference: np.ndarray   # (J, 512) audio embeddings of the reference windows
    other: np.ndarray       # (J, 512) audio embeddings of non-overlapping other windows
    text: np.ndarray        # (J, 512) text embeddings of the prompts
    caption_text: np.ndarray  # (512,) text embedding of the tag caption


def window_pairs(stem: Stem, song_frames: int, clip_samples: int, count: int,
                 rng: np.random.Generator) -> list[tuple[int, int]]:
    """`count` (reference, other) window starts in samples; the two never overlap in time
    when the stem sounds long enough (else the other is the farthest sounding window)."""
    starts = sounding_block_starts(stem, song_frames, clip_samples)
    if len(starts) < 2:
        return []
    width = max(1, int(round(clip_samples / BLOCK)))
    out = []
    for _ in range(count):
        ref = int(starts[int(rng.integers(len(starts)))])
        apart = starts[(starts + width <= ref) | (starts >= ref + width)]
        pool = apart if len(apart) else starts[[np.argmax(np.abs(starts - ref))]]
        other = int(pool[int(rng.integers(len(pool)))])
        out.append((ref * BLOCK, other * BLOCK))
    return out


def held_out_stems(embedder: HouseClapEmbedder, cache: EmbeddingCache, songs: Sequence[Song],
                   pairs_per_stem: int, seed: int = 0) -> list[HeldOutStem]:
    """Prompts and embeddings of every stem of `songs` that sounds in two windows."""
    out = []
    clip = embedder.clip_samples
    for song in songs:
        for stem in song.stems:
            key = f"{song.song_id}/{stem.name}"
            pairs = window_pairs(stem, song.frames, clip, pairs_per_stem, np.random.default_rng([seed, *key.encode()]))
            if not pairs:
                continue
            audio = load_audio(stem.path, 0, song.frames)
            emb = cache.embed_audio(embedder, [audio[:, s:s + clip] for pair in pairs for s in pair])
            prompts = [paraphrase(stem.tags, j) for j in range(len(pairs))]
            caption = stem.caption
            text = cache.embed_text(embedder, prompts + [caption])
            out.append(HeldOutStem(key, stem.role, instrument_family(stem), caption, prompts,
                                   emb[0::2], emb[1::2], text[:-1], text[-1]))
    if not out:
        raise ValueError("no held-out stem sounds in two CLAP windows")
    return out


# ------------------------------------------------------------------ metrics and report

def gap_cosine(emb: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Row-wise cosine (M,) of unit rows (M, 512) and (M, 512)."""
    return np.sum(emb * reference, axis=1)


def gap_row(name: str, emb: np.ndarray, reference: np.ndarray) -> dict:
    """Mean/std of row-wise cosine of `emb` (M, 512) to `reference` (M, 512), and their FAD."""
    cos = gap_cosine(emb, reference)
    return {"set": name, "mean_cosine": float(cos.mean()), "cosine_std": float(cos.std()),
            "fad": float(fad(emb, reference)), "n": int(len(emb))}


def pca_plot(sets: dict[str, np.ndarray], cosines: dict[str, np.ndarray], path: Path) -> None:
    """Left: 2-D PCA (fit on all sets) of each set; right: histograms of cosine to the
    reference, for the sets named in both dicts in the same colour."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allx = np.concatenate(list(sets.values()))
    mean = allx.mean(0)
    _, _, vt = np.linalg.svd(allx - mean, full_matrices=False)
    colour = {name: f"C{i}" for i, name in enumerate(sets)}
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(12, 5))
    for name, x in sets.items():
        p = (x - mean) @ vt[:2].T
        ax.scatter(p[:, 0], p[:, 1], s=8, alpha=0.6, label=name, color=colour[name])
    ax.set(title="house CLAP space, 2-D PCA", xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=8)
    for name, c in cosines.items():
        hx.hist(c, bins=30, range=(-0.2, 1.0), alpha=0.5, label=name, color=colour.get(name))
    hx.set(title="cosine to the true audio embedding", xlabel="cosine", ylabel="count")
    hx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _markdown_table(rows: list[dict], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in columns) + " |")
    return "\n".join(lines)


def write_report(out: Path, gap: list[dict], retrieval: list[dict], stems: list[HeldOutStem], info: dict) -> None:
    """report.md, gap.csv, retrieval.csv and prompts.csv under `out`."""
    for name, rows in (("gap.csv", gap), ("retrieval.csv", retrieval)):
        with open(out / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    with open(out / "prompts.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["stem", "family", "tag caption", "paraphrase"])
        for s in stems:
            writer.writerows([s.key, s.family, s.caption, p] for p in s.prompts)
    distinct = list({s.caption: s for s in stems}.values())
    shown = distinct[:: max(1, len(distinct) // 6)][:6]
    examples = "\n".join(f"- `{s.caption}`\n  -> \"{s.prompts[0]}\"" for s in shown)
    text = f"""# House CLAP and bridge on held-out songs

CLAP `{info['clap']}`, bridge `{info['bridge']}`, data `{info['data']}`: {info['songs']} validation songs,
{info['stems']} stems, {info['pairs']} (reference, other) window pairs per stem, {info['steps']} Heun steps per
bridge sample.

## Text-to-audio retrieval

Queries: {info['queries']} paraphrased prompts (never the training tags); audio items: one window of each
of the {info['stems']} held-out stems. A query and an item are relevant when their stems share the
instrument family ("family", primary), the role ("role"), or are the same stem ("stem").
Query "text": the raw text embedding; "bridge": one bridge sample from it (also with
classifier-free guidance when a guidance row is present).

{_markdown_table(retrieval, ['query', 'relevance', 'R@1', 'R@10', 'mean_rank', 'median_rank'])}

## Modality gap

Against the true audio embeddings (reference windows of each held-out stem): mean cosine of the
j-th item of a stem to its j-th reference window, and FAD between the whole set and the reference set.
(a) raw text embeddings of the paraphrases, (b) bridge samples from them, (c) other windows of the
same stems (not overlapping the reference). Extra: the tag caption instead of a paraphrase,
unconditional bridge samples, and bridge samples with classifier-free guidance.

{_markdown_table(gap, ['set', 'mean_cosine', 'cosine_std', 'fad', 'n'])}

![PCA and cosines](gap_pca.png)

## Example prompts

{examples}
"""
    (out / "report.md").write_text(text)


def evaluate_clap(clap_model_path: str | os.PathLike, bridge_path: str | os.PathLike,
                  data_dir: str | os.PathLike, out_dir: str | os.PathLike, pairs_per_stem: int = 4,
                  steps: int = 32, guidance: float = 2.0, seed: int = 0, validation_fraction: float = 0.1,
                  layout: str = "auto", cache_dir: str | os.PathLike | None = None, text_encoder: MiniLMEncoder | None = None) -> dict:
    """Retrieval and modality-gap figures on the validation songs of `data_dir`.

    Writes report.md, gap.csv, retrieval.csv, prompts.csv, gap_pca.png and results.json
    to `out_dir`; returns {'retrieval': [rows], 'gap': [rows]}. `pairs_per_stem` (reference,
    other) window pairs and as many paraphrases per stem; `steps` Heun steps per bridge
    sample; (b) samples without guidance, and extra rows with classifier-free `guidance`
    (none when 1); `cache_dir` and `text_encoder` as in `train_house_clap`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    data = read_multitrack(data_dir, layout)
    songs = split_songs(data.songs, "validation", validation_fraction)
    if not songs:
        raise ValueError(f"{data_dir}: no validation songs at validation_fraction={validation_fraction}")
    embedder = house_embedder(clap_model_path, cache, text_encoder)
    bridge = ClapBridge.load(bridge_path)
    stems = held_out_stems(embedder, EmbeddingCache(cache / "clap"), songs, pairs_per_stem, seed)

    ref = np.concatenate([s.reference for s in stems])
    text = np.concatenate([s.text for s in stems])
    other = np.concatenate([s.other for s in stems])
    caption = np.concatenate([np.repeat(s.caption_text[None], len(s.text), 0) for s in stems])
    bridged = bridge.sample(text, 1, steps, seed)[:, 0]
    bridged_caption = bridge.sample(caption, 1, steps, seed + 1)[:, 0]
    uncond = bridge.sample(None, len(ref), steps, seed + 2)
    gap = [gap_row("(a) text, paraphrase", text, ref), gap_row("(b) bridge, paraphrase", bridged, ref),
           gap_row("(c) audio, other windows", other, ref), gap_row("text, tag caption", caption, ref),
           gap_row("bridge, tag caption", bridged_caption, ref),
           gap_row("bridge, unconditional", uncond, ref)]
    queries = [("text", text), ("bridge", bridged)]
    if guidance != 1.0:
        guided = bridge.sample(text, 1, steps, seed, guidance)[:, 0]
        gap.append(gap_row(f"bridge, paraphrase, guidance {guidance:g}", guided, ref))
        queries.append((f"bridge, guidance {guidance:g}", guided))

    items = np.stack([s.reference[0] for s in stems])
    per_query = [s for s in stems for _ in s.text]
    retrieval = []
    for query_name, query in queries:
        for relevance in ("family", "role", "stem"):
            label = {"family": lambda s: s.family, "role": lambda s: s.role, "stem": lambda s: s.key}[relevance]
            m = retrieval_metrics(query, items, [label(s) for s in per_query], [label(s) for s in stems])
            retrieval.append({"query": query_name, "relevance": relevance, **m})

    info = {"clap": Path(clap_model_path).name, "bridge": Path(bridge_path).name, "data": str(data_dir),
            "songs": len(songs), "stems": len(stems), "pairs": pairs_per_stem, "steps": steps,
            "queries": len(text)}
    pca_plot({"audio (reference)": ref, "(a) text": text, "(b) bridge": bridged, "(c) other windows": other},
             {"(a) text": gap_cosine(text, ref), "(b) bridge": gap_cosine(bridged, ref),
              "(c) other windows": gap_cosine(other, ref)}, out / "gap_pca.png")
    write_report(out, gap, retrieval, stems, info)
    results = {"info": info, "retrieval": retrieval, "gap": gap}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results
