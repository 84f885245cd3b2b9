"""A strict reading of an HTML page for tests: every element must close, in order; then find and read them.

    page = parse(path.read_text())
    page.find("td", {"data-metric": "top1"})   # elements in document order
    page.within(node, "td")                    # elements inside one
    page.text(node)                            # its text, whitespace collapsed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list = field(default_factory=list)   # Nodes and strings
    parent: Node | None = None

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.open = [self.root]
        self.doctype = None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), parent=self.open[-1])
        self.open[-1].children.append(node)
        if tag not in VOID:
            self.open.append(node)

    def handle_startendtag(self, tag, attrs):
        self.open[-1].children.append(Node(tag, dict(attrs), parent=self.open[-1]))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self.open[-1].tag != tag:
            raise ValueError(f"</{tag}> closes <{self.open[-1].tag}> (line {self.getpos()[0]})")
        self.open.pop()

    def handle_data(self, data):
        self.open[-1].children.append(data)


class Page:
    def __init__(self, root: Node, doctype: str | None):
        self.root, self.doctype = root, doctype
        self.nodes = list(_walk(root))

    def find(self, tag: str | None = None, attrs: dict[str, str] | None = None) -> list[Node]:
        """Elements of `tag` (any tag: None) having these attribute values, in document order."""
        return [n for n in self.nodes if (tag is None or n.tag == tag)
                and all(n.attrs.get(k) == v for k, v in (attrs or {}).items())]

    def one(self, tag: str | None = None, attrs: dict[str, str] | None = None) -> Node:
        found = self.find(tag, attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}> elements, expected one"
        return found[0]

    @staticmethod
    def within(node: Node, tag: str) -> list[Node]:
        """The `tag` elements inside `node`, in document order."""
        return [n for n in _walk(node) if n.tag == tag]

    @staticmethod
    def text(node: Node) -> str:
        return " ".join("".join(_texts(node)).split())

    def section_of(self, node: Node) -> str | None:
        return next((a.attrs.get("id") for a in node.ancestors() if a.tag == "section"), None)


def parse(html: str) -> Page:
    """The page's element tree; ValueError if an element closes out of order or stays open."""
    builder = _Builder()
    builder.feed(html)
    builder.close()
    if len(builder.open) > 1:
        raise ValueError(f"<{builder.open[-1].tag}> is never closed")
    return Page(builder.root, builder.doctype)


def _walk(node: Node):
    for child in node.children:
        if isinstance(child, Node):
            yield child
            yield from _walk(child)


def _texts(node: Node):
    for child in node.children:
        if isinstance(child, str):
            yield child
        elif child.tag not in ("style", "script"):
            yield from _texts(child)
