#!/usr/bin/env python3
"""Fetch the model weights named in models/manifest.toml into models/weights/.

Order of sources for each file: $CHECKPOINT_ASSETS (a folder, or a folder with models/ inside; several may be
given, separated by ':'), ../shared/models
beside the repository, then the manifest's public URL. Every file is checked against its sha256; a file that is
already in place with the right hash is left alone, so running this again costs only the hashing.
"""
import hashlib
import os
import shutil
import sys
import tempfile
import tomllib
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEST = Path(os.environ.get("CHECKPOINT_MODELS_DIR", HERE / "weights"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def candidates(name: str):
    for assets in filter(None, os.environ.get("CHECKPOINT_ASSETS", "").split(os.pathsep)):
        yield Path(assets) / name
        yield Path(assets) / "models" / name
    yield REPO.parent / "shared" / "models" / name


def fetch(model: dict) -> None:
    target = DEST / model["file"]
    want = model["sha256"]
    if target.exists() and sha256(target) == want:
        print(f"[models] {model['name']}: {target.name} ok")
        return
    for src in candidates(model["file"]):
        if src.is_file():
            got = sha256(src)
            if got != want:
                print(f"[models] {model['name']}: {src} has sha256 {got}, expected {want}; skipped", file=sys.stderr)
                continue
            shutil.copyfile(src, target)
            print(f"[models] {model['name']}: copied from {src}")
            return
    url = model.get("url", "")
    if not url:
        sys.exit(
            f"[models] {model['name']}: {model['file']} not found in $CHECKPOINT_ASSETS or ../shared/models and it has no "
            f"public download URL ({model['source']}). Put the file in one of those folders and run this again."
        )
    print(f"[models] {model['name']}: downloading {url}")
    with tempfile.NamedTemporaryFile(dir=DEST, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=120) as r:
                shutil.copyfileobj(r, tmp)
            tmp.close()
            got = sha256(Path(tmp.name))
            if got != want:
                sys.exit(f"[models] {model['name']}: download has sha256 {got}, expected {want}; refused")
            os.replace(tmp.name, target)
        finally:
            if os.path.exists(tmp.name):
                os.unlink(tmp.name)


def main() -> None:
    manifest = tomllib.loads((HERE / "manifest.toml").read_text())
    DEST.mkdir(parents=True, exist_ok=True)
    wanted = set(sys.argv[1:])
    for model in manifest["model"]:
        if not wanted or model["name"] in wanted:
            fetch(model)


if __name__ == "__main__":
    main()
