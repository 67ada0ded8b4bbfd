"""Review: labels from people, golden sets built from them, and their export."""
