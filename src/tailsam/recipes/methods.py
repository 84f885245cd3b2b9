"""The long-tail methods every dataset's recipes combine: a loss, its weighting, SAM or not."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    loss: str
    weighting: str = "none"
    sam: bool = False
    head: str = "linear"

    @property
    def base(self) -> str:
        """The method without SAM (its rho is looked up under this name)."""
        return f"{self.loss}-drw" if self.weighting == "drw" else self.loss


METHODS = {
    "ce": Method("ce"),
    "ce-sam": Method("ce", sam=True),
    "ce-drw": Method("ce", "drw"),
    "ce-drw-sam": Method("ce", "drw", sam=True),
    # LDAM's margins are on cosine logits, as in the LDAM-DRW code: the normed head.
    "ldam-drw": Method("ldam", "drw", head="normed"),
    "ldam-drw-sam": Method("ldam", "drw", sam=True, head="normed"),
    "vs": Method("vs"),
    "vs-sam": Method("vs", sam=True),
    "la": Method("la"),
    "la-sam": Method("la", sam=True),
}
