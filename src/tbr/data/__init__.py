"""Data: record schemas, built-in sets, loaders for public sets."""
