"""Self-instruct seed tasks (stanford_alpaca `seed_tasks.jsonl`): `instruction` + `instances`
[{input, output}], with `id`, `name`, `is_classification` alongside.

Each instance is one training example, so each becomes one sample (user = instruction + "\\n" +
input, as in alpaca). The samples share the task's `id`; `meta["layout"]["instance"]` numbers them,
and writing back folds consecutive instances of one task into one record again.
"""

from __future__ import annotations

from typing import Any

from tuneforge.io.formats.alpaca import split_user, user_content
from tuneforge.io.formats.fields import RecordView, add_back, layout, wrong_type
from tuneforge.io.report import BadRecord
from tuneforge.types import Message, Sample

FIELDS = ("instruction", "instances", "id")


def read(view: RecordView) -> list[Sample]:
    instruction = view.text("instruction", required=True)
    instances = view.items("instances", required=True)
    if not instances:
        raise BadRecord("empty conversation", "'instances' is empty")
    sample_id = view.sample_id()
    samples = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise wrong_type(f"'instances[{i}]'", "an object", instance)
        query, output = instance.get("input") or "", instance.get("output")
        if output is None:
            raise BadRecord("missing required field 'instances[].output'", f"in instance {i}")
        for name, value in (("input", query), ("output", output)):
            if not isinstance(value, str):
                raise wrong_type(f"'instances[{i}].{name}'", "a string", value)
        lay: dict[str, Any] = {"instance": i}
        if query:
            lay["input_len"] = len(query)
        messages = [Message("user", user_content(instruction, query)), Message("assistant", output)]
        samples.append(Sample(messages=messages, id=sample_id, meta=view.meta(lay)))
    return samples


def write(sample: Sample) -> dict[str, Any]:
    roles = [m.role for m in sample.messages]
    if sample.kind != "chat" or roles != ["user", "assistant"] or sample.messages[1].tool_calls:
        raise BadRecord("no self-instruct form", "an instance is one user turn and one assistant reply")
    user, reply = sample.messages
    instruction, query = split_user(user.content, layout(sample).get("input_len"))
    record = {"instruction": instruction, "instances": [{"input": query, "output": reply.content}]}
    return add_back(record, sample)


def merge(previous: dict[str, Any], record: dict[str, Any], sample: Sample) -> bool:
    """Fold a later instance of the same task into the record being built."""
    if layout(sample).get("instance", 0) > 0 and previous.get("id") == record.get("id") \
            and previous["instruction"] == record["instruction"]:
        previous["instances"].extend(record["instances"])
        return True
    return False
