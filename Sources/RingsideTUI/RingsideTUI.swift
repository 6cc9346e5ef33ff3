// The Ringside TUI (see docs/user-guide.md).
