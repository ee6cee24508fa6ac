"""svccfg(8): import, export and edit service configuration.

Follows illumos usr/src/cmd/svc/svccfg: the command line is joined into one statement
and read by the same lexer and grammar as a command file (svccfg.l, svccfg.y), so
quoting works as there (a quoted string keeps its quotes until a value is made of it);
the first error ends the run with status 1 (semerr), bad options give 2. Changes go to
the editing properties only; nothing reaches the running snapshot until a refresh.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from devhost.getopt import BAD, getopt
from devhost.smf import manifest
from devhost.smf import repository as repo
from devhost.smf.notify import nudge
from devhost.smf.repository import Doc, Pgs

PROG = "svccfg"
USAGE = (
    "Usage:\tsvccfg [-v] [-z zone] [-s FMRI] [-f file]\n"
    "\tsvccfg [-v] [-z zone] [-s FMRI] <command> [args]\n"
)
EXIT_FATAL = 1
EXIT_USAGE = 2

KEYWORDS = frozenset(
    [
        "validate",
        "import",
        "cleanup",
        "export",
        "archive",
        "restore",
        "apply",
        "extract",
        "repository",
        "inventory",
        "set",
        "end",
        "exit",
        "quit",
        "help",
        "list",
        "add",
        "delete",
        "select",
        "unselect",
        "listpg",
        "addpg",
        "delpg",
        "delhash",
        "listprop",
        "setprop",
        "delprop",
        "editprop",
        "describe",
        "addpropvalue",
        "delpropvalue",
        "setenv",
        "unsetenv",
        "listsnap",
        "selectsnap",
        "revert",
        "refresh",
        "delnotify",
        "setnotify",
        "listnotify",
    ]
)
UNSUPPORTED = frozenset(
    [
        "cleanup",
        "archive",
        "restore",
        "apply",
        "extract",
        "repository",
        "editprop",
        "revert",
        "delnotify",
        "setnotify",
        "listnotify",
    ]
)

GENERAL_HELP = (
    "General commands:\t help set repository end\n"
    "Manifest commands:\t inventory validate import export archive\n"
    "Profile commands:\t apply extract\n"
    "Entity commands:\t list select unselect add delete describe\n"
    "Snapshot commands:\t listsnap selectsnap revert\n"
    "Instance commands:\t refresh\n"
    "Property group commands: listpg addpg delpg\n"
    "Property commands:\t listprop setprop delprop editprop\n"
    "Property value commands: addpropvalue delpropvalue setenv unsetenv\n"
    "Notification parameters: listnotify setnotify delnotify"
)

# Characters the svccfg lexer ends a word at.
_WORD_STOP = frozenset(' \t\n">=()')


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _SyntaxError(Exception):
    pass


# --- lexer (svccfg.l) ----------------------------------------------------------------------


class Token:
    def __init__(self, kind: str, text: str, line: int) -> None:
        self.kind = kind  # WORD STRING NEWLINE EQUALS LPAREN RPAREN REDIRECT, or a keyword
        self.text = text
        self.line = line  # the line the token ends on

    def __repr__(self) -> str:
        return f"Token({self.kind!r}, {self.text!r})"


def tokenize(text: str, die: Callable[[str], NoReturn]) -> Iterator[Token]:
    """Tokens as svccfg.l makes them: command words are keywords only at the start of
    a statement; a quoted string keeps its quotes, with backslashes removed; `#` starts
    a comment; input always ends with a newline."""
    if not text.endswith("\n"):
        text += "\n"
    i, line, initial = 0, 1, True
    while i < len(text):
        c = text[i]
        if c in " \t":
            i += 1
        elif c == "\n":
            yield Token("NEWLINE", "\n", line)
            line += 1
            i += 1
            initial = True
        elif c == "#":
            end = text.find("\n", i)
            i = end if end >= 0 else len(text)
        elif c == '"':
            j, out = i + 1, ['"']
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text) and text[j + 1] != "\n":
                    j += 1
                elif text[j] == "\\":
                    break
                out.append(text[j])
                j += 1
            if j >= len(text) or text[j] != '"':
                die('unrecognized character "')
            start_line = line
            line += text.count("\n", i, j)
            yield Token("STRING", "".join(out) + '"', max(line, start_line))
            i = j + 1
        elif c in "=()>":
            yield Token({"=": "EQUALS", "(": "LPAREN", ")": "RPAREN", ">": "REDIRECT"}[c], c, line)
            i += 1
        else:
            j = i
            while j < len(text) and text[j] not in _WORD_STOP:
                j += 1
            word = text[i:j]
            if initial and word in KEYWORDS:
                yield Token(word, word, line)
                initial = word == "help"
            else:
                yield Token("WORD", word, line)
            i = j


class Parser:
    """The grammar of svccfg.y, one statement at a time."""

    def __init__(self, tokens: Iterator[Token]) -> None:
        self.tokens = tokens
        self.ahead: list[Token] = []
        self.ended_at: int | None = None  # the line of the statement's terminator, once read

    def peek(self) -> Token | None:
        if not self.ahead:
            nxt = next(self.tokens, None)
            if nxt is None:
                return None
            self.ahead.append(nxt)
        return self.ahead[0]

    def take(self) -> Token:
        tok = self.peek()
        assert tok is not None
        return self.ahead.pop(0)

    def accept(self, *kinds: str) -> Token | None:
        tok = self.peek()
        if tok is not None and tok.kind in kinds:
            return self.take()
        return None

    def expect(self, *kinds: str) -> Token:
        tok = self.accept(*kinds)
        if tok is None:
            raise _SyntaxError
        return tok

    def skip_statement(self) -> int:
        """Skip to the end of the statement (yacc's `error terminator`)."""
        while True:
            tok = self.take()
            if tok.kind == "NEWLINE":
                return tok.line

    def strings(self) -> list[str]:
        out = []
        while (tok := self.accept("WORD", "STRING")) is not None:
            out.append(tok.text)
        return out

    def next_kind(self) -> str | None:
        tok = self.peek()
        return None if tok is None else tok.kind

    def end(self) -> int:
        self.ended_at = self.expect("NEWLINE").line
        return self.ended_at


# --- values ------------------------------------------------------------------------------


def string_to_type(text: str) -> str | None:
    """A `type:` word as svccfg takes it: the colon is required."""
    if not text.endswith(":"):
        return None
    name = text[:-1]
    return name if name in repo.PROPERTY_TYPES else None


def strip_quotes(text: str) -> str:
    return text[1:-1] if text.startswith('"') and len(text) >= 2 else text


def quote_for_listing(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the engine ---------------------------------------------------------------------------


class Engine:
    def __init__(self, state_dir: Path, verbose: bool) -> None:
        self.state_dir = state_dir
        self.repository = repo.Repository(state_dir)
        self.verbose = verbose
        self.service: str | None = None
        self.instance: str | None = None
        self.source: str | None = None  # command file name, for message prefixes
        self.line = 0
        self.dont_exit = False
        self.failed = False

    # --- messages ---

    def message(self, msg: str) -> None:
        if self.source is None:
            sys.stderr.write(f"{PROG}: {msg}\n")
        else:
            sys.stderr.write(f"{PROG} ({self.source}, line {self.line}): {msg}\n")

    def warn(self, msg: str) -> None:
        self.message(msg)

    def semerr(self, msg: str) -> None:
        """A failed command: the run ends with 1 unless an import of several manifests
        asked to keep going."""
        self.message(msg)
        if not self.dont_exit:
            raise _Exit(EXIT_FATAL)
        self.failed = True

    def fail(self, msg: str) -> NoReturn:
        self.semerr(msg)
        raise _Failed

    def die(self, msg: str) -> NoReturn:
        """uu_die(): the command name only, always fatal."""
        sys.stderr.write(f"{PROG}: {msg}\n")
        raise _Exit(EXIT_FATAL)

    # --- running statements ---

    def run_text(self, text: str, source: str | None) -> None:
        self.source = source
        parser = Parser(tokenize(text, self.die))
        while parser.peek() is not None:
            tok = parser.take()
            parser.ended_at = tok.line if tok.kind == "NEWLINE" else None
            try:
                self.statement(tok, parser)
            except _SyntaxError:
                ended = parser.ended_at
                self.line = ended if ended is not None else parser.skip_statement()
                self.message("Syntax error.")
                raise _Exit(EXIT_FATAL) from None
            except _Failed:
                pass

    def statement(self, tok: Token, p: Parser) -> None:
        kind = tok.kind
        if kind == "NEWLINE":
            return
        if kind == "WORD":
            p.strings()
            self.line = p.end()
            self.fail(f'Unknown command "{tok.text}".')
        if kind not in KEYWORDS:
            raise _SyntaxError
        handler = getattr(self, f"cmd_{kind}", None)
        if kind in UNSUPPORTED or handler is None:
            p.strings()
            self.line = p.end()
            self.fail(f"{kind} is not supported by devhost.")
        handler(p)

    # --- the selection ---

    def selected(self, doc: Doc) -> Doc | None:
        """The selected entity's node; reports a selection deleted under us."""
        if self.service is None:
            return None
        node = repo.node_of(doc, self.service, self.instance)
        if node is None:
            self.service = self.instance = None
            self.fail("Current selection has been deleted.")
        return node

    def need_entity(self, doc: Doc) -> Doc:
        node = self.selected(doc)
        if node is None:
            self.fail("An entity is not selected.")
        return node

    @property
    def selection_fmri(self) -> str:
        out = f"svc:/{self.service}"
        return out + f":{self.instance}" if self.instance is not None else out

    @contextmanager
    def editing(self) -> Iterator[Doc]:
        with self.repository.edit() as doc:
            yield doc

    def find_pg(self, node: Doc, name: str, *, notfound_ok: bool = False) -> Any:
        if not repo.valid_name(name):
            self.fail(f'Invalid property group name "{name}".')
        pg = node["pgs"].get(name)
        if pg is None and not notfound_ok:
            self.fail(f'No such property group "{name}".')
        return pg

    # --- entity commands ---

    def cmd_select(self, p: Parser) -> None:
        name = p.expect("WORD").text
        self.line = p.end()
        self.select(name)

    def select(self, name: str) -> None:
        doc = self.repository.read()
        if name == "svc:":
            self.service = self.instance = None
            return
        if name == ":properties":
            self.fail(":properties is not an entity.  Try 'listprop' to list properties.")
        if self.instance is None and self.service is not None:
            svc = doc["services"].get(self.service)
            if svc is not None and name in svc["instances"]:
                self.instance = name
                return
        elif self.service is None and name in doc["services"]:
            self.service = name
            return
        walked = repo.walk(doc, [name], multiple=False, services=True)
        for msg in walked.errors:
            self.fail(msg)
        for match in walked.matches:
            self.service, self.instance = match.service, match.instance

    def cmd_unselect(self, p: Parser) -> None:
        self.line = p.end()
        if self.instance is not None:
            self.instance = None
        elif self.service is not None:
            self.service = None
        else:
            self.fail("Cannot unselect at scope level.")

    def cmd_list(self, p: Parser) -> None:
        pattern = self.optional_word(p)
        doc = self.repository.read()
        node = self.selected(doc)
        if node is not None and self.instance is not None:
            sys.stdout.write(":properties\n")
            return
        names = list(node["instances"]) if node is not None else list(doc["services"])
        if node is not None:
            sys.stdout.write(":properties\n")
        for name in names:
            if pattern is None or fnmatch.fnmatchcase(name, pattern):
                sys.stdout.write(name + "\n")

    def optional_word(self, p: Parser) -> str | None:
        tok = p.accept("WORD")
        self.line = p.end()
        return None if tok is None else tok.text

    def cmd_add(self, p: Parser) -> None:
        name = p.expect("WORD").text
        self.line = p.end()
        with self.editing() as doc:
            node = self.selected(doc)
            if node is not None and self.instance is not None:
                self.fail("Cannot add entities to an instance.")
            if node is not None:
                if not repo.valid_name(name):
                    self.fail("Invalid name.")
                if name in node["instances"]:
                    self.fail("Instance already exists.")
                node["instances"][name] = {"pgs": {}, "snapshots": {}}
            else:
                if not repo.valid_name(name, path=True):
                    self.fail("Invalid name.")
                if name in doc["services"]:
                    self.fail("Service already exists.")
                doc["services"][name] = {"pgs": {}, "instances": {}}

    def cmd_delete(self, p: Parser) -> None:
        first = p.expect("WORD").text
        second = p.accept("WORD")
        self.line = p.end()
        force = False
        if second is not None:
            if first != "-f":
                raise _SyntaxError
            force, first = True, second.text
        with self.editing() as doc:
            node = self.selected(doc)
            if node is not None and self.instance is None and first in node["instances"]:
                self.delete_instance(doc, str(self.service), first, force)
            elif node is None and first in doc["services"]:
                self.delete_service(doc, first, force)
            else:
                walked = repo.walk(doc, [first], multiple=False, services=True)
                for msg in walked.errors:
                    self.fail(msg)
                for match in walked.matches:
                    if match.instance is not None:
                        self.delete_instance(doc, match.service, match.instance, force)
                    else:
                        self.delete_service(doc, match.service, force)
        nudge(self.state_dir)

    def delete_instance(self, doc: Doc, service: str, instance: str, force: bool) -> bool:
        """lscf_instance_delete(); False when refused."""
        node = doc["services"][service]["instances"][instance]
        state = repo.get_values(node["pgs"], "restarter", "state")
        if not force and state and state[0] in ("online", "degraded"):
            self.semerr(
                f"Instance svc:/{service}:{instance} may be running.  Use delete -f if it is not."
            )
            return False
        self.delete_dependents(doc, node["pgs"].get("dependents"))
        kept = {n: pg for n, pg in node["pgs"].items() if _external_dependency(pg)}
        if kept:
            node["pgs"] = kept
            node["snapshots"] = {}
        else:
            del doc["services"][service]["instances"][instance]
        return True

    def delete_service(self, doc: Doc, service: str, force: bool) -> None:
        svc = doc["services"][service]
        for name in list(svc["instances"]):
            if not self.delete_instance(doc, service, name, force):
                return
        self.delete_dependents(doc, svc["pgs"].get("dependents"))
        kept = {n: pg for n, pg in svc["pgs"].items() if _external_dependency(pg)}
        if kept or svc["instances"]:
            svc["pgs"] = kept
        else:
            del doc["services"][service]

    def delete_dependents(self, doc: Doc, pg: Any) -> None:
        """Remove the dependency groups this entity's dependents put elsewhere, and the
        entities that existed only to hold them."""
        if pg is None or pg["type"] != "framework":
            return
        for name, prop in pg["props"].items():
            if prop["type"] not in ("astring", "fmri") or len(prop["values"]) != 1:
                continue
            parsed = repo.parse_svc_fmri(prop["values"][0])
            if parsed is None or parsed.service is None or parsed.pg is not None:
                continue
            target = repo.node_of(doc, parsed.service, parsed.instance)
            dep = None if target is None else target["pgs"].get(name)
            if target is None or dep is None or dep["type"] != "dependency":
                continue
            del target["pgs"][name]
            svc = doc["services"][parsed.service]
            if parsed.instance is not None and not _persistent_pgs(target):
                del svc["instances"][parsed.instance]
            if not svc["instances"] and not _persistent_pgs(svc):
                del doc["services"][parsed.service]

    # --- property groups and properties ---

    def cmd_listpg(self, p: Parser) -> None:
        self.listprop(self.optional_word(p), only_pgs=True)

    def cmd_listprop(self, p: Parser) -> None:
        self.listprop(self.optional_word(p), only_pgs=False)

    def cmd_describe(self, p: Parser) -> None:
        args = p.strings()
        self.line = p.end()
        pattern = next((a for a in args if not a.startswith("-")), None)
        self.listprop(pattern, only_pgs=False)

    def listprop(self, pattern: str | None, *, only_pgs: bool) -> None:
        doc = self.repository.read()
        node = self.need_entity(doc)
        entries: list[tuple[str, Any, bool]] = []
        for pg_name, pg in node["pgs"].items():
            whole = pattern is None or fnmatch.fnmatchcase(pg_name, pattern)
            if whole:
                entries.append((pg_name, pg, True))
            if only_pgs:
                continue
            for prop_name, prop in pg["props"].items():
                full = f"{pg_name}/{prop_name}"
                if whole or fnmatch.fnmatchcase(full, str(pattern)):
                    entries.append((full, prop, False))
        width = max((len(name) for name, _, _ in entries), default=0)
        out = []
        for name, item, is_pg in entries:
            if is_pg:
                line = f"{name:<{width}}  {item['type']}"
                if item.get("nonpersistent"):
                    line += "\tNONPERSISTENT"
                out.append(line + "\n")
                continue
            line = f"{name:<{width}}  {item['type']:<7} "
            many_strings = len(item["values"]) > 1 and item["type"] in ("astring", "ustring")
            for value in item["values"]:
                if many_strings or any(c in value for c in ' \t\n"()'):
                    line += " " + quote_for_listing(value)
                else:
                    line += " " + value
            out.append(line + "\n")
        sys.stdout.write("".join(out))

    def cmd_addpg(self, p: Parser) -> None:
        name = p.expect("WORD").text
        pg_type = p.expect("WORD").text
        flags = p.accept("WORD")
        self.line = p.end()
        with self.editing() as doc:
            node = self.need_entity(doc)
            nonpersistent = False
            for c in flags.text if flags is not None else "":
                if c == "P":
                    nonpersistent = True
                elif c == "p":
                    nonpersistent = False
                else:
                    self.fail(f"Invalid property group flag {c}.: Error 0.")
            if not repo.valid_name(name) or not repo.valid_name(pg_type):
                self.fail("Name, type, or flags are invalid.")
            if name in node["pgs"]:
                self.fail("Property group already exists.")
            node["pgs"][name] = repo.new_pg(pg_type, nonpersistent)

    def cmd_delpg(self, p: Parser) -> None:
        name = p.expect("WORD").text
        self.line = p.end()
        with self.editing() as doc:
            self.need_entity(doc)
            if "/" in name:
                self.fail(f'Invalid property group name "{name}".')
            self.delprop(doc, name)

    def cmd_delprop(self, p: Parser) -> None:
        name = p.expect("WORD").text
        self.line = p.end()
        with self.editing() as doc:
            self.delprop(doc, name)

    def delprop(self, doc: Doc, name: str) -> None:
        node = self.need_entity(doc)
        pg_name, slash, prop_name = name.partition("/")
        pg = self.find_pg(node, pg_name)
        if not slash:
            del node["pgs"][pg_name]
            return
        if not repo.valid_name(prop_name):
            self.fail(f'Invalid property name "{prop_name}".')
        if prop_name not in pg["props"]:
            self.fail(f"No such property {pg_name}/{prop_name}.")
        del pg["props"][prop_name]

    def cmd_setprop(self, p: Parser) -> None:
        name = p.expect("WORD").text
        p.expect("EQUALS")
        type_word: str | None = None
        values: list[str]
        first = p.expect("WORD", "STRING", "LPAREN")
        listed = False
        if first.kind == "WORD" and p.next_kind() == "LPAREN":
            type_word, first = first.text, p.take()
        if first.kind == "LPAREN":
            values, listed = [], True
            while True:
                values += p.strings()
                if p.accept("NEWLINE") is None:
                    break
            p.expect("RPAREN")
        elif first.kind == "WORD" and p.next_kind() in ("WORD", "STRING"):
            type_word, values = first.text, [p.take().text]
        else:
            values = [first.text]
        self.line = p.end()
        with self.editing() as doc:
            self.setprop(doc, name, type_word, values, listed)

    def property_and_type(self, name: str, type_word: str | None) -> tuple[str, str, str | None]:
        """pg, prop and the SMF type (None when not given) of a `pg/prop [type:]` argument."""
        pg_name, slash, prop_name = name.partition("/")
        if not slash:
            self.fail("Property names must contain a `/'.")
        ptype: str | None = None
        if type_word is not None:
            ptype = string_to_type(type_word)
            if ptype is None:
                self.fail(f'Unknown type "{type_word}".')
        return pg_name, prop_name, ptype

    def setprop(
        self, doc: Doc, name: str, type_word: str | None, values: list[str], listed: bool
    ) -> None:
        """lscf_setprop()."""
        node = self.need_entity(doc)
        pg_name, prop_name, ptype = self.property_and_type(name, type_word)
        pg = self.find_pg(node, pg_name)
        if not repo.valid_name(prop_name):
            self.fail(f'Invalid property name "{prop_name}".')
        current = pg["props"].get(prop_name)
        if current is not None:
            if ptype is not None and ptype != current["type"]:
                # illumos.md section 3: a type that disagrees with the existing one fails.
                # (lscf_setprop() itself changes the type, scf_transaction_property_
                # change_type(); the message is lscf_setpropvalue()'s for addpropvalue.)
                self.fail(f'Property "{prop_name}" is not of type "{type_word}".')
            ptype = current["type"]
        elif ptype is None:
            ptype = self.parent_type(doc, pg_name, prop_name)
            if ptype is None:
                self.fail("Type required for new properties.")
        assert ptype is not None
        need_quotes = listed and ptype in ("astring", "ustring")
        pg["props"][prop_name] = {
            "type": ptype,
            "values": [self.make_value(v, ptype, need_quotes) for v in values],
        }

    def parent_type(self, doc: Doc, pg_name: str, prop_name: str) -> str | None:
        """The type of the same property on the selected instance's service."""
        if self.instance is None or self.service is None:
            return None
        values = doc["services"][self.service]["pgs"].get(pg_name)
        if values is None or prop_name not in values["props"]:
            return None
        ptype: str = values["props"][prop_name]["type"]
        return ptype

    def make_value(self, text: str, ptype: str, need_quotes: bool) -> str:
        """string_to_value()."""
        if need_quotes and not (len(text) >= 2 and text[0] == '"' and text[-1] == '"'):
            self.fail(
                "Multiple string values or string values with spaces must be quoted with '\"'."
            )
        raw = strip_quotes(text) if text.startswith('"') else text
        value = manifest.check_value(ptype, raw)
        if value is None:
            self.fail(f'Invalid "{ptype}" value "{raw}".')
        return value

    def cmd_addpropvalue(self, p: Parser) -> None:
        name = p.expect("WORD").text
        args = [p.expect("WORD", "STRING").text]
        if (tok := p.accept("WORD", "STRING")) is not None:
            args.append(tok.text)
        self.line = p.end()
        type_word, value = (None, args[0]) if len(args) == 1 else (args[0], args[1])
        with self.editing() as doc:
            self.setpropvalue(doc, name, type_word, value, add=True, notfound_ok=False)

    def cmd_delpropvalue(self, p: Parser) -> None:
        name = p.expect("WORD").text
        pattern = p.expect("WORD", "STRING").text
        self.line = p.end()
        with self.editing() as doc:
            self.setpropvalue(doc, name, None, pattern, add=False, notfound_ok=False)

    def setpropvalue(
        self,
        doc: Doc,
        name: str,
        type_word: str | None,
        arg: str,
        *,
        add: bool,
        notfound_ok: bool,
    ) -> None:
        """lscf_setpropvalue(): add a value, or delete the values matching a glob."""
        node = self.need_entity(doc)
        pg_name, prop_name, ptype = self.property_and_type(name, type_word)
        pg = self.find_pg(node, pg_name, notfound_ok=notfound_ok)
        if pg is None:
            return
        if not repo.valid_name(prop_name):
            self.fail(f'Invalid property name "{prop_name}".')
        current = pg["props"].get(prop_name)
        if current is None:
            if not add:
                if notfound_ok:
                    return
                self.fail(f"No such property {pg_name}/{prop_name}.")
            if ptype is None:
                self.fail("Type required for new properties.")
            values = [arg]
        else:
            if add and ptype is not None and ptype != current["type"]:
                self.fail(f'Property "{prop_name}" is not of type "{type_word}".')
            ptype = current["type"]
            if add:
                values = [*list(current["values"]), arg]
            else:
                pattern = arg[:-1] if arg.endswith('"') else arg
                pattern = pattern[1:] if pattern.startswith('"') else pattern
                values = [v for v in current["values"] if not fnmatch.fnmatchcase(v, pattern)]
        assert ptype is not None
        pg["props"][prop_name] = {
            "type": ptype,
            "values": [self.make_value(v, ptype, False) for v in values],
        }

    def cmd_setenv(self, p: Parser) -> None:
        self.setenv(p, unset=False)

    def cmd_unsetenv(self, p: Parser) -> None:
        self.setenv(p, unset=True)

    def setenv(self, p: Parser, *, unset: bool) -> None:
        """lscf_setenv(): set or remove NAME=value in a method's (or, with -i/-s, the
        instance's or service's method_context) environment property."""
        args = p.strings()
        self.line = p.end()
        opts, rest = _quiet_getopt(args, "sim:")
        if opts is None:
            raise _SyntaxError
        flags = dict(opts)
        if ("s" in flags and "i" in flags) or len(rest) != (1 if unset else 2):
            raise _SyntaxError
        saved = self.instance
        if "s" in flags:
            self.instance = None
        try:
            with self.editing() as doc:
                node = self.need_entity(doc)
                if "i" in flags and self.instance is None:
                    self.fail("No instance is selected.")
                method = flags.get("m")
                if method is None and ("i" in flags or "s" in flags):
                    method = "method_context"
                    if not unset:
                        node["pgs"].setdefault(method, repo.new_pg("framework"))
                elif method is None:
                    method = self.start_method(doc, node)
                else:
                    if not repo.valid_name(method):
                        self.fail(f'Invalid method name "{method}".')
                    pg = node["pgs"].get(method)
                    if pg is None:
                        self.fail(f'Couldn\'t find the method "{method}".')
                    if pg["type"] != "method":
                        self.fail(f'Property group "{method}" is not of type "method".')
                prop = f"{method}/environment"
                name = rest[0]
                self.setpropvalue(doc, prop, None, f"{name}=*", add=False, notfound_ok=not unset)
                if not unset:
                    value = f"{name}={rest[1]}"
                    self.setpropvalue(doc, prop, "astring:", value, add=True, notfound_ok=False)
        finally:
            self.instance = saved

    def start_method(self, doc: Doc, node: Doc) -> str:
        """The start method group: the instance's, else its service's (which then
        becomes the entity the environment is set on)."""
        for name in ("start", "inetd_start"):
            pg = node["pgs"].get(name)
            if pg is not None and pg["type"] == "method":
                return name
        if self.instance is not None:
            svc = doc["services"][str(self.service)]
            for name in ("start", "inetd_start"):
                pg = svc["pgs"].get(name)
                if pg is not None and pg["type"] == "method":
                    self.instance = None
                    return name
        self.fail("Couldn't find start method; please specify a method with '-m'.")

    # --- snapshots and refresh ---

    def cmd_listsnap(self, p: Parser) -> None:
        self.line = p.end()
        doc = self.repository.read()
        node = self.selected(doc)
        if node is None or self.instance is None:
            self.fail("Instance not selected.")
        sys.stdout.write("".join(name + "\n" for name in node["snapshots"]))

    def cmd_selectsnap(self, p: Parser) -> None:
        self.optional_word(p)
        self.fail("selectsnap is not supported by devhost.")

    def cmd_refresh(self, p: Parser) -> None:
        self.line = p.end()
        with self.editing() as doc:
            node = self.selected(doc)
            if node is None or self.instance is None:
                self.fail("Instance not selected.")
            refresh(doc, str(self.service), self.instance)
        nudge(self.state_dir)
        if self.verbose:
            self.warn(f"Refreshed {self.selection_fmri}.")

    # --- manifests ---

    def cmd_import(self, p: Parser) -> None:
        args = p.strings()
        self.line = p.end()
        opts, files = _quiet_getopt(args, "np:V")
        if opts is None or not files:
            raise _SyntaxError
        flags = dict(opts)
        progress = None
        if "p" in flags:
            progress = sys.stdout if flags["p"] == "-" else self.open_progress(flags["p"])
        manifests: list[str] = []
        dirarg = False
        doc = self.repository.read()
        for path in files:
            try:
                st = os.stat(path)
            except OSError as e:
                self.fail(f"Unable to stat file {path}.  {e.strerror}")
            if stat.S_ISDIR(st.st_mode):
                dirarg = True
                found = sorted(str(f) for f in Path(path).rglob("*.xml") if f.is_file())
            elif stat.S_ISREG(st.st_mode):
                found = [path]
            else:
                self.fail(f"{path} is not a directory or regular file")
            manifests += [m for m in found if not manifest.is_unchanged(doc, m)]
        if not manifests:
            if self.verbose:
                self.warn("No changes were necessary")
            return
        outer = self.dont_exit
        self.dont_exit = outer or len(manifests) > 1
        failed = 0
        if progress is not None:
            progress.write("Loading smf(7) service descriptions: ")
        for count, path in enumerate(manifests, 1):
            if progress is not None:
                mark = f"{count}/{len(manifests)}"
                progress.write(mark + "\b" * len(mark))
            if not self.import_one(path, refresh_after="n" not in flags):
                failed += 1
                if progress is not None:
                    progress.write(f"WARNING: svccfg import of {path} failed.\n")
        if progress is not None:
            progress.write("\n")
        self.dont_exit = outer
        if dirarg:
            self.warn(f"Loaded {len(manifests)} smf(7) service descriptions")
            if failed:
                self.warn(f"{failed} smf(7) service descriptions failed to load")
        if failed == 0 and self.verbose:
            self.warn("Successful import.")

    def open_progress(self, path: str) -> Any:
        try:
            return open(path, "w", buffering=1)
        except OSError as e:
            self.fail(f"Unable to open {path} for progress reporting.  {e.strerror}")

    def import_one(self, path: str, *, refresh_after: bool) -> bool:
        try:
            bundle = manifest.read_bundle(path)
        except manifest.ManifestError as e:
            self.report(e)
            return False
        with self.editing() as doc:
            result = manifest.import_bundle(doc, bundle, path, verbose=self.verbose)
            if refresh_after:
                for service, instance in dict.fromkeys(result.refresh):
                    if repo.node_of(doc, service, instance) is not None:
                        refresh(doc, service, instance)
            manifest.store_hash(doc, path)
        for msg in result.messages:
            self.warn(msg)
        nudge(self.state_dir)
        return True

    def report(self, error: manifest.ManifestError) -> None:
        for line in error.details:
            sys.stderr.write(line + "\n")
        if error.fatal:
            self.die(error.message)
        self.semerr(error.message)

    def cmd_validate(self, p: Parser) -> None:
        arg = self.optional_word(p)
        if arg is None:
            doc = self.repository.read()
            if self.selected(doc) is None or self.instance is None:
                self.fail("No instance selected")
            return
        if arg.startswith("file:"):
            self.validate_file(arg[len("file:") :])
        elif arg.startswith("svc:"):
            self.validate_fmri(arg[len("svc:") :])
        elif os.access(arg, os.R_OK):
            self.validate_file(arg)
        else:
            self.validate_fmri(arg)

    def validate_file(self, path: str) -> None:
        try:
            manifest.read_bundle(path)
        except manifest.ManifestError as e:
            self.report(e)

    def validate_fmri(self, fmri: str) -> None:
        walked = repo.walk(self.repository.read(), [fmri], multiple=False)
        for msg in walked.errors:
            self.fail(msg)

    def cmd_inventory(self, p: Parser) -> None:
        path = p.expect("WORD").text
        self.line = p.end()
        try:
            bundle = manifest.read_bundle(path)
        except manifest.ManifestError as e:
            self.report(e)
            return
        out = [f"svc:/{s.name}:{i}\n" for s in bundle.services for i in s.instances]
        out += [f"svc:/{s.name}\n" for s in bundle.services]
        sys.stdout.write("".join(out))

    def cmd_export(self, p: Parser) -> None:
        first = p.expect("WORD").text
        all_values = False
        fmri, target = first, None
        if (tok := p.accept("WORD")) is not None:
            if first != "-a":
                raise _SyntaxError
            all_values, fmri = True, tok.text
        if p.accept("REDIRECT") is not None:
            target = p.expect("WORD").text
        self.line = p.end()
        del all_values  # no property group is read-protected here
        parsed = repo.parse_svc_fmri(fmri) if fmri.startswith("svc:") else None
        if parsed is not None and parsed.instance is not None:
            fmri = f"svc:/{parsed.service}"
            self.warn("Only services may be exported; ignoring instance portion of argument.")
        doc = self.repository.read()
        walked = repo.walk(doc, [fmri], multiple=False, services=True, noinstance=True)
        for msg in walked.errors:
            self.fail(msg)
        for match in walked.matches:
            text = manifest.export_service(doc, match.service, self.verbose_warn)
            if target is None:
                sys.stdout.write(text)
            else:
                try:
                    Path(target).write_text(text)
                except OSError as e:
                    self.die(f'Could not open "{target}": {e.strerror}.')

    def verbose_warn(self, msg: str) -> None:
        if self.verbose:
            self.warn(msg)

    def cmd_delhash(self, p: Parser) -> None:
        first = p.expect("WORD").text
        second = p.accept("WORD")
        self.line = p.end()
        if second is not None:
            if first != "-d":
                raise _SyntaxError
            first = second.text
        if self.service is not None:
            self.warn("error, an entity is selected")
            return
        if second is None and not os.path.exists(first):
            self.warn(f"cannot resolve pathname for {first}")
            return
        with self.editing() as doc:
            if not manifest.delete_hash(doc, first):
                self.fail(f'No such property group "{manifest.manifest_propname(first)}".')

    # --- the rest ---

    def cmd_set(self, p: Parser) -> None:
        args = p.strings()
        self.line = p.end()
        if not args:
            sys.stdout.write(("" if self.verbose else "no") + "verbose\n")
            return
        for arg in args:
            if not arg.startswith("-"):
                self.warn("No non-flag arguments defined.")
                continue
            for c in arg[1:]:
                if c in "vV":
                    self.verbose = c == "v"
                else:
                    self.warn(f"Unknown option -{c}.")

    def cmd_help(self, p: Parser) -> None:
        p.accept(*KEYWORDS)
        self.line = p.end()
        self.warn(GENERAL_HELP)

    def cmd_end(self, p: Parser) -> None:
        self.line = p.end()
        raise _Exit(0)

    cmd_exit = cmd_end
    cmd_quit = cmd_end


class _Failed(Exception):
    """A command failed and the run goes on (during a multi-manifest import)."""


def _external_dependency(pg: Any) -> bool:
    """A dependency group another entity's dependent put here."""
    external = pg["props"].get("external")
    return bool(pg["type"] == "dependency" and external and external["values"] == ["true"])


def _persistent_pgs(node: Doc) -> Pgs:
    return {n: pg for n, pg in node["pgs"].items() if not pg.get("nonpersistent")}


def _quiet_getopt(
    args: list[str], optstring: str
) -> tuple[list[tuple[str, str]] | None, list[str]]:
    """getopt() with opterr = 0 over a statement's arguments: None on a bad option."""
    opts, rest = getopt(PROG, args, optstring, report=False)
    if any(opt == BAD for opt, _ in opts):
        return None, rest
    return opts, rest


def refresh(doc: Doc, service: str, instance: str) -> None:
    """What a refresh of an instance does here: the editing properties become the
    running snapshot, and svc.startd is asked to reread them (restarter_actions/refresh)."""
    from devhost.smf.fmri import Fmri

    fmri = Fmri(service, instance)
    repo.take_snapshot(doc, fmri, "running")
    node = repo.entity(doc, fmri)
    assert node is not None
    repo.set_prop(
        node["pgs"],
        "restarter_actions",
        "refresh",
        "integer",
        [str(manifest.now_ns())],
        pg_type="framework",
        nonpersistent=True,
    )


def main(argv: list[str], state_dir: Path) -> int:
    opts, operands = getopt(PROG, argv, "vf:s:z:")
    verbose, command_file, fmri = False, None, None
    for opt, arg in opts:
        if opt == "v":
            verbose = True
        elif opt == "f":
            command_file = arg
        elif opt == "s":
            fmri = arg
        elif opt == "z":
            if arg != "global":
                sys.stderr.write(f"{PROG}: Could not bind to repository server for zone {arg}\n")
                return EXIT_FATAL
        else:
            sys.stderr.write(USAGE)
            return EXIT_USAGE
    engine = Engine(state_dir, verbose)
    try:
        if fmri is not None:
            try:
                engine.select(fmri)
            except _Failed:
                return EXIT_FATAL
        if command_file is not None:
            engine.source = command_file
            try:
                text = Path(command_file).read_text() if command_file != "-" else sys.stdin.read()
            except OSError as e:
                engine.source = None
                engine.semerr(f"Could not open {command_file}: {e.strerror}.")
                return EXIT_FATAL
            engine.run_text(text, "<stdin>" if command_file == "-" else command_file)
        elif not operands:
            engine.run_text(sys.stdin.read(), "<stdin>")
        else:
            engine.run_text(" ".join(operands) + " ", None)
    except _Exit as e:
        sys.stdout.flush()
        return e.code
    sys.stdout.flush()
    return 0
