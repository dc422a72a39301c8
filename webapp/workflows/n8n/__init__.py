"""n8n workflow JSON → a Patchwire workflow document, plus a report of what could not be mapped.

Pure code over parsed JSON (no database, no web): ``convert(raw)`` returns the document in
our own format (a dict, decoded and validated afterwards exactly like a Patchwire file) and an
``ImportReport``. The n8n shapes handled are those of its exported workflow files:

    {"name", "nodes": [{"id", "name", "type": "n8n-nodes-base.<x>", "typeVersion", "position": [x, y],
                        "parameters": {...}}],
     "connections": {"<source NAME>": {"main": [[{"node": "<target NAME>", "type": "main", "index": 0}], ...]}}}

Output ``i`` of an n8n node becomes one or more of our port names (If: 0 → ``true``, 1 → ``false``;
Switch: rule outputs → ``0``–``3``/``fallback``); input ``i`` of a Merge becomes ``a``/``b``.
The mapping table is in docs/workflow-format.md ("Importing from n8n").

Each n8n node type is mapped by one small ``NodeMapper`` class (``base.py``) registered by its n8n
type names, one module per family (``triggers``, ``edit_fields``, ``http``, ``branching``, ``merge``,
``flow``); mapping one more n8n node is one more class. ``workflow.py`` runs the whole file through them.
"""

from __future__ import annotations

from webapp.workflows.n8n import branching, edit_fields, flow, http, merge, triggers  # noqa: F401  (they register)
from webapp.workflows.n8n.base import MAPPERS, PREFIXES, NodeMapper, register
from webapp.workflows.n8n.expressions import Translator, neutralise, translate_simple
from webapp.workflows.n8n.report import Entry, ImportReport, MappedNode
from webapp.workflows.n8n.workflow import convert, looks_like_n8n

__all__ = ["MAPPERS", "PREFIXES", "Entry", "ImportReport", "MappedNode", "NodeMapper", "Translator", "convert",
           "looks_like_n8n", "neutralise", "register", "translate_simple"]
