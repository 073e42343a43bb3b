"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["log_p"].shape == (16,)
    assert namespace["samples"].shape == (100, 2) and namespace["log_q"].shape == (100,)
    y, log_det = namespace["d"].forward_and_log_det(namespace["x"])
    assert y.shape == (16, 2) and log_det.shape == (16,)
