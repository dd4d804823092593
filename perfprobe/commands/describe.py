"""``perfprobe describe`` and ``perfprobe models``: what a server serves, in readable tables."""

from __future__ import annotations

import argparse

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
        ["max_batch_size", str(model.max_batch_size)],
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
    return "\n\n".join(
        [
            format_table(["property", "value"], facts),
            format_table(["role", "name", "datatype", "dims (no batch)", "format", ""], tensors),
        ]
    )


def _batching(model: ModelDescription) -> str:
    if model.dynamic_batching is None:
        return "off"
    batching = model.dynamic_batching
    preferred = ",".join(map(str, batching.preferred_batch_sizes)) or "any"
    return f"on (preferred {preferred}, max queue delay {batching.max_queue_delay_us} us)"


def run_describe(args: argparse.Namespace) -> int:
    with connect(args) as client:
        print(render_description(client.describe_model(args.model, args.version)))
    return 0


def run_models(args: argparse.Namespace) -> int:
    with connect(args) as client:
        index = client.repository_index()
    rows = [
        [m.get("name", ""), str(m.get("version", "")) or "-", m.get("state", "") or "-", m.get("reason", "")]
        for m in index
    ]
    print(format_table(["model", "version", "state", "reason"], rows))
    return 0
