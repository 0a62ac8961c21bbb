"""The review store: people improve LLM-written data by editing replies, choosing the better of
several, and giving thumbs; their work becomes SFT, DPO and KTO training data.

One SQLite file per project directory, `store_path(project)` = `<project>/.tuneforge/review.db` (WAL
mode; several reviewers in several processes at once). An item is a prompt (canonical messages) with
1 to 4 candidate replies, each with its source (dataset, generate output, model, adapter, endpoint).
Every action is an append-only event; an item's state is derived from its events (latest wins). A
reviewer claims an item with `next_item` (atomic, a lease that expires), so no item is reviewed twice
and nothing recorded is lost.

    from tuneforge.io import read_samples
    from tuneforge.review import ReviewStore, export, import_file, import_samples, review_stats

    store = ReviewStore.open("my-project")                 # creates my-project/.tuneforge/review.db
    import_file(store, "runs/generate/distill")             # -> ImportReport (counts by reason); its data.jsonl
    import_samples(store, read_samples("answers.json")[0])  # or samples already read
    item = store.next_item("alice")                         # Item | None, leased to alice
    store.edit(item.id, "alice", candidate=0, text="A better reply")   # candidates are 0-based
    store.choose(item.id, "alice", candidate=1)             # the best; the others are rejected
    store.thumb(item.id, "alice", candidate=0, up=False)
    store.note(item.id, "alice", "too long")
    store.done(item.id, "alice")                            # or store.skip(...), store.release(...)
    item = store.item(item.id)                              # .prompt, .candidates, .state, .events
    review_stats(store)                                     # -> ReviewStats
    export(store, "dpo", "prefs.jsonl")                     # -> ExportReport (records, reasons)

Actions on an item another reviewer holds raise `ReviewConflict`; an unknown item or candidate raises
`ReviewError` (both `TuneforgeError`s). `store.items()` lists every item with its state (for a web page);
`store.events()` is the whole log.
"""

from tuneforge.review.export import EXPORT_KINDS, ExportKind, ExportReport, export
from tuneforge.review.importer import ImportReport, import_file, import_samples
from tuneforge.review.items import ACTIONS, MAX_CANDIDATES, SOURCE_KINDS, Candidate, Event, Item, ItemState
from tuneforge.review.stats import ReviewStats, review_stats
from tuneforge.review.store import LEASE_S, ReviewConflict, ReviewError, ReviewStore, store_path

__all__ = ["ACTIONS", "EXPORT_KINDS", "LEASE_S", "MAX_CANDIDATES", "SOURCE_KINDS", "Candidate", "Event",
           "ExportKind", "ExportReport", "ImportReport", "Item", "ItemState", "ReviewConflict", "ReviewError",
           "ReviewStats", "ReviewStore", "export", "import_file", "import_samples", "review_stats", "store_path"]
