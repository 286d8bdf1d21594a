"""The session graph: duplicates, split responses, cycles, components and linear paths."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from operator import attrgetter

from pipeline.sessions_model import Node, ReadReport

ORDER = attrgetter("timestamp", "seq")  # time order; read order breaks ties


class Components:
    """Union-find over session ids; a component's root is its smallest session id."""

    def __init__(self) -> None:
        self.up: dict[str, str] = {}

    def find(self, x: str) -> str:
        root = x
        while self.up.get(root, root) != root:
            root = self.up[root]
        while x != root:
            self.up[x], x = root, self.up[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.up[hi] = lo


def dedupe(files: Iterable[list[Node]], report: ReadReport, links: Components) -> dict[str, Node]:
    """One node per uuid: the most complete copy (intact beats damaged, whatever the order),
    else the earliest; a resume replays records under a new session."""
    nonempty = [nodes for nodes in files if nodes]
    # The origin of a replay ends first: on equal timestamps its copy wins.
    nonempty.sort(key=lambda nodes: (max(n.timestamp for n in nodes), nodes[0].seq))
    kept: dict[str, Node] = {}
    for nodes in nonempty:
        for node in nodes:
            old = kept.setdefault(node.uuid, node)
            if old is node:
                continue
            links.union(old.session, node.session)
            ours, theirs = node.completeness(), old.completeness()
            if ours != theirs:  # the dropped copy lost text or was repaired
                report.skipped["duplicate_uuid_less_complete"] += 1
                if ours > theirs:
                    kept[node.uuid] = node
                continue
            report.skipped["duplicate_uuid"] += 1
            if node.timestamp < old.timestamp:
                kept[node.uuid] = node
    return kept


def merge_split(kept: dict[str, Node], report: ReadReport, links: Components) -> list[Node]:
    """Fold the records of one API response into its first; point parents at what remains."""
    first: dict[tuple[str, ...], Node] = {}
    alias: dict[str, str] = {}
    for node in kept.values():  # file order within each file: the blocks stay in order
        if node.merge_key is None or node.turn is None:
            continue
        head = first.setdefault(node.merge_key, node)
        if head is not node and head.turn is not None:
            head.turn.blocks.extend(node.turn.blocks)
            alias[node.uuid] = head.uuid
            report.merged_turns += 1
    out = []
    for node in kept.values():
        if node.uuid in alias:
            continue
        parent = node.parent
        if parent is not None:
            parent = alias.get(parent, parent)
            above = kept.get(parent)
            if parent == node.uuid:
                parent = None
            elif above is not None and above.session != node.session:
                links.union(above.session, node.session)  # resumed from another session
            node.parent = parent
        if node.turn is not None:
            node.turn.parent_uuid = parent
            if not node.turn.blocks:
                report.skipped["empty_turn"] += 1  # e.g. thinking only, with thinking dropped
                node.turn, node.human = None, False
        out.append(node)
    return out


class Tree:
    """The forest of one session or agent: orphans are roots and cycles are cut."""

    def __init__(self, nodes: list[Node]) -> None:
        by_uuid = {n.uuid: n for n in nodes}
        self.ordered = sorted(nodes, key=ORDER)
        self.children: dict[str, list[Node]] = defaultdict(list)
        self.roots: list[Node] = []
        prompt_at: dict[str, str] = {}  # parent -> timestamp of its first typed prompt
        self.forked = cyclic = False
        for node in self.ordered:
            above = by_uuid.get(node.parent or "")
            if above is None:
                self.roots.append(node)
                continue
            self.children[above.uuid].append(node)
            cyclic = cyclic or ORDER(above) >= ORDER(node)  # only then can a cycle exist
            if node.human:
                first = prompt_at.setdefault(above.uuid, node.timestamp)
                self.forked = self.forked or first != node.timestamp
        if cyclic:
            self._cut_cycles()
        self.latest: dict[str, tuple[str, int]] = {}  # the newest node below each node
        for node in reversed(self.preorder(self.roots) if self.forked else ()):
            kids = self.children.get(node.uuid, ())
            self.latest[node.uuid] = max([ORDER(node), *(self.latest[k.uuid] for k in kids)])

    def _cut_cycles(self) -> None:
        reached = {n.uuid for n in self.preorder(self.roots)}
        for node in self.ordered:
            if node.uuid not in reached:  # on a cycle, or below one: cut the link above it
                self.children[node.parent or ""].remove(node)
                self.roots.append(node)
                reached.update(n.uuid for n in self.preorder([node]))

    def preorder(self, starts: list[Node]) -> list[Node]:
        out, stack = [], list(reversed(starts))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(self.children.get(node.uuid, ())))
        return out

    def walk(
        self, starts: list[Node], choice: dict[str, Node]
    ) -> tuple[list[Node], list[tuple[Node, list[Node]]]]:
        """Nodes on the path `choice` picks at rewinds (default: towards the newest leaf),
        in time order; and the rewinds passed, each with the prompts it abandoned."""
        out, rewinds, stack = [], [], list(starts)
        while stack:
            node = stack.pop()
            out.append(node)
            kids = self.children.get(node.uuid, [])
            prompts = [k for k in kids if k.human]
            # Prompts typed at different times under one parent: the user went back and retried.
            if len({k.timestamp for k in prompts}) > 1:
                keep = choice.get(node.uuid) or max(prompts, key=lambda k: self.latest[k.uuid])
                dropped = [k for k in prompts if k is not keep]
                rewinds.append((node, dropped))
                kids = [k for k in kids if not any(k is d for d in dropped)]
            stack.extend(kids)
        out.sort(key=ORDER)
        return out, rewinds

    def paths(self) -> Iterator[tuple[str, list[Node]]]:
        """("main", nodes), then ("rejected_branch", nodes) for every abandoned prompt: what
        came before it, then the branch itself."""
        if not self.forked:
            yield "main", self.ordered
            return
        main, rewinds = self.walk(self.roots, {})
        yield "main", main
        done: set[str] = set()
        pending = [({}, rewinds)]
        while pending:
            choice, found = pending.pop(0)
            for point, dropped in found:
                if point.uuid in done:
                    continue
                done.add(point.uuid)
                for branch in dropped:
                    alt = {**choice, point.uuid: branch}
                    full, more = self.walk(self.roots, alt)
                    own = {n.uuid for n in self.walk([branch], alt)[0]}
                    yield (
                        "rejected_branch",
                        [n for n in full if n.uuid in own or ORDER(n) < ORDER(branch)],
                    )
                    pending.append((alt, more))
