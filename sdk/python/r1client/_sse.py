"""A reader of `text/event-stream` bodies: the daemon's event streams."""

from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, List, Optional


@dataclass
class SseFrame:
    """One server-sent event."""

    #: `id:`, when given (the record's seq on a session stream).
    id: Optional[str]
    #: `event:` (the record kind, or `error` for the frame that ends a stream).
    event: str
    #: The `data:` lines joined with newlines.
    data: str


def read_frames(body: BinaryIO, on_line: Optional[Callable[[], None]] = None) -> Iterator[SseFrame]:
    """The frames of `body` until it ends. Heartbeat comments (`: keep-alive`) are
    skipped here, but they still reset the socket's read timeout, which is how an idle
    stream is told from a dead one. `on_line`, if given, is called after every line
    read, heartbeats included (a follower checks its deadline there)."""
    event_id: Optional[str] = None
    event = ""
    data: List[str] = []
    seen = False
    while True:
        raw = body.readline()
        if not raw:
            return
        if on_line is not None:
            on_line()
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line == "":
            if seen:
                yield SseFrame(event_id, event or "message", "\n".join(data))
            event_id, event, data, seen = None, "", [], False
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "id":
            event_id = value
        elif field == "event":
            event = value
        elif field == "data":
            data.append(value)
        else:
            continue
        seen = True
