"""What a Tongwen version collection looks like in Milvus: fields, the BM25 function, indexes.

One row per chunk, keyed by its position (the same position as in the in-memory chunk list, so a
search hit maps straight to ``chunks[pos]``). ``record`` carries the whole chunk as JSON so a
replica can rebuild its chunk list from Milvus alone; ``canonical`` is the embedded,
Traditional→Simplified text that the BM25 function (jieba analyzer) indexes when the server has
full-text search.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from rag.store.keyword import WORD_BM25
from rag.store.records import ChunkRecord

MAX_VARCHAR = 65535  # Milvus VARCHAR limit, in bytes
HNSW_FROM = 200_000  # dense index on a server: exact FLAT below, HNSW from here (crossover measured by bench/scale.py)


def chunk_index_params(n_chunks: int, bm25: bool, server: bool) -> Any:
    """Exact search where it is cheap enough, HNSW (recall@10 ≈ 0.99 here) where it is not.

    Milvus Lite searches exactly whatever the index type says, so it always gets FLAT.
    """
    from pymilvus import MilvusClient

    params = MilvusClient.prepare_index_params()
    if n_chunks >= HNSW_FROM and server:
        params.add_index("vector", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200})
    else:
        params.add_index("vector", index_type="FLAT", metric_type="IP")
    if bm25:
        # The server's BM25 gets the local word index's parameters (its own defaults are k1 1.2, b 0.75);
        # Milvus Lite 3.2 ignores them (the same scores for any value).
        bm25_params = {"bm25_k1": WORD_BM25.k1, "bm25_b": WORD_BM25.b}
        params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=bm25_params)
    return params


def sentence_schema(dimension: int) -> Any:
    """A version's sentence vectors (``rag.store.sentences``): one row per (chunk, sentence), keyed
    by its row number; ``owner`` is the chunk's position."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("owner", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    return schema


def sentence_index_params() -> Any:
    """The rows are read back whole and ranked in memory (``SentenceSearch``); Milvus only needs an
    index on the vector to load the collection."""
    from pymilvus import MilvusClient

    params = MilvusClient.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="IP")
    return params


def manifest_index_params() -> Any:
    from pymilvus import MilvusClient

    params = MilvusClient.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="L2")
    return params


def chunk_schema(dimension: int, bm25: bool) -> Any:
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pos", DataType.INT64, is_primary=True)
    schema.add_field("chunk_id", DataType.VARCHAR, max_length=512)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
    schema.add_field("record", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    if bm25:
        schema.add_field(
            "canonical",
            DataType.VARCHAR,
            max_length=MAX_VARCHAR,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "jieba"},
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["canonical"],
                output_field_names=["sparse"],
            )
        )
    else:
        schema.add_field("canonical", DataType.VARCHAR, max_length=MAX_VARCHAR)
    return schema


def manifest_schema() -> Any:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("version", DataType.VARCHAR, max_length=512)
    schema.add_field("part", DataType.INT64)
    schema.add_field("body", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus before 2.4 wants a vector in every collection
    return schema


def sentence_row(row: int, owner: int, vector: np.ndarray) -> dict[str, Any]:
    return {"row": row, "owner": owner, "vector": vector.tolist()}


def chunk_row(pos: int, chunk: ChunkRecord, vector: np.ndarray) -> dict[str, Any]:
    record = json.dumps(chunk.to_json(), ensure_ascii=False)
    if len(record.encode("utf-8")) > MAX_VARCHAR:
        raise ValueError(
            f"chunk {chunk.id} is too large for Milvus ({len(record)} chars); lower TONGWEN_CHUNK_MAX_TOKENS"
        )
    return {
        "pos": pos,
        "chunk_id": chunk.id,
        "doc_id": chunk.doc_id,
        "record": record,
        "vector": vector.tolist(),
        "canonical": chunk.canonical,
    }
