"""Issue 21: the README's set-up blocks and its test command, and `.ci/run`'s copy of that command.

The README keeps a torch already installed (a CPU build stays a CPU build) and pins only when there is none;
CI always installs the pinned pair. Both pin the same versions and run the same rest of the line.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"pip install (torch==\S+ torchvision==\S+)")
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def _line(text: str, marker: str) -> str:
    (line,) = [ln.strip() for ln in text.splitlines() if marker in ln and not ln.lstrip().startswith("#")]
    return line


def test_readme_test_command_and_ci_agree():
    readme = _line((ROOT / "README.md").read_text(), 'pip install -e ".[test,docs]"')
    ci = _line((ROOT / ".ci" / "run").read_text(), 'pip install -e ".[test,docs]"')
    keep = re.fullmatch(r'\(python -c "import torch" 2>/dev/null \|\| (pip install torch==\S+ torchvision==\S+)\) '
                        r"&& (.*)", readme)
    assert keep, readme  # the README pins only when no torch is installed
    pinned = re.fullmatch(r"(pip install torch==\S+ torchvision==\S+) && (.*)", ci)
    assert pinned, ci  # CI always pins
    assert keep.groups() == pinned.groups()


def test_readme_has_a_gpu_and_a_cpu_block():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert "With an NVIDIA GPU" in setup and "CPU only" in setup
    blocks = re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)
    gpu, cpu = blocks[0], blocks[1]
    assert "pip install -e ." in gpu and CPU_INDEX not in gpu
    assert cpu.index(f"pip install torch torchvision {CPU_INDEX}") < cpu.index("pip install -e .")
    assert not PIN.search(cpu)
