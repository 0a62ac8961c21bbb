"""Token ids -> text, one token at a time, with stop strings.

Decoding each new token on its own breaks words and multi-byte characters (byte-level BPE splits
UTF-8 sequences across tokens), so text is decoded from a short window of recent tokens and only the
part that is complete is released. Text that could still turn into a stop string is held back until it
either does (generation ends, the stop string is not returned) or cannot any more.
"""

from __future__ import annotations

from collections.abc import Sequence

_INCOMPLETE = "\ufffd"  # what a tokenizer decodes half a UTF-8 character to


class TextStream:
    def __init__(self, tokenizer, stop: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.ids: list[int] = []
        self.prefix_offset = 0  # the window starts here: decoding context for the first released token
        self.read_offset = 0  # tokens before this have been turned into text
        self.held = ""  # decoded but not yet released: it may be the start of a stop string
        self.text = ""  # everything released so far
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        """Add one generated token; return the text it releases (maybe empty). After a stop string
        is found, `stopped` is True and nothing more is released."""
        if self.stopped:
            return ""
        self.ids.append(token_id)
        before = self._decode(self.ids[self.prefix_offset:self.read_offset])
        now = self._decode(self.ids[self.prefix_offset:])
        if now.endswith(_INCOMPLETE) or len(now) <= len(before):
            return ""  # wait for the rest of the character (or for a token that adds text)
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return self._release(self.held + now[len(before):])

    def _release(self, pending: str) -> str:
        hits = [i for i in (pending.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.stopped = True
            self.held = ""
            out = pending[:min(hits)]
        else:
            keep = max((n for s in self.stop for n in range(len(s) - 1, 0, -1)
                        if pending.endswith(s[:n])), default=0)
            self.held = pending[len(pending) - keep:] if keep else ""
            out = pending[:len(pending) - keep]
        self.text += out
        return out

    def finish(self) -> str:
        """Generation ended without a stop string: release what was held back."""
        if self.stopped:
            return ""
        before = self._decode(self.ids[self.prefix_offset:self.read_offset])
        tail = self._decode(self.ids[self.prefix_offset:])[len(before):].rstrip(_INCOMPLETE)
        held, self.held = self.held, ""
        out = self._release(held + tail)
        if not self.stopped:  # what was held back as a possible stop string start is plain text after all
            out, self.held, self.text = out + self.held, "", self.text + self.held
        return out
