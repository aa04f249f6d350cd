"""Writes, undoes and commits weight deltas for every weight-writing method.

Its hooks run last (``trylast``): a method that attaches state instead of writing weights
answers first in its own plugin, and these only see weight deltas. The writing itself is the
ledger's (:mod:`editmethods.ledger`): atomic, logged in order, and undone by replaying the
deltas that remain, so a rollback is bit-exact in any order and a commit is never undone.
"""

from __future__ import annotations

from editmethods.hookspecs import hookimpl
from editmethods.ledger import Ledger


@hookimpl(trylast=True)
def apply(model, update, handle):
    if not update.deltas:
        return None
    Ledger.of(model).write(model, handle.edit_id, update.deltas)
    return model


@hookimpl(trylast=True)
def rollback(model, handle):
    if not handle.update.deltas:
        return None
    Ledger.of(model).unwrite(model, handle.edit_id)
    return True


@hookimpl(trylast=True)
def commit(model, handle):
    if not handle.update.deltas:
        return None
    Ledger.of(model).make_permanent(model, handle.edit_id)
    return True
