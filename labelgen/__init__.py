"""labelgen: ground-truth labels for dialogue logs, learned from cheap user feedback."""

__version__ = "0.1.0"
