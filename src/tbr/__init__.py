"""Think-Before-Refusal toolkit."""
__version__ = "0.1.0"
