"""Faults round two, item 17: every option of every command, every YAML key and the input file formats,
with boundary, random and wrong-typed values (tests/fuzz_cli.py makes and runs the cases).

Each case must end with a documented exit code other than 1 (a bug), a single `perfprobe: error:`
line (notes and warnings before it allowed), no traceback, and leave no shared memory behind.
``PERFPROBE_FUZZ_SEED`` picks other values; ``python tests/fuzz_cli.py ... --all`` tries them all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import own_segments

from perfprobe.server.launcher import free_ports

HERE = Path(__file__).resolve().parent
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 8}


def test_every_option_key_and_file_format_fails_in_one_line_with_a_documented_code(server, tmp_path: Path) -> None:
    seed = os.environ.get("PERFPROBE_FUZZ_SEED", "0")
    shutil.copytree(HERE / "fixtures" / "sweep_v1", tmp_path / "run")
    dead_url = f"127.0.0.1:{free_ports(1)[0]}"  # nothing listens there: a case that gets that far stops, exit 3
    runner = subprocess.Popen(
        [sys.executable, str(HERE / "fuzz_cli.py"), str(tmp_path), server.http_url, seed, dead_url],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, err = runner.communicate(timeout=600)
    assert runner.returncode == 0, err
    cases = [json.loads(line) for line in out.splitlines()]
    assert len(cases) > 500
    findings = []
    for case in cases:
        lines = [
            line for line in case["stderr"].strip().splitlines() if not line.lstrip().startswith(("note:", "warning:"))
        ]
        one_line = case["code"] == 0 or (len(lines) == 1 and lines[0].startswith("perfprobe: "))
        if case["code"] not in DOCUMENTED or "Traceback" in case["stderr"] or not one_line:
            findings.append(f"{case['case']}: exit {case['code']}: {case['stderr'].strip()[-300:]}")
    assert not findings, f"seed {seed}, {len(findings)} of {len(cases)}:\n" + "\n".join(findings[:30])
    assert own_segments(runner.pid) == []
