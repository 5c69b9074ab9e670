"""Form-by-form audit of what a model still knows (issue #3; scoring groundwork so far)."""
