"""The pure entity core: parse payloads, apply changes, render representations. No I/O."""
