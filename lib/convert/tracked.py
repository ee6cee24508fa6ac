"""An XML element that remembers what an import read from it, so that whatever
it did not read (an attribute, a child element) gets its warning line instead of
vanishing."""

from __future__ import annotations

import xml.etree.ElementTree as ET


class Node:
    def __init__(self, el: ET.Element, path: str) -> None:
        self.el = el
        self.path = path
        self._attrs_read: set[str] = set()
        self._children: dict[int, Node | None] = {}  # id(element) -> its node; None: accepted whole

    @property
    def tag(self) -> str:
        return self.el.tag

    def attr(self, name: str) -> str | None:
        self._attrs_read.add(name)
        return self.el.get(name)

    def text(self) -> str:
        return (self.el.text or "").strip()

    def children(self, tag: str) -> list[Node]:
        return [self._node(el) for el in self.el if el.tag == tag]

    def child(self, tag: str) -> Node | None:
        found = self.children(tag)
        return found[0] if found else None

    def accept(self, *tags: str) -> None:
        """Read these children whole: what they say is what vmbundle always does."""
        for el in self.el:
            if el.tag in tags:
                self._children[id(el)] = None

    def accept_attrs(self, *names: str) -> None:
        self._attrs_read.update(names)

    def _node(self, el: ET.Element) -> Node:
        node = self._children.get(id(el))
        if node is None:
            same = [e for e in self.el if e.tag == el.tag]
            index = f"[{same.index(el) + 1}]" if len(same) > 1 else ""
            node = Node(el, f"{self.path}/{el.tag}{index}" if self.path else f"{el.tag}{index}")
            self._children[id(el)] = node
        return node

    def leftovers(self) -> list[str]:
        """Each attribute and element nothing read, as "path/@name=value" or
        "path/tag (attr=value ...)", in document order."""
        out = [
            f"{self.path}/@{name}={value}" if self.path else f"@{name}={value}"
            for name, value in self.el.attrib.items()
            if name not in self._attrs_read
        ]
        for el in self.el:
            if id(el) not in self._children:
                same = [e for e in self.el if e.tag == el.tag]
                index = f"[{same.index(el) + 1}]" if len(same) > 1 else ""
                where = f"{self.path}/{el.tag}{index}" if self.path else f"{el.tag}{index}"
                out.append(where + describe(el))
            else:
                node = self._children[id(el)]
                if node is not None:
                    out += node.leftovers()
        return out


def describe(el: ET.Element) -> str:
    """A short reminder of what an element said: its attributes and text."""
    parts = [f"{k}={v}" for k, v in el.attrib.items()]
    text = (el.text or "").strip()
    if text and len(el) == 0:
        parts.append(text if len(text) <= 40 else text[:37] + "...")
    return f" ({' '.join(parts)})" if parts else ""
