"""Map a character offset inside a YAML scalar's value back to a line and column in the file.

A rule ``expr`` may be written plain, single- or double-quoted, or as a ``|``/``>`` block; a
parse error at offset N of the *value* should point at the character the user typed. We walk
the source from the scalar's start mark, decoding as YAML would, and record where each value
character came from. When our reconstruction does not equal the value (exotic escapes, unusual
folding), the scalar's own start is returned: never wrong by more than the scalar.
"""

from __future__ import annotations

Pos = tuple[int, int]  # 1-based (line, col)


def _block(lines: list[str], line0: int) -> tuple[str, list[Pos]]:
    """Content of a ``|``/``>`` block whose header is on 0-based line ``line0``."""
    body = lines[line0 + 1:]
    indent = None
    for text in body:
        if text.strip():
            indent = len(text) - len(text.lstrip(" "))
            break
    if indent is None:
        return "", []
    chars: list[str] = []
    pos: list[Pos] = []
    for i, text in enumerate(body):
        if text.strip() and len(text) - len(text.lstrip(" ")) < indent:
            break
        for j, ch in enumerate(text[indent:]):
            chars.append(ch)
            pos.append((line0 + 2 + i, indent + j + 1))
        chars.append("\n")
        pos.append((line0 + 2 + i, len(text) + 1))
    return "".join(chars), pos


def _flow(lines: list[str], line0: int, col0: int, want: int) -> tuple[str, list[Pos]]:
    """A plain or quoted scalar starting at 0-based (line0, col0), read until ``want`` value
    characters are decoded (or the closing quote); line breaks fold to one space."""
    quote = lines[line0][col0] if col0 < len(lines[line0]) else ""
    if quote not in ("'", '"'):
        quote = ""
    chars: list[str] = []
    pos: list[Pos] = []
    line, col = line0, col0 + (1 if quote else 0)
    while line < len(lines):
        text = lines[line]
        while col < len(text):
            if not quote and len(chars) >= want:
                return "".join(chars), pos
            ch = text[col]
            if quote == "'" and ch == "'":
                if not text.startswith("''", col):
                    return "".join(chars), pos
                col += 1  # '' is one quote
            elif quote == '"' and ch == '"':
                return "".join(chars), pos
            elif quote == '"' and ch == "\\" and col + 1 < len(text):
                chars.append(_ESCAPES.get(text[col + 1], "?"))
                pos.append((line + 1, col + 1))
                col += 2
                continue
            chars.append(ch)
            pos.append((line + 1, col + 1))
            col += 1
        if not quote and len(chars) >= want:
            break
        # Folding: a line break and the next line's indentation become one space.
        line += 1
        if line >= len(lines):
            break
        while chars and chars[-1] in " \t":
            chars.pop()
            pos.pop()
        chars.append(" ")
        pos.append((line, len(text) + 1))
        nxt = lines[line]
        col = len(nxt) - len(nxt.lstrip(" \t"))
    return "".join(chars), pos


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/", " ": " "}


def locate(text: str | list[str], start: Pos, value: str, offset: int) -> Pos:
    """Where character ``offset`` of the scalar ``value`` that starts at ``start`` was written."""
    lines = text.splitlines() if isinstance(text, str) else text
    line0, col0 = start[0] - 1, start[1] - 1
    if not 0 <= line0 < len(lines) or not 0 <= offset <= len(value):
        return start
    head = lines[line0][col0:col0 + 1]
    if head in ("|", ">"):
        decoded, pos = _block(lines, line0)
        if head == ">":  # folded: single line breaks read as spaces
            decoded = decoded.replace("\n", " ")
        same = decoded.rstrip() == value.rstrip()
    else:
        decoded, pos = _flow(lines, line0, col0, len(value))
        same = decoded == value
    if not same or not pos:
        return start
    if offset < len(pos):
        return pos[offset]
    line, col = pos[-1]
    return (line, col + 1)
