"""Stand-in of the real framework's config package."""
