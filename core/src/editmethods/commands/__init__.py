"""The core's own CLI commands, one module each."""
