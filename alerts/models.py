"""Models of this app; see docs/architecture.md."""
