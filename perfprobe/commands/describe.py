"""``perfprobe describe`` and ``perfprobe models``: what a server serves, in readable tables."""

from __future__ import annotations

import argparse

from perfprobe.client.abilities import TITLES, ServerAbilities, absent_call, learn
from perfprobe.client.errors import InferenceServerError
from perfprobe.client.model import ModelDescription
from perfprobe.commands.common import add_connection_options, connect
from perfprobe.report.text_table import format_table


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    describe = subparsers.add_parser("describe", help="show a model's metadata and configuration")
    describe.add_argument("-m", "--model", required=True, help="model name")
    describe.add_argument("--version", default="", help="model version (default: the server's choice)")
    add_connection_options(describe)
    describe.set_defaults(run=run_describe)

    models = subparsers.add_parser("models", help="list the server's model repository with ready state")
    add_connection_options(models)
    models.set_defaults(run=run_models)


def _sequences(model: ModelDescription) -> str:
    if not model.sequence_batching:
        return "no"
    return "yes (string correlation ids)" if model.string_correlation_ids else "yes"


def render_description(model: ModelDescription) -> str:
    facts = [
        ["name", model.name],
        ["versions", ", ".join(model.versions) or "-"],
        ["platform / backend", f"{model.platform or '-'} / {model.backend or '-'}"],
        ["max_batch_size", str(model.max_batch_size) if model.config_known else _unsaid_batching(model)],
        ["decoupled", "yes" if model.decoupled else "no"],
        ["dynamic batching", _batching(model)],
        ["sequence batching", _sequences(model)],
        ["instances", ", ".join(f"{g.count}x {g.kind}" for g in model.instance_groups) or "-"],
        ["response cache", "on" if model.response_cache else "off"],
        ["config digest", model.config_digest],
    ]
    if model.is_ensemble:
        facts.append(["ensemble steps", " -> ".join(step.model_name for step in model.ensemble_steps)])
    tensors = [
        [
            role,
            spec.name,
            spec.datatype,
            str(list(spec.shape)),
            spec.format.removeprefix("FORMAT_"),
            "optional" if spec.optional else "",
        ]
        for role, specs in (("input", model.inputs), ("output", model.outputs))
        for spec in specs
    ]
    parts = [format_table(["property", "value"], facts)]
    if tensors:
        parts.append(format_table(["role", "name", "datatype", "dims (no batch)", "format", ""], tensors))
    if not model.inputs:
        parts.append(
            "inputs: none listed by the server; a sweep takes them from --input-data FILE.json "
            "or --shape NAME:d1,d2:DATATYPE"
        )
    return "\n\n".join(parts)


def _unsaid_batching(model: ModelDescription) -> str:
    """A model without a configuration: what its metadata says of batching."""
    if model.batching:
        return "unknown (no model configuration; its inputs' -1 first dimension batches)"
    return "unknown (no model configuration): -b above 1 batches the shapes you give"


def _has(abilities: ServerAbilities, extension: str) -> str:
    if abilities.has(extension):
        return "yes"
    return "no" if extension in abilities.probed else "not listed"


def render_abilities(abilities: ServerAbilities) -> str:
    """The server and which of the extensions perfprobe uses it has."""
    rows = [[TITLES[name], _has(abilities, name)] for name in TITLES]
    listed = ", ".join(abilities.listed) or "none"
    return f"server: {abilities.title} (lists: {listed})\n\n" + format_table(["extension", "has"], rows)


def _batching(model: ModelDescription) -> str:
    if model.dynamic_batching is None:
        return "off"
    batching = model.dynamic_batching
    preferred = ",".join(map(str, batching.preferred_batch_sizes)) or "any"
    return f"on (preferred {preferred}, max queue delay {batching.max_queue_delay_us} us)"


def run_describe(args: argparse.Namespace) -> int:
    with connect(args) as client:
        model = client.describe_model(args.model, args.version)
        abilities = learn(client, model.name, model.config_known)
    print(render_description(model))
    print()
    print(render_abilities(abilities))
    return 0


def run_models(args: argparse.Namespace) -> int:
    with connect(args) as client:
        try:
            index = client.repository_index()
        except InferenceServerError as exc:
            if not absent_call(exc):
                raise
            index = [{"name": name} for name in client.model_names()]  # no repository index: names only
    rows = [
        [m.get("name", ""), str(m.get("version", "")) or "-", m.get("state", "") or "-", m.get("reason", "")]
        for m in index
    ]
    print(format_table(["model", "version", "state", "reason"], rows))
    return 0
