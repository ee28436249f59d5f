"""A project on disk: its folders (layout), its SQLite database, images, masks, drafts, runs and their lineage."""
