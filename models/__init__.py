"""policyloop's public contract as pydantic v2 models, with the canonical codec."""
