"""`faceparse schemes`: print the label schemes (names, ids, flip pairs, conventions)."""

from __future__ import annotations

import typer
from rich.table import Table

from faceparse.cli import app
from faceparse.cli.common import console


@app.command()
def schemes(name: str = typer.Argument(None, help="One scheme to show in full; omit to list all.")) -> None:
    """List label schemes, or show one scheme's classes, colours and left/right convention."""
    from faceparse.labels import SCHEMES, get_scheme

    if name is None:
        t = Table("scheme", "classes", "left/right means", "description")
        for s in SCHEMES.values():
            t.add_row(s.name, str(s.num_classes), f"the {s.side}'s left", s.description)
        console.print(t)
        return
    s = get_scheme(name)
    t = Table("id", "class", "column", "colour", "flips to", title=f"{s.name}: {s.description}")
    perm = s.flip_permutation()
    for i, c in enumerate(s.classes):
        t.add_row(str(i), c, s.pretty(c), str(s.colors[i]), s.classes[perm[i]])
    console.print(t)
