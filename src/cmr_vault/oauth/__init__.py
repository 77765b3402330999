"""The OAuth 2.0 authorization server: clients, codes, tokens, pairwise subjects, metadata."""
