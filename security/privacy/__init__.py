"""Privacy operations, pure: keyed pseudonyms, retention cutoffs, erasure exemptions, and the
records of processing (GDPR art. 30)."""
