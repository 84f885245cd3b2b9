"""The README's code runs as printed: the own-loop snippet trains with SAM, LDAM and DRW."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(heading: str) -> str:
    """The first ```python block after the `## heading` line."""
    text = README.read_text()
    section = text[text.index(f"## {heading}\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_own_loop_snippet_runs():
    torch.manual_seed(0)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 9, 9, 4])
    namespace = {"loader": [(images, labels)]}   # the one name the snippet leaves to the reader
    exec(compile(readme_block("SAM and the long-tail losses in your own loop"), str(README), "exec"), namespace)
    model, criterion, drw = namespace["model"], namespace["criterion"], namespace["drw"]
    # After 200 epochs DRW's class-balanced weights are on, and SAM fitted the four images.
    torch.testing.assert_close(criterion.weight, drw.weights)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images).argmax(1), labels)
