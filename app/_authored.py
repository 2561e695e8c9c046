"""The service's methods over what people write while they ask: conversations, the feedback on
their answers and evaluation cases (`Service` inherits them; kept here so that `app/service.py`
stays about knowledge bases).

Each is its author's (`Principal.owns`, `app/state/owners.py` for the storage):
- listing shows a principal only their own conversations and cases;
- opening a conversation (its turns, hence its exports) is for its author, and for an admin,
  whose every open of another's is written to the audit log (who, which, when, from where);
  every export (`export_conversation`: the API, MCP and CLI) is written there too;
- adding a turn, renaming, deleting, feedback and removing a case are for the author alone;
- anything else is refused as `ConversationNotFound` ("找不到这个对话或你无权查看"), the same
  refusal as for a conversation that does not exist, so an id or a link tells nothing.
Every method also needs read on the knowledge base (`RULES` in `app/service.py`), checked first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from app._conversations import (
    Conversation,
    ConversationStore,
    Feedback,
    Turn,
    export_conversation_markdown,
    export_json,
)
from app._evalset import Case, load_cases, make_case, remove_case, save_case
from app._service_error import ServiceError
from app.access import Principal
from app.state.accounts import Accounts
from app.state.audit import AuditLog
from app.state.conversations import DEFAULT_TITLE, NotYours
from app.state.evalcases import TakenByAnother
from app.state.owners import Owner
from ingest.settings import Settings
from ingest.store import KnowledgeBase

# An admin's open of another's conversation is one audit row per this many seconds (per admin,
# conversation and address): the web page runs its script again at every click, which is not
# another open.
OPEN_AUDIT_WINDOW_S = 600.0
OPEN_ACTION = "open_conversation"
EXPORT_ACTION = "export_conversation"

# The ownership rule of each method here (tests/app/test_access.py checks every one against
# every principal and author): "list" shows only the principal's own, "open" is for the author
# and admins, "own" for the author alone.
OWNERSHIP: dict[str, Literal["list", "open", "own"]] = {
    "conversations": "list",
    "new_conversation": "own",  # the new conversation is the principal's
    "open_conversation": "open",
    "export_conversation": "open",  # and every export is audited
    "add_turn": "own",
    "update_turn": "own",
    "rename_conversation": "own",
    "delete_conversation": "own",
    "set_feedback": "own",
    "evaluation_cases": "list",
    "save_evaluation_case": "own",  # the case is the principal's
    "remove_evaluation_case": "own",
}


class ConversationNotFound(ServiceError):
    """No such conversation or case, or another's: the caller is not told which."""

    def __init__(self, what: str, ident: str) -> None:
        if what == "case":
            en = f"no evaluation case {ident!r}, or it is not yours"
            zh = "找不到这道评测题或你无权修改"
        else:
            en = f"no conversation {ident!r}, or it is not yours to open"
            zh = "找不到这个对话或你无权查看"
        super().__init__("not_found", en, zh)


@dataclass(frozen=True)
class OpenedConversation:
    conversation: Conversation
    turns: list[Turn]
    own: bool  # False: an admin reading another's conversation (audited), never changing it
    author: str  # the author's name when it is not the reader's ("" for nobody's)


def owner(who: Principal) -> Owner:
    """`who`'s records as a storage filter: the same rule as `Principal.owns`."""
    return Owner(who.person_id, ownerless=who.owns(None))


class AuthoredRecords:
    # provided by `app.service.Service`
    settings: Settings
    accounts: Accounts
    audit_log: AuditLog
    require: Callable[..., None]
    audit: Callable[..., None]
    kb: Callable[..., KnowledgeBase]

    def _store(self, who: Principal, kb_name: str) -> ConversationStore:
        self.require(who, "read", kb_name)
        return ConversationStore(self.settings, kb_name)

    def _refused(self, who: Principal, action: str, kb_name: str, ident: str) -> None:
        """A refused open or change of a conversation that exists: the audit log says who
        tried (one that does not exist has nothing to protect)."""
        if ConversationStore(self.settings, kb_name).get(ident) is not None:
            self.audit(who, f"refused:{action}", kb_name, ident, outcome="refused")

    def conversations(self, who: Principal, kb_name: str) -> list[Conversation]:
        """`who`'s conversations with the knowledge base, newest first."""
        return self._store(who, kb_name).list(owner(who))

    def new_conversation(self, who: Principal, kb_name: str, title: str = DEFAULT_TITLE) -> str:
        return self._store(who, kb_name).create(title, who.person_id)

    def open_conversation(
        self, who: Principal, kb_name: str, conversation_id: str
    ) -> OpenedConversation:
        """The conversation with its turns, for its author or an admin (audited when it is
        another's)."""
        store = self._store(who, kb_name)
        found = store.get(conversation_id)
        if found is None:
            raise ConversationNotFound("conversation", conversation_id)
        own = who.owns(found.author_id)
        if not own and not who.reads_others:
            self.audit(who, f"refused:{OPEN_ACTION}", kb_name, found.id, outcome="refused")
            raise ConversationNotFound("conversation", conversation_id)
        author = ""
        if not own:
            person = self.accounts.by_id(found.author_id) if found.author_id is not None else None
            author = person.name if person is not None else ""
            if not self.audit_log.recorded_within(
                OPEN_AUDIT_WINDOW_S, who, OPEN_ACTION, kb_name, found.id
            ):
                detail = {"author": author or None, "author_id": found.author_id}
                self.audit(who, OPEN_ACTION, kb_name, found.id, detail=detail)
        return OpenedConversation(found, store.turns(found.id), own, author)

    def export_conversation(
        self,
        who: Principal,
        kb_name: str,
        conversation_id: str,
        fmt: Literal["markdown", "json"] = "markdown",
    ) -> str:
        """The conversation as a file: Markdown (answers, evidence, sources) or zhiku's JSON,
        by the rule of opening it; each export is in the audit log (who, which, the format)."""
        opened = self.open_conversation(who, kb_name, conversation_id)
        found = opened.conversation
        if fmt == "json":
            text = export_json(found, opened.turns)
        else:
            text = export_conversation_markdown(found, opened.turns)
        detail: dict[str, object] = {"format": fmt}
        if not opened.own:
            detail["author"] = opened.author or None
        self.audit(who, EXPORT_ACTION, kb_name, found.id, detail=detail)
        return text

    def add_turn(self, who: Principal, kb_name: str, conversation_id: str, turn: Turn) -> int:
        """Store `turn` at the end of `who`'s conversation (made theirs when it is new);
        returns its seq."""
        store = self._store(who, kb_name)
        try:
            return store.append(conversation_id, turn, who.person_id, owner(who))
        except NotYours:
            self._refused(who, "add_turn", kb_name, conversation_id)
            raise ConversationNotFound("conversation", conversation_id) from None

    def update_turn(self, who: Principal, kb_name: str, conversation_id: str, turn: Turn) -> bool:
        """Store the answer side of a stored turn of `who`'s conversation as it is now (an
        answer streamed, finished or asked again); False when the turn is gone."""
        store = self._store(who, kb_name)
        found = store.get(conversation_id)
        if found is None or not who.owns(found.author_id):
            self._refused(who, "update_turn", kb_name, conversation_id)
            raise ConversationNotFound("conversation", conversation_id)
        return store.update(conversation_id, turn)

    def rename_conversation(
        self, who: Principal, kb_name: str, conversation_id: str, title: str
    ) -> None:
        store = self._store(who, kb_name)
        try:
            store.rename(conversation_id, title, owner(who))
        except NotYours:
            self._refused(who, "rename_conversation", kb_name, conversation_id)
            raise ConversationNotFound("conversation", conversation_id) from None

    def delete_conversation(self, who: Principal, kb_name: str, conversation_id: str) -> None:
        store = self._store(who, kb_name)
        try:
            store.delete(conversation_id, owner(who))
        except NotYours:
            self._refused(who, "delete_conversation", kb_name, conversation_id)
            raise ConversationNotFound("conversation", conversation_id) from None

    def set_feedback(
        self,
        who: Principal,
        kb_name: str,
        conversation_id: str,
        seq: int,
        feedback: Feedback | None,
    ) -> bool:
        """Keep `who`'s verdict on an answer of their conversation (None takes it back);
        whether the conversation has turn `seq` (nothing is kept when not)."""
        store = self._store(who, kb_name)
        try:
            return store.set_feedback(conversation_id, seq, feedback, owner(who))
        except NotYours:
            self._refused(who, "set_feedback", kb_name, conversation_id)
            raise ConversationNotFound("conversation", conversation_id) from None

    # ----- evaluation cases ------------------------------------------------------------------

    def evaluation_cases(self, who: Principal, kb_name: str) -> list[Case]:
        """`who`'s evaluation cases of the knowledge base, in order."""
        self.require(who, "read", kb_name)
        return load_cases(self.settings, kb_name, owner(who))

    def save_evaluation_case(
        self,
        who: Principal,
        kb_name: str,
        question: str,
        expected: str | None,
        gold_ids: Sequence[str] = (),
        note: str = "",
    ) -> bool:
        """A case of `who` (`app._evalset.make_case`); returns whether it is new (their case
        of the same question is replaced)."""
        self.require(who, "read", kb_name)
        case = make_case(question, expected, gold_ids, note, who.person_id)
        try:
            return save_case(self.settings, self.kb(kb_name), case, who.person_id)
        except TakenByAnother:  # the freed id of a deleted person's case, taken again
            raise ServiceError(
                "conflict",
                f"evaluation case {case.qid!r} is another's: reword the question",
                "这道评测题的编号已属于他人：请换个问法再保存",
            ) from None

    def remove_evaluation_case(self, who: Principal, kb_name: str, qid: str) -> None:
        self.require(who, "read", kb_name)
        if not remove_case(self.settings, kb_name, qid, owner(who)):
            raise ConversationNotFound("case", qid)


__all__ = [
    "OPEN_AUDIT_WINDOW_S",
    "OWNERSHIP",
    "AuthoredRecords",
    "ConversationNotFound",
    "OpenedConversation",
    "owner",
]
