"""Counting a generated answer's tokens with a local Hugging Face tokenizer (``--tokenizer``).

Only a file on this machine is read (``tokenizer.json``, or a folder holding one); nothing is
downloaded. Without a tokenizer, a streamed answer counts one token per response with output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from perfprobe.errors import UsageError

TokenCount = Callable[[str], int]  # a text's tokens


def tokenizer_file(path: str) -> Path:
    """The ``tokenizer.json`` that ``path`` names (the file, or a folder holding it)."""
    given = Path(path).expanduser()
    found = given / "tokenizer.json" if given.is_dir() else given
    if not found.is_file():
        raise UsageError(f"--tokenizer {path}: no tokenizer.json there (a local file; nothing is downloaded)")
    return found


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str) -> object:
    """The tokenizer in ``path`` (loaded once per process); a UsageError when it cannot be read."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise UsageError("--tokenizer needs the tokenizers package: pip install tokenizers") from None
    try:
        return Tokenizer.from_file(str(tokenizer_file(path)))
    except UsageError:
        raise
    except Exception as exc:  # the library's own error types for a file that is not a tokenizer
        raise UsageError(f"--tokenizer {path}: not a Hugging Face tokenizer.json ({exc})") from None


def token_counter(path: str | None) -> TokenCount | None:
    """How many tokens a text is, by the tokenizer at ``path`` (special tokens not added); None without one."""
    if path is None:
        return None
    tokenizer = load_tokenizer(path)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)  # type: ignore[attr-defined]

    return count
