"""Subcommands that live in their own modules (see tbr.cli.COMMAND_MODULES)."""
