"""What the pages and the command line call: one use case a module (import, review, keep learning, sign-in...),
over the store, the formats and ml."""
