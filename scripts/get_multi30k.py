#!/usr/bin/env python3
"""Download Multi30k task 1 (raw, untokenized) and check it against pinned sha256 sums.

Multi30k (Elliott et al., 2016) is the usual small En-De benchmark: 29,000 training pairs,
1,014 validation and 1,000 test (Flickr 2016). The corpus is not part of this repository:
this script fetches the gzipped files from the public GitHub repository `multi30k/dataset`
(data/task1/raw/), unpacks them into --out, and verifies each file, so every user trains
and scores on exactly the same bytes.

    python scripts/get_multi30k.py                       # en,de -> data/multi30k/
    python scripts/get_multi30k.py --langs en,de,fr --out /data/multi30k
    python scripts/get_multi30k.py --from /mnt/corpora/multi30k   # copy a local copy instead

Output names: train.{lang}, val.{lang}, test2016.{lang}. With --from, each file is read as
DIR/<name>.{lang}, or else as the upstream DIR/<upstream>.{lang}.gz (unpacked). Only en and
de are pinned; fr and cs are fetched but not verified yet (a warning says so). A missing
file, a failed download or a hash mismatch stops with a one-line error and exit status 1.
Standard library only.

WMT news test sets are not part of Multi30k. sacreBLEU's own downloader gets them:

    sacrebleu -t wmt14 -l en-de --echo src > newstest2014.en
    sacrebleu -t wmt14 -l en-de --echo ref > newstest2014.de
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

BASE_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw"
# Local name -> upstream file stem.
SPLITS = {"train": "train", "val": "val", "test2016": "test_2016_flickr"}
LANGS = ("en", "de", "fr", "cs")
# sha256 of the unpacked files. fr and cs are not pinned yet (None: fetched, not verified).
SHA256: dict[str, str | None] = {
    "train.en": "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",
    "train.de": "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",
    "val.en": "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",
    "val.de": "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",
    "test2016.en": "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182",
    "test2016.de": "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16",
    "train.fr": None,
    "val.fr": None,
    "test2016.fr": None,
    "train.cs": None,
    "val.cs": None,
    "test2016.cs": None,
}


class FetchError(Exception):
    """A problem reported to the user as one line, exit status 1."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(url: str) -> bytes:
    """Fetch a .gz URL and return the unpacked bytes."""
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            packed = response.read()
    except urllib.error.HTTPError as e:
        raise FetchError(f"download failed: {url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise FetchError(f"download failed: {url}: {reason} (no network? use --from DIR)") from e
    try:
        return gzip.decompress(packed)
    except (OSError, EOFError) as e:
        raise FetchError(f"download failed: {url}: not a valid gzip file ({e})") from e


def read_local(src_dir: Path, name: str, upstream: str, lang: str) -> tuple[bytes, Path]:
    """Read DIR/name.lang, or the upstream DIR/upstream.lang.gz, whichever exists."""
    plain, packed = src_dir / f"{name}.{lang}", src_dir / f"{upstream}.{lang}.gz"
    try:
        if plain.is_file():
            return plain.read_bytes(), plain
        if packed.is_file():
            return gzip.decompress(packed.read_bytes()), packed
    except (OSError, EOFError) as e:
        raise FetchError(f"cannot read {plain if plain.is_file() else packed}: {e}") from e
    raise FetchError(f"missing file: {plain} (nor {packed.name})")


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file so an interrupted run never leaves a truncated file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch(out: Path, langs: list[str], src_dir: Path | None) -> None:
    """Fetch/copy, verify, then write every requested file."""
    for lang in langs:
        for name, upstream in SPLITS.items():
            key = f"{name}.{lang}"
            expected, target = SHA256[key], out / key
            if expected and target.is_file() and sha256(target.read_bytes()) == expected:
                print(f"{key}: already present, sha256 ok")
                continue
            if src_dir is not None:
                data, origin = read_local(src_dir, name, upstream, lang)
                where = str(origin)
            else:
                where = f"{BASE_URL}/{upstream}.{lang}.gz"
                print(f"{key}: downloading {where}", flush=True)
                data = download(where)
            got = sha256(data)
            if expected is None:
                print(f"warning: {key}: sha256 not pinned yet, not verified ({got})",
                      file=sys.stderr)
            elif got != expected:
                raise FetchError(f"sha256 mismatch for {key} (from {where}): "
                                 f"expected {expected}, got {got}")
            try:
                write_atomic(target, data)
            except OSError as e:
                raise FetchError(f"cannot write {target}: {e}") from e
            lines = data.count(b"\n")
            status = "sha256 ok" if expected else "unverified"
            print(f"{key}: {lines} lines, {status} -> {target}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Download Multi30k task 1 raw files and verify their sha256.")
    ap.add_argument("--out", type=Path, default=Path("data/multi30k"),
                    help="output folder (default: data/multi30k, git-ignored)")
    ap.add_argument("--langs", default="en,de",
                    help=f"comma-separated languages out of {','.join(LANGS)} (default: en,de)")
    ap.add_argument("--from", dest="src", type=Path, metavar="DIR",
                    help="copy from a local folder instead of downloading")
    args = ap.parse_args(argv)
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    try:
        unknown = [x for x in langs if x not in LANGS]
        if unknown or not langs:
            raise FetchError(f"unknown language(s) {','.join(unknown) or '(none)'}; "
                             f"choose from {','.join(LANGS)}")
        if args.src is not None and not args.src.is_dir():
            raise FetchError(f"missing directory: {args.src}")
        fetch(args.out, langs, args.src)
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
