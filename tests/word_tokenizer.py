"""A word-level Hugging Face tokenizer made on the spot from the words perfprobe's prompts and the
``llm_standin`` model use, so token counts are exact and nothing is downloaded (tests and benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path

import perfprobe
from perfprobe.data.prompts import _CORPUS


def standin_words() -> list[str]:
    """The words ``llm_standin`` answers with, read from its model file."""
    source = (Path(perfprobe.__file__).parent / "server" / "models" / "llm_standin" / "1" / "model.py").read_text()
    return " ".join(source[source.index("WORDS = (") : source.index(").split()")].split('"')[1::2]).split()


def word_tokenizer(folder: Path) -> Path:
    """``folder`` with a tokenizer.json (and the tokenizer_config.json transformers wants); returns the folder."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    vocabulary = ["[UNK]", *dict.fromkeys(_CORPUS + standin_words())]
    tokenizer = Tokenizer(WordLevel({word: index for index, word in enumerate(vocabulary)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "model_max_length": 1_000_000}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def letter_tokenizer(folder: Path) -> Path:
    """A tokenizer of single letters (spaces dropped): a text's tokens are its letters, so a count by it can
    be told from a count of responses or words."""
    from tokenizers import Regex, Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Sequence, Split, WhitespaceSplit

    letters = ["[UNK]", *"abcdefghijklmnopqrstuvwxyz"]
    tokenizer = Tokenizer(WordLevel({letter: index for index, letter in enumerate(letters)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Sequence([WhitespaceSplit(), Split(Regex("."), behavior="isolated")])
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder
