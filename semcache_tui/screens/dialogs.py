"""Modal dialogs: confirmations (y/n, or typing a name for what cannot be undone), a line of input,
an entry's full text, and the keys of the current screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine.models import CacheEntry

if TYPE_CHECKING:
    from semcache_tui.app import SemcacheApp


def if_yes(action: Callable[..., object], *args: object) -> Callable[[object], None]:
    """A dialog's callback that runs ``action(*args)`` when the answer is yes, and nothing otherwise."""

    def answered(yes: object) -> None:
        if yes is True:
            action(*args)

    return answered


class Dialog(ModalScreen[object]):
    """A dialog of the panel (only ``SemcacheApp`` opens them)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    @property
    def panel(self) -> SemcacheApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        if self.panel.probe.frozen:
            for field in self.query(Input):
                field.cursor_blink = False

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(Dialog):
    """Yes or no: enough for removing one entry."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question), classes="dialog-text")
            yield Label("[b]y[/b] yes   [b]n[/b] / [b]esc[/b] no", classes="dialog-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TypedConfirmDialog(Dialog):
    """For what cannot be undone: the operator types ``expected`` (the index name) to go ahead."""

    def __init__(self, message: str, expected: str) -> None:
        super().__init__()
        self.message = message
        self.expected = expected

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -danger"):
            yield Static(Text(self.message), classes="dialog-text")
            yield Label(
                f"Type [b]{escape(self.expected)}[/b] and press Enter; Esc cancels.", classes="dialog-keys"
            )
            yield Input(placeholder=self.expected, id="typed")
            yield Label("", id="mismatch")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip() == self.expected:
            self.dismiss(True)
        else:
            self.query_one("#mismatch", Label).update("That is not the name; nothing was done.")


class InputDialog(Dialog):
    """One line of input with an optional check; dismisses with the text, or ``None`` on Esc."""

    def __init__(
        self,
        title: str,
        *,
        value: str = "",
        placeholder: str = "",
        context: str = "",
        check: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.context = context
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.context:
                yield Static(Text(self.context), classes="dialog-text")
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")
            yield Label("Enter to accept, Esc to cancel", id="problem", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        problem = self.check(event.value) if self.check else None
        if problem:
            self.query_one("#problem", Label).update(Text(problem))
        else:
            self.dismiss(event.value)


class EntryDialog(Dialog):
    """The whole of one entry."""

    def __init__(self, entry: CacheEntry, ages: tuple[str, str]) -> None:
        super().__init__()
        self.entry = entry
        self.ages = ages

    def compose(self) -> ComposeResult:
        entry = self.entry
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim")
        table.add_column(overflow="fold")
        table.add_row("key", entry.key)
        table.add_row("scope", entry.scope)
        table.add_row("created", self.ages[0])
        table.add_row("expires", self.ages[1])
        table.add_row("hits", str(entry.hit_count))
        table.add_row("prompt", Text(entry.prompt))
        table.add_row("response", Text(entry.response))
        if entry.metadata:
            table.add_row("metadata", Text(", ".join(f"{k}={v}" for k, v in entry.metadata.items())))
        with VerticalScroll(classes="dialog -wide"):
            yield Static(table)
            yield Label("Esc closes", classes="dialog-keys")


class KeysDialog(Dialog):
    """The keys of the screen underneath, from its bindings: the same list the footer and palette use."""

    BINDINGS = [Binding("escape", "cancel", "Close"), Binding("question_mark", "cancel", "Close", show=False)]

    def __init__(self, title: str, rows: list[tuple[str, str, bool]]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description, enabled in self.rows:
            table.add_row(key, description if enabled else Text(f"{description} (read-only: refused)", "dim"))
        with VerticalScroll(classes="dialog -wide"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(table)
            yield Label("Esc closes · ctrl+p lists every action", classes="dialog-keys")
