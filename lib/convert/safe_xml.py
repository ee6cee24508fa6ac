"""Parsing XML from outside without entity expansion.

The standard library's ElementTree expands entities declared in a document's own
DTD (the "billion laughs"), so it is not given the document: expat is, with any
DOCTYPE refused before a declaration in it could be read, and the tree is built
from expat's events. Domain XML never has a DTD.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.parsers import expat


class UnsafeXml(ValueError):
    pass


def parse(data: bytes) -> ET.Element:
    """The document's root element; ValueError (expat's message) when it is not
    well-formed, UnsafeXml when it has a DOCTYPE."""
    parser = expat.ParserCreate()
    stack: list[ET.Element] = []
    root: list[ET.Element] = []
    text: list[str] = []

    def flush() -> None:
        if stack and text:
            el = stack[-1]
            joined = "".join(text)
            if len(el):
                el[-1].tail = (el[-1].tail or "") + joined
            else:
                el.text = (el.text or "") + joined
        text.clear()

    def start(tag: str, attrib: dict[str, str]) -> None:
        flush()
        el = ET.Element(tag, attrib)
        if stack:
            stack[-1].append(el)
        else:
            root.append(el)
        stack.append(el)

    def end(tag: str) -> None:
        flush()
        stack.pop()

    def doctype(*args: object) -> None:
        raise UnsafeXml("a DOCTYPE is not allowed (it could declare entities)")

    def entity(*args: object) -> None:
        raise UnsafeXml("entity declarations are not allowed")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    # No external entity is ever fetched: expat asks this handler, which says no.
    parser.ExternalEntityRefHandler = lambda *args: 0
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ValueError(str(exc)) from None
    if not root:
        raise ValueError("no element")
    return root[0]
