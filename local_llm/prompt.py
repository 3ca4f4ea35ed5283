"""Gemma chat formatting.

The GGUF carries no chat template, so turns are formatted here::

    <bos><start_of_turn>user
    {system}

    {user}<end_of_turn>
    <start_of_turn>model
    {assistant}<end_of_turn>
    <start_of_turn>model

System (and developer) text is merged into the first user turn, as Gemma has no system role.
The result is a list of segments: template segments are tokenized with special tokens enabled,
message text without, so a user cannot inject ``<end_of_turn>`` into the conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

BOS = "<bos>"
START = "<start_of_turn>"
END = "<end_of_turn>\n"


class Segment(NamedTuple):
    """A piece of the prompt; ``special`` marks template text holding special tokens."""

    text: str
    special: bool


def gemma_segments(messages: Sequence[tuple[str, str]]) -> list[Segment]:
    """Format ``(role, text)`` messages as Gemma turns ending with an open model turn.

    Args:
        messages: roles are system, developer, user or assistant.

    Returns:
        Prompt segments, template ones flagged ``special``.
    """
    system = "\n\n".join(text for role, text in messages if role in ("system", "developer"))
    turns = [(role, text) for role, text in messages if role in ("user", "assistant")]
    if system:
        if turns and turns[0][0] == "user":
            turns[0] = ("user", f"{system}\n\n{turns[0][1]}")
        else:
            turns.insert(0, ("user", system))
    segments = [Segment(BOS, True)]
    for role, text in turns:
        speaker = "model" if role == "assistant" else "user"
        segments.append(Segment(f"{START}{speaker}\n", True))
        if text:
            segments.append(Segment(text, False))
        segments.append(Segment(END, True))
    segments.append(Segment(f"{START}model\n", True))
    return segments


def render(segments: Sequence[Segment]) -> str:
    """Join segments into the prompt text (for logging and tests)."""
    return "".join(segment.text for segment in segments)
