"""Synthetic prompts for generative models: ``text_input`` of a chosen length and ``max_tokens`` per request.

Lengths are drawn from a normal distribution (``MEAN[:STDDEV]``, at least 1) with a fixed seed, so
two runs send the same prompts. Without a tokenizer a prompt is that many words; with one
(``--tokenizer``) it is that many tokens exactly: a window of the tokenized corpus, decoded and
checked by encoding it again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from perfprobe.client.datatypes import numpy_dtype
from perfprobe.client.model import ModelDescription, TensorSpec
from perfprobe.errors import UsageError

TEXT_INPUT = "text_input"
MAX_TOKENS = "max_tokens"
DEFAULT_PROMPT_TOKENS = "128"
DEFAULT_OUTPUT_TOKENS = "16"
# the corpus prompts are cut from: plain words, so a prompt reads as text to any tokenizer
_CORPUS_TEXT = (
    "a load generator measures how a server answers when many clients ask at once and it reports the time each "
    "request took from the first byte sent to the last byte received together with the share of that time spent "
    "waiting in a queue and the share spent computing so that a reader can tell whether a slow answer came from "
    "too much load or from a model that is slow on its own a prompt of a given length asks the model to read "
    "that many tokens before it writes its first one and each token it writes after that takes one decode step"
)
_CORPUS = _CORPUS_TEXT.split(" ")


@dataclass(frozen=True)
class Lengths:
    """A length per request: MEAN, spread by STDDEV (0: every request the same)."""

    mean: float
    stddev: float = 0.0

    def draw(self, rng: np.random.Generator) -> int:
        value = rng.normal(self.mean, self.stddev) if self.stddev else self.mean
        return max(1, round(value))


def parse_lengths(text: str, option: str) -> Lengths:
    """``MEAN[:STDDEV]`` (both positive numbers; STDDEV may be 0)."""
    mean_text, _, spread_text = str(text).partition(":")
    try:
        mean, stddev = float(mean_text), float(spread_text or 0)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected MEAN[:STDDEV], like 128 or 128:16") from None
    if not (np.isfinite(mean) and np.isfinite(stddev)) or mean < 1 or stddev < 0 or mean > 1_000_000:
        raise UsageError(f"{option} {text!r}: MEAN must be from 1 to 1000000 and STDDEV at least 0")
    return Lengths(mean, stddev)


@dataclass(frozen=True)
class PromptPlan:
    """What the synthetic prompts are: their lengths, the answers' lengths, how many, and how tokens are counted."""

    prompt: Lengths
    output: Lengths
    count: int = 100
    tokenizer: str | None = None
    seed: int = 0
    asked: bool = False  # --prompt-tokens or --output-tokens given: a model without text_input is an error

    def applies_to(self, model: ModelDescription) -> bool:
        return self.asked or wants_prompts(model)


def wants_prompts(model: ModelDescription) -> bool:
    """A model with a text ``text_input`` (the generate extension's and LLM backends' convention)."""
    return any(spec.name == TEXT_INPUT and spec.datatype == "BYTES" for spec in model.inputs)


def prompt_items(model: ModelDescription, plan: PromptPlan) -> list[dict[str, np.ndarray]]:
    """``plan.count`` data items: each a prompt in ``text_input`` and, where the model takes it, ``max_tokens``."""
    rng = np.random.default_rng(plan.seed)
    return [prompt_item(model, plan, plan.prompt.draw(rng), plan.output.draw(rng), rng) for _ in range(plan.count)]


def prompt_item(
    model: ModelDescription, plan: PromptPlan, prompt_tokens: int, output_tokens: int | None, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One request's data: a prompt of ``prompt_tokens`` and ``max_tokens`` (the plan's draw when None)."""
    specs = {spec.name: spec for spec in model.inputs}
    if TEXT_INPUT not in specs:
        raise UsageError(f"prompts: {model.name} has no {TEXT_INPUT} input (its inputs: {', '.join(specs)})")
    text = _texts(plan.tokenizer)(prompt_tokens, rng)
    item = {TEXT_INPUT: _tensor(specs[TEXT_INPUT], model, text.encode())}
    if MAX_TOKENS in specs:
        tokens = output_tokens if output_tokens is not None else plan.output.draw(rng)
        item[MAX_TOKENS] = _tensor(specs[MAX_TOKENS], model, tokens)
    return item


def _texts(tokenizer: str | None) -> Callable[[int, np.random.Generator], str]:
    return _token_text(tokenizer) if tokenizer else _word_text


def _tensor(spec: TensorSpec, model: ModelDescription, value: object) -> np.ndarray:
    """One value shaped as the input takes one (``[1]``, or a batch of one where the model batches)."""
    dtype = np.object_ if spec.datatype == "BYTES" else numpy_dtype(spec.datatype)
    shape = tuple(1 for _ in spec.shape) or (1,)
    array = np.array([value], dtype=dtype).reshape(shape)
    return array[np.newaxis] if model.batching else array


def _word_text(words: int, rng: np.random.Generator) -> str:
    start = int(rng.integers(len(_CORPUS)))
    return " ".join(_CORPUS[(start + k) % len(_CORPUS)] for k in range(words))


@functools.lru_cache(maxsize=4)
def _token_text(path: str) -> Callable[[int, np.random.Generator], str]:
    from perfprobe.client.tokens import load_tokenizer

    tokenizer = load_tokenizer(path)
    corpus_ids = tokenizer.encode(_CORPUS_TEXT, add_special_tokens=False).ids  # type: ignore[attr-defined]

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)  # type: ignore[attr-defined]

    def text_of(tokens: int, rng: np.random.Generator) -> str:
        start = int(rng.integers(len(corpus_ids)))
        ids = [corpus_ids[(start + k) % len(corpus_ids)] for k in range(tokens + 8)]
        for take in range(tokens, 0, -1):  # a window whose decoded text encodes back to exactly ``tokens``
            text = tokenizer.decode(ids[:take])  # type: ignore[attr-defined]
            if count(text) == tokens:
                return text
            if count(text) < tokens:
                break
        raise UsageError(f"--tokenizer {path}: cannot make a prompt of exactly {tokens} tokens from its vocabulary")

    return text_of
