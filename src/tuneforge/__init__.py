"""tuneforge: adapt open LLMs to a task or a domain, end to end."""

__version__ = "0.1.0"
