"""Sticky notes on the canvas: markdown rendered on the server, one row per note.

Every query goes through ``WorkflowService.get`` first, so a note is only reachable through a
workflow of its owner (another person's workflow or note is a 404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response, Template
from msgspec import Struct
from sqlalchemy import func, select

from engine.graph import MAX_NOTE_TEXT, MAX_NOTES, NOTE_HEIGHT, NOTE_WIDTH
from engine.models import WorkflowNote
from webapp.errors import Invalid
from webapp.forms import Form
from webapp.markdown import render_markdown
from webapp.workflows.services import WorkflowService, _coordinate


class NewNoteForm(Struct):
    text: str = ""
    x: float = 0.0
    y: float = 0.0
    width: float = 240.0
    height: float = 160.0


class NoteTextForm(Struct):
    text: str = ""


class NoteGeometryForm(Struct):
    x: float
    y: float
    width: float
    height: float


def _text(text: str) -> str:
    text = text.replace("\r\n", "\n")
    if len(text) > MAX_NOTE_TEXT:
        raise Invalid(f"A note is too long (at most {MAX_NOTE_TEXT:,} characters).")
    return text


def _size(value: float, bounds: tuple[float, float], what: str) -> float:
    if not bounds[0] <= value <= bounds[1]:
        raise Invalid(f"Note {what} must be between {bounds[0]:g} and {bounds[1]:g} pixels.")
    return round(value, 1)


@dataclass
class NoteService:
    workflows: WorkflowService

    async def list(self, workflow_id: int) -> list[WorkflowNote]:
        await self.workflows.get(workflow_id)
        rows = await self.workflows.db.scalars(select(WorkflowNote).where(WorkflowNote.workflow_id == workflow_id)
                                               .order_by(WorkflowNote.id))
        return list(rows)

    async def get(self, workflow_id: int, note_id: int) -> WorkflowNote:
        await self.workflows.get(workflow_id)  # 404 unless the workflow is the owner's
        note = await self.workflows.db.scalar(select(WorkflowNote).where(
            WorkflowNote.id == note_id, WorkflowNote.workflow_id == workflow_id))
        if note is None:
            raise NotFoundException()
        return note

    async def create(self, workflow_id: int, form: NewNoteForm) -> WorkflowNote:
        await self.workflows.get(workflow_id)
        count = await self.workflows.db.scalar(select(func.count()).where(WorkflowNote.workflow_id == workflow_id))
        if (count or 0) >= MAX_NOTES:
            raise Invalid(f"A workflow holds at most {MAX_NOTES} notes.")
        note = WorkflowNote(workflow_id=workflow_id, text=_text(form.text), pos_x=_coordinate(form.x),
                            pos_y=_coordinate(form.y), width=_size(form.width, NOTE_WIDTH, "width"),
                            height=_size(form.height, NOTE_HEIGHT, "height"))
        self.workflows.db.add(note)
        await self.workflows.db.commit()
        return note

    async def update_text(self, workflow_id: int, note_id: int, text: str) -> WorkflowNote:
        note = await self.get(workflow_id, note_id)
        note.text = _text(text)
        await self.workflows.db.commit()
        return note

    async def move(self, workflow_id: int, note_id: int, form: NoteGeometryForm) -> WorkflowNote:
        note = await self.get(workflow_id, note_id)
        note.pos_x, note.pos_y = _coordinate(form.x), _coordinate(form.y)
        note.width = _size(form.width, NOTE_WIDTH, "width")
        note.height = _size(form.height, NOTE_HEIGHT, "height")
        await self.workflows.db.commit()
        return note

    async def delete(self, workflow_id: int, note_id: int) -> None:
        note = await self.get(workflow_id, note_id)
        await self.workflows.db.delete(note)
        await self.workflows.db.commit()


def _note(note: WorkflowNote, status_code: int = 200) -> Template:
    return Template("workflows/_note.html", status_code=status_code,
                    context={"note": note, "html": render_markdown(note.text)})


class NoteController(Controller):
    """``/workflows/{id}/notes``: the editor's sticky notes (HTML partials, like the node endpoints)."""

    path = "/workflows/{workflow_id:int}/notes"

    @get("/")
    async def list_notes(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int]) -> Template:
        notes = await NoteService(workflows).list(workflow_id)
        return Template("workflows/_notes.html", context={
            "notes": [{"note": n, "html": render_markdown(n.text)} for n in notes]})

    @post("/")
    async def create_note(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                          data: Annotated[NewNoteForm, Form]) -> Template:
        return _note(await NoteService(workflows).create(workflow_id, data), status_code=201)

    @get("/{note_id:int}")
    async def show_note(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                        note_id: FromPath[int]) -> Template:
        return _note(await NoteService(workflows).get(workflow_id, note_id))

    @post("/{note_id:int}")
    async def save_text(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                        note_id: FromPath[int], data: Annotated[NoteTextForm, Form]) -> Template:
        return _note(await NoteService(workflows).update_text(workflow_id, note_id, data.text))

    @post("/{note_id:int}/geometry")
    async def move_note(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                        note_id: FromPath[int], data: Annotated[NoteGeometryForm, Form]) -> Response[Any]:
        await NoteService(workflows).move(workflow_id, note_id, data)
        return Response("", status_code=204)

    @delete("/{note_id:int}", status_code=204)
    async def delete_note(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                          note_id: FromPath[int]) -> None:
        await NoteService(workflows).delete(workflow_id, note_id)
