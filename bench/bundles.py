"""A large, realistic front-end bundle generated deterministically.

Shape of a code-split production build: an entry module, ~43 % JS chunks
each with a source map (maps run 2-3x their chunk), ~7 % CSS files with
their maps. Sizes are log-normal (most chunks small, a few large vendor
chunks), then scaled so the whole bundle hits the requested size. Content is
text of the right kind (minified-looking JS, CSS rules, VLQ mappings), taken
from per-kind corpora at seeded offsets, with a unique header per file.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

CORPUS_BYTES = 1 << 20


@dataclass(frozen=True)
class BundleStats:
    root: Path
    files: int
    bytes: int
    by_kind: dict[str, tuple[int, int]]  # kind → (files, bytes)


def _corpus(rng: random.Random, kind: str) -> bytes:
    words = [
        "function",
        "return",
        "const",
        "let",
        "var",
        "this",
        "null",
        "void",
        "typeof",
        "new",
        "if",
        "else",
        "for",
        "while",
        "=>",
        "===",
        "!==",
        "&&",
        "||",
        "?",
        ":",
        "(",
        ")",
        "{",
        "}",
        ";",
        ",",
        ".",
        "[",
        "]",
        "0",
        "1",
        "e",
        "t",
        "n",
        "r",
        "o",
        "i",
        "a",
        "s",
    ]
    parts: list[str] = []
    size = 0
    while size < CORPUS_BYTES:
        if kind == "js":
            ident = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_$", k=rng.randint(1, 3)))
            piece = rng.choice(words) + (ident if rng.random() < 0.5 else "")
        elif kind == "css":
            cls = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz-", k=rng.randint(3, 10)))
            piece = f".{cls}{{margin:{rng.randint(0, 32)}px;color:#{rng.randrange(16**6):06x}}}"
        else:  # base64 VLQ source-map mappings
            seg = "".join(
                rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", k=4)
            )
            piece = seg + rng.choice([",", ",", ",", ";"])
        parts.append(piece)
        size += len(piece)
    return "".join(parts).encode()[:CORPUS_BYTES]


def _fill(corpus: bytes, header: bytes, size: int, rng: random.Random) -> bytes:
    body = bytearray(header)
    while len(body) < size:
        start = rng.randrange(len(corpus) // 2)
        body += corpus[start : start + min(size - len(body), len(corpus) - start)]
    return bytes(body[:size])


def generate_bundle(
    root: Path, files: int = 2000, total_bytes: int = 50 * 10**6, seed: int = 2026
) -> BundleStats:
    rng = random.Random(seed)
    corpora = {kind: _corpus(rng, kind) for kind in ("js", "css", "map")}
    css_pairs = round(files * 0.075)
    js_pairs = (files - 2 - 2 * css_pairs) // 2
    plan: list[tuple[str, str, float]] = [("index.js", "js", 6_000.0), ("index.js.map", "map", 15_000.0)]
    for i in range(js_pairs):
        size = rng.lognormvariate(9.4, 1.1)  # median ~12 kB, long tail of vendor chunks
        name = f"assets/chunk-{i:04d}-{rng.getrandbits(32):08x}.js"
        plan += [(name, "js", size), (name + ".map", "map", size * rng.uniform(2.0, 3.2))]
    for i in range(css_pairs):
        size = rng.lognormvariate(8.3, 0.8)  # median ~4 kB
        name = f"assets/style-{i:04d}-{rng.getrandbits(32):08x}.css"
        plan += [(name, "css", size), (name + ".map", "map", size * rng.uniform(1.5, 2.5))]
    while len(plan) < files:  # odd counts: one more small chunk
        plan.append((f"assets/extra-{len(plan)}.js", "js", 2_000.0))
    scale = total_bytes / sum(size for _, _, size in plan)
    sizes = [max(64, int(size * scale)) for _, _, size in plan]
    sizes[-1] += total_bytes - sum(sizes)  # exact total

    by_kind: dict[str, tuple[int, int]] = {}
    root.mkdir(parents=True, exist_ok=True)
    for (name, kind, _), size in zip(plan, sizes, strict=True):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "map":
            head = json.dumps({"version": 3, "file": Path(name).stem, "sources": [name], "mappings": ""})
            header = head[:-2].encode()  # keep the string open: the mappings follow
        else:
            header = f"/*! {name} */\n".encode()
        path.write_bytes(_fill(corpora[kind], header, size, rng))
        count, total = by_kind.get(kind, (0, 0))
        by_kind[kind] = (count + 1, total + size)
    return BundleStats(root=root, files=len(plan), bytes=sum(sizes), by_kind=by_kind)


@dataclass(frozen=True)
class ReleaseStats:
    root: Path
    files: int
    changed: int
    changed_bytes: int


def next_release(previous: Path, root: Path, fraction: float = 0.05, seed: int = 2027) -> ReleaseStats:
    """The next version of a generated bundle, as a bundler would emit it.

    `fraction` of the files change: JS chunks with their source maps, each pair
    under a new content-hashed name (as esbuild/Vite rename a changed chunk),
    plus the entry and its map, which import the new names. Every other file is
    byte-identical.
    """
    rng = random.Random(seed)
    files = sorted(p.relative_to(previous).as_posix() for p in previous.rglob("*") if p.is_file())
    target = round(len(files) * fraction)
    chunks = [f for f in files if f.startswith("assets/chunk-") and f.endswith(".js")]
    picked = set(rng.sample(chunks, (target - 2) // 2))  # pairs, plus index.js and its map
    renames: dict[str, str] = {}
    changed_bytes = 0
    for rel in files:
        data = (previous / rel).read_bytes()
        out = rel
        base = rel.removesuffix(".map")
        if base in picked:
            stem = base.rsplit("-", 1)[0]
            out = f"{stem}-{rng.getrandbits(32):08x}.js" + (".map" if rel.endswith(".map") else "")
            renames[rel] = out
            data = _mutate(data, rng)
        elif rel in ("index.js", "index.js.map"):
            data = _mutate(data, rng)
        else:
            out = rel
        path = root / out
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if out != rel or rel in ("index.js", "index.js.map"):
            changed_bytes += len(data)
    entry = root / "index.js"
    imports = "".join(f'import "./{new}";\n' for old, new in sorted(renames.items()) if new.endswith(".js"))
    entry.write_bytes(imports.encode() + entry.read_bytes())
    changed_bytes += len(imports)
    return ReleaseStats(root=root, files=len(files), changed=len(renames) + 2, changed_bytes=changed_bytes)


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """Same size, other bytes: a rebuilt file."""
    cut = rng.randrange(16, max(17, len(data) - 16))
    return data[cut:] + data[:cut]
