"""Deterministic stand-in tokenizer: the same text always gives the same token ids, with no model files.

The emulator has no tokenizer, yet prefix caching, block hashes and KV events need token ids that repeat
exactly when a prompt repeats and diverge where prompts diverge. Text is cut into pieces of at most
``PIECE_CHARS`` characters at word boundaries (a word keeps its leading whitespace, as BPE vocabularies do),
and each piece maps to an id by a stable hash (BLAKE2b, not ``hash()``, which is salted per process). About
four characters per token is the usual ratio for English text with Llama-class tokenizers, so prompt lengths
are realistic. Chat messages are rendered with a fixed template before tokenizing.

Generated text is filler: the emulator models how long generation takes, not what it says.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

VOCAB_SIZE = 32000
RESERVED_IDS = 3  # 0-2 are special tokens (unk, bos, eos) in Llama-style vocabularies
PIECE_CHARS = 4

_WORDS = re.compile(r"\s*\S+|\s+")
_FILLER = (" lorem", " ipsum", " dolor", " sit", " amet", " consectetur", " adipiscing", " elit")


def _piece_id(piece: str) -> int:
    digest = hashlib.blake2b(piece.encode("utf-8"), digest_size=8).digest()
    return RESERVED_IDS + int.from_bytes(digest, "big") % (VOCAB_SIZE - RESERVED_IDS)


def _pieces(text: str) -> Iterable[str]:
    for word in _WORDS.findall(text):
        for start in range(0, len(word), PIECE_CHARS):
            yield word[start : start + PIECE_CHARS]


def encode(text: str) -> list[int]:
    """Token ids of ``text``; equal prefixes (up to a piece boundary) give equal leading ids."""
    return [_piece_id(piece) for piece in _pieces(text)]


def render_chat(messages: Iterable[Mapping[str, object]]) -> str:
    """A chat template (role header, content, end marker per message) ending with the assistant's header."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
        parts.append(f"<|start|>{message.get('role', 'user')}\n{content or ''}<|end|>\n")
    parts.append("<|start|>assistant\n")
    return "".join(parts)


def filler(index: int) -> str:
    """The text of output token ``index`` (0-based)."""
    return _FILLER[index % len(_FILLER)]
