"""End-to-end workflows built from the lower layers (blind fusion of real pairs)."""
