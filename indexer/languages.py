"""File extension to language, and the tree-sitter node types that define named symbols.

Grammars come from ``tree-sitter-language-pack`` 0.13, which bundles them in the wheel. Its 1.x
releases download grammars at run time, so the package is pinned to keep indexing offline.
"""

from __future__ import annotations

import functools
import logging
from pathlib import PurePosixPath
from typing import Any

__all__ = ["DEFINITIONS", "language_of", "parser_for"]

logger = logging.getLogger(__name__)

EXTENSIONS = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".cs": "csharp", ".rb": "ruby", ".php": "php", ".swift": "swift", ".lua": "lua",
    ".sh": "bash", ".bash": "bash", ".zsh": "bash",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown",
    ".rst": "rst", ".txt": "text", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json",
    ".ini": "ini", ".cfg": "ini", ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss",
    ".sql": "sql", ".proto": "protobuf", ".graphql": "graphql", ".tf": "hcl", ".xml": "xml",
}
FILENAMES = {"Dockerfile": "dockerfile", "Makefile": "make", "CMakeLists.txt": "cmake", "Justfile": "just"}

DEFINITIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition", "class_definition", "decorated_definition"}),
    "javascript": frozenset({
        "function_declaration", "generator_function_declaration", "class_declaration", "method_definition",
        "export_statement", "lexical_declaration",
    }),
    "typescript": frozenset({
        "function_declaration", "generator_function_declaration", "class_declaration", "abstract_class_declaration",
        "method_definition", "interface_declaration", "enum_declaration", "type_alias_declaration",
        "export_statement", "lexical_declaration", "module", "internal_module",
    }),
    "go": frozenset({"function_declaration", "method_declaration", "type_declaration"}),
    "rust": frozenset({
        "function_item", "impl_item", "struct_item", "enum_item", "trait_item", "mod_item", "macro_definition",
    }),
    "java": frozenset({
        "class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
        "method_declaration", "constructor_declaration",
    }),
    "kotlin": frozenset({"class_declaration", "object_declaration", "function_declaration"}),
    "scala": frozenset({"class_definition", "object_definition", "trait_definition", "function_definition"}),
    "c": frozenset({"function_definition", "struct_specifier"}),
    "cpp": frozenset({"function_definition", "class_specifier", "struct_specifier", "namespace_definition"}),
    "csharp": frozenset({
        "class_declaration", "interface_declaration", "struct_declaration", "record_declaration",
        "enum_declaration", "namespace_declaration", "method_declaration", "constructor_declaration",
    }),
    "ruby": frozenset({"method", "singleton_method", "class", "module"}),
    "php": frozenset({
        "function_definition", "class_declaration", "interface_declaration", "trait_declaration", "method_declaration",
    }),
    "swift": frozenset({"class_declaration", "protocol_declaration", "function_declaration"}),
    "lua": frozenset({"function_declaration"}),
    "bash": frozenset({"function_definition"}),
}
DEFINITIONS["tsx"] = DEFINITIONS["typescript"]

# Nodes that only wrap the definition that names them.
WRAPPERS = {"decorated_definition": "definition", "export_statement": "declaration"}
# Declarations that count as definitions only when they bind a function, as in ``const f = () => {}``.
FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
NAME_NODES = frozenset({
    "identifier", "field_identifier", "type_identifier", "property_identifier", "constant", "name",
    "qualified_identifier", "scoped_identifier", "simple_identifier", "word", "operator_name", "destructor_name",
})


def language_of(path: str) -> str:
    """Return the language name of a repository path; ``text`` when the extension is unknown."""
    pure = PurePosixPath(path)
    return FILENAMES.get(pure.name) or EXTENSIONS.get(pure.suffix.lower(), "text")


@functools.lru_cache(maxsize=None)
def parser_for(language: str) -> Any | None:
    """Return a tree-sitter parser for ``language``, or None when it has no definitions table or grammar."""
    if language not in DEFINITIONS:
        return None
    try:
        from tree_sitter_language_pack import get_parser

        return get_parser(language)  # type: ignore[arg-type]
    except Exception as exc:  # a missing or broken grammar falls back to line windows
        logger.warning("no tree-sitter grammar for %s, indexing its files in line windows: %s", language, exc)
        return None


def _unwrap(node: Any) -> Any:
    while node.type in WRAPPERS:
        inner = node.child_by_field_name(WRAPPERS[node.type])
        if inner is None:
            return node
        node = inner
    return node


def is_definition(node: Any, language: str) -> bool:
    if node.type not in DEFINITIONS.get(language, ()):
        return False
    inner = _unwrap(node)
    if inner is not node:
        return inner.type in DEFINITIONS[language]
    if node.type == "lexical_declaration":
        return any(_function_declarator(child) for child in node.named_children)
    return True


def _function_declarator(node: Any) -> bool:
    value = node.child_by_field_name("value") if node.type == "variable_declarator" else None
    return value is not None and value.type in FUNCTION_VALUES


def _name_in(node: Any, depth: int = 0) -> str | None:
    """Find the name of a declarator, looking through C-style nested declarators."""
    if node.type in NAME_NODES:
        return node.text.decode("utf-8", "replace")
    if depth > 4:
        return None
    for field_name in ("declarator", "name"):
        child = node.child_by_field_name(field_name)
        if child is not None:
            found = _name_in(child, depth + 1)
            if found:
                return found
    return None


def definition_name(node: Any) -> str:
    """Return the symbol a definition node names, or ``<anonymous>``."""
    node = _unwrap(node)
    if node.type == "lexical_declaration":
        for child in node.named_children:
            if _function_declarator(child):
                name = child.child_by_field_name("name")
                if name is not None:
                    return name.text.decode("utf-8", "replace")
    if node.type == "impl_item":
        trait = node.child_by_field_name("trait")
        type_node = node.child_by_field_name("type")
        if type_node is not None:
            type_name = type_node.text.decode("utf-8", "replace")
            return f"{trait.text.decode('utf-8', 'replace')} for {type_name}" if trait is not None else type_name
    if node.type == "type_declaration":
        for child in node.named_children:
            name = child.child_by_field_name("name")
            if name is not None:
                return name.text.decode("utf-8", "replace")
    for field_name in ("name", "declarator"):
        child = node.child_by_field_name(field_name)
        if child is not None:
            found = _name_in(child)
            if found:
                return found
    for child in node.named_children:
        if child.type in NAME_NODES:
            return child.text.decode("utf-8", "replace")
    return "<anonymous>"


def definition_body(node: Any) -> Any | None:
    """Return the node whose children are a definition's members or statements, if it has one."""
    node = _unwrap(node)
    if node.type == "lexical_declaration":
        for child in node.named_children:
            if _function_declarator(child):
                return child.child_by_field_name("value").child_by_field_name("body")
        return None
    body = node.child_by_field_name("body")
    if body is None:
        # Grammars without a body field (Ruby, Kotlin, ...) keep members as direct children.
        return node if node.named_child_count > 1 else None
    return body
