"""What every sample must satisfy, whatever format it came from."""

from __future__ import annotations

from tuneforge.io.report import BadRecord
from tuneforge.types import Sample


def check_sample(sample: Sample) -> None:
    if sample.kind == "text":
        if not sample.text:
            raise BadRecord("empty text")
        return
    if not any(m.role != "system" for m in sample.messages):
        raise BadRecord("empty conversation" if sample.kind == "chat" else "empty prompt")
    last = sample.messages[-1].role
    if sample.kind == "chat" and last != "assistant":
        # An SFT sample whose last turn is not the model's trains on nothing at the end, and is
        # usually a prompt that lost its answer.
        raise BadRecord("conversation does not end with an assistant turn", f"the last turn is '{last}'")
    if sample.kind == "preference":
        if last not in ("user", "tool"):
            raise BadRecord("prompt does not end with a user turn", f"the last turn is '{last}'")
        for name, reply in (("chosen", sample.chosen), ("rejected", sample.rejected)):
            if not reply:
                raise BadRecord(f"empty '{name}' reply")
            if reply[0].role != "assistant":
                raise BadRecord(f"'{name}' does not start with an assistant turn", f"it starts with '{reply[0].role}'")
