import subprocess
import sys
from pathlib import Path

import pytest

from rag.config import Settings, load_settings
from rag.errors import ConfigError


def test_precedence_overrides_env_toml_defaults(tmp_path):
    toml = tmp_path / "rag.toml"
    toml.write_text('collection = "from-toml"\nchunk_overlap = 10\nembed_batch_size = 8\n')
    env = {"RAG_COLLECTION": "from-env", "RAG_CHUNK_OVERLAP": "12", "RAG_PDF_PASSWORDS": "a,b"}
    s = load_settings({"collection": "from-flag", "device": None}, environ=env, config_file=toml)
    assert s.collection == "from-flag"  # flag beats env
    assert s.chunk_overlap == 12  # env beats toml
    assert s.embed_batch_size == 8  # toml beats default
    assert s.pdf_passwords == ("a", "b")
    assert s.device == "auto"  # a None override leaves the setting alone


@pytest.mark.parametrize("bad", [{"collection": "ab"}, {"collection": "has space"}, {"chunk_overlap": -1},
                                 {"chunk_tokens": 40, "chunk_overlap": 20}])
def test_invalid_settings_say_what_is_wrong(bad):
    with pytest.raises(ConfigError):
        Settings(**bad)


def test_unknown_toml_key_is_an_error(tmp_path):
    toml = tmp_path / "rag.toml"
    toml.write_text("colection = 'typo'\n")
    with pytest.raises(ConfigError, match="colection"):
        load_settings(environ={}, config_file=toml)


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="RAG_CHUNK_TOKENS"):
        load_settings(environ={"RAG_CHUNK_TOKENS": "many"})


def test_import_rag_stays_light():
    """Convention 5: the library and the CLI import no heavy module until work needs it."""
    code = ("import sys, rag, rag.cli, rag.indexer, rag.reading.worker, rag.embeddings, rag.store, rag.tokens; "
            "heavy = {'torch', 'sentence_transformers', 'transformers', 'chromadb', 'streamlit', 'pypdf'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"


def test_the_embedding_precision_follows_what_the_cpu_computes_natively(tmp_path):
    """auto: bfloat16 on a CPU that has it in hardware (x86 AVX-512 BF16 / AMX, Arm BF16), float32 elsewhere;
    the flags come from /proc/cpuinfo, in x86's and Arm's spellings."""
    from rag.embeddings import native_bf16

    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    old = tmp_path / "old-x86"
    old.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert native_bf16(x86) and native_bf16(arm) and not native_bf16(old)
    assert not native_bf16(tmp_path / "no-such-file")  # not Linux: float32
    assert Settings().embed_dtype == "auto"
    with pytest.raises(ConfigError, match="embed_dtype 'int4'"):
        Settings(embed_dtype="int4")
