"""The model registry: models described as data (``models.toml`` in this package), the data directory
that holds their files (platformdirs; ``KINEFUSE_MODELS`` overrides), and installing a file into it after
checking its sha256. Nothing is downloaded implicitly: ``add`` takes a local path, or a URL only when
asked explicitly."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import os
import shutil
import tempfile
import tomllib
import urllib.request
from pathlib import Path

import platformdirs

MODELS_ENV = "KINEFUSE_MODELS"
KEYPOINT_COUNTS = {"COCO-17": 17, "HALPE-26": 26, "BlazePose-33": 33}
_FIELDS = ("file", "sha256", "kind", "input", "size", "layout", "dtype", "colour", "mean", "std", "pad_value",
           "align", "decoder", "source")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    sha256: str
    kind: str  # "keypoints" (whole image, single person), "topdown" (per person crop) or "detector"
    input: str
    size: tuple[int, int]  # width, height
    layout: str  # "NHWC" or "NCHW"
    dtype: str  # "uint8" or "float32"
    colour: str  # "RGB" or "BGR"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad_value: int
    align: str  # letterbox placement: "centre" or "top_left"
    decoder: str
    source: str
    keypoint_set: str | None = None


def model_dir() -> Path:
    """Where installed model files live: ``$KINEFUSE_MODELS``, else the user data directory."""
    override = os.environ.get(MODELS_ENV)
    return Path(override) if override else Path(platformdirs.user_data_dir("kinefuse")) / "models"


def known_models() -> dict[str, ModelSpec]:
    text = (importlib.resources.files("kinefuse_plugins.camera") / "models.toml").read_text(encoding="utf-8")
    specs = {}
    for name, table in tomllib.loads(text).items():
        missing = [f for f in _FIELDS if f not in table]
        if missing:
            raise ValueError(f"models.toml [{name}]: missing {missing}")
        specs[name] = ModelSpec(name=name, **{**table, "size": tuple(table["size"]), "mean": tuple(table["mean"]),
                                              "std": tuple(table["std"])})  # fmt: skip
    return specs


def spec(name: str) -> ModelSpec:
    models = known_models()
    if name not in models:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(models))}")
    return models[name]


def installed_path(model: ModelSpec) -> Path | None:
    path = model_dir() / model.file
    return path if path.is_file() else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add(source: str, sha256: str, name: str | None = None) -> Path:
    """Install ``source`` (a local path, or an http(s) URL) into the model directory after checking that
    its sha256 is ``sha256``; the file is named after the registry entry with that hash (or ``name``).
    Returns the installed path. A wrong hash leaves nothing behind."""
    models = known_models()
    target = (
        models[name].file if name else next((m.file for m in models.values() if m.sha256 == sha256), None)
    )
    if target is None:
        target = Path(source.split("?")[0]).name
    model_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=model_dir(), delete=False) as tmp:
        temporary = Path(tmp.name)
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=60) as response, open(temporary, "wb") as out:  # noqa: S310
                shutil.copyfileobj(response, out)
        else:
            local = Path(source)
            if not local.is_file():
                raise FileNotFoundError(f"model file {local} does not exist")
            shutil.copyfile(local, temporary)
        actual = sha256_of(temporary)
        if actual != sha256.lower():
            raise ValueError(f"{source}: sha256 is {actual}, expected {sha256.lower()}; not installed")
        final = model_dir() / target
        temporary.replace(final)
        return final
    finally:
        temporary.unlink(missing_ok=True)
