"""Every Python example of the README and of docs/*.md runs, verbatim, in the test suite.

A fenced block tagged ``python`` (or ``py``) is run; the blocks of one file run in order in one
namespace, as a reader would paste them. A block that is a fragment and cannot run (a signature,
an excerpt) is marked by the line ``<!-- not run -->`` right above its fence, or better written
as an untagged block; a page whose examples need optional dependencies or data files opts out
with a line ``<!-- docs-test: skip -->``. Use both sparingly.
"""

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = "<!-- not run -->"
PAGE_SKIP = "<!-- docs-test: skip -->"
_FENCE = re.compile(
    rf"(?P<marker>^{NOT_RUN}\n)?^```(?:python|py)\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL
)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, run)`` of every python block of a markdown text."""
    return [
        (text.count("\n", 0, m.start("code")) + 1, m.group("code"), m.group("marker") is None)
        for m in _FENCE.finditer(text)
    ]


def test_block_finder_reads_fences_and_markers():
    text = "a\n```python\nx = 1\n```\n<!-- not run -->\n```py\ny(\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n", True), (7, "y(\n", False)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(document):
    if PAGE_SKIP in document.read_text():
        pytest.skip(f"{document.name} opts out of running its examples")
    blocks = python_blocks(document.read_text())
    runnable = [(line, code) for line, code, run in blocks if run]
    if document.name == "README.md":
        assert runnable, "the README has no runnable python example"
    namespace: dict = {"__name__": f"docs_example_{document.stem}"}
    for line, code in runnable:
        # Line numbers of a failure point into the markdown file.
        exec(compile("\n" * (line - 1) + code, str(document), "exec"), namespace)


OPTIONS_WITH_VALUE = {"--workdir", "--coordinator-address", "--num-processes", "--process-id"}


def jgen_train_commands(text: str) -> list[list[str]]:
    """The arguments after ``jgen train`` of every such line of the bash blocks of a text."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("jgen train "):
                commands.append(shlex.split(line)[2:])
    return commands


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_training_commands_name_real_experiments_and_keys(document):
    """Every ``jgen train`` line of the docs resolves to a config (experiment, variant and
    overrides exist and type-check), without training."""
    from jgen.config import load_experiment_config

    for argv in jgen_train_commands(document.read_text()):
        args, skip = [], False
        for arg in argv:
            if skip or arg in OPTIONS_WITH_VALUE:
                skip = not skip
                continue
            args.append(arg)
        positional = [a for a in args if not a.startswith("--")]
        if ".py" in positional[0]:
            continue  # a config file of the reader's own
        load_experiment_config(positional[0], positional[1:], smoke="--smoke" in args)
