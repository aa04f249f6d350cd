"""Loading models: GGUF files converted once and cached, aliases, and every bad input refused
with a ModelLoadError that names the file and the fix, leaving nothing half-written."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from editmethods import EditmethodsError, Editor, ModelAlias, ModelLoadError, gguf_cache, hookimpl
from editmethods.cache import CACHE_ENV, cache_root
from editmethods.model_loading import load_pretrained, locate_gguf, resolve_device, resolve_dtype
from editmethods.testing import make_plugins, write_tiny_gguf

pytest.importorskip("gguf", reason="the gguf package is needed to write test GGUF files")

PROMPT = "hello there"


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gguf")
    write_tiny_gguf(folder / "tiny.gguf")
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache root for this test (never the user's)."""
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def logits(loaded_model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return loaded_model(tokenizer(PROMPT, return_tensors="pt").input_ids).logits


def leftovers(models: Path) -> list[str]:
    """What a failed load left in the models folder besides the hash index."""
    if not models.exists():
        return []
    return sorted(p.name for p in models.iterdir() if p.name != gguf_cache.SHA_INDEX)


# -- conversion and cache ---------------------------------------------------------------------
def test_first_load_converts_second_reads_the_cache(gguf_dir, cache, monkeypatch):
    first = load_pretrained(gguf_dir, gguf_file="tiny.gguf", progress=False)
    digest = sha256_of(gguf_dir / "tiny.gguf")
    folder = cache / "models" / digest
    assert first.converted and not first.from_cache and first.gguf_sha256 == digest
    assert first.source == str(folder)
    assert {"config.json", "model.safetensors", "tokenizer.json", gguf_cache.MARKER} <= {
        p.name for p in folder.iterdir()}
    assert leftovers(cache / "models") == [digest]  # no temporary folder stays behind
    assert not hasattr(first.model.config, "quantization_config")
    assert first.model.dtype == torch.float32 and not first.model.training

    def no_conversion(*args, **kwargs):
        raise AssertionError("the second load converted again")

    def no_hashing(*args, **kwargs):
        raise AssertionError("the second load hashed the file again")

    monkeypatch.setattr(gguf_cache, "convert_gguf", no_conversion)
    monkeypatch.setattr(gguf_cache.hashlib, "sha256", no_hashing)
    second = load_pretrained(gguf_dir, gguf_file="tiny.gguf")
    assert second.from_cache and second.source == str(folder)
    torch.testing.assert_close(logits(second.model, second.tokenizer),
                               logits(first.model, first.tokenizer), rtol=0, atol=0)


def test_cached_model_equals_the_direct_gguf_load_and_saves(gguf_dir, cache, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = load_pretrained(gguf_dir / "tiny.gguf", progress=False)  # the .gguf path alone
    direct = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file="tiny.gguf", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file="tiny.gguf")
    assert loaded.tokenizer(PROMPT).input_ids == tokenizer(PROMPT).input_ids
    torch.testing.assert_close(logits(loaded.model, loaded.tokenizer), logits(direct, tokenizer),
                               rtol=0, atol=0)
    loaded.model.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").is_file()


def test_dtype_applies_to_the_cached_float32_copy(gguf_dir, cache):
    half = load_pretrained(gguf_dir, gguf_file="tiny.gguf", dtype="bfloat16", progress=False)
    assert half.model.dtype == torch.bfloat16 and half.converted
    full = load_pretrained(gguf_dir, gguf_file="tiny.gguf")
    assert full.model.dtype == torch.float32 and full.from_cache


def test_changed_mtime_rehashes_and_still_finds_the_cache(gguf_dir, tmp_path):
    path = tmp_path / "copy.gguf"
    path.write_bytes((gguf_dir / "tiny.gguf").read_bytes())
    index = tmp_path / "index.json"
    digest = gguf_cache.file_sha256(path, index=index)
    assert digest == sha256_of(path) and index.is_file()
    os.utime(path, ns=(0, 10**9))
    assert gguf_cache.file_sha256(path, index=index) == digest


def test_incomplete_folder_at_the_final_name_is_replaced(gguf_dir, tmp_path):
    models = tmp_path / "models"
    stale = models / sha256_of(gguf_dir / "tiny.gguf")
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # written by hand or an older format: no marker
    loaded = load_pretrained(gguf_dir, gguf_file="tiny.gguf", cache_dir=models, progress=False)
    assert loaded.converted and gguf_cache.is_complete(stale)
    assert leftovers(models) == [stale.name]


def test_a_conversion_finished_first_elsewhere_is_kept(gguf_dir, tmp_path):
    models = tmp_path / "models"
    loaded = load_pretrained(gguf_dir, gguf_file="tiny.gguf", cache_dir=models, progress=False)
    final = Path(loaded.source)
    before = (final / "model.safetensors").stat().st_mtime_ns
    late = models / ".tmp-late"  # a second process that converted the same file at once
    late.mkdir()
    (late / "model.safetensors").write_bytes(b"")
    gguf_cache._publish(late, final)
    assert not late.exists() and (final / "model.safetensors").stat().st_mtime_ns == before
    assert oct(final.stat().st_mode & 0o777) == "0o755"  # readable by others sharing the cache


def test_conversion_prints_what_it_does(gguf_dir, tmp_path, capsys):
    load_pretrained(gguf_dir, gguf_file="tiny.gguf", cache_dir=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "converting tiny.gguf" in err and "as float32 safetensors" in err and "cached" in err


# -- bad input ----------------------------------------------------------------------------------
def test_unsupported_architecture_is_refused_and_nothing_is_cached(tmp_path, cache):
    bad = write_tiny_gguf(tmp_path / "frob.gguf", architecture="frobnicator")
    with pytest.raises(ModelLoadError, match=r"frob\.gguf.*architecture 'frobnicator'.*llama"):
        load_pretrained(bad, progress=False)
    assert leftovers(cache / "models") == []


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_hash_mismatch_is_refused_before_conversion(gguf_dir, tmp_path, cache, damage, monkeypatch):
    data = (gguf_dir / "tiny.gguf").read_bytes()
    expected = hashlib.sha256(data).hexdigest()
    path = tmp_path / "model.gguf"
    path.write_bytes(data[: len(data) // 2] if damage == "truncated"
                     else data[:-1] + bytes([data[-1] ^ 1]))
    monkeypatch.setattr(gguf_cache, "convert_gguf", lambda *a, **k: pytest.fail("converted"))
    with pytest.raises(ModelLoadError, match=rf"model\.gguf: sha256 is .*expected {expected}.*truncated or altered"):
        load_pretrained(tmp_path, gguf_file="model.gguf", gguf_sha256=expected)
    assert leftovers(cache / "models") == []


def test_truncated_file_without_a_digest_is_unreadable(gguf_dir, tmp_path, cache):
    data = (gguf_dir / "tiny.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match=r"cut\.gguf"):
        load_pretrained(tmp_path / "cut.gguf", progress=False)
    assert leftovers(cache / "models") == []


def test_cache_under_a_regular_file_is_refused(gguf_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(ModelLoadError, match=rf"cannot write the model cache .*a-file.*{CACHE_ENV}"):
        load_pretrained(gguf_dir, gguf_file="tiny.gguf", progress=False)


def test_read_only_cache_is_refused(gguf_dir, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    (root / "models").mkdir(parents=True)
    (root / "models").chmod(0o555)
    try:
        if os.access(root / "models", os.W_OK):
            pytest.skip("running as root: chmod does not stop writes (the test above covers it)")
        monkeypatch.setenv(CACHE_ENV, str(root))
        with pytest.raises(ModelLoadError, match="cannot write the model cache"):
            load_pretrained(gguf_dir, gguf_file="tiny.gguf", progress=False)
        assert leftovers(root / "models") == []
    finally:
        (root / "models").chmod(0o755)


def test_read_only_cache_that_holds_the_model_still_loads(gguf_dir, tmp_path):
    models = tmp_path / "models"
    load_pretrained(gguf_dir, gguf_file="tiny.gguf", cache_dir=models, progress=False)
    (models / gguf_cache.SHA_INDEX).unlink()  # the index cannot be rewritten: only slower
    models.chmod(0o555)
    try:
        assert load_pretrained(gguf_dir, gguf_file="tiny.gguf", cache_dir=models).from_cache
    finally:
        models.chmod(0o755)


def test_missing_paths_are_named(tmp_path, cache):
    with pytest.raises(ModelLoadError, match=r"no such model folder: .*nowhere.*editmethods models"):
        load_pretrained(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match=r"no such GGUF file: .*gone\.gguf"):
        load_pretrained(tmp_path / "gone.gguf")
    with pytest.raises(ModelLoadError, match=r"no such folder: .*nowhere"):
        load_pretrained(tmp_path / "nowhere", gguf_file="x.gguf")
    assert not cache.exists()


def test_a_digest_without_a_gguf_file_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="gguf_sha256 was given, but .* is no GGUF file"):
        load_pretrained(tmp_path, gguf_sha256="0" * 64)


def test_gguf_file_not_in_the_folder_lists_what_is_there(gguf_dir, cache):
    with pytest.raises(ModelLoadError, match=r"has no GGUF file 'other\.gguf'; it has: tiny\.gguf"):
        load_pretrained(gguf_dir, gguf_file="other.gguf")


def test_bad_dtype_lists_the_valid_ones(gguf_dir, cache):
    assert resolve_dtype("float16") is torch.float16 and resolve_dtype("bf16") is torch.bfloat16
    assert resolve_dtype(torch.float64) is torch.float64 and resolve_dtype(None) is None
    for bad in ("float33", torch.int8, 3):
        with pytest.raises(ModelLoadError, match="unknown dtype .*float32, float16, bfloat16"):
            resolve_dtype(bad)
    with pytest.raises(ModelLoadError, match="float33"):  # before anything is read or written
        Editor.from_pretrained(gguf_dir, gguf_file="tiny.gguf", dtype="float33",
                               plugins=make_plugins())
    assert not cache.exists()


def test_bad_device_is_named():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ModelLoadError, match="bad device 'gpu7'"):
        resolve_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_hub_ids_go_through_transformers_hub_cache(gguf_dir, monkeypatch):
    import transformers.utils

    asked = []

    def fake_cached_file(repo_id, filename, **kwargs):
        asked.append((repo_id, filename))
        return str(gguf_dir / "tiny.gguf") if filename == "tiny.gguf" else None

    monkeypatch.setattr(transformers.utils, "cached_file", fake_cached_file)
    assert locate_gguf("owner/repo", "tiny.gguf") == gguf_dir / "tiny.gguf"
    with pytest.raises(ModelLoadError, match="hub repo 'owner/repo' has no file 'x.gguf'"):
        locate_gguf("owner/repo", "x.gguf")
    assert asked == [("owner/repo", "tiny.gguf"), ("owner/repo", "x.gguf")]
    assert locate_gguf("owner/repo", None) is None  # no GGUF: a plain hub load


def test_errors_are_editmethods_and_os_errors():
    assert issubclass(ModelLoadError, EditmethodsError) and issubclass(ModelLoadError, OSError)


# -- aliases and the Editor ----------------------------------------------------------------------
class GGUFAlias:
    def __init__(self, folder: Path, sha256: str | None) -> None:
        self.folder, self.sha256, self.located = folder, sha256, 0

    def locate(self) -> Path:
        self.located += 1
        return self.folder

    @hookimpl
    def register_models(self, register):
        register(ModelAlias(name="tiny-gguf", locate=self.locate, gguf_file="tiny.gguf",
                            sha256=self.sha256, description="a GGUF test alias"))


def test_editor_loads_a_gguf_alias_lazily_and_checks_its_digest(gguf_dir, cache):
    alias = GGUFAlias(gguf_dir, sha256_of(gguf_dir / "tiny.gguf"))
    plugins = make_plugins(alias)
    assert plugins.model_aliases()["tiny-gguf"].gguf_file == "tiny.gguf" and alias.located == 0
    editor = Editor.from_pretrained("tiny-gguf", plugins=plugins)
    assert alias.located == 1 and editor.model.config.model_type == "llama"
    assert editor.model.name_or_path == str(cache / "models" / alias.sha256)
    assert editor.architecture.model_type == "llama"
    wrong = GGUFAlias(gguf_dir, "0" * 64)
    with pytest.raises(ModelLoadError, match="expected 0000"):
        Editor.from_pretrained("tiny-gguf", plugins=make_plugins(wrong))


def test_alias_whose_files_are_missing_says_how_to_install(cache):
    def locate() -> Path:
        raise ModelLoadError("tiny-gguf needs its package: pip install tiny-gguf")

    class Missing:
        @hookimpl
        def register_models(self, register):
            register(ModelAlias(name="tiny-gguf", locate=locate, gguf_file="tiny.gguf"))

    with pytest.raises(ModelLoadError, match="pip install tiny-gguf"):
        Editor.from_pretrained("tiny-gguf", plugins=make_plugins(Missing()))


def test_model_alias_checks_its_fields():
    with pytest.raises(ValueError, match="exactly one of 'path' and 'locate'"):
        ModelAlias(name="x")
    with pytest.raises(ValueError, match="exactly one of 'path' and 'locate'"):
        ModelAlias(name="x", path="/a", locate=lambda: "/b")
    with pytest.raises(ValueError, match="64 lowercase hex"):
        ModelAlias(name="x", path="/a", gguf_file="a.gguf", sha256="ABC")
    assert ModelAlias(name="x", locate=lambda: "/b").resolve_path() == "/b"


def test_models_command_shows_a_missing_gguf_alias(monkeypatch):
    import json

    from click.testing import CliRunner

    from editmethods import plugins as plugins_module
    from editmethods.cli import build_cli

    def locate() -> Path:
        raise ModelLoadError("pip install --no-deps tiny-gguf")

    class Missing:
        @hookimpl
        def register_models(self, register):
            register(ModelAlias(name="tiny-gguf", locate=locate, gguf_file="tiny.gguf",
                                description="a GGUF test alias"))

    monkeypatch.setattr(plugins_module, "_default", make_plugins(Missing()))
    r = CliRunner().invoke(build_cli(), ["models"])
    assert r.exit_code == 0, r.output
    assert "tiny-gguf  a GGUF test alias  [missing: pip install --no-deps tiny-gguf]" in r.output
    row = json.loads(CliRunner().invoke(build_cli(), ["models", "--json"]).output)[0]
    assert row["available"] is False and row["gguf_file"] == "tiny.gguf"


@pytest.mark.parametrize("command", ["edit", "eval", "bench", "trace"])
def test_every_model_loading_command_has_the_model_options(command):
    from click.testing import CliRunner

    from editmethods.cli import build_cli

    r = CliRunner().invoke(build_cli(make_plugins()), [command, "--help"])
    assert r.exit_code == 0
    for option in ("--gguf-file", "--dtype", "--device"):
        assert option in r.output


def test_cli_reports_a_bad_dtype_cleanly(gguf_dir):
    from click.testing import CliRunner

    from editmethods.cli import build_cli

    r = CliRunner().invoke(build_cli(make_plugins()), [
        "edit", "--model", str(gguf_dir), "--gguf-file", "tiny.gguf", "--dtype", "float33",
        "--method", "ft", "--prompt", "a b", "--subject", "a", "--target", "c"])
    assert r.exit_code == 1 and "unknown dtype 'float33'" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_cache_root_is_the_statistics_cache_root(tmp_path, monkeypatch):
    from editmethods.toolkit.stats import cache_dir

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path and cache_dir().parent == cache_root()
    monkeypatch.delenv(CACHE_ENV)
    assert cache_root() == Path.home() / ".cache" / "editmethods" == cache_dir().parent
